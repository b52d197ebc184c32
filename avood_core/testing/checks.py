"""The individual conformance checks, each callable on its own: a component's (:data:`CHECKS`,
docs/writing-a-plugin.md §6) and a fusion plugin's (:data:`FUSION_CHECKS`, §10)."""

from __future__ import annotations

import inspect
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor

from avood_core.errors import AvoodError
from avood_core.fusion import Fusion
from avood_core.pipeline import boundary
from avood_core.protocols import PROTOCOLS, Component, OODDetector, TorchComponent
from avood_core.registry import KINDS, ComponentEntry, Provider, Registry
from avood_core.stages import BY_KIND
from avood_core.testing.errors import _expect, _fail, _shared
from avood_core.testing.fitting import (N_PER_CLASS, KitData, _dependencies, bind, component_outputs, fit_component,
                                        kit_params, method_of)
from avood_core.train.loops import seed_everything

CHECKS: tuple[str, ...] = ("protocol", "params", "outputs", "score_direction", "save_load", "determinism")


def _overrides(cls: type, method: str) -> bool:
    base = PROTOCOLS.get(getattr(cls, "kind", ""), Component)
    mine = inspect.getattr_static(cls, method, None)
    return mine is not None and mine is not inspect.getattr_static(base, method, None)


def check_protocol(cls: type, kind: str | None = None) -> str:
    """The class's kind, after checking it subclasses that protocol and overrides its methods."""
    _expect(isinstance(cls, type) and issubclass(cls, Component), f"{cls!r} is not a component class; subclass one "
            f"of avood_core.protocols.{', '.join(p.__name__ for p in PROTOCOLS.values())}")
    name, declared = cls.__name__, getattr(cls, "kind", "")
    _expect(declared in KINDS, f"{name}.kind is {declared!r}; subclass a protocol (Generator, OODDetector, "
                               f"SeenClassifier, UnseenClassifier) so kind is one of {', '.join(KINDS)}")
    _expect(kind in (None, declared), f"{name} declares kind {declared!r} but is registered/checked as {kind!r}; "
                                      f"register it under kind {declared!r} or subclass the {kind} protocol")
    protocol = PROTOCOLS[declared]
    _expect(issubclass(cls, protocol), f"{name} declares kind {declared!r} but does not subclass {protocol.__name__}")
    for options in BY_KIND[declared].required:
        _expect(any(_overrides(cls, m) for m in options),
                f"{name} must implement {' or '.join(options)}() of the {declared} protocol")
    _expect(not issubclass(cls, TorchComponent) or _overrides(cls, "make_net"),
            f"{name} is a TorchComponent but does not implement make_net(**dims)")
    quick = getattr(cls, "quick", None)
    _expect(isinstance(quick, Mapping), f"{name}.quick must be a mapping of param overrides (the quick profile), "
                                        f"not {type(quick).__name__}")
    _expect(isinstance(getattr(cls, "uses_synthetic", None), bool), f"{name}.uses_synthetic must be a bool")
    deps = getattr(cls, "depends_on", None)
    _expect(isinstance(deps, tuple) and all(d in KINDS and d != declared for d in deps),
            f"{name}.depends_on must be a tuple of other kinds among {', '.join(KINDS)}; got {deps!r}")
    return declared


