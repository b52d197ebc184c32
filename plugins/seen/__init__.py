"""Built-in seen classifiers, registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("seen", "mlp", "avood_plugins.seen.mlp:MLPSeenClassifier")
