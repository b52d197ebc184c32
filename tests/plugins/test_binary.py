"""Tests of the binary (BCE) OOD detector on a tiny separable task."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pydantic import ValidationError

from avood_core.errors import DataError
from avood_core.protocols import OODDetector, TorchComponent
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_plugins.detectors.binary import BinaryDetector

from blobs import SEEN, UNSEEN, blobs, fit_context, fit_detector

FAST = {"epochs": 20, "batch_size": 32, "hidden": (64, 32)}


@pytest.fixture(scope="module")
def data():
    return {"seen": blobs(SEEN, 60, 1), "synthetic": blobs(UNSEEN, 50, 2),
            "seen_test": blobs(SEEN, 30, 3), "unseen_test": blobs(UNSEEN, 30, 4)}


def _fit(data, seed: int = 0, **params) -> BinaryDetector:
    return fit_detector(BinaryDetector, {**FAST, **params}, data, seed)


@pytest.fixture(scope="module")
def fitted(data):
    return _fit(data)


def test_protocol_params_and_registration():
    det = BinaryDetector()
    assert isinstance(det, OODDetector) and isinstance(det, TorchComponent) and det.kind == "detector"
    p = det.params
    assert (p.hidden, p.lr, p.batch_size, p.epochs, p.betas) == ((512, 128), 9e-4, 16, 80, (0.5, 0.999))
    assert det.threshold == 0.0  # the 0.5-probability rule on the negative logit
    assert math.isclose(BinaryDetector(threshold_prob=0.8).threshold, -math.log(4))
    with pytest.raises(ValidationError):
        BinaryDetector(threshold_prob=1.0)
    with pytest.raises(ValidationError):
        BinaryDetector(bogus=1)
    BinaryDetector(BinaryDetector.quick)
    assert get_registry().component_class("detector", "binary") is BinaryDetector


def test_one_output_logit_and_loss_decreases(fitted):
    assert fitted.net[-1].out_features == 1
    assert len(fitted.stats.history) == FAST["epochs"]
    assert fitted.stats.history[-1]["loss"] < fitted.stats.history[0]["loss"]


def test_loss_is_eq3(data):
    """One full-batch step's recorded loss is BCE(σ(O(x)), 1) + BCE(σ(O(x̃)), 0) of the start weights."""
    n = len(data["seen"])
    syn = data["synthetic"].subset(torch.arange(n) % len(data["synthetic"]))
    torch.manual_seed(5)
    det = BinaryDetector(epochs=1, batch_size=2 * n, hidden=(8,), lr=1e-12)  # one step: n real + n synthetic
    det.fit(data["seen"], syn, fit_context())
    with torch.no_grad():
        p_seen, p_syn = torch.sigmoid(det.net(data["seen"].x)), torch.sigmoid(det.net(syn.x))
        expected = -torch.log(p_seen).mean() - torch.log(1 - p_syn).mean()
    assert det.stats.history[0]["loss"] == pytest.approx(float(expected), rel=1e-4)


def test_score_is_negative_logit_and_routes_by_probability(fitted, data):
    both = AVSamples.concat(data["seen_test"], data["unseen_test"])
    score = fitted.score(both)
    assert torch.allclose(score, -fitted.logits(both))
    assert torch.equal(fitted.is_seen(both), fitted.seen_probability(both) > 0.5)
    s_seen, s_unseen = fitted.score(data["seen_test"]), fitted.score(data["unseen_test"])
    assert s_seen.mean() < s_unseen.mean()
    balanced = (fitted.is_seen(data["seen_test"]).float().mean() + (~fitted.is_seen(data["unseen_test"])).float().mean()) / 2
    assert balanced > 0.8


def test_same_seed_same_outputs_and_state_round_trip(fitted, data):
    again = _fit(data)
    both = AVSamples.concat(data["seen_test"], data["unseen_test"])
    assert torch.equal(again.score(both), fitted.score(both))
    fresh = BinaryDetector(fitted.params)
    fresh.load_state(json.loads(json.dumps(fitted.state_scalars())), fitted.state_tensors())
    assert fresh.fitted and fresh.threshold == fitted.threshold
    assert torch.equal(fresh.score(both), fitted.score(both))


def test_needs_synthetic_features(data):
    empty = data["synthetic"].subset(torch.zeros(len(data["synthetic"]), dtype=torch.bool))
    with pytest.raises(DataError, match="synthetic"):
        BinaryDetector(FAST).fit(data["seen"], empty, fit_context())


def test_conformance_kit():
    from avood_core.testing import check_component

    check_component(BinaryDetector, "detector", {"epochs": 3, "hidden": [32]}, name="binary")