def check_params_model(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> tuple[BaseModel, dict]:
    """``(validated, merged)`` kit params after checking ``cls.Params`` alone (no instance is built)."""
    model, name = getattr(cls, "Params", None), cls.__name__
    _expect(isinstance(model, type) and issubclass(model, BaseModel), f"{name}.Params must be a pydantic BaseModel "
            "subclass (use avood_core.protocols.NoParams when there are no hyperparameters)")
    try:
        defaults = model()
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors()]
        _fail(f"{name}.Params() fails without arguments (fields {missing}); give every field a default "
              f"(the paper's value): a run names a component without params")
    try:
        model.model_validate({"__avood_kit_unknown_key__": 1})
    except ValidationError:
        pass
    else:
        _fail(f"{name}.Params accepts unknown keys; set model_config = ConfigDict(extra='forbid') so a "
              f"misspelt --set fails instead of being ignored")
    undocumented = [k for k, f in model.model_fields.items() if not (f.description or "").strip()]
    _expect(not undocumented, f"{name}.Params fields without a description: {undocumented}; use Field(default, "
                              f"description=...) (the config reference and `avood config` users read it)")
    quick_map = dict(getattr(cls, "quick", {}) if quick else {})
    unknown = sorted(set(quick_map) - set(model.model_fields))
    _expect(not unknown, f"{name}.quick names {unknown}, which are not fields of {name}.Params")
    try:
        model.model_validate(quick_map)
    except ValidationError as exc:
        _fail(f"{name}.quick does not validate against {name}.Params: {exc.errors()[0]['msg']} "
              f"at {exc.errors()[0]['loc']}")
    merged = kit_params(cls, params, quick)
    try:
        validated = model.model_validate(merged)
    except ValidationError as exc:
        _fail(f"params {merged} do not validate against {name}.Params: {exc}")
    for label, p in (("defaults", defaults), ("kit params", validated)):
        try:
            again = model.model_validate(json.loads(json.dumps(p.model_dump(mode="json"))))
        except (ValidationError, TypeError, ValueError) as exc:
            _fail(f"{name}.Params {label} do not survive the JSON round trip of checkpoints: {exc}")
        _expect(again == p, f"{name}.Params {label} change in the JSON round trip of checkpoints: {p!r} -> {again!r}")
    return validated, merged


def check_params(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> BaseModel:
    """The validated kit params, after checking the ``Params`` model and that an instance keeps them."""
    validated, merged = check_params_model(cls, params, quick)
    got = cls(merged).params
    _expect(isinstance(got, cls.Params), f"{cls.__name__}(params).params is a {type(got).__name__}, not "
            f"{cls.__name__}.Params; call Component.__init__ (super().__init__(params, **overrides))")
    return validated


def check_outputs(component: Component, outputs: Mapping[str, Tensor], data: KitData) -> None:
    """Shapes, dtypes, finiteness and class sets of :func:`component_outputs`: the checks the pipeline
    applies to every call (:mod:`avood_core.pipeline.boundary`), plus int64 ids."""
    task = data.task
    n, kind = len(task.test), component.kind
    dims = {"audio": task.train.audio_dim, "video": task.train.video_dim}
    if kind == "generator":
        for label, classes, per in (("generated", task.unseen_classes, N_PER_CLASS),
                                    ("generated_one", task.unseen_classes[:1], 2)):
            _shared(boundary.check_generated, component, outputs[f"{label}.audio"], outputs[f"{label}.video"],
                    outputs[f"{label}.labels"], classes, per, dims, method_of(label))
    elif kind == "detector":
        for key, rows in (("score", n), ("score_train", len(task.train)), ("score_synthetic", len(data.synthetic)),
                          ("score_one", 1)):
            _shared(boundary.check_floats, component, method_of(key), outputs[key], (rows,), "score")
        _shared(boundary.check_is_seen, component, outputs["is_seen"], n, method_of("is_seen"))
    elif kind == "seen":
        for key, rows in (("pred", n), ("pred_one", 1)):
            _shared(boundary.check_ids, component, method_of(key), outputs[key], rows, task.seen_classes,
                    "the task's seen classes")
    elif kind == "unseen":
        for key, rows, candidates in (("pred_unseen", n, task.unseen_classes), ("pred_all", n, task.all_classes),
                                      ("pred_one", 1, task.unseen_classes)):
            _shared(boundary.check_ids, component, method_of(key), outputs[key], rows, candidates,
                    "the candidates")
        if "distances" in outputs:
            _shared(boundary.check_floats, component, method_of("distances"), outputs["distances"],
                    (n, len(task.unseen_classes)), "distances")
    ids = [k for k in ("pred", "pred_one", "pred_unseen", "pred_all", "generated.labels") if k in outputs]
    wrong = [k for k in ids if outputs[k].dtype != torch.long]
    _expect(not wrong, f"{wrong[:1]} has dtype {outputs[wrong[0]].dtype if wrong else ''}; return class ids as int64 "
                       "(torch.long)")
    _shared(boundary.check_scalars, component, component.state_scalars())
    _shared(boundary.check_selected, component, component.selected_params())


def check_score_direction(detector: OODDetector, data: KitData, outputs: Mapping[str, Tensor] | None = None) -> None:
    """OOD score direction: seen training samples score lower on average than synthetic unseen ones."""
    out = outputs if outputs is not None else component_outputs(detector, data)
    threshold = _shared(boundary.check_threshold, detector)
    s_seen, s_unseen = out["score_train"].double().mean().item(), out["score_synthetic"].double().mean().item()
    _expect(s_seen < s_unseen,
            f"mean OOD score of the seen training samples ({s_seen:.4g}) is not below that of the synthetic unseen "
            f"samples ({s_unseen:.4g}); score() must be an OOD score, higher = more likely unseen "
            f"(negate a confidence), or the detector did not learn (raise its budget)")
    expected = out["score"] < threshold
    _expect(torch.equal(out["is_seen"], expected),
            f"is_seen() disagrees with score < threshold on {int((out['is_seen'] != expected).sum())} samples; "
            f"a sample is routed seen iff score < threshold")


SAVE_LOAD_RTOL, SAVE_LOAD_ATOL = 1e-5, 1e-6
"""Float tolerance of the save/load comparison: a reloaded tensor is contiguous where the fitted one
may not have been, and a matmul over another memory layout may differ in the last bits.
Integer and boolean outputs (class ids, routing) must be identical."""


def _same(a: Mapping[str, Tensor], b: Mapping[str, Tensor], what: str, hint: str,
          rtol: float = 0.0, atol: float = 0.0) -> None:
    _expect(set(a) == set(b), f"{what}: outputs differ in keys {sorted(set(a) ^ set(b))}")
    for key in a:
        x, y = a[key], b[key]
        if x.dtype != y.dtype or x.shape != y.shape:
            _fail(f"{what}: output '{key}' differs ({x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)}); {hint}")
        same = (torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True) if x.is_floating_point() and (rtol or atol)
                else torch.equal(x, y))
        if not same:
            detail = f" (max abs difference {float((x.double() - y.double()).abs().max()):.3g})"
            _fail(f"{what}: output '{key}' differs{detail if x.is_floating_point() else ''}; {hint}")


