"""Import paths from before the subpackages (avood_core.training, ...) resolve to the moved modules.

avood 0.1's core was ~45 flat modules; they now live in packages that show the data flow
(``data/`` -> ``pipeline/`` -> ``eval/``; docs/architecture.md). A third-party plugin written
against an old path (``from avood_core.perf import autocast``, ``import avood_core.training``)
gets the very same module object through this finder: one table, no shim files. New code
imports the new paths or, better, the facade ``avood_core``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MOVED: dict[str, str] = {  # old module (under avood_core.) -> where it lives now
    # (avood_core.run, .bench, .sweep, .cli and .pipeline are packages now: their __init__ re-exports)
    "synthetic": "data.synthetic", "ucf_task": "data.embedded", "latent_synth": "data.latent",
    "parallel": "pipeline.worker", "checkpoint": "pipeline.store",
    "training": "train.loops", "perf": "train.precision",
    "run_files": "run.files", "runfolder": "run.folder",
    "interrupted": "run.interrupted", "predict_io": "run.predict_io", "tracking": "run.tracking",
    "component_cache": "run.cache",
    "metrics": "eval.metrics", "report": "eval.report", "plots": "eval.plots", "ablate": "eval.ablate",
    "ablate_fusion": "eval.ablate_fusion", "ablate_seeds": "eval.ablate_seeds", "ablate_table1": "eval.ablate_table1",
    "bench_meter": "bench.meter", "bench_report": "bench.report",
    "sweep_engines": "sweep.engines", "sweep_spec": "sweep.spec", "sweep_table": "sweep.table",
    "cli_ablate": "cli.ablate", "cli_bench": "cli.bench", "cli_data": "cli.data",
    "cli_json": "cli.jsonio", "cli_options": "cli.options", "cli_sweep": "cli.sweep",
    "io": "util.io", "paths": "util.paths", "progress": "util.progress",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``avood_core.<old>`` to the module now at ``avood_core.<new>`` (the same object)."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib's signature
        if fullname.startswith("avood_core.") and fullname[len("avood_core."):] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        return importlib.import_module("avood_core." + MOVED[spec.name[len("avood_core."):]])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the already-imported new one."""


def reexport(package: str, module: str):
    """A module ``__getattr__`` for ``package`` that serves the names of ``package.module`` lazily.

    Round-1 code imported ``avood_core.run`` / ``.bench`` / ``.sweep`` as one module; they are
    packages now, and ``from avood_core.run import fit_hashes`` keeps working through this.
    """

    def __getattr__(name: str):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (called by ``import avood_core``)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
