"""A conformance test kit for avood components, for plugin authors and the built-ins alike.

One call checks that a component class honours its protocol::

    from avood_core.testing import check_component
    from my_pkg.model import MyUnseen

    def test_my_unseen_conforms():
        check_component(MyUnseen, params={"epochs": 2})   # raises AssertionError listing failures

or, with one pytest test per check, subclass :class:`ComponentContract`::

    from avood_core.testing import ComponentContract

    class TestMyUnseen(ComponentContract):
        component = MyUnseen
        params = {"epochs": 2}

The checks (:data:`CHECKS`), each also callable on its own:

``protocol``
    the class subclasses the protocol of its ``kind`` (``generator``, ``detector``, ``seen``,
    ``unseen``), overrides the methods of that kind, and declares ``quick``,
    ``uses_synthetic`` and ``depends_on`` with the right types.
``params``
    ``Params`` is a pydantic model that builds with no arguments (defaults = the paper),
    rejects unknown keys, documents every field (``Field(description=...)``), accepts the
    class's ``quick`` overrides and the caller's, and survives the JSON round trip that
    checkpoints use.
``outputs``
    on a tiny synthetic task built here (:func:`make_kit_data`), ``fit`` returns the component
    and leaves its inputs unchanged; ``generate`` / ``score`` / ``predict`` / ``distances``
    return tensors of the right shapes, dtypes and class sets (global ids of the seen classes,
    or of the candidates), finite, detached from autograd.
``score_direction``
    detectors only: the real seen training samples score lower on average than the
    synthetic unseen samples the detector was fitted on (OOD score: higher = more unseen),
    the threshold is finite and ``is_seen`` equals ``score < threshold``.
``save_load``
    a round trip through :func:`avood_core.checkpoint.save_component` /
    :func:`~avood_core.checkpoint.load_component` gives the same outputs: identical class ids,
    routing and thresholds, floats equal up to :data:`SAVE_LOAD_RTOL` / :data:`SAVE_LOAD_ATOL`
    (a reloaded weight may be laid out differently in memory, which can change the last bits).
``determinism``
    seeding (:func:`avood_core.training.seed_everything`) and fitting a fresh instance again
    gives bit-identical outputs.

Budgets: the params used are the class's ``quick`` overrides plus the caller's, so a test
shrinks epochs with ``params={"epochs": 2}``. The kit runs on the CPU with one torch thread
(tiny models gain nothing from more, and a busy machine slows them down) and restores the
thread count afterwards.

The task is small (6 seen and 3 unseen classes, 16-d audio, 12-d video, 10-d text). The
detector's "synthetic unseen" samples are held-out real clips of the unseen classes drawn
from the same process (a perfect generator stands in for the real one, so a detector is
judged on its own); they are disjoint from the test clips used for outputs. Components that
declare ``depends_on`` get fitted stand-ins (:class:`StandInGenerator`, ...) in
``ctx.fitted`` unless the caller passes its own ``dependencies``.
"""

from __future__ import annotations

import inspect
import json
import math
import tempfile
import time
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor

from avood_core.hookspecs import hookimpl
from avood_core.protocols import (
    PROTOCOLS,
    Component,
    FitContext,
    Generator,
    OODDetector,
    SeenClassifier,
    TorchComponent,
    UnseenClassifier,
)
from avood_core.registry import KINDS, Registry
from avood_core.synthetic import SyntheticSpec, make_synthetic_task
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.training import seed_everything

__all__ = [
    "CHECKS",
    "KIT_SPEC",
    "CheckResult",
    "ComponentContract",
    "ConformanceError",
    "ConformanceReport",
    "KitData",
    "StandInDetector",
    "StandInGenerator",
    "StandInSeen",
    "StandInUnseen",
    "bind",
    "check_component",
    "check_determinism",
    "check_outputs",
    "check_params",
    "check_protocol",
    "check_save_load",
    "check_score_direction",
    "component_outputs",
    "fit_component",
    "kit_params",
    "make_context",
    "make_kit_data",
    "torch_threads",
]

CHECKS: tuple[str, ...] = ("protocol", "params", "outputs", "score_direction", "save_load", "determinism")

