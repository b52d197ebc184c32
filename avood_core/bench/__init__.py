"""Measuring a run: wall and CPU time per stage, precision, idle core-seconds (``avood bench``)."""

from avood_core._moved import reexport

__getattr__ = reexport("avood_core.bench", "core")  # ``from avood_core.bench import ...`` names the core module's
