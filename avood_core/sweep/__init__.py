"""Sweeps over configs and seeds (``avood sweep``): spec, engines (local pool, Ray), tables."""


def __getattr__(name: str):
    """Round-1 code imported ``avood_core.sweep`` as one module: its names now live in :mod:`avood_core.sweep.core`."""
    import importlib

    module = importlib.import_module("avood_core.sweep.core")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'avood_core.sweep' has no attribute {name!r}") from None
