"""Tests of the AVCA cross-attention unseen classifier (paper §3.4) on a tiny zero-shot task."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from avood_core.errors import AvoodError, DataError
from avood_core.protocols import FitContext, TorchComponent, UnseenClassifier
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

SMALL: dict[str, Any] = dict(
    embed_dim=24, enc_hidden=32, proj_hidden=32, joint_dim=16, heads=2, ff_dim=16, batch_size=32,
    epochs=6, batches_per_epoch=20, lr=3e-3, r_enc=0.1, r_proj=0.1, r_dec=0.1,
)


@pytest.fixture(scope="module")
def task():
    """10 classes, text = unit rows of a rank-4 random map; a, v = fixed nonlinear maps of t + noise.

    Classes 0-6 are seen (train), 7-9 unseen (zero-shot test).
    """
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(10, 4, generator=g) @ torch.randn(4, 20, generator=g), dim=1)
    wa, wv = torch.randn(20, 16, generator=g), torch.randn(20, 12, generator=g)

    def samples(classes: torch.Tensor, n_per: int) -> AVSamples:
        y = classes.repeat_interleave(n_per)
        t = text[y]
        return AVSamples(torch.tanh(t @ wa) + 0.1 * torch.randn(len(y), 16, generator=g),
                         torch.tanh(t @ wv) + 0.1 * torch.randn(len(y), 12, generator=g), y)

    seen, unseen = torch.arange(7), torch.arange(7, 10)
    return {"text": text, "seen": seen, "unseen": unseen, "train": samples(seen, 40), "test": samples(unseen, 40)}


class Recorder:
    """A progress factory that counts steps and closes."""

    def __init__(self) -> None:
        self.steps, self.closed, self.metrics = 0, 0, []

    def __call__(self, total: int, description: str) -> "Recorder":
        self.total, self.description = total, description
        return self

    def update(self, n: int = 1, **metrics: float) -> None:
        self.steps += n
        if metrics:
            self.metrics.append(metrics)

    def close(self) -> None:
        self.closed += 1


def fit_tiny(task, seed: int = 0, progress: Recorder | None = None, **over: Any):
    """Fit with a fixed seed; returns the classifier and its position embeddings at init."""
    torch.manual_seed(seed)
    clf = CrossAttentionClassifier(**{**SMALL, **over})
    initial: dict[str, torch.Tensor] = {}
    make_net = clf.make_net

    def spy(**dims: int):
        net = make_net(**dims)
        initial["pos"] = net.pos.detach().clone()
        return net

    clf.make_net = spy  # type: ignore[method-assign]
    ctx = FitContext(text=task["text"], seen_classes=task["seen"], unseen_classes=task["unseen"],
                     device=torch.device("cpu"), progress=progress)
    clf.fit(task["train"], task["text"], ctx)
    return clf, initial["pos"]


@pytest.fixture(scope="module")
def fitted(task):
    progress = Recorder()
    clf, pos0 = fit_tiny(task, progress=progress)
    return clf, pos0, progress


def test_protocol_and_registry():
    clf = CrossAttentionClassifier()
    assert isinstance(clf, UnseenClassifier) and isinstance(clf, TorchComponent)
    assert clf.kind == "unseen" and not clf.fitted
    assert get_registry().component_class("unseen", "cross_attention") is CrossAttentionClassifier
    p = clf.params
    assert (p.lr, p.batch_size, p.r_enc, p.r_proj, p.r_dec, p.embed_dim, p.joint_dim) == (2.4e-3, 112, .5, .4, .4, 300, 64)
    assert p.negative_terms == ["trip", "rec", "reg"] and p.compat_frozen_position is False
    CrossAttentionClassifier(**CrossAttentionClassifier.quick)  # quick overrides validate


def test_params_validation():
    with pytest.raises(ValidationError):
        CrossAttentionClassifier(not_a_param=1)
    with pytest.raises(ValidationError):
        CrossAttentionClassifier(negative_terms=["trip", "bogus"])
    with pytest.raises(ValidationError):
        CrossAttentionClassifier(negative_terms=["trip", "trip"])
    with pytest.raises(ValidationError):
        CrossAttentionClassifier(embed_dim=10, heads=3)
    assert CrossAttentionClassifier(negative_terms=[]).params.negative_terms == []


def test_unfitted_and_bad_data(task):
    with pytest.raises(AvoodError, match="not fitted"):
        CrossAttentionClassifier().distances(task["test"], task["unseen"], task["text"])
    one_class = task["train"].where(torch.tensor([0]))
    ctx = FitContext(text=task["text"], seen_classes=task["seen"], unseen_classes=task["unseen"], device=torch.device("cpu"))
    with pytest.raises(DataError, match="two training classes"):
        CrossAttentionClassifier(**SMALL).fit(one_class, task["text"], ctx)


def test_distances_and_predict(task, fitted):
    clf = fitted[0]
    assert clf.fitted
    candidates = torch.tensor([9, 2, 7, 5])
    d = clf.distances(task["test"], candidates, task["text"])
    assert d.shape == (len(task["test"]), 4) and d.device.type == "cpu" and (d >= 0).all()
    pred = clf.predict(task["test"], candidates, task["text"])
    assert pred.shape == (len(task["test"]),) and torch.isin(pred, candidates).all()
    assert torch.equal(pred, candidates[d.argmin(1)])
    assert not d.is_inference()
    d[:, 0] += 1.0  # callers (e.g. calibrated stacking) may shift distances in place
    empty = task["test"].subset(torch.tensor([], dtype=torch.long))
    assert clf.distances(empty, candidates, task["text"]).shape == (0, 4)


def test_training_history_and_progress(fitted):
    clf, _, progress = fitted
    h = clf.stats.history
    assert len(h) == SMALL["epochs"] and set(h[0]) >= {"loss", "trip", "rec", "reg"}
    assert h[-1]["loss"] < h[0]["loss"]
    assert progress.total == progress.steps == SMALL["epochs"] * SMALL["batches_per_epoch"]
    assert progress.description == "unseen" and progress.closed == 1 and progress.metrics


def test_zero_shot_accuracy_above_chance(task, fitted):
    clf = fitted[0]
    test = task["test"]
    acc = (clf.predict(test, task["unseen"], task["text"]) == test.labels).float().mean().item()
    assert acc > 0.55, f"zero-shot accuracy {acc:.2f} among 3 unseen classes (chance 0.33)"


def test_negative_terms_change_the_loss(task, fitted):
    plus_only, _ = fit_tiny(task, negative_terms=[])
    full = fitted[0].stats.history
    assert plus_only.stats.history != full
    assert plus_only.stats.history[0]["trip"] < full[0]["trip"]  # L⁺ alone has half the triplet terms


def test_decoder_triplets_l_ct_present_and_switchable():
    """l_ct = T(ρw, ρv, ρv⁻) + T(ρw, ρa, ρa⁻) on the decoder outputs (reference loss_function_w_a)."""
    from avood_plugins.unseen.cross_attention import trip_loss

    assert CrossAttentionClassifier().params.decoder_triplets is True
    g = torch.Generator().manual_seed(0)
    keys = ("a", "v", "t", "dec_a", "dec_v", "dec_t")
    s = {k: torch.randn(8, 4, generator=g) for k in keys}
    o = {k: torch.randn(8, 4, generator=g) for k in keys}
    t = lambda x, y, z: torch.nn.functional.triplet_margin_loss(x, y, z, margin=1.0)  # noqa: E731
    l_ct = t(s["dec_t"], s["dec_v"], o["dec_v"]) + t(s["dec_t"], s["dec_a"], o["dec_a"])
    assert float(l_ct) > 0
    assert torch.allclose(trip_loss(s, o, 1.0), trip_loss(s, o, 1.0, decoder=False) + l_ct)


def test_decoder_triplets_switch_changes_training(task, fitted):
    without, _ = fit_tiny(task, decoder_triplets=False)
    assert without.stats.history[0]["trip"] < fitted[0].stats.history[0]["trip"]  # 2 x 2 fewer triplet terms


def test_bn_momentum_only_on_the_last_bn_of_two_layer_stacks():
    """Reference EmbeddingNet: momentum on the output BN of a hidden-layer stack; D, A_rec, V_rec keep 0.1."""
    net = CrossAttentionClassifier(bn_momentum=0.99).make_net(audio_dim=12, video_dim=10, text_dim=7)
    momenta = lambda stack: [m.momentum for m in stack if isinstance(m, torch.nn.BatchNorm1d)]  # noqa: E731
    for name in ("A_enc", "V_enc", "A_proj", "V_proj", "W_proj"):
        assert momenta(getattr(net, name)) == [0.1, 0.99], name
    for name in ("D", "A_rec", "V_rec"):
        assert momenta(getattr(net, name)) == [0.1], name


def test_reference_init_of_the_embedding_nets_only():
    """weights_init on every EmbeddingNet (Linear N(0, 0.02), bias 0; BN γ ~ N(1, 0.02), β 0);
    the transformer layer keeps PyTorch's init, as in the reference."""
    torch.manual_seed(0)
    net = CrossAttentionClassifier().make_net(audio_dim=512, video_dim=512, text_dim=300).requires_grad_(False)
    for name in ("A_enc", "V_enc", "A_proj", "V_proj", "W_proj", "D", "A_rec", "V_rec"):
        for m in getattr(net, name):
            if isinstance(m, torch.nn.Linear):
                assert abs(float(m.weight.std()) - 0.02) < 3e-3 and torch.count_nonzero(m.bias) == 0, name
            if isinstance(m, torch.nn.BatchNorm1d):
                assert torch.count_nonzero(m.bias) == 0 and abs(float(m.weight.mean()) - 1) < 0.01, name
                assert 0.01 < float(m.weight.std()) < 0.03, name
    assert torch.count_nonzero(net.cross.out.bias) > 0  # PyTorch's default init, not weights_init


def test_position_embeddings_compat_switch(task, fitted):
    clf, pos0, _ = fitted
    assert clf.net.pos.requires_grad and not torch.equal(clf.net.pos.detach(), pos0)
    frozen, frozen0 = fit_tiny(task, compat_frozen_position=True)
    assert not frozen.net.pos.requires_grad
    assert torch.equal(frozen.net.pos.detach(), frozen0)


def test_same_seed_same_distances(task, fitted):
    again, _ = fit_tiny(task)
    a = fitted[0].distances(task["test"], task["unseen"], task["text"])
    b = again.distances(task["test"], task["unseen"], task["text"])
    assert torch.equal(a, b)


def test_state_round_trip(task, fitted):
    clf = fitted[0]
    scalars = json.loads(json.dumps(clf.state_scalars()))
    fresh = CrossAttentionClassifier(clf.params)
    fresh.load_state(scalars, clf.state_tensors())
    assert fresh.fitted
    candidates = torch.arange(10)
    assert torch.equal(fresh.distances(task["test"], candidates, task["text"]),
                       clf.distances(task["test"], candidates, task["text"]))
