"""Tests of the WGAN-GP generator plugin on a tiny synthetic AV-GZSL task (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from avood_core.errors import AvoodError, DataError, TrainingDiverged
from avood_core.protocols import FitContext, Generator
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_plugins.generators.wgan_gp import WGANGP

N_CLASSES, PER_CLASS, AUDIO, VIDEO, TEXT = 6, 30, 16, 12, 10
SEEN, UNSEEN = torch.arange(4), torch.arange(4, 6)
TINY = {"noise_dim": 16, "hidden": 64, "epochs": 4, "batches_per_epoch": 40, "batch_size": 32, "lr": 3e-3}


def make_task(seed: int = 0) -> tuple[AVSamples, torch.Tensor]:
    """All 6 classes' samples and unit-norm text; features = nonlinear map of the text + noise."""
    g = torch.Generator().manual_seed(seed)
    text = torch.nn.functional.normalize(torch.randn(N_CLASSES, TEXT, generator=g), dim=1)
    w = torch.randn(TEXT, AUDIO + VIDEO, generator=g)
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    x = torch.tanh(text[labels] @ w) + 0.1 * torch.randn(len(labels), AUDIO + VIDEO, generator=g)
    return AVSamples(x[:, :AUDIO], x[:, AUDIO:], labels), text


def context(text: torch.Tensor, **kw) -> FitContext:
    return FitContext(text=text, seen_classes=SEEN, unseen_classes=UNSEEN, device=torch.device("cpu"), **kw)


def fit(seed: int = 0, **params) -> tuple[WGANGP, AVSamples, torch.Tensor]:
    samples, text = make_task()
    train = samples.where(SEEN)
    torch.manual_seed(seed)
    gen = WGANGP({**TINY, **params}).fit(train, text, context(text))
    return gen, samples, text


def generate(gen: WGANGP, text: torch.Tensor, ids: torch.Tensor = SEEN, n: int = 40, seed: int = 1) -> AVSamples:
    torch.manual_seed(seed)
    return gen.generate(ids, text, n)


@pytest.fixture(scope="module")
def fitted() -> tuple[WGANGP, AVSamples, torch.Tensor]:
    return fit()


def test_is_a_registered_generator() -> None:
    assert isinstance(WGANGP(), Generator)
    assert WGANGP.kind == "generator"
    assert get_registry().component_class("generator", "wgan_gp") is WGANGP


def test_params_defaults_and_validation() -> None:
    p = WGANGP().params
    assert (p.noise_dim, p.hidden, p.critic_iters, p.epochs, p.batches_per_epoch) == (1024, 512, 5, 5, 500)
    # the reference code's weights (0.01 on L_rec, 0.1 on L_emb), not the paper text's swapped ones
    assert (p.lr, p.beta1, p.beta2, p.gp_lambda, p.alpha, p.beta) == (1e-4, 0.5, 0.999, 10.0, 0.01, 0.1)
    assert p.batch_size == 112  # the reference's UCF clsu.bs (the GAN trains on that loader)
    assert p.compat_label_condition is False
    assert all(f.description for f in type(p).model_fields.values())
    with pytest.raises(ValidationError):
        WGANGP(not_a_param=1)
    with pytest.raises(ValidationError):
        WGANGP(critic_iters=0)
    WGANGP(**WGANGP.quick)  # the quick profile is valid


