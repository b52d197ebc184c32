"""avood: audio-visual generalized zero-shot learning with OOD detection.

The core defines the component protocols, the pipeline that wires them, data containers,
metrics, config, the plugin registry and the CLI. Models live in plugins. Importing this
package is cheap: torch is imported only by the modules that train or evaluate.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("avood")  # the installed distribution's version (pyproject.toml)
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]
