"""The kit's tiny synthetic task and :class:`FitContext`; stand-in components (fast, closed form, with
checkpoint state: the dependencies handed to components that use ctx.fitted, and small worked examples
of each protocol); fitting a component as the pipeline does (seeding, dependencies, binding) and
collecting its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
from avood_core.pipeline import boundary
from avood_core.protocols import Component, FitContext, Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.registry import profile_params
from avood_core.stages import BY_KIND, FIT_ORDER
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.testing.errors import _fail, _shared
from avood_core.train.loops import seed_everything

KIT_SPEC = SyntheticSpec(
    n_seen=6, n_unseen=3, audio_dim=16, video_dim=12, text_dim=10, latent_dim=6,
    train_samples=240, test_seen_samples=60, test_unseen_samples=180,
    class_noise=0.3, latent_noise=0.5, audio_noise=0.5, video_noise=0.4,
)
"""The kit's task: small dims, 40 training clips per seen class, lower noise than the demo task."""
N_PER_CLASS = 5
"""Samples per class the kit asks a generator for."""


def _ridge(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``W = argmin ‖aW − b‖² + lam‖W‖²`` in float64."""
    a64, b64 = a.double(), b.double()
    eye = torch.eye(a64.shape[1], dtype=torch.float64)
    return torch.linalg.solve(a64.T @ a64 + lam * eye, a64.T @ b64).float().contiguous()


class _AttrState:
    """Checkpoint state from declared attributes: ``TENSORS`` go to safetensors, ``SCALARS`` (name ->
    type) to config.json; loading sets them back and marks the component fitted."""

    TENSORS: tuple[str, ...] = ()
    SCALARS: Mapping[str, type] = {}

    def state_tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.TENSORS}

    def state_scalars(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.SCALARS}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        for name in self.TENSORS:
            setattr(self, name, tensors[name])
        for name, kind in self.SCALARS.items():
            setattr(self, name, kind(scalars[name]))
        self.fitted = True


def _centroids(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    classes = torch.unique(labels)
    return classes, torch.stack([x[labels == c].mean(0) for c in classes])


class StandInGenerator(_AttrState, Generator):
    """``x̃ = t W + N(0, 0.1²)`` with ``W`` by ridge regression from text to fused features."""

    TENSORS = ("w",)
    SCALARS = {"audio_dim": int}

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInGenerator":
        self.w = _ridge(text[train.labels], train.x, 1e-1)
        self.audio_dim = train.audio_dim
        self.fitted = True
        return self

    def generate(self, class_ids: Tensor, text: Tensor, n_per_class: int) -> AVSamples:
        labels = torch.as_tensor(class_ids, dtype=torch.long).repeat_interleave(int(n_per_class))
        x = text[labels] @ self.w
        return AVSamples.from_x(x + 0.1 * torch.randn_like(x), labels, self.audio_dim)


class StandInDetector(_AttrState, OODDetector):
    """OOD score = distance to the nearest seen class centroid; threshold = its mean on seen training data."""

    TENSORS = ("centroids",)
    SCALARS = {"threshold": float}

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "StandInDetector":
        _, self.centroids = _centroids(seen.x, seen.labels)
        self.threshold = float(self.score(seen).mean())
        self.fitted = True
        return self

    def score(self, samples: AVSamples) -> Tensor:
        return torch.cdist(samples.x, self.centroids).min(dim=1).values


class StandInSeen(_AttrState, SeenClassifier):
    """Nearest class centroid among the seen classes."""

    TENSORS = ("classes", "centroids")

    def fit(self, train: AVSamples, ctx: FitContext) -> "StandInSeen":
        self.classes, self.centroids = _centroids(train.x, train.labels)
        self.fitted = True
        return self

    def predict(self, samples: AVSamples) -> Tensor:
        return self.classes[torch.cdist(samples.x, self.centroids).argmin(dim=1)]


class StandInUnseen(_AttrState, UnseenClassifier):
    """Ridge regression from fused features to text; distance = Euclidean distance to each class's text."""

    TENSORS = ("w",)

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInUnseen":
        self.w = _ridge(train.x, text[train.labels], 1e-1)
        self.fitted = True
        return self

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        return torch.cdist(samples.x @ self.w, text[torch.as_tensor(candidates, dtype=torch.long)])


STAND_INS: dict[str, type[Component]] = {
    cls.kind: cls for cls in (StandInGenerator, StandInDetector, StandInSeen, StandInUnseen)
}


@dataclass
class KitData:
    """The kit's task plus the held-out unseen clips a detector is fitted on as "synthetic" ones."""

    task: AVGZSLTask
    synthetic: AVSamples

    @classmethod
    def from_task(cls, task: AVGZSLTask) -> "KitData":
        """Split ``task``'s unseen test clips: every other clip of each class becomes ``synthetic``."""
        test = task.test
        to_synthetic = torch.zeros(len(test), dtype=torch.bool)
        for c in task.unseen_classes:
            to_synthetic[torch.nonzero(test.labels == c).flatten()[::2]] = True
        if not to_synthetic.any() or not (torch.isin(test.labels, task.unseen_classes) & ~to_synthetic).any():
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
    if isinstance(task, (KitData, AVGZSLTask)):
        return task if isinstance(task, KitData) else KitData.from_task(task)
    raise TypeError(f"task must be a KitData, an AVGZSLTask or None, not {type(task).__name__}")


def make_context(data: KitData, seed: int = 0, fitted: Mapping[str, Component] | None = None,
                 device: str = "cpu") -> FitContext:
    """The :class:`FitContext` the pipeline would hand ``fit`` on the kit's task."""
    task = data.task
    return FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                      device=torch.device(device), seed=seed, val=task.val, synthetic=data.synthetic,
                      fitted=dict(fitted or {}))


