"""Fitting a component as the pipeline does (seeding, dependencies, binding) and collecting its outputs."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from avood_core.factory import profile_params
from avood_core.protocols import Component
from avood_core.stages import BY_KIND, FIT_ORDER
from avood_core.testing.data import KitData, make_context
from avood_core.pipeline import boundary
from avood_core.testing.errors import _fail, _shared
from avood_core.testing.standins import STAND_INS
from avood_core.train.loops import seed_everything

N_PER_CLASS = 5
"""Samples per class the kit asks a generator for."""


def kit_params(cls: type, params: Mapping[str, Any] | None = None, quick: bool = True) -> dict[str, Any]:
    """The params the kit uses: the class's ``quick`` overrides (when ``quick``), then ``params``
    (:func:`avood_core.factory.profile_params`, as a run config's ``profile``)."""
    return profile_params(cls, "quick" if quick else "paper", params)


def _dependencies(cls: type, data: KitData, seed: int,
                  dependencies: Mapping[str, "Component | type"] | None) -> dict[str, Component]:
    """Fitted components for each kind in ``cls.depends_on`` (the caller's, else stand-ins)."""
    given = dict(dependencies or {})
    out: dict[str, Component] = {}
    # Fit in pipeline order (avood_core.stages.FIT_ORDER) so a dependency may itself use an earlier one.
    for kind in FIT_ORDER:
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
    if component.kind not in BY_KIND:
        raise ValueError(f"unknown component kind {component.kind!r}; one of {sorted(BY_KIND)}")
    inputs = {"train": task.train, "text": task.text, "synthetic": data.synthetic}
    returned = component.fit(*BY_KIND[component.kind].fit_args(inputs), ctx)
    bind(component, ctx.fitted)
    return returned


def method_of(key: str) -> str:
    """How the kit's messages name the call behind output ``key`` (e.g. ``"score() (score_train)"``)."""
    base = key.split(".")[0]
    for prefix in ("generate", "score", "is_seen", "distances"):
        if base.startswith(prefix):
            return f"{prefix}() ({base})"
    return f"predict() ({base})"


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
        _shared(boundary.as_tensor, component, method_of(key), value)
        if value.requires_grad:
            _fail(f"{component.kind} output '{key}' requires grad; compute outputs under torch.no_grad() or "
                  f"inference_mode and return detached tensors")
    # Clone outside inference mode so callers may compare or edit them freely.
    return {k: v.detach().cpu().clone() for k, v in out.items()}