def test_paper_architecture_dims() -> None:
    net = WGANGP().make_net(x_dim=1024, t_dim=300)
    shapes = lambda seq: [tuple(m.weight.shape) for m in seq if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert shapes(net.G) == [(512, 1324), (512, 512), (1024, 512)]
    assert shapes(net.D) == [(662, 1324), (1, 662)]
    assert shapes(net.Dec) == [(662, 1024), (662, 662), (300, 662)]


def test_generate_shapes_dtypes_labels(fitted) -> None:
    gen, _, text = fitted
    assert gen.fitted and gen.audio_dim == AUDIO
    out = generate(gen, text, UNSEEN, n=7)
    assert out.audio.shape == (14, AUDIO) and out.video.shape == (14, VIDEO)
    assert out.audio.dtype == out.video.dtype == torch.float32 and out.labels.dtype == torch.int64
    assert out.labels.tolist() == [4] * 7 + [5] * 7
    assert out.audio.device.type == "cpu"
    assert torch.isfinite(out.x).all()


def test_history_and_decoder_learns(fitted) -> None:
    gen, _, _ = fitted
    assert len(gen.stats.history) == TINY["epochs"]
    for row in gen.stats.history:
        assert set(row) == {"epoch", "d_loss", "g_loss", "dec_loss", "wasserstein", "lr"}
        assert all(math.isfinite(v) for v in row.values())
    assert gen.stats.history[-1]["dec_loss"] < 0.5 * gen.stats.history[0]["dec_loss"]


def test_generated_class_means_match_their_class(fitted) -> None:
    gen, samples, text = fitted
    out = generate(gen, text, SEEN, n=100)
    real = torch.stack([samples.x[samples.labels == c].mean(0) for c in SEEN])
    fake = torch.stack([out.x[out.labels == c].mean(0) for c in SEEN])
    d = torch.cdist(fake, real)  # (generated class, real class)
    own = d.diag()
    other = (d.sum(1) - own) / (len(SEEN) - 1)
    assert (d.argmin(1) == torch.arange(len(SEEN))).float().mean() >= 0.75
    assert own.mean() < 0.6 * other.mean()


def test_same_seed_same_output(fitted) -> None:
    gen, _, text = fitted
    a, b = generate(gen, text, seed=3), generate(gen, text, seed=3)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, generate(gen, text, seed=4).x)


def test_same_seed_same_fit() -> None:
    small = {"epochs": 1, "batches_per_epoch": 3}
    g1, _, text = fit(seed=5, **small)
    g2, _, _ = fit(seed=5, **small)
    assert torch.equal(generate(g1, text).x, generate(g2, text).x)


def test_state_roundtrip(fitted) -> None:
    gen, _, text = fitted
    scalars, tensors = gen.state_scalars(), gen.state_tensors()
    assert scalars["audio_dim"] == AUDIO and scalars["dims"] == {"x_dim": AUDIO + VIDEO, "t_dim": TEXT}
    loaded = WGANGP(gen.params)
    loaded.load_state(scalars, tensors)
    assert loaded.fitted
    a, b = generate(gen, text, UNSEEN), generate(loaded, text, UNSEEN)
    assert torch.equal(a.audio, b.audio) and torch.equal(a.video, b.video) and torch.equal(a.labels, b.labels)


def test_compat_label_condition_is_synthesis_only(fitted) -> None:
    """Defect 2 as in the reference: G trains on the text; synthesis conditions on the id broadcast."""
    gen, _, text = fitted
    small = {"epochs": 1, "batches_per_epoch": 5}
    compat, _, _ = fit(seed=2, compat_label_condition=True, **small)
    plain, _, _ = fit(seed=2, **small)
    for (name, a), b in zip(compat.state_tensors().items(), plain.state_tensors().values()):
        assert torch.equal(a, b), name  # training is untouched by the switch
    labels = torch.tensor([4, 5])
    cond = compat._synthesis_condition(labels, text)
    assert torch.equal(cond, torch.tensor([[4.0] * TEXT, [5.0] * TEXT]))
    assert torch.equal(gen._synthesis_condition(labels, text), text[labels])
    out = generate(compat, text, UNSEEN)
    assert torch.isfinite(out.x).all()
    assert not torch.allclose(out.x, generate(plain, text, UNSEEN).x)


