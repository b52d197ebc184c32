"""The kit's failure type and the helpers that raise it."""

from __future__ import annotations


class ConformanceError(AssertionError):
    """A component does not honour its protocol; the message says what and how to fix it."""


def _fail(message: str) -> None:
    raise ConformanceError(message)


def _expect(cond: bool, message: str) -> None:
    if not cond:
        _fail(message)
