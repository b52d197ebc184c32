"""Measuring a run: wall and CPU time per stage, precision, idle core-seconds (``avood bench``)."""

from avood_core._moved import reexport

__getattr__ = reexport("avood_core.bench", "core")  # round-1 ``from avood_core.bench import ...``
