"""One executor for every list of runs (``avood sweep``, ``avood run --seeds``, ``avood ablate --seeds``):
jobs scheduled on an engine (this process, a local process pool, Ray), their results collected."""
