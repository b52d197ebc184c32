"""Built-in seen classifiers, registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("seen", "mlp", "avood_plugins.seen.mlp:MLPSeenClassifier")
    register("seen", "cross_attention", "avood_plugins.seen.cross_attention:CrossAttentionSeenClassifier")
