"""Small helpers with no ML in them: atomic writes, output-folder checks, progress bars."""