def kit_params(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> dict[str, Any]:
    """The params the kit uses: the class's ``quick`` overrides (when ``quick``), then ``params``
    (:func:`avood_core.registry.profile_params`, as a run config's ``profile``)."""
    return profile_params(cls, "quick" if quick else "paper", params)


def _dependencies(cls: type, data: KitData, seed: int,
                  dependencies: Mapping[str, "Component | type"] | None) -> dict[str, Component]:
    """Fitted components for each kind in ``cls.depends_on`` (the caller's, else stand-ins), fitted in
    pipeline order (avood_core.stages.FIT_ORDER) so a dependency may itself use an earlier one."""
    out: dict[str, Component] = {}
    for kind in (k for k in FIT_ORDER if k in getattr(cls, "depends_on", ())):
        dep = (dependencies or {}).get(kind, STAND_INS[kind])
        dep = dep() if isinstance(dep, type) else dep
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
    """Seed, call the kind's ``fit`` as the pipeline does, then :func:`bind` ``fitted``; returns what
    ``fit`` returned (the component itself, for a conforming one)."""
    task, ctx = data.task, make_context(data, seed, fitted)
    seed_everything(seed)
    if component.kind not in BY_KIND:
        raise ValueError(f"unknown component kind {component.kind!r}; one of {sorted(BY_KIND)}")
    inputs = {"train": task.train, "text": task.text, "synthetic": data.synthetic}
    returned = component.fit(*BY_KIND[component.kind].fit_args(inputs), ctx)
    bind(component, ctx.fitted)
    return returned


def method_of(key: str) -> str:
    """How the kit's messages name the call behind output ``key`` (e.g. ``"score() (score_train)"``)."""
    base = key.split(".")[0]
    prefix = next((p for p in ("generate", "score", "is_seen", "distances") if base.startswith(p)), "predict")
    return f"{prefix}() ({base})"


def component_outputs(component: Component, data: KitData, seed: int = 0) -> dict[str, Tensor]:
    """Every output the pipeline reads from a fitted component (each of its protocol's calls, on the test set,
    on one sample and where it matters on train/synthetic or other candidates), on the kit's data, as CPU tensors."""
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
                _shared(boundary.check_samples, component, g)
                out.update({f"{label}.audio": g.audio, f"{label}.video": g.video, f"{label}.labels": g.labels})
        elif component.kind == "detector":
            out = {"score": component.score(test), "is_seen": component.is_seen(test),
                   "score_train": component.score(task.train), "score_synthetic": component.score(data.synthetic),
                   "score_one": component.score(one),
                   "threshold": torch.tensor(float(component.threshold), dtype=torch.float64)}
        elif component.kind == "seen":
            out = {"pred": component.predict(test), "pred_one": component.predict(one)}
        elif component.kind == "unseen":
            out = {"pred_unseen": component.predict(test, task.unseen_classes, text),
                   "pred_all": component.predict(test, task.all_classes, text),
                   "pred_one": component.predict(one, task.unseen_classes, text)}
            try:
                out["distances"] = component.distances(test, task.unseen_classes, text)
            except NotImplementedError:
                pass
        else:
            raise ValueError(f"unknown component kind {component.kind!r}")
    for key, value in out.items():
        _shared(boundary.as_tensor, component, method_of(key), value)
        if value.requires_grad:
            _fail(f"{component.kind} output '{key}' requires grad; compute outputs under torch.no_grad() or "
                  f"inference_mode and return detached tensors")
    # Clone outside inference mode so callers may compare or edit them freely.
    return {k: v.detach().cpu().clone() for k, v in out.items()}
