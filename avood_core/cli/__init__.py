"""The ``avood`` command line; ``app`` and ``main`` load on first access, so a helper module of this
package does not build the whole command tree."""


def __getattr__(name: str):
    if name in ("app", "main"):
        from avood_core.cli import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'avood_core.cli' has no attribute {name!r}")
