"""The kit's tiny synthetic task and :class:`FitContext`; fitting a component as the pipeline does
(seeding, dependencies, binding) and collecting its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
from avood_core.pipeline import boundary
from avood_core.protocols import Component, FitContext
from avood_core.registry import profile_params
from avood_core.stages import BY_KIND, FIT_ORDER
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.testing.errors import _fail, _shared
from avood_core.testing.standins import STAND_INS
from avood_core.train.loops import seed_everything
from avood_core.util.threads import torch_threads  # noqa: F401  (exported by avood_core.testing)

KIT_SPEC = SyntheticSpec(
    n_seen=6, n_unseen=3, audio_dim=16, video_dim=12, text_dim=10, latent_dim=6,
    train_samples=240, test_seen_samples=60, test_unseen_samples=180,
    class_noise=0.3, latent_noise=0.5, audio_noise=0.5, video_noise=0.4,
)
"""The kit's task: small dims, 40 training clips per seen class, lower noise than the demo task."""
N_PER_CLASS = 5
"""Samples per class the kit asks a generator for."""


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
