"""avood: audio-visual generalized zero-shot learning with OOD detection.

The public API is this facade (``__all__``), the plugin-contract modules it draws from and the conformance
kit ``avood_core.testing`` (docs/architecture.md, "Public API"). Names load on first use (PEP 562), so
``import avood_core`` imports no torch. It sets ``MKL_CBWR=AUTO`` (unless ``MKL_CBWR`` is set; empty turns
it off): without it MKL may order its sums differently from run to run on one machine (Intel's note,
docs/performance.md "Reproducibility"); MKL reads it at its first call, and every entry passes here first.
"""

import os as _os
from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError, version

_os.environ.setdefault("MKL_CBWR", "AUTO")

try:
    __version__ = version("avood")
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
    "stages": ("STAGES", "Stage", "KINDS"),
    "registry": ("Registry", "get_registry", "create_component", "list_components"),
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
