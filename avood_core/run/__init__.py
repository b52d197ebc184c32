"""One ``avood run``: config -> benchmark stages -> a run folder (files, tracking, resume, cache)."""

from avood_core._moved import reexport

__getattr__ = reexport("avood_core.run", "driver")  # ``from avood_core.run import ...`` names the core module's
