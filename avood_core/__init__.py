"""avood: audio-visual generalized zero-shot learning with OOD detection.

The core defines the component protocols, the pipeline that wires them, data containers,
metrics, config, the plugin registry and the CLI. Models live in plugins. Importing this
package is cheap: torch is imported only by the modules that train or evaluate.

Importing it also turns on Intel MKL's Conditional Numerical Reproducibility
(``MKL_CBWR=AUTO``, unless the environment already sets ``MKL_CBWR``; empty turns it off):
Intel documents that without it MKL (PyTorch's float32 matmul on x86) may order its sums
differently from one run to the next on the same machine (docs/performance.md,
"Reproducibility"). MKL reads the variable at its first call, so this must run before the
first torch matmul of the process: the CLI, ``import avood_core`` and the ``jobs = 2`` worker
(``python -m avood_core.pipeline.worker``) all pass through here first.
"""

import os as _os
from importlib.metadata import PackageNotFoundError, version

_os.environ.setdefault("MKL_CBWR", "AUTO")

from avood_core import _moved

_moved.install()  # round-1 import paths (avood_core.perf, avood_core.training, ...) keep working

try:
    __version__ = version("avood")  # the installed distribution's version (pyproject.toml)
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]
