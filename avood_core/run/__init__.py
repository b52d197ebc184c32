"""One ``avood run``: config -> benchmark stages -> a run folder (files, tracking, resume, cache)."""
