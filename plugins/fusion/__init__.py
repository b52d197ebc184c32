"""Built-in fusions (paper Fig. 1, Fusion 1-5), registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("fusion", "concat", "avood_plugins.fusion.plain:Concat")
    register("fusion", "audio", "avood_plugins.fusion.plain:AudioOnly")
    register("fusion", "video", "avood_plugins.fusion.plain:VideoOnly")
    register("fusion", "mean", "avood_plugins.fusion.plain:Mean")
    register("fusion", "sum", "avood_plugins.fusion.plain:Sum")
    register("fusion", "gated", "avood_plugins.fusion.gated:Gated")
    register("fusion", "cross_attention", "avood_plugins.fusion.cross_attention:CrossAttentionFusion")
