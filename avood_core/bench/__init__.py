"""Measuring a run: wall and CPU time per stage, precision, idle core-seconds (``avood bench``)."""
