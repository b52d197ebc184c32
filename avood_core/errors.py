"""Errors that the CLI reports as one clear line (no traceback)."""

from __future__ import annotations


class AvoodError(Exception):
    """A user-facing error: its message names the file, field or plugin and the fix."""


class ConfigError(AvoodError):
    """A run config or a component's params failed validation."""


class PluginError(AvoodError):
    """An unknown, duplicate or broken plugin."""


class ComponentError(PluginError):
    """A component's code raised (or ended the process), or a method returned what its protocol forbids."""


class CallbackError(PluginError):
    """A callback (a logger) raised inside a hook: reported as the callback's, not the component's, fault."""


class DataError(AvoodError):
    """Input data is missing, malformed or inconsistent."""


class TrainingDiverged(AvoodError):
    """A loss became NaN or infinite; nothing of the diverged component is saved."""


class CheckpointError(AvoodError):
    """A saved component or run folder cannot be loaded."""


class NotFittedError(AvoodError):
    """A component was asked to predict, score or save before it was fitted or loaded."""

    def __init__(self, label: str, fix: str = "call fit or load its state first") -> None:
        super().__init__(f"{label} is not fitted; {fix}")
        self.label, self.fix = label, fix

    def __reduce__(self):  # pickles to a worker process's parent with its two arguments
        return type(self), (self.label, self.fix)


class Interrupted(Exception):
    """Ctrl-C during a run: the CLI prints the message (what was saved, how to resume) and exits 130."""


def reraise_interrupt(exc: BaseException) -> None:
    """Raise the ``KeyboardInterrupt`` that ``exc`` carries as its cause, if any: Python 3.11 turns an
    exception raised while a class is being created (``__set_name__``, e.g. a pydantic validator of a
    plugin module being imported when Ctrl-C lands) into a ``RuntimeError`` caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        seen.add(id(cause))
        cause = cause.__cause__


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``exc`` as one line: an avood error's own text, else ``Type: message`` (at most ``limit`` characters)."""
    if isinstance(exc, AvoodError):
        return str(exc)
    text = " ".join(str(exc).split())[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