KIT_SPEC = SyntheticSpec(
    n_seen=6, n_unseen=3, audio_dim=16, video_dim=12, text_dim=10, latent_dim=6,
    train_samples=240, test_seen_samples=60, test_unseen_samples=180,
    class_noise=0.3, latent_noise=0.5, audio_noise=0.5, video_noise=0.4,
)
"""The kit's task: small dims, 40 training clips per seen class, lower noise than the demo task."""

N_PER_CLASS = 5
"""Samples per class the kit asks a generator for."""

# What each kind must override (any one of a tuple).
_REQUIRED_METHODS: dict[str, tuple[tuple[str, ...], ...]] = {
    "generator": (("fit",), ("generate",)),
    "detector": (("fit",), ("score",)),
    "seen": (("fit",), ("predict",)),
    "unseen": (("fit",), ("distances", "predict")),
}


class ConformanceError(AssertionError):
    """A component does not honour its protocol; the message says what and how to fix it."""


def _fail(message: str) -> None:
    raise ConformanceError(message)


# ---------------------------------------------------------------------------------------
# Data and context
# ---------------------------------------------------------------------------------------
@dataclass
class KitData:
    """The kit's task plus the synthetic unseen samples a detector is fitted on.

    ``synthetic`` holds unseen-class clips disjoint from ``task.test`` (see the module
    docstring); ``task.test`` keeps the rest of the unseen clips and all seen test clips.
    """

    task: AVGZSLTask
    synthetic: AVSamples

    @classmethod
    def from_task(cls, task: AVGZSLTask) -> "KitData":
        """Split ``task``'s unseen test clips: every other clip of each class becomes ``synthetic``."""
        test = task.test
        unseen = torch.isin(test.labels, task.unseen_classes)
        order = torch.argsort(test.labels, stable=True)
        rank = torch.empty(len(test), dtype=torch.long)
        sorted_labels = test.labels[order]
        starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
        rank[order] = torch.arange(len(test)) - starts
        to_synthetic = unseen & (rank % 2 == 0)
        if int(to_synthetic.sum()) == 0 or int((unseen & ~to_synthetic).sum()) == 0:
            _fail("the kit's task needs at least two test clips per unseen class")
        kept = AVGZSLTask(
            train=task.train, test=test.subset(~to_synthetic), text=task.text,
            seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            class_names=list(task.class_names), val=task.val, name=f"{task.name}-kit", meta=dict(task.meta),
        )
        return cls(kept, test.subset(to_synthetic))


def make_kit_data(seed: int = 0, spec: SyntheticSpec | None = None) -> KitData:
    """The kit's tiny synthetic task (:data:`KIT_SPEC` by default) from ``seed``."""
    return KitData.from_task(make_synthetic_task(seed, spec or KIT_SPEC))


def _as_kit_data(task: "KitData | AVGZSLTask | None", seed: int) -> KitData:
    if task is None:
        return make_kit_data(seed)
    if isinstance(task, KitData):
        return task
    if isinstance(task, AVGZSLTask):
        return KitData.from_task(task)
    raise TypeError(f"task must be a KitData, an AVGZSLTask or None, not {type(task).__name__}")


