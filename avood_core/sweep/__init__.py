"""Sweeps over configs and seeds (``avood sweep``): spec, engines (local pool, Ray), tables."""

from avood_core._moved import reexport

__getattr__ = reexport("avood_core.sweep", "core")  # ``from avood_core.sweep import ...`` names the core module's
