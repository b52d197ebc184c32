"""Sweeps over configs and seeds (``avood sweep``): spec, engines (local pool, Ray), tables."""
