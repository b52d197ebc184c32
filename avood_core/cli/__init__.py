"""The ``avood`` command line; ``app`` and ``main`` load on first access, so a helper module of this
package does not build the whole command tree."""

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("avood_core.cli.commands"), name)
    raise AttributeError(f"module 'avood_core.cli' has no attribute {name!r}")
