"""avood's built-in components, shipped as ordinary entry-point plugins (import name ``avood_plugins``).

Each sub-package's ``__init__`` is the light plugin module named by an entry point in the
``avood`` group; it registers its components by ``"module:Class"`` path so nothing heavy is
imported until a component is used. One method per file (the parameter-free fusions share one).
"""
