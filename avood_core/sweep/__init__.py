"""Sweeps over configs and seeds (``avood sweep``): spec, tables, the sweep folder."""
