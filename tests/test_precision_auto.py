"""``precision = "auto"`` (generator, unseen cross_attention): bf16 only where the hardware has native bf16.

The resolution is checked with mocked CPU flags and CUDA answers (both outcomes), on this
machine against its own ``/proc/cpuinfo``, and through tiny fits: "auto" resolved to a
precision trains exactly what that explicit precision trains (same seed, same weights) and is
saved with the component.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from avood_core.train import precision as perf
from avood_core.protocols import FitContext
from avood_core.task import AVSamples
from avood_plugins.generators.wgan_gp import WGANGP
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # AMD Zen 4 / Intel Cooper Lake
    ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "bf16"),  # Intel Sapphire Rapids (AMX)
    ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),  # AVX-512 without bf16: bf16 would be emulated
    ({"avx2"}, "fp32"),
    (set(), "fp32"),
])
def test_auto_follows_the_cpu_flags(flags, expected):
    assert perf.resolve_precision("auto", "cpu", flags) == expected


def test_auto_with_mocked_flag_reader(monkeypatch):
    monkeypatch.setattr(perf, "cpu_flags", lambda: {"avx2", "avx512f", "amx_bf16"})
    assert perf.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(perf, "cpu_flags", lambda: {"avx2"})
    assert perf.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(perf, "cpu_flags", lambda: None)  # flags unknown: nothing is assumed
    assert perf.resolve_precision("auto", "cpu") == "fp32"


def test_explicit_precisions_pass_through_and_bad_ones_fail():
    assert perf.resolve_precision("fp32", "cpu", {"amx_bf16"}) == "fp32"
    assert perf.resolve_precision("bf16", "cpu", set()) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        perf.resolve_precision("fp16", "cpu", set())


def test_auto_on_cuda_follows_is_bf16_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert perf.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert perf.resolve_precision("auto", "cuda:0") == "fp32"


def _proc_flags() -> set[str] | None:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_auto_on_this_machine_matches_its_flags():
    flags = _proc_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this OS")
    assert perf.cpu_flags() == {f for f in perf.ISA_FLAGS if f in flags}
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert perf.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")


def test_auto_only_where_it_is_offered():
    """The small MLPs gain little from bf16 (docs/performance.md), so their precision takes no "auto"."""
    from avood_plugins.seen.mlp import MLPSeenClassifier

    assert CrossAttentionClassifier({"precision": "auto"}).params.precision == "auto"
    assert WGANGP({"precision": "auto"}).params.precision == "auto"
    with pytest.raises(ValidationError):
        MLPSeenClassifier({"precision": "auto"})


def test_fp32_stays_every_components_default():
    """auto stays opt-in: bf16's paired HM difference to fp32 did not pass the full-epoch rule
    (docs/performance.md, "bf16 autocast")."""
    from avood_plugins.detectors.entropy import EntropyDetector
    from avood_plugins.seen.mlp import MLPSeenClassifier

    for cls in (WGANGP, CrossAttentionClassifier, MLPSeenClassifier, EntropyDetector):
        assert cls().params.precision == "fp32", cls.__name__


# -- through the components -----------------------------------------------------------------

def _task():
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(6, 10, generator=g), dim=1)
    labels = torch.arange(4).repeat_interleave(12)
    x = torch.tanh(text[labels] @ torch.randn(10, 28, generator=g)) + 0.1 * torch.randn(len(labels), 28, generator=g)
    ctx = FitContext(text=text, seen_classes=torch.arange(4), unseen_classes=torch.arange(4, 6), device=torch.device("cpu"))
    return AVSamples(x[:, :16], x[:, 16:], labels), text, ctx


GEN = {"noise_dim": 8, "hidden": 16, "epochs": 1, "batches_per_epoch": 3, "batch_size": 8}
UNSEEN = {"embed_dim": 8, "enc_hidden": 16, "proj_hidden": 16, "joint_dim": 8, "heads": 2, "ff_dim": 8,
          "batch_size": 8, "epochs": 1, "batches_per_epoch": 3}


def _fit(cls, params):
    train, text, ctx = _task()
    torch.manual_seed(0)
    return cls(params).fit(train, text, ctx)


@pytest.mark.parametrize("cls, params", [(WGANGP, GEN), (CrossAttentionClassifier, UNSEEN)])
@pytest.mark.parametrize("flags, resolved", [({"avx512_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_auto_fit_equals_the_resolved_precision_and_is_saved(monkeypatch, cls, params, flags, resolved):
    monkeypatch.setattr(perf, "cpu_flags", lambda: set(flags))
    auto = _fit(cls, {**params, "precision": "auto"})
    explicit = _fit(cls, {**params, "precision": resolved})
    assert auto.precision_used == resolved == explicit.precision_used
    assert auto.state_scalars()["precision"] == resolved
    a, e = auto.state_tensors(), explicit.state_tensors()
    assert a.keys() == e.keys() and all(torch.equal(a[k], e[k]) for k in a)
    reloaded = cls(auto.params)
    reloaded.load_state(auto.state_scalars(), a)
    assert reloaded.precision_used == resolved
