"""Built-in generators, registered lazily through the ``avood`` entry-point group."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("generator", "wgan_gp", "avood_plugins.generators.wgan_gp:WGANGP")
