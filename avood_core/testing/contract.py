"""All checks at once: :func:`check_component` (a fusion: :func:`check_fusion`), and the pytest base
class :class:`ComponentContract`."""

from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor

from avood_core.fusion import Fusion
from avood_core.protocols import Component
from avood_core.task import AVGZSLTask
from avood_core.testing import checks as kit_checks
from avood_core.testing.checks import CHECKS, FUSION_CHECKS
from avood_core.testing.errors import CheckResult, ConformanceReport, _expect
from avood_core.testing.fitting import (KitData, _as_kit_data, _dependencies, component_outputs, fit_component,
                                        kit_params)
from avood_core.util.threads import torch_threads


def check_component(cls: type, kind: str | None = None, params: Mapping[str, Any] | None = None,
                    task: "KitData | AVGZSLTask | None" = None, *, seed: int = 0, name: str | None = None,
                    dependencies: Mapping[str, "Component | type"] | None = None, quick: bool = True,
                    threads: int | None = 1, checks: tuple[str, ...] = CHECKS,
                    raise_on_failure: bool = True) -> ConformanceReport:
    """Run the conformance checks on ``cls`` (a fusion class: :func:`check_fusion`);
    raise on any failure unless ``raise_on_failure=False``. ``params`` go on top of ``quick`` (``quick=False``:
    the defaults); ``task`` defaults to :func:`make_kit_data`; ``dependencies`` replace the fitted stand-ins.
    Options: docs/writing-a-plugin.md §6."""
    if isinstance(cls, type) and issubclass(cls, Fusion):  # a fusion plugin: its own checks
        return check_fusion(cls, params, seed=seed, name=name, threads=threads, raise_on_failure=raise_on_failure)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; valid: {', '.join(CHECKS)}")
    merged = kit_params(cls, params, quick)
    report = ConformanceReport(getattr(cls, "__name__", repr(cls)), kind or getattr(cls, "kind", None), merged)

    def run(check: str, fn: Callable[[], Any], needs: tuple[str, ...] = ("protocol", "outputs")) -> None:
        if check in checks:  # protocol and outputs (the fitted component) are the basis of the later checks
            report.run(check, fn, needs)

    with torch_threads(threads):
        run("protocol", lambda: setattr(report, "kind", kit_checks.check_protocol(cls, kind)))
        run("params", lambda: kit_checks.check_params(cls, params, quick), needs=())
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
            kit_checks.check_outputs(comp, report.outputs, data)

        if set(checks) & {"score_direction", "save_load", "determinism"}:
            checks = (*checks, "outputs")  # the fitted component and its outputs are the basis of the rest
        run("outputs", fit_and_outputs)
        if report.kind == "detector":
            run("score_direction", lambda: kit_checks.check_score_direction(report.fitted, data, report.outputs))
        elif "score_direction" in checks:
            report.results["score_direction"] = CheckResult("skipped", f"not a detector ({report.kind})")
        run("save_load", lambda: kit_checks.check_save_load(report.fitted, data, report.outputs, name, seed,
                                                            report.dependencies))
        run("determinism", lambda: kit_checks.check_determinism(cls, data, params, seed, report.outputs, quick,
                                                                dependencies))
    report.results = {k: report.results[k] for k in CHECKS if k in report.results}
    if raise_on_failure:
        report.assert_ok()
    return report


def check_fusion(cls: type, params: Mapping[str, Any] | None = None, *, seed: int = 0, name: str | None = None,
                 threads: int | None = 1, raise_on_failure: bool = True) -> ConformanceReport:
    """Run :data:`FUSION_CHECKS` on fusion class ``cls``; raise on a failure unless ``raise_on_failure=False``."""
    params = dict(params or {})
    report = ConformanceReport(name or getattr(cls, "__name__", repr(cls)), "fusion", params)
    with torch_threads(threads):
        for check in FUSION_CHECKS:
            fn = functools.partial(getattr(kit_checks, f"check_fusion_{check}"), cls, params, seed)
            report.run(check, fn, needs=("protocol",))
    if raise_on_failure:
        report.assert_ok()
    return report


def _inputs(data: KitData) -> list[Tensor]:
    t = data.task
    splits = [s for s in (t.train, data.synthetic, t.val) if s is not None]
    return [t.text, t.seen_classes, t.unseen_classes, *(x for s in splits for x in (s.audio, s.video, s.labels))]


class ComponentContract:
    """Subclass as ``Test<Something>`` and set ``component`` (optionally ``kind``, ``params``, ``name``,
    ``seed``, ``dependencies``, ``task``: a zero-argument callable) for one cached pytest test per check."""

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
            report = check_component(cls.component, cls.kind, cls.params, task() if task is not None else None,
                                     seed=cls.seed, name=cls.name, dependencies=cls.dependencies, quick=cls.quick,
                                     raise_on_failure=False)
            cls._avood_kit_report = report
        return report


def _check_test(check: str):
    """``test_<check>``: one pytest test per kit check, so ``-k test_save_load`` selects it."""

    def test(self: ComponentContract) -> None:
        report = self.conformance_report()
        if check in report.results and report.results[check].status == "skipped":
            import pytest

            pytest.skip(report.results[check].message)
        report.assert_ok(check)

    test.__name__ = test.__qualname__ = f"test_{check}"
    test.__doc__ = f"The kit's {check!r} check (avood_core.testing.checks)."
    return test


for _check in CHECKS:
    setattr(ComponentContract, f"test_{_check}", _check_test(_check))
