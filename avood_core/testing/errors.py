"""The kit's failure type, its report and the helpers that raise it."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import Tensor

    from avood_core.protocols import Component


class ConformanceError(AssertionError):
    """A component does not honour its protocol; the message says what and how to fix it."""


def _fail(message: str) -> None:
    raise ConformanceError(message)


def _expect(cond: bool, message: str) -> None:
    if not cond:
        _fail(message)


def _shared(check: Callable[..., Any], *args: Any) -> Any:
    """Run one of the pipeline's own output checks (avood_core.pipeline.boundary); its refusal fails the kit."""
    from avood_core.errors import ComponentError

    try:
        return check(*args)
    except ComponentError as exc:
        _fail(str(exc))


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
        return not self.failures

    @property
    def failures(self) -> dict[str, str]:
        return {k: r.message for k, r in self.results.items() if r.status == "failed"}

    def assert_ok(self, check: str | None = None) -> None:
        """Raise :class:`ConformanceError` for the failed check (or any failed check)."""
        failed = {k: v for k, v in self.failures.items() if check in (None, k)}
        if failed:
            raise ConformanceError(f"{self.component} ({self.kind}) fails the conformance kit:\n"
                                   + "\n".join(f"  [{k}] {v}" for k, v in failed.items()))

    def run(self, check: str, fn: Callable[[], Any], needs: tuple[str, ...] = ()) -> None:
        """Time ``fn()`` and record it as ``check``: passed, or failed with the error's text; not run
        (failed) when a check it ``needs`` has failed."""
        blocked = next((n for n in needs if n in self.failures), None)
        if blocked:
            self.results[check] = CheckResult("failed", f"not run: the '{blocked}' check failed")
            return
        start, status, message = time.perf_counter(), "passed", ""
        try:
            fn()
        except Exception as exc:  # report every failure, not just the first
            status, message = "failed", _error_text(exc)
        self.results[check] = CheckResult(status, message, time.perf_counter() - start)

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
