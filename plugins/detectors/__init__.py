"""Built-in detectors (OOD gates), registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("detector", "entropy", "avood_plugins.detectors.entropy:EntropyDetector")
    register("detector", "binary", "avood_plugins.detectors.binary:BinaryDetector")
    register("detector", "calibrated_stacking", "avood_plugins.detectors.calibrated_stacking:CalibratedStacking")