def check_save_load(component: Component, data: KitData, outputs: Mapping[str, Tensor] | None = None,
                    name: str | None = None, seed: int = 0,
                    fitted: Mapping[str, Component] | None = None) -> Component:
    """Save through :mod:`avood_core.pipeline.store`, load (binding ``fitted``), compare; the loaded component."""
    from avood_core.pipeline.store import load_component, save_component

    kind, name = component.kind, name or "component_under_test"
    before = outputs if outputs is not None else component_outputs(component, data, seed)
    with tempfile.TemporaryDirectory(prefix="avood-kit-") as tmp:
        folder = Path(tmp) / kind
        save_component(component, folder, name)
        registry = Registry(discover=False)
        registry.add(ComponentEntry(kind, name, type(component), Provider("avood-testing-kit")))
        loaded = load_component(folder, registry)
    bind(loaded, fitted or {})
    _expect(type(loaded) is type(component), f"loaded a {type(loaded).__name__}, expected {type(component).__name__}")
    _expect(loaded.params == component.params, f"params changed in the round trip: {component.params!r} -> {loaded.params!r}")
    if kind == "detector":
        _expect(float(loaded.threshold) == float(component.threshold) or
                (math.isnan(loaded.threshold) and math.isnan(component.threshold)),
                f"threshold changed in the round trip: {component.threshold} -> {loaded.threshold}; "
                f"return it from state_scalars()/extra_scalars() and restore it in load_state()/load_extra()")
    after = component_outputs(loaded, data, seed)
    _same(before, after, "save/load round trip",
          "put every learned tensor in state_tensors() (TorchComponent: the net's state_dict) and every learned "
          "scalar in state_scalars() (TorchComponent: extra_scalars), and restore both in load_state()",
          rtol=SAVE_LOAD_RTOL, atol=SAVE_LOAD_ATOL)
    return loaded


