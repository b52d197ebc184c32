"""Tests of the entropy OOD detector on a tiny separable task."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from avood_core.protocols import OODDetector, TorchComponent
from avood_core.task import AVSamples
from avood_plugins.detectors.entropy import EntropyDetector

from blobs import SEEN, UNSEEN, blobs, fit_context, fit_detector

FAST = {"epochs": 30, "batch_size": 32}


@pytest.fixture(scope="module")
def data():
    return {
        # 100 per seen class: with fewer, held-out seen entropies spread well above the
        # training mean and the mean threshold routes only ~60 % of held-out seen as seen.
        "seen": blobs(SEEN, 100, 1),
        "synthetic": blobs(UNSEEN, 50, 2),
        "seen_test": blobs(SEEN, 50, 3),
        "unseen_test": blobs(UNSEEN, 50, 4),
    }


def _fit(data, seed: int = 0, **params) -> EntropyDetector:
    return fit_detector(EntropyDetector, {**FAST, **params}, data, seed)


@pytest.fixture(scope="module")
def fitted(data):
    return _fit(data)


def _independent_entropy(det: EntropyDetector, samples: AVSamples) -> torch.Tensor:
    det.net.eval()
    with torch.no_grad():
        probs = torch.softmax(det.net(samples.x), dim=1)
    return torch.special.entr(probs).sum(dim=1)


def test_protocol_and_params():
    det = EntropyDetector()
    assert isinstance(det, OODDetector) and isinstance(det, TorchComponent)
    assert det.kind == "detector" and det.params.threshold_rule == "mean"
    assert det.params.epochs == 80 and det.params.batch_size == 16 and det.params.lr == 9e-4
    with pytest.raises(ValidationError):
        EntropyDetector(bogus=1)
    with pytest.raises(ValidationError):
        EntropyDetector(epochs="many")
    with pytest.raises(ValidationError):
        EntropyDetector(threshold_rule="median")
    EntropyDetector(EntropyDetector.quick)  # the quick profile is valid


def test_loss_decreases(fitted):
    assert fitted.fitted
    assert len(fitted.stats.history) == FAST["epochs"]
    assert fitted.stats.history[-1]["loss"] < fitted.stats.history[0]["loss"]


def test_mean_threshold_is_mean_seen_entropy(fitted, data):
    expected = _independent_entropy(fitted, data["seen"]).mean()
    assert torch.allclose(torch.tensor(fitted.threshold), expected, rtol=1e-4, atol=1e-7)


def test_reference_half_threshold(fitted, data):
    half = _fit(data, threshold_rule="reference_half")
    mean = _independent_entropy(half, data["seen"]).mean().item()
    assert 0.3 * mean < half.threshold < 0.7 * mean


def test_val_mean_threshold_uses_seen_clips_of_the_val_split(data):
    val = AVSamples.concat(data["seen_test"], data["unseen_test"])  # unseen clips must be ignored
    ctx = fit_context()
    ctx.val = val
    torch.manual_seed(0)
    det = EntropyDetector({**FAST, "threshold_rule": "val_mean"}).fit(data["seen"], data["synthetic"], ctx)
    expected = _independent_entropy(det, data["seen_test"]).mean()
    assert torch.allclose(torch.tensor(det.threshold), expected, rtol=1e-4, atol=1e-7)
    from avood_core.errors import AvoodError

    with pytest.raises(AvoodError, match="val_mean"):
        EntropyDetector({**FAST, "threshold_rule": "val_mean"}).fit(data["seen"], data["synthetic"], fit_context())


def test_val_mean_is_carried_as_a_quantile(data):
    """Stage 1 selects val_mean; stage 2 (no val split) reuses it as a quantile of the training entropies."""
    ctx = fit_context()
    ctx.val = data["seen_test"]
    torch.manual_seed(0)
    det = EntropyDetector({**FAST, "threshold_rule": "val_mean"}).fit(data["seen"], data["synthetic"], ctx)
    assert det.selects_on_val() and not EntropyDetector(FAST).selects_on_val()
    chosen = det.selected_params()
    q = chosen["threshold_quantile"]
    assert chosen["threshold_rule"] == "quantile" and 0 < q <= 1
    h_train = _independent_entropy(det, data["seen"])
    assert q == pytest.approx(float((h_train < det.threshold).float().mean()), abs=1e-6)
    torch.manual_seed(0)
    stage2 = EntropyDetector({**FAST, **chosen}).fit(data["seen"], data["synthetic"], fit_context())  # ctx.val None
    expected = torch.quantile(_independent_entropy(stage2, data["seen"]).double(), q)
    assert stage2.threshold == pytest.approx(float(expected), rel=1e-4)
    assert stage2.selected_params() == {}
    with pytest.raises(ValidationError, match="threshold_quantile"):
        EntropyDetector(threshold_rule="quantile")


def test_reference_half_batches_and_scheduler_quantity(data, monkeypatch):
    """Each step: batch_size // 2 real + as many synthetic, ceil(n / batch_size) steps an epoch;
    the plateau scheduler sees Σ_steps −mean H(x̃) (reference classifier_oodgzsl.py fit)."""
    seen_rows: list[int] = []
    from avood_core.fusion import FusedMLP  # the detector's network: its fusion (concat), then the MLP

    real_forward = FusedMLP.forward

    def spy(self, x):
        seen_rows.append(len(x))
        return real_forward(self, x)

    stepped: list[float] = []
    real_step = torch.optim.lr_scheduler.ReduceLROnPlateau.step
    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step",
                        lambda self, metrics, *a, **k: (stepped.append(float(metrics)), real_step(self, metrics))[1])
    monkeypatch.setattr(FusedMLP, "forward", spy)
    n = len(data["seen"])
    det = _fit(data, epochs=3, batch_size=50)
    monkeypatch.undo()
    steps = -(-n // 50)
    training_rows = seen_rows[: 3 * steps]
    assert training_rows == [50] * (3 * steps)  # 25 real + 25 synthetic per step
    assert det.stats.steps == 3 * steps and det.stats.samples == 3 * steps * 50
    assert stepped == pytest.approx([-h["h_unseen"] * steps for h in det.stats.history], rel=1e-5)
    slopes = {m.negative_slope for m in det.net if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_scores_separate_seen_from_unseen(fitted, data):
    s_seen, s_unseen = fitted.score(data["seen_test"]), fitted.score(data["unseen_test"])
    assert s_seen.device.type == "cpu" and s_seen.shape == (len(data["seen_test"]),)
    assert s_seen.mean() < s_unseen.mean()
    assert torch.equal(fitted.is_seen(data["seen_test"]), s_seen < fitted.threshold)
    acc_seen = fitted.is_seen(data["seen_test"]).float().mean()
    acc_unseen = (~fitted.is_seen(data["unseen_test"])).float().mean()
    assert (acc_seen + acc_unseen) / 2 > 0.8  # balanced accuracy of the gate


def test_same_seed_same_outputs(fitted, data):
    again = _fit(data)
    assert torch.equal(again.score(data["seen_test"]), fitted.score(data["seen_test"]))
    assert again.threshold == fitted.threshold


def test_state_round_trip(fitted, data):
    tensors = fitted.state_tensors()
    scalars = json.loads(json.dumps(fitted.state_scalars()))
    fresh = EntropyDetector(fitted.params)
    fresh.load_state(scalars, tensors)
    assert fresh.fitted and fresh.threshold == fitted.threshold
    assert torch.equal(fresh.seen_classes, SEEN)
    both = AVSamples.concat(data["seen_test"], data["unseen_test"])
    assert torch.equal(fresh.score(both), fitted.score(both))
    assert torch.equal(fresh.is_seen(both), fitted.is_seen(both))