def test_one_real_batch_per_generator_step(monkeypatch) -> None:
    """Critic iterations and the G step share one real batch (reference optimize_params)."""
    from avood_core.train import loops as training

    draws: list[int] = []
    real_sample = training.ClassBalancedSampler.sample

    def counting(self, batch_size):
        draws.append(batch_size)
        return real_sample(self, batch_size)

    monkeypatch.setattr(training.ClassBalancedSampler, "sample", counting)
    gen, _, _ = fit(epochs=2, batches_per_epoch=3, critic_iters=4, batch_size=24)
    assert draws == [24] * 6 and gen.stats.steps == 6 and gen.stats.samples == 6 * 24


def test_step_counts_decoder_steps_in_the_g_step() -> None:
    """critic_iters decoder + critic steps, then one G step and one more decoder step on α·MSE(Dec(x̃), t)."""
    samples, text = make_task()
    train = samples.where(SEEN)
    gen = WGANGP(TINY, critic_iters=3)
    net = gen.build("cpu", x_dim=train.x.shape[1], t_dim=TEXT)
    opts = tuple(torch.optim.Adam(m.parameters(), lr=1e-3) for m in (net.G, net.D, net.Dec))
    calls: list[str] = []
    for name, opt in zip(("G", "D", "Dec"), opts):
        step = opt.step
        opt.step = lambda *a, _s=step, _n=name, **k: (calls.append(_n), _s(*a, **k))[1]
    x, labels = train.x[:16], train.labels[:16]
    torch.manual_seed(0)
    gen._step(net, x, labels, text[labels], opts, "fp32")
    assert calls == ["Dec", "D"] * 3 + ["G", "Dec"]
    # the G step's backward reached the decoder (α·MSE(Dec(x̃), t)) and G, not the frozen critic
    assert all(p.grad is not None for p in net.Dec.parameters()) and all(p.grad is not None for p in net.G.parameters())
    assert all(p.requires_grad for p in net.D.parameters())  # unfrozen again


def test_reference_weights_init_of_a_fresh_net() -> None:
    """weights_init of the reference: Linear N(0, 0.02) with zero bias on G, D and Dec."""
    torch.manual_seed(0)
    net = WGANGP().make_net(x_dim=1024, t_dim=300).requires_grad_(False)
    for part in (net.G, net.D, net.Dec):
        for m in part:
            if isinstance(m, torch.nn.Linear):
                assert abs(float(m.weight.std()) - 0.02) < 2e-3 and abs(float(m.weight.mean())) < 2e-3
                assert torch.count_nonzero(m.bias) == 0


def test_divergence_is_reported() -> None:
    samples, text = make_task()
    train = samples.where(SEEN)
    train.audio[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="generator wgan_gp"):
        WGANGP(TINY, epochs=1, batches_per_epoch=200).fit(train, text, context(text))


def test_progress_tracker_gets_metrics() -> None:
    calls: list[tuple] = []

    class Recorder:
        def __init__(self, total: int, description: str) -> None:
            calls.append(("open", total, description))

        def update(self, n: int = 1, **metrics: float) -> None:
            calls.append(("update", n, sorted(metrics)))

        def close(self) -> None:
            calls.append(("close",))

    samples, text = make_task()
    torch.manual_seed(0)
    WGANGP(TINY, epochs=2, batches_per_epoch=3).fit(samples.where(SEEN), text, context(text, progress=Recorder))
    assert calls[0] == ("open", 6, "generator") and calls[-1] == ("close",)
    updates = [c for c in calls if c[0] == "update"]
    assert len(updates) == 6 and updates[2][2] == ["d_loss", "dec_loss", "g_loss", "wasserstein"]  # the epoch's readout


def test_bad_input_is_reported() -> None:
    samples, text = make_task()
    with pytest.raises(AvoodError, match="not fitted"):
        WGANGP(TINY).generate(UNSEEN, text, 3)
    with pytest.raises(DataError, match="text rows"):
        WGANGP(TINY).fit(samples.where(SEEN), text[:2], context(text))
