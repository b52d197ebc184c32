"""Conformance checks for fusion plugins (:data:`FUSION_CHECKS`, :func:`check_fusion`); the list
of checks is in docs/writing-a-plugin.md §10."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from avood_core.errors import AvoodError
from avood_core.fusion import Fusion
from avood_core.testing.errors import ConformanceReport, _expect, _fail
from avood_core.testing.fitting import torch_threads
from avood_core.train.loops import seed_everything

# each name runs check_fusion_<name>(cls, params, seed)
FUSION_CHECKS: tuple[str, ...] = ("protocol", "params", "outputs", "gradients", "modalities", "save_load", "determinism")
DIMS = (16, 16)
UNEQUAL_DIMS = (16, 12)
BATCH = 8


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(BATCH, DIMS[0], generator=g), torch.randn(BATCH, DIMS[1], generator=g)


def _build(cls: type, params: Mapping[str, Any], seed: int, train: bool = False) -> Fusion:
    seed_everything(seed)
    return cls(*DIMS, dict(params)).train(train)


def check_fusion_protocol(cls: type, params: Mapping[str, Any], seed: int) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Fusion)):
        _fail(f"{cls!r} is not a fusion; subclass avood_core.fusion.Fusion")
    _expect(getattr(cls, "kind", None) == "fusion", f"{cls.__name__}.kind must be 'fusion'")
    for method in ("out_dim", "forward"):
        _expect(getattr(cls, method) is not getattr(Fusion, method), f"{cls.__name__} must implement {method}()")
    mods = getattr(cls, "modalities", ())
    _expect(isinstance(mods, tuple) and bool(mods) and set(mods) <= {"audio", "video"},
            f"{cls.__name__}.modalities must be a non-empty tuple of 'audio'/'video'; got {mods!r}")
    _expect(isinstance(getattr(cls, "splittable", None), bool), f"{cls.__name__}.splittable must be a bool")
    try:
        cls(*UNEQUAL_DIMS, dict(params))
    except AvoodError as exc:
        _expect("\n" not in str(exc), f"{cls.__name__} refuses unequal dims with a multi-line message")
    except Exception as exc:
        _fail(f"{cls.__name__} refuses unequal dims {UNEQUAL_DIMS} with {type(exc).__name__}; raise a one-line "
              "avood_core.errors.ConfigError naming the fusion and the fix")


def check_fusion_params(cls: type, params: Mapping[str, Any], seed: int) -> None:
    from avood_core.testing.checks import check_params_model

    validated, _ = check_params_model(cls, params, quick=False)
    fusion = cls(*DIMS, dict(params))
    _expect(isinstance(fusion.params, cls.Params), f"{cls.__name__}(dims, params).params is not a {cls.__name__}.Params; "
                                                   "call Fusion.__init__ (super().__init__(audio_dim, video_dim, params))")
    _expect(fusion.params == validated, f"{cls.__name__} changed its params while building")


def check_fusion_outputs(cls: type, params: Mapping[str, Any], seed: int) -> None:
    fusion, (audio, video) = _build(cls, params, seed), _inputs(seed)
    with torch.no_grad():
        out = fusion(audio, video)
    _expect(isinstance(out, torch.Tensor) and out.dtype == torch.float32,
            f"forward must return a float32 tensor; got {getattr(out, 'dtype', type(out))}")
    _expect(tuple(out.shape) == (BATCH, fusion.dim), f"forward gave shape {tuple(out.shape)}, out_dim says "
                                                     f"({BATCH}, {fusion.dim})")
    _expect(bool(torch.isfinite(out).all()), "forward gave non-finite values")
    if cls.splittable:
        parts = [t for m, t in (("audio", audio), ("video", video)) if m in cls.modalities]
        _expect(torch.equal(out, torch.cat(parts, dim=1)), "a splittable fusion must output the concatenation "
                                                           "of the modalities it reads")


def check_fusion_gradients(cls: type, params: Mapping[str, Any], seed: int) -> None:
    fusion = _build(cls, params, seed, train=True)
    audio, video = (t.requires_grad_(True) for t in _inputs(seed))
    out = fusion(audio, video)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (out * weights).sum().backward()
    for name, t in (("audio", audio), ("video", video)):
        if name in cls.modalities:
            _expect(t.grad is not None and bool(t.grad.abs().sum() > 0), f"no gradient reaches the {name} input")
    for name, p in fusion.named_parameters():
        if p.requires_grad:
            _expect(p.grad is not None and bool(torch.isfinite(p.grad).all()) and bool(p.grad.abs().sum() > 0),
                    f"trainable parameter '{name}' gets no gradient")


def check_fusion_modalities(cls: type, params: Mapping[str, Any], seed: int) -> None:
    fusion, (audio, video) = _build(cls, params, seed), _inputs(seed)
    with torch.no_grad():
        base = fusion(audio, video)
        for name, noisy in (("audio", (audio + 7.0, video)), ("video", (audio, video * -3.0 + 5.0))):
            if name not in cls.modalities:
                _expect(torch.equal(fusion(*noisy), base), f"the output changes when the unread {name} input changes")


def check_fusion_save_load(cls: type, params: Mapping[str, Any], seed: int) -> None:
    from safetensors.torch import load_file, save_file

    fusion, inputs = _build(cls, params, seed), _inputs(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "fusion.safetensors")
        save_file({k: v.detach().contiguous() for k, v in fusion.state_dict().items()}, path)
        fresh = _build(cls, params, seed + 1)
        fresh.load_state_dict(load_file(path))
    with torch.no_grad():
        _expect(torch.allclose(fresh(*inputs), fusion(*inputs), rtol=1e-5, atol=1e-6),
                "a fresh instance loading the saved state dict gives other outputs")


def check_fusion_determinism(cls: type, params: Mapping[str, Any], seed: int) -> None:
    outs = []
    for _ in range(2):
        fusion = _build(cls, params, seed, train=True)
        torch.manual_seed(seed)
        outs.append((fusion(*_inputs(seed)).detach(), {k: v.clone() for k, v in fusion.state_dict().items()}))
    (a, sa), (b, sb) = outs
    _expect(sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa),
            "the same seed builds different parameters")
    _expect(torch.equal(a, b), "the same seed gives different outputs")


def check_fusion(cls: type, params: Mapping[str, Any] | None = None, *, seed: int = 0, name: str | None = None,
                 threads: int | None = 1, raise_on_failure: bool = True) -> ConformanceReport:
    """Run :data:`FUSION_CHECKS` on fusion class ``cls``; raise on a failure unless ``raise_on_failure=False``."""
    params = dict(params or {})
    report = ConformanceReport(name or getattr(cls, "__name__", repr(cls)), "fusion", params)
    with torch_threads(threads):
        for check in FUSION_CHECKS:
            report.run(check, functools.partial(globals()[f"check_fusion_{check}"], cls, params, seed), ("protocol",))
    if raise_on_failure:
        report.assert_ok()
    return report
