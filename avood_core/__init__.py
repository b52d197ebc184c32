"""avood: audio-visual generalized zero-shot learning with OOD detection.

The core defines the component protocols, the pipeline that wires them, data containers,
metrics, config, the plugin registry and the CLI. Models live in plugins. Importing this
package is cheap: torch is imported only by the modules that train or evaluate.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
