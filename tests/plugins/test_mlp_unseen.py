"""Tests of the MLP unseen classifier trained on generated (synthetic) unseen features."""

from __future__ import annotations

import json

import pytest
import torch

from avood_core.errors import DataError
from avood_core.pipeline import Pipeline
from avood_core.protocols import FitContext, TorchComponent, UnseenClassifier
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_plugins.unseen.mlp import MLPUnseenClassifier

from blobs import blobs, fit_context
from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator

SEEN, UNSEEN = torch.tensor([0, 1, 4, 6]), torch.tensor([2, 3, 5])
FAST = {"epochs": 15, "batch_size": 32, "hidden": (32,), "lr": 3e-3}


def _blobs(classes: torch.Tensor, per_class: int, seed: int) -> AVSamples:
    """7 classes in 10 dimensions (4 audio, 6 video), means further apart than the default blobs."""
    return blobs(classes, per_class, seed, n_classes=7, dim=10, audio_dim=4, scale=2.0, means_seed=11)


def _ctx(synthetic) -> FitContext:
    return fit_context(SEEN, UNSEEN, (7, 5), synthetic=synthetic)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    real_seen = _blobs(SEEN, 30, 1)
    return MLPUnseenClassifier(FAST).fit(real_seen, torch.randn(7, 5), _ctx(_blobs(UNSEEN, 50, 2)))


def test_protocol_params_registration():
    clf = MLPUnseenClassifier()
    assert isinstance(clf, UnseenClassifier) and isinstance(clf, TorchComponent)
    assert clf.kind == "unseen" and clf.uses_synthetic
    assert (clf.params.hidden, clf.params.lr, clf.params.batch_size, clf.params.epochs) == (("n_classes/2", 256), 6e-4, 32, 200)
    MLPUnseenClassifier(MLPUnseenClassifier.quick)


def test_reference_class_u_shape():
    """Reference CLASS_U: in -> n_classes // 2 -> 256 -> n_classes, LeakyReLU 0.2, no dropout."""
    net = MLPUnseenClassifier().make_net(in_dim=1024, n_classes=9)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1024, 4), (4, 256), (256, 9)]
    assert all(m.p == 0.0 for m in net if isinstance(m, torch.nn.Dropout))
    slopes = {m.negative_slope for m in net if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    custom = MLPUnseenClassifier(hidden=[64, "n_classes/2"]).make_net(in_dim=10, n_classes=30)
    assert [m.out_features for m in custom if isinstance(m, torch.nn.Linear)] == [64, 15, 30]
    assert get_registry().component_class("unseen", "mlp") is MLPUnseenClassifier


def test_trains_on_synthetic_classes_only(fitted):
    assert torch.equal(fitted.classes, UNSEEN)
    assert fitted.net[-1].out_features == len(UNSEEN)
    assert fitted.stats.history[-1]["loss"] < fitted.stats.history[0]["loss"]


def test_predicts_among_known_candidates(fitted):
    test = _blobs(UNSEEN, 20, 3)
    text = torch.randn(7, 5)
    pred = fitted.predict(test, UNSEEN, text)
    assert torch.isin(pred, UNSEEN).all() and (pred == test.labels).float().mean() > 0.8
    # Unknown candidates (seen classes) get -inf: never predicted, even for seen clips.
    everything = torch.arange(7)
    assert torch.isin(fitted.predict(_blobs(SEEN, 10, 4), everything, text), UNSEEN).all()
    # A subset of candidates restricts the prediction to it.
    sub = torch.tensor([2, 5])
    assert torch.isin(fitted.predict(test, sub, text), sub).all()
    with pytest.raises(DataError, match="none of the"):
        fitted.predict(test, SEEN, text)


def test_needs_synthetic_features():
    with pytest.raises(DataError, match="ctx.synthetic"):
        MLPUnseenClassifier(FAST).fit(_blobs(SEEN, 5, 1), torch.randn(7, 5), _ctx(None))


def test_state_round_trip(fitted):
    fresh = MLPUnseenClassifier(fitted.params)
    fresh.load_state(json.loads(json.dumps(fitted.state_scalars())), fitted.state_tensors())
    test = _blobs(UNSEEN, 5, 6)
    assert torch.equal(fresh.predict(test, UNSEEN, None), fitted.predict(test, UNSEEN, None))


def test_pipeline_hands_it_the_generated_features(tiny_task):
    """Fitted inside the pipeline, it learns the synthesized unseen classes; the no-gate
    baseline (all classes as candidates) can then only predict unseen classes."""
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(),
                    MLPUnseenClassifier(FAST), syn_num=30).fit(tiny_task, seed=0)
    assert torch.equal(pipe.unseen.classes, tiny_task.unseen_classes)
    out = pipe.outputs(tiny_task.test)
    assert torch.isin(out["baseline_pred"], tiny_task.unseen_classes).all()
    assert torch.isin(out["unseen_pred"], tiny_task.unseen_classes).all()


def test_conformance_kit():
    from avood_core.testing import check_component

    check_component(MLPUnseenClassifier, "unseen", {"epochs": 3, "hidden": [32]}, name="mlp")
