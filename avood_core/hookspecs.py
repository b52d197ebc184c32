"""The single hook through which plugins (built-in or third-party) add components: a module or object
registered through the ``avood`` entry-point group implements ``@hookimpl def register_components(register)``
and calls ``register(kind, name, "my_pkg.model:MyModel")`` (lazy: imported on first use, so ``avood --help``
and ``avood plugins`` import no torch) or ``register(kind, name, MyClass)``; ``kind`` is a stage's kind
(avood_core.stages), ``fusion`` (avood_core.fusion) or ``logger`` (docs/writing-a-plugin.md)."""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "avood"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, str, object], None]


@hookspec
def register_components(register: Register) -> None:
    """Call ``register(kind, name, target)`` once per component the plugin provides."""