def check_determinism(cls: type, data: KitData, params: Mapping[str, Any] | None = None, seed: int = 0,
                      outputs: Mapping[str, Tensor] | None = None, quick: bool = True,
                      dependencies: Mapping[str, "Component | type"] | None = None) -> None:
    """Fitting fresh instances under the same seed gives identical outputs."""
    merged = kit_params(cls, params, quick)

    def run() -> dict[str, Tensor]:
        comp = cls(merged)
        fit_component(comp, data, seed, _dependencies(cls, data, seed, dependencies))
        return component_outputs(comp, data, seed)

    first = outputs if outputs is not None else run()
    _same(first, run(), f"two fits under seed {seed}",
          "draw every random number from torch/numpy/random global RNGs (seeded by the pipeline) or from a "
          "generator seeded with ctx.seed, and avoid nondeterministic algorithms")


# each name runs check_fusion_<name>(cls, params, seed)
FUSION_CHECKS: tuple[str, ...] = ("protocol", "params", "outputs", "gradients", "modalities", "save_load", "determinism")
DIMS = (16, 16)
UNEQUAL_DIMS = (16, 12)
BATCH = 8


def _fusion_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(BATCH, DIMS[0], generator=g), torch.randn(BATCH, DIMS[1], generator=g)


def _build_fusion(cls: type, params: Mapping[str, Any], seed: int, train: bool = False) -> Fusion:
    seed_everything(seed)
    return cls(*DIMS, dict(params)).train(train)


def check_fusion_protocol(cls: type, params: Mapping[str, Any], seed: int) -> None:
    _expect(isinstance(cls, type) and issubclass(cls, Fusion),
            f"{cls!r} is not a fusion; subclass avood_core.fusion.Fusion")
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
    validated, _ = check_params_model(cls, params, quick=False)
    fusion = cls(*DIMS, dict(params))
    _expect(isinstance(fusion.params, cls.Params), f"{cls.__name__}(dims, params).params is not a {cls.__name__}.Params; "
                                                   "call Fusion.__init__ (super().__init__(audio_dim, video_dim, params))")
    _expect(fusion.params == validated, f"{cls.__name__} changed its params while building")


def check_fusion_outputs(cls: type, params: Mapping[str, Any], seed: int) -> None:
    fusion, (audio, video) = _build_fusion(cls, params, seed), _fusion_inputs(seed)
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
    fusion = _build_fusion(cls, params, seed, train=True)
    audio, video = (t.requires_grad_(True) for t in _fusion_inputs(seed))
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
    fusion, (audio, video) = _build_fusion(cls, params, seed), _fusion_inputs(seed)
    with torch.no_grad():
        base = fusion(audio, video)
        for name, noisy in (("audio", (audio + 7.0, video)), ("video", (audio, video * -3.0 + 5.0))):
            if name not in cls.modalities:
                _expect(torch.equal(fusion(*noisy), base), f"the output changes when the unread {name} input changes")


def check_fusion_save_load(cls: type, params: Mapping[str, Any], seed: int) -> None:
    from safetensors.torch import load_file, save_file

    fusion, inputs = _build_fusion(cls, params, seed), _fusion_inputs(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "fusion.safetensors")
        save_file({k: v.detach().contiguous() for k, v in fusion.state_dict().items()}, path)
        fresh = _build_fusion(cls, params, seed + 1)
        fresh.load_state_dict(load_file(path))
    with torch.no_grad():
        _expect(torch.allclose(fresh(*inputs), fusion(*inputs), rtol=1e-5, atol=1e-6),
                "a fresh instance loading the saved state dict gives other outputs")


def check_fusion_determinism(cls: type, params: Mapping[str, Any], seed: int) -> None:
    outs = []
    for _ in range(2):
        fusion = _build_fusion(cls, params, seed, train=True)
        torch.manual_seed(seed)
        outs.append((fusion(*_fusion_inputs(seed)).detach(), {k: v.clone() for k, v in fusion.state_dict().items()}))
    (a, sa), (b, sb) = outs
    _expect(sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa),
            "the same seed builds different parameters")
    _expect(torch.equal(a, b), "the same seed gives different outputs")
