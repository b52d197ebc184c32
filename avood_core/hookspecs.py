"""The single hook through which plugins (built-in or third-party) add components.

A plugin is any module or object registered with the plugin manager, normally through the
``avood`` entry-point group, that implements::

    from avood_core.hookspecs import hookimpl

    @hookimpl
    def register_components(register):
        register("unseen", "my_model", "my_pkg.model:MyModel")   # lazy: imported on first use
        register("detector", "my_gate", MyGate)                  # or the class itself

``kind`` is a stage's kind (avood_core.stages), ``fusion`` (avood_core.fusion) or ``logger``. A
``"module:Class"`` string keeps ``avood --help`` and ``avood plugins`` from importing torch.
"""

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
