"""avood-plugin-example: an ESZSL unseen classifier and a low-rank bilinear fusion for avood,
shipped as a third-party plugin.

This module is the plugin: the ``avood`` entry point of this distribution names it, and
avood calls its ``register_components`` hook at discovery. It registers both by
``"module:Class"`` path, so ``avood --help`` and ``avood plugins`` never import torch or the
model modules; a class is imported the first time a run uses it (``--unseen eszsl``,
``--set detector.fusion=bilinear``).
"""

from avood_core import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_components(register):
    register("unseen", "eszsl", "avood_example.eszsl:ESZSL")
    register("unseen", "triplet", "avood_example.triplet:TripletEmbedding")
    register("fusion", "bilinear", "avood_example.bilinear:LowRankBilinear")