def make_context(data: KitData, seed: int = 0, fitted: Mapping[str, Component] | None = None,
                 device: str = "cpu") -> FitContext:
    """The :class:`FitContext` the pipeline would hand ``fit`` on the kit's task."""
    task = data.task
    return FitContext(
        text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
        device=torch.device(device), seed=seed, val=task.val, synthetic=data.synthetic,
        fitted=dict(fitted or {}),
    )


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op torch threads (None: unchanged), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------
# Stand-in components (fast, closed form, with checkpoint state): the dependencies handed to
# components that use ctx.fitted, and small worked examples of each protocol
# ---------------------------------------------------------------------------------------
def _ridge(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``W = argmin ‖aW − b‖² + lam‖W‖²`` in float64."""
    a64, b64 = a.double(), b.double()
    eye = torch.eye(a64.shape[1], dtype=torch.float64)
    return torch.linalg.solve(a64.T @ a64 + lam * eye, a64.T @ b64).float().contiguous()


def _centroids(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    classes = torch.unique(labels)
    return classes, torch.stack([x[labels == c].mean(0) for c in classes])


class StandInGenerator(Generator):
    """``x̃ = t W + N(0, 0.1²)`` with ``W`` by ridge regression from text to fused features."""

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInGenerator":
        self.w = _ridge(text[train.labels], train.x, 1e-1)
        self.audio_dim = train.audio_dim
        self.fitted = True
        return self

    def generate(self, class_ids: Tensor, text: Tensor, n_per_class: int) -> AVSamples:
        labels = torch.as_tensor(class_ids, dtype=torch.long).repeat_interleave(int(n_per_class))
        x = text[labels] @ self.w
        return AVSamples.from_x(x + 0.1 * torch.randn_like(x), labels, self.audio_dim)

    def state_tensors(self) -> dict[str, Tensor]:
        return {"w": self.w}

    def state_scalars(self) -> dict[str, Any]:
        return {"audio_dim": self.audio_dim}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.w, self.audio_dim, self.fitted = tensors["w"], int(scalars["audio_dim"]), True


class StandInDetector(OODDetector):
    """OOD score = distance to the nearest seen class centroid; threshold = its mean on seen training data."""

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "StandInDetector":
        _, self.centroids = _centroids(seen.x, seen.labels)
        self.threshold = float(self.score(seen).mean())
        self.fitted = True
        return self

    def score(self, samples: AVSamples) -> Tensor:
        return torch.cdist(samples.x, self.centroids).min(dim=1).values

    def state_tensors(self) -> dict[str, Tensor]:
        return {"centroids": self.centroids}

    def state_scalars(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.centroids, self.threshold, self.fitted = tensors["centroids"], float(scalars["threshold"]), True


class StandInSeen(SeenClassifier):
    """Nearest class centroid among the seen classes."""

    def fit(self, train: AVSamples, ctx: FitContext) -> "StandInSeen":
        self.classes, self.centroids = _centroids(train.x, train.labels)
        self.fitted = True
        return self

    def predict(self, samples: AVSamples) -> Tensor:
        return self.classes[torch.cdist(samples.x, self.centroids).argmin(dim=1)]

    def state_tensors(self) -> dict[str, Tensor]:
        return {"classes": self.classes, "centroids": self.centroids}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.classes, self.centroids, self.fitted = tensors["classes"], tensors["centroids"], True


class StandInUnseen(UnseenClassifier):
    """Ridge regression from fused features to text; distance = Euclidean distance to each class's text."""

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInUnseen":
        self.w = _ridge(train.x, text[train.labels], 1e-1)
        self.fitted = True
        return self

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        return torch.cdist(samples.x @ self.w, text[torch.as_tensor(candidates, dtype=torch.long)])

    def state_tensors(self) -> dict[str, Tensor]:
        return {"w": self.w}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.w, self.fitted = tensors["w"], True


STAND_INS: dict[str, type[Component]] = {
    "generator": StandInGenerator,
    "detector": StandInDetector,
    "seen": StandInSeen,
    "unseen": StandInUnseen,
}


# ---------------------------------------------------------------------------------------
# Individual checks
# ---------------------------------------------------------------------------------------
def _overrides(cls: type, method: str) -> bool:
    base = PROTOCOLS.get(getattr(cls, "kind", ""), Component)
    mine = inspect.getattr_static(cls, method, None)
    return mine is not None and mine is not inspect.getattr_static(base, method, None)


def check_protocol(cls: type, kind: str | None = None) -> str:
    """The class's kind, after checking it subclasses that protocol and overrides its methods."""
    if not isinstance(cls, type) or not issubclass(cls, Component):
        _fail(f"{cls!r} is not a component class; subclass one of avood_core.protocols."
              f"{', '.join(p.__name__ for p in PROTOCOLS.values())}")
    declared = getattr(cls, "kind", "")
    if declared not in KINDS:
        _fail(f"{cls.__name__}.kind is {declared!r}; subclass a protocol (Generator, OODDetector, SeenClassifier, "
              f"UnseenClassifier) so kind is one of {', '.join(KINDS)}")
    if kind is not None and declared != kind:
        _fail(f"{cls.__name__} declares kind {declared!r} but is registered/checked as {kind!r}; "
              f"register it under kind {declared!r} or subclass the {kind} protocol")
    if not issubclass(cls, PROTOCOLS[declared]):
        _fail(f"{cls.__name__} declares kind {declared!r} but does not subclass {PROTOCOLS[declared].__name__}")
    for options in _REQUIRED_METHODS[declared]:
        if not any(_overrides(cls, m) for m in options):
            _fail(f"{cls.__name__} must implement {' or '.join(options)}() of the {declared} protocol")
    if issubclass(cls, TorchComponent) and not _overrides(cls, "make_net"):
        _fail(f"{cls.__name__} is a TorchComponent but does not implement make_net(**dims)")
    if not isinstance(getattr(cls, "quick", None), Mapping):
        _fail(f"{cls.__name__}.quick must be a mapping of param overrides (the quick profile), "
              f"not {type(getattr(cls, 'quick', None)).__name__}")
    if not isinstance(getattr(cls, "uses_synthetic", None), bool):
        _fail(f"{cls.__name__}.uses_synthetic must be a bool")
    deps = getattr(cls, "depends_on", None)
    if not isinstance(deps, tuple) or any(d not in KINDS or d == declared for d in deps):
        _fail(f"{cls.__name__}.depends_on must be a tuple of other kinds among {', '.join(KINDS)}; got {deps!r}")
    return declared


def kit_params(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> dict[str, Any]:
    """The params the kit uses: the class's ``quick`` overrides (when ``quick``), then ``params``."""
    return {**(dict(getattr(cls, "quick", {})) if quick else {}), **dict(params or {})}


def check_params(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> BaseModel:
    """The validated kit params, after checking the ``Params`` model (see the module docstring)."""
    model = getattr(cls, "Params", None)
    name = cls.__name__
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        _fail(f"{name}.Params must be a pydantic BaseModel subclass (use avood_core.protocols.NoParams "
              f"when there are no hyperparameters)")
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
    if undocumented:
        _fail(f"{name}.Params fields without a description: {undocumented}; use Field(default, "
              f"description=...) (the config reference and `avood config` users read it)")
    quick_map = dict(getattr(cls, "quick", {}) if quick else {})
    unknown = sorted(set(quick_map) - set(model.model_fields))
    if unknown:
        _fail(f"{name}.quick names {unknown}, which are not fields of {name}.Params")
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
        if again != p:
            _fail(f"{name}.Params {label} change in the JSON round trip of checkpoints: {p!r} -> {again!r}")
    instance = cls(merged)
    if not isinstance(instance.params, model):
        _fail(f"{name}(params).params is a {type(instance.params).__name__}, not {name}.Params; "
              f"call Component.__init__ (super().__init__(params, **overrides))")
    return validated


def _dependencies(cls: type, data: KitData, seed: int,
                  dependencies: Mapping[str, "Component | type"] | None) -> dict[str, Component]:
    """Fitted components for each kind in ``cls.depends_on`` (the caller's, else stand-ins)."""
    given = dict(dependencies or {})
    out: dict[str, Component] = {}
    # Fit in pipeline order so a dependency may itself use an earlier one.
    for kind in ("generator", "seen", "unseen", "detector"):
        if kind not in getattr(cls, "depends_on", ()):
            continue
        dep = given.get(kind, STAND_INS[kind])
        if isinstance(dep, type):
            dep = dep()
        if not getattr(dep, "fitted", False):
            fit_component(dep, data, seed, fitted=dict(out))
        out[kind] = dep
    return out


def bind(component: Component, fitted: Mapping[str, Component]) -> None:
    """Hand ``component`` the fitted components it declares in ``depends_on``, as the pipeline does
    after ``fit`` and after loading a run folder (:meth:`Component.bind_fitted`)."""
    hook = getattr(component, "bind_fitted", None)
    if hook is not None:
        hook({kind: fitted[kind] for kind in getattr(component, "depends_on", ()) if kind in fitted})


def fit_component(component: Component, data: KitData, seed: int = 0,
                  fitted: Mapping[str, Component] | None = None) -> Component:
    """Seed, call the kind's ``fit`` as the pipeline does, then :func:`bind` ``fitted``.

    Returns what ``fit`` returned (the component itself, for a conforming one).
    """
    task, ctx = data.task, make_context(data, seed, fitted)
    seed_everything(seed)
    if component.kind == "generator":
        returned = component.fit(task.train, task.text, ctx)
    elif component.kind == "detector":
        returned = component.fit(task.train, data.synthetic, ctx)
    elif component.kind == "seen":
        returned = component.fit(task.train, ctx)
    elif component.kind == "unseen":
        returned = component.fit(task.train, task.text, ctx)
    else:
        raise ValueError(f"unknown component kind {component.kind!r}")
    bind(component, ctx.fitted)
    return returned


def component_outputs(component: Component, data: KitData, seed: int = 0) -> dict[str, Tensor]:
    """Every output the pipeline reads from a fitted component, on the kit's data, as CPU tensors.

    generator: ``generate`` for the unseen classes (``N_PER_CLASS`` each) and for one class;
    detector: ``score``/``is_seen`` on test, train and synthetic samples and the threshold;
    seen: ``predict`` on the test set and on one sample;
    unseen: ``predict`` among the unseen classes, among all classes, on one sample, and
    ``distances`` among the unseen classes when the classifier provides them.
    """
    task = data.task
    test, text = task.test, task.text
    one = test.subset(torch.tensor([0]))
    out: dict[str, Any] = {}
    # The pipeline calls generate() inside fit (its output feeds training), the rest in inference mode.
    with torch.inference_mode(component.kind != "generator"):
        if component.kind == "generator":
            seed_everything(seed + 1)
            gen = component.generate(task.unseen_classes, text, N_PER_CLASS)
            seed_everything(seed + 2)
            gen_one = component.generate(task.unseen_classes[:1], text, 2)
            for label, g in (("generated", gen), ("generated_one", gen_one)):
                if not isinstance(g, AVSamples):
                    _fail(f"generate() must return AVSamples, not {type(g).__name__}")
                out.update({f"{label}.audio": g.audio, f"{label}.video": g.video, f"{label}.labels": g.labels})
        elif component.kind == "detector":
            out["score"] = component.score(test)
            out["is_seen"] = component.is_seen(test)
            out["score_train"] = component.score(task.train)
            out["score_synthetic"] = component.score(data.synthetic)
            out["score_one"] = component.score(one)
            out["threshold"] = torch.tensor(float(component.threshold), dtype=torch.float64)
        elif component.kind == "seen":
            out["pred"] = component.predict(test)
            out["pred_one"] = component.predict(one)
        elif component.kind == "unseen":
            out["pred_unseen"] = component.predict(test, task.unseen_classes, text)
            out["pred_all"] = component.predict(test, task.all_classes, text)
            out["pred_one"] = component.predict(one, task.unseen_classes, text)
            try:
                out["distances"] = component.distances(test, task.unseen_classes, text)
            except NotImplementedError:
                pass
        else:
            raise ValueError(f"unknown component kind {component.kind!r}")
    for key, value in out.items():
        if not isinstance(value, Tensor):
            _fail(f"{component.kind} output '{key}' is a {type(value).__name__}, not a torch.Tensor")
        if value.requires_grad:
            _fail(f"{component.kind} output '{key}' requires grad; compute outputs under torch.no_grad() or "
                  f"inference_mode and return detached tensors")
    # Clone outside inference mode so callers may compare or edit them freely.
    return {k: v.detach().cpu().clone() for k, v in out.items()}


def _expect(cond: bool, message: str) -> None:
    if not cond:
        _fail(message)


def _check_ids(name: str, pred: Tensor, n: int, allowed: Tensor, what: str) -> None:
    _expect(pred.dtype == torch.long, f"{name}: dtype {pred.dtype}; return global class ids as int64 (torch.long)")
    _expect(tuple(pred.shape) == (n,), f"{name}: shape {tuple(pred.shape)}, expected ({n},), one id per sample")
    bad = sorted(set(pred.tolist()) - set(allowed.tolist()))
    _expect(not bad, f"{name}: ids {bad[:5]} are not {what} {allowed.tolist()}; return global class ids "
                     f"(rows of the text matrix), not positions")


def _check_float(name: str, t: Tensor, shape: tuple[int, ...]) -> None:
    _expect(t.is_floating_point(), f"{name}: dtype {t.dtype}; expected a floating-point tensor")
    _expect(tuple(t.shape) == shape, f"{name}: shape {tuple(t.shape)}, expected {shape}")
    _expect(bool(torch.isfinite(t).all()), f"{name}: holds NaN or inf")


def check_outputs(component: Component, outputs: Mapping[str, Tensor], data: KitData) -> None:
    """Shapes, dtypes and class sets of :func:`component_outputs`."""
    task = data.task
    n, kind = len(task.test), component.kind
    if kind == "generator":
        k = len(task.unseen_classes)
        for label, classes, per in (("generated", task.unseen_classes, N_PER_CLASS),
                                    ("generated_one", task.unseen_classes[:1], 2)):
            rows = len(classes) * per
            _check_float(f"generate() audio ({label})", outputs[f"{label}.audio"], (rows, task.train.audio_dim))
            _check_float(f"generate() video ({label})", outputs[f"{label}.video"], (rows, task.train.video_dim))
            _expect(outputs[f"{label}.audio"].dtype == torch.float32, "generate(): features must be float32")
            labels = outputs[f"{label}.labels"]
            _expect(labels.dtype == torch.long and tuple(labels.shape) == (rows,),
                    f"generate() labels ({label}): {labels.dtype} {tuple(labels.shape)}, expected int64 ({rows},)")
            counts = {int(c): int((labels == c).sum()) for c in classes}
            _expect(all(v == per for v in counts.values()) and len(labels) == rows,
                    f"generate() ({label}) must return n_per_class={per} samples of each requested class; "
                    f"got counts {counts}")
        _expect(k > 0, "the kit's task has no unseen classes")
    elif kind == "detector":
        _check_float("score(test)", outputs["score"], (n,))
        _check_float("score(train)", outputs["score_train"], (len(task.train),))
        _check_float("score(synthetic)", outputs["score_synthetic"], (len(data.synthetic),))
        _check_float("score(one sample)", outputs["score_one"], (1,))
        is_seen = outputs["is_seen"]
        _expect(is_seen.dtype == torch.bool and tuple(is_seen.shape) == (n,),
                f"is_seen(test): {is_seen.dtype} {tuple(is_seen.shape)}, expected bool ({n},)")
    elif kind == "seen":
        _check_ids("predict(test)", outputs["pred"], n, task.seen_classes, "seen classes")
        _check_ids("predict(one sample)", outputs["pred_one"], 1, task.seen_classes, "seen classes")
    elif kind == "unseen":
        _check_ids("predict(test, unseen classes)", outputs["pred_unseen"], n, task.unseen_classes,
                   "among the candidates (the unseen classes)")
        _check_ids("predict(test, all classes)", outputs["pred_all"], n, task.all_classes,
                   "among the candidates (all classes)")
        _check_ids("predict(one sample)", outputs["pred_one"], 1, task.unseen_classes,
                   "among the candidates (the unseen classes)")
        if "distances" in outputs:
            _check_float("distances(test, unseen classes)", outputs["distances"], (n, len(task.unseen_classes)))


def check_score_direction(detector: OODDetector, data: KitData, outputs: Mapping[str, Tensor] | None = None) -> None:
    """OOD score direction: seen training samples score lower on average than synthetic unseen ones."""
    out = outputs if outputs is not None else component_outputs(detector, data)
    threshold = float(out["threshold"])
    _expect(math.isfinite(threshold), f"threshold is {threshold}; fit must set a finite self.threshold")
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
    if set(a) != set(b):
        _fail(f"{what}: outputs differ in keys {sorted(set(a) ^ set(b))}")
    for key in a:
        x, y = a[key], b[key]
        if x.dtype == y.dtype and x.shape == y.shape and x.is_floating_point() and (rtol or atol):
            same = torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
        else:
            same = x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
        if not same:
            detail = ""
            if x.shape == y.shape and x.dtype == y.dtype and x.is_floating_point():
                detail = f" (max abs difference {float((x.double() - y.double()).abs().max()):.3g})"
            elif x.shape != y.shape or x.dtype != y.dtype:
                detail = f" ({x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)})"
            _fail(f"{what}: output '{key}' differs{detail}; {hint}")


def _private_registry(cls: type, kind: str, name: str) -> Registry:
    registry = Registry(discover=False)

    @hookimpl
    def register_components(register: Callable[[str, str, object], None]) -> None:
        register(kind, name, cls)

    registry.register_plugin(types.SimpleNamespace(register_components=register_components), name="avood-testing-kit")
    return registry


def check_save_load(component: Component, data: KitData, outputs: Mapping[str, Tensor] | None = None,
                    name: str | None = None, seed: int = 0,
                    fitted: Mapping[str, Component] | None = None) -> Component:
    """Save through :mod:`avood_core.checkpoint`, load, compare outputs; returns the loaded component.

    ``fitted``: the dependencies to :func:`bind` into the loaded component (as ``Pipeline.load`` does).
    """
    from avood_core.checkpoint import load_component, save_component

    kind = component.kind
    name = name or "component_under_test"
    before = outputs if outputs is not None else component_outputs(component, data, seed)
    with tempfile.TemporaryDirectory(prefix="avood-kit-") as tmp:
        folder = Path(tmp) / kind
        save_component(component, folder, name)
        loaded = load_component(folder, _private_registry(type(component), kind, name))
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


# ---------------------------------------------------------------------------------------
# All checks at once
# ---------------------------------------------------------------------------------------
@dataclass
class CheckResult:
    status: str  # "passed", "failed" or "skipped"
    message: str = ""
    seconds: float = 0.0


@dataclass
class ConformanceReport:
    """The outcome of :func:`check_component`: one :class:`CheckResult` per name in :data:`CHECKS`."""

    component: str
    kind: str | None
    params: dict[str, Any]
    results: dict[str, CheckResult] = field(default_factory=dict)
    fitted: Component | None = field(default=None, repr=False)
    outputs: dict[str, Tensor] = field(default_factory=dict, repr=False)
    dependencies: dict[str, Component] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results.values())

    @property
    def failures(self) -> dict[str, str]:
        return {k: r.message for k, r in self.results.items() if r.status == "failed"}

    def assert_ok(self, check: str | None = None) -> None:
        """Raise :class:`ConformanceError` for the failed check (or any failed check)."""
        failed = self.failures if check is None else {k: v for k, v in self.failures.items() if k == check}
        if failed:
            raise ConformanceError(f"{self.component} ({self.kind}) fails the conformance kit:\n"
                                   + "\n".join(f"  [{k}] {v}" for k, v in failed.items()))

    def __str__(self) -> str:
        lines = [f"{self.component} ({self.kind}), params {self.params}:"]
        lines += [f"  {k:16s} {r.status:8s} {r.seconds:6.2f}s  {r.message}".rstrip() for k, r in self.results.items()]
        return "\n".join(lines)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ConformanceError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"raised {type(exc).__name__}: {exc}{where}"


def check_component(
    cls: type,
    kind: str | None = None,
    params: Mapping[str, Any] | None = None,
    task: "KitData | AVGZSLTask | None" = None,
    *,
    seed: int = 0,
    name: str | None = None,
    dependencies: Mapping[str, "Component | type"] | None = None,
    quick: bool = True,
    threads: int | None = 1,
    checks: tuple[str, ...] = CHECKS,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Run the conformance checks on ``cls``; raise on any failure unless ``raise_on_failure=False``.

    ``kind``: the kind it is registered under (default: its own ``kind``). ``params``: overrides on
    top of the class's ``quick`` dict (``quick=False``: on top of the defaults). ``task``: a
    :class:`KitData` or an :class:`AVGZSLTask` (default: :func:`make_kit_data`). ``name``: the
    registry name used in the checkpoint. ``dependencies``: components (classes or instances) to
    put in ``ctx.fitted`` for the kinds in ``cls.depends_on`` (default: fitted stand-ins).
    The component is fitted twice (once more for ``determinism``).
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; valid: {', '.join(CHECKS)}")
    merged = kit_params(cls, params, quick)
    report = ConformanceReport(getattr(cls, "__name__", repr(cls)), kind or getattr(cls, "kind", None), merged)
    blocked: str | None = None  # a failed check that the later ones need

    def run(check: str, fn: Callable[[], Any], needs: bool = True, blocks: bool = False) -> None:
        nonlocal blocked
        if check not in checks:
            return
        if needs and blocked:
            report.results[check] = CheckResult("failed", f"not run: the '{blocked}' check failed")
            return
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # report every failure, not just the first
            report.results[check] = CheckResult("failed", _error_text(exc), time.perf_counter() - start)
            if blocks:
                blocked = blocked or check
            return
        report.results[check] = CheckResult("passed", "", time.perf_counter() - start)

    def protocol() -> None:
        report.kind = check_protocol(cls, kind)

    with torch_threads(threads):
        run("protocol", protocol, needs=False, blocks=True)
        run("params", lambda: check_params(cls, params, quick), needs=False)
        data = _as_kit_data(task, seed)

        def fit_and_outputs() -> None:
            comp = cls(merged)
            deps = report.dependencies = _dependencies(cls, data, seed, dependencies)
            snapshot = [t.clone() for t in _inputs(data)]
            returned = fit_component(comp, data, seed, deps)
            _expect(returned is comp, f"fit() returned {type(returned).__name__}; return self")
            _expect(bool(getattr(comp, "fitted", False)), "fit() must set self.fitted = True")
            changed = [i for i, (a, b) in enumerate(zip(snapshot, _inputs(data))) if not torch.equal(a, b)]
            _expect(not changed, "fit() modified its input tensors in place; copy before normalising "
                                 "(the pipeline shares them between components)")
            report.fitted = comp
            report.outputs = component_outputs(comp, data, seed)
            check_outputs(comp, report.outputs, data)

        if any(c in checks for c in ("score_direction", "save_load", "determinism")) and "outputs" not in checks:
            checks = (*checks, "outputs")  # the fitted component and its outputs are the basis of the rest
        run("outputs", fit_and_outputs, blocks=True)
        if report.kind == "detector":
            run("score_direction", lambda: check_score_direction(report.fitted, data, report.outputs))
        elif "score_direction" in checks:
            report.results["score_direction"] = CheckResult("skipped", f"not a detector ({report.kind})")
        run("save_load", lambda: check_save_load(report.fitted, data, report.outputs, name, seed, report.dependencies))
        run("determinism", lambda: check_determinism(cls, data, params, seed, report.outputs, quick, dependencies))
    report.results = {k: report.results[k] for k in CHECKS if k in report.results}
    if raise_on_failure:
        report.assert_ok()
    return report


def _inputs(data: KitData) -> list[Tensor]:
    t = data.task
    tensors = [t.train.audio, t.train.video, t.train.labels, t.text, t.seen_classes, t.unseen_classes,
               data.synthetic.audio, data.synthetic.video, data.synthetic.labels]
    if t.val is not None:
        tensors += [t.val.audio, t.val.video, t.val.labels]
    return tensors


# ---------------------------------------------------------------------------------------
# pytest base class
# ---------------------------------------------------------------------------------------
class ComponentContract:
    """Subclass as ``Test<Something>`` to get one pytest test per conformance check.

    Set ``component`` (the class) and optionally ``kind``, ``params`` (overrides on top of
    ``quick``), ``name``, ``seed``, ``dependencies``, ``task`` (a zero-argument callable
    returning a :class:`KitData` or :class:`AVGZSLTask`). The checks run once per subclass
    and are cached; each test method reports one of them.
    """

    component: ClassVar[type | None] = None
    kind: ClassVar[str | None] = None
    params: ClassVar[Mapping[str, Any]] = {}
    name: ClassVar[str | None] = None
    seed: ClassVar[int] = 0
    quick: ClassVar[bool] = True
    dependencies: ClassVar[Mapping[str, Any] | None] = None
    task: ClassVar[Callable[[], "KitData | AVGZSLTask"] | None] = None

    @classmethod
    def conformance_report(cls) -> ConformanceReport:
        report = cls.__dict__.get("_avood_kit_report")
        if report is None:
            if cls.component is None:
                raise TypeError(f"{cls.__name__}: set `component = YourComponentClass`")
            # the raw attribute (not bound as a method): a zero-argument callable or None
            task = next((c.__dict__["task"] for c in cls.__mro__ if "task" in c.__dict__), None)
            report = check_component(
                cls.component, cls.kind, cls.params, task() if task is not None else None, seed=cls.seed,
                name=cls.name, dependencies=cls.dependencies, quick=cls.quick, raise_on_failure=False,
            )
            cls._avood_kit_report = report
        return report

    def _outcome(self, check: str) -> None:
        result = self.conformance_report().results.get(check)
        if result is not None and result.status == "skipped":
            import pytest

            pytest.skip(result.message)
        self.conformance_report().assert_ok(check)

    def test_protocol(self) -> None:
        self._outcome("protocol")

    def test_params(self) -> None:
        self._outcome("params")

    def test_outputs(self) -> None:
        self._outcome("outputs")

    def test_score_direction(self) -> None:
        self._outcome("score_direction")

    def test_save_load(self) -> None:
        self._outcome("save_load")

    def test_determinism(self) -> None:
        self._outcome("determinism")
