"""avood: audio-visual generalized zero-shot learning with OOD detection.

The public API is this package and the plugin-contract modules it draws from:

- ``avood_core`` (this facade, ``__all__``): the component contract (``Component``,
  ``TorchComponent``, ``Generator``, ``OODDetector``, ``SeenClassifier``, ``UnseenClassifier``,
  ``FitContext``, ``TrainStats``), the stage table (``STAGES``, ``KINDS``), the data containers (``AVSamples``, ``AVGZSLTask``), the errors, ``hookimpl``,
  ``Fusion``, ``bounded``, ``Callback``, ``Pipeline`` (``evaluate`` returns an ``Evaluation``; ``route``), ``create_component``, ``list_components``,
  the embedded synthetic task, the paper's metrics (``mean_class_accuracy``, ``harmonic_mean``,
  ``gzsl_scores``) and ``__version__``;
- the contract modules ``avood_core.protocols``, ``.task``, ``.errors``, ``.hookspecs``,
  ``.fusion``, ``.limits`` and ``.callbacks``;
- the conformance kit for plugin tests, ``avood_core.testing``.

Every other module (``config``, ``registry``, ``factory``, ``data/``, ``pipeline/``, ``train/``,
``eval/``, ``run/``, ``bench/``, ``sweep/``, ``cli/``, ``util/``) is private: it may change
between releases (docs/architecture.md, "Public API").

Importing this package is cheap: the names above are loaded on first use (PEP 562), so torch
is imported only when a name that needs it (``Pipeline``, ``AVSamples``, ``Fusion``...) is.

Importing it also turns on Intel MKL's Conditional Numerical Reproducibility
(``MKL_CBWR=AUTO``, unless the environment already sets ``MKL_CBWR``; empty turns it off):
Intel documents that without it MKL (PyTorch's float32 matmul on x86) may order its sums
differently from one run to the next on the same machine (docs/performance.md,
"Reproducibility"). MKL reads the variable at its first call, so this must run before the
first torch matmul of the process: the CLI, ``import avood_core`` and the ``jobs = 2`` worker
(``python -m avood_core.pipeline.worker``) all pass through here first.
"""

import os as _os
from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError, version

_os.environ.setdefault("MKL_CBWR", "AUTO")

from avood_core import _moved

_moved.install()  # the import paths of 0.1.0 before its subpackages (avood_core.perf, avood_core.training, ...)

try:
    __version__ = version("avood")  # the installed distribution's version (pyproject.toml)
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

_PUBLIC: dict[str, tuple[str, ...]] = {  # module (under avood_core.) -> the names it gives the facade
    "protocols": ("Component", "TorchComponent", "Generator", "OODDetector", "SeenClassifier",
                  "UnseenClassifier", "FitContext", "NoParams", "TrainStats"),
    "task": ("AVSamples", "AVGZSLTask"),
    "errors": ("AvoodError", "ConfigError", "PluginError", "DataError", "TrainingDiverged",
               "CheckpointError", "Interrupted", "NotFittedError"),
    "hookspecs": ("hookimpl",),
    "fusion": ("Fusion", "FusionParams"),
    "limits": ("bounded", "widths", "Widths", "LIMITS"),
    "callbacks": ("Callback",),
    "pipeline": ("Pipeline", "Evaluation", "route"),
    "stages": ("STAGES", "KINDS"),
    "factory": ("create_component", "list_components"),
    "registry": ("Registry", "get_registry"),
    "data.synthetic": ("SyntheticSpec", "make_synthetic_task"),
    "eval.metrics": ("mean_class_accuracy", "harmonic_mean", "gzsl_scores"),
    "train.loop": ("LoopComponent", "Training", "Halves", "Plateau", "fit_loop", "update"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    """Load a public name from its module on first use (and keep it here)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'avood_core' has no attribute {name!r}")
    value = getattr(_import_module(f"avood_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
