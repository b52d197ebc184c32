"""One ``avood run``: config -> benchmark stages -> a run folder (files, tracking, resume, cache)."""


def __getattr__(name: str):
    """Round-1 code imported ``avood_core.run`` as one module: its names now live in :mod:`avood_core.run.driver`."""
    import importlib

    module = importlib.import_module("avood_core.run.driver")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'avood_core.run' has no attribute {name!r}") from None
