"""Measuring a run: wall and CPU time per stage, precision, idle core-seconds (``avood bench``)."""


def __getattr__(name: str):
    """Round-1 code imported ``avood_core.bench`` as one module: its names now live in :mod:`avood_core.bench.core`."""
    import importlib

    module = importlib.import_module("avood_core.bench.core")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'avood_core.bench' has no attribute {name!r}") from None
