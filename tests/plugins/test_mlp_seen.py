"""Tests of the MLP seen classifier on a tiny separable task."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from avood_core.protocols import SeenClassifier, TorchComponent
from avood_core.task import AVSamples
from avood_plugins.seen.mlp import MLPSeenClassifier

from blobs import SEEN, UNSEEN, blobs, fit_context

FAST = {"epochs": 60}


@pytest.fixture(scope="module")
def train():
    return blobs(SEEN, 30, 1)


def _fit(train, seed: int = 0, val: AVSamples | None = None, **params) -> MLPSeenClassifier:
    torch.manual_seed(seed)
    return MLPSeenClassifier({**FAST, **params}).fit(train, fit_context(val=val))


@pytest.fixture(scope="module")
def fitted(train):
    return _fit(train)


def test_protocol_and_params():
    clf = MLPSeenClassifier()
    assert isinstance(clf, SeenClassifier) and isinstance(clf, TorchComponent)
    assert clf.kind == "seen" and not clf.uses_synthetic
    assert clf.params.epochs == 200 and clf.params.batch_size == 32 and clf.params.lr == 6e-4
    with pytest.raises(ValidationError):
        MLPSeenClassifier(bogus=1)
    with pytest.raises(ValidationError):
        MLPSeenClassifier(dropout="lots")
    MLPSeenClassifier(MLPSeenClassifier.quick)  # the quick profile is valid


def test_loss_decreases(fitted):
    assert fitted.fitted and len(fitted.stats.history) == FAST["epochs"]
    assert fitted.stats.history[-1]["loss"] < fitted.stats.history[0]["loss"]


def test_predicts_global_ids_accurately(fitted, train):
    pred = fitted.predict(train)
    assert pred.dtype == torch.long and pred.device.type == "cpu"
    assert torch.isin(pred, SEEN).all()
    assert (pred == train.labels).float().mean() > 0.9
    assert fitted.logits(train).shape == (len(train), len(SEEN))


def test_same_seed_same_outputs(fitted, train):
    again = _fit(train)
    assert torch.equal(again.logits(train), fitted.logits(train))


def test_select_on_val_uses_val_only(train):
    val = AVSamples.concat(blobs(SEEN, 10, 5), blobs(UNSEEN, 10, 6))  # unseen rows are ignored
    clf = _fit(train, val=val, epochs=10, select_on_val=True)
    assert all("val_acc" in h for h in clf.stats.history)
    best = max(range(10), key=lambda e: clf.stats.history[e]["val_acc"])
    assert clf.best_epoch == best
    plain = _fit(train, val=val, epochs=10)  # select_on_val off: val is not evaluated
    assert plain.best_epoch is None and "val_acc" not in plain.stats.history[0]


def test_state_round_trip(fitted, train):
    tensors = fitted.state_tensors()
    scalars = json.loads(json.dumps(fitted.state_scalars()))
    fresh = MLPSeenClassifier(fitted.params)
    fresh.load_state(scalars, tensors)
    assert fresh.fitted and torch.equal(fresh.seen_classes, SEEN)
    test = blobs(SEEN, 10, 7)
    assert torch.equal(fresh.predict(test), fitted.predict(test))
    assert torch.equal(fresh.logits(test), fitted.logits(test))
