"""The kit's failure type and the helpers that raise it."""

from __future__ import annotations

from typing import Any, Callable


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
