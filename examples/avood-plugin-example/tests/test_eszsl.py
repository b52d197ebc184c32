"""Tests of the ESZSL unseen classifier: avood's conformance kit plus ESZSL's own properties.

Run from this folder with ``pytest`` (``src`` is on the path; the entry-point test runs once the
package is installed, e.g. ``pip install -e .``).
"""

from __future__ import annotations

import importlib.metadata as md

import pytest
import torch
from pydantic import ValidationError

from avood_core import mean_class_accuracy
from avood_core.testing import ComponentContract, make_context, make_kit_data
from avood_example.eszsl import ESZSL


class TestESZSLConforms(ComponentContract):
    """The protocol checks every avood component passes (defaults; closed form needs no budget cut)."""

    component = ESZSL
    name = "eszsl"


class TestESZSLRawOneHotConforms(ComponentContract):
    """The same checks with the other options switched."""

    component = ESZSL
    name = "eszsl"
    params = {"standardize": False, "targets": "onehot", "gamma": 1.0, "lam": 1.0}


@pytest.fixture(scope="module")
def data():
    return make_kit_data(seed=3)


def _fit(data, **params) -> ESZSL:
    task = data.task
    return ESZSL(params).fit(task.train, task.text, make_context(data))


def test_v_is_the_closed_form(data):
    """V equals (XᵀX + γI)⁻¹ Xᵀ Y S (SᵀS + λI)⁻¹ computed independently (numpy-free, explicit inverses)."""
    gamma, lam = 5.0, 0.5
    model = _fit(data, gamma=gamma, lam=lam)
    task = data.task
    x = task.train.x.double()
    x = (x - x.mean(0)) / x.std(0, correction=0)
    classes = task.seen_classes
    y = -torch.ones(len(x), len(classes), dtype=torch.float64)
    y[torch.arange(len(x)), torch.searchsorted(classes, task.train.labels)] = 1.0
    s = task.text[classes].double()
    v = (torch.linalg.inv(x.T @ x + gamma * torch.eye(x.shape[1], dtype=torch.float64)) @ x.T @ y @ s
         @ torch.linalg.inv(s.T @ s + lam * torch.eye(s.shape[1], dtype=torch.float64)))
    assert torch.allclose(model.net.V.double(), v, rtol=1e-4, atol=1e-6)


def test_distances_are_negative_compatibility(data):
    model = _fit(data)
    task = data.task
    cand = task.unseen_classes
    comp = model.compatibility(task.test, cand, task.text)
    assert torch.equal(model.distances(task.test, cand, task.text), -comp)
    assert torch.equal(model.predict(task.test, cand, task.text), cand[comp.argmax(dim=1)])


def test_zero_shot_well_above_chance(data):
    task = data.task
    model = _fit(data)
    unseen = task.test.where(task.unseen_classes)
    pred = model.predict(unseen, task.unseen_classes, task.text)
    chance = 100.0 / len(task.unseen_classes)
    assert mean_class_accuracy(pred, unseen.labels, task.unseen_classes) > chance + 25


def test_params_are_validated():
    assert ESZSL().params.gamma > 0 and ESZSL().params.standardize is True
    for bad in ({"gamma": 0}, {"lam": -1}, {"targets": "both"}, {"gama": 1.0}):
        with pytest.raises(ValidationError):
            ESZSL(bad)


def test_not_fitted_is_a_clear_error(data):
    from avood_core import AvoodError

    with pytest.raises(AvoodError, match="not fitted"):
        ESZSL().distances(data.task.test, data.task.unseen_classes, data.task.text)


def _installed() -> bool:
    try:
        md.distribution("avood-plugin-example")
    except md.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="avood-plugin-example is not installed (pip install -e .)")
def test_registered_through_the_entry_point():
    from avood_core import Registry

    registry = Registry()
    entry = registry.entry("unseen", "eszsl")
    assert entry.provider.dist == "avood-plugin-example" and entry.provider.version == "0.1.0"
    assert registry.component_class("unseen", "eszsl") is ESZSL
