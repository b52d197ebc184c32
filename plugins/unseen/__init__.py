"""Built-in unseen classifiers, registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("unseen", "cross_attention", "avood_plugins.unseen.cross_attention:CrossAttentionClassifier")
    register("unseen", "mlp", "avood_plugins.unseen.mlp:MLPUnseenClassifier")
    register("unseen", "cjme", "avood_plugins.unseen.cjme:CJMEClassifier")
    register("unseen", "avgzslnet", "avood_plugins.unseen.avgzslnet:AVGZSLNetClassifier")
