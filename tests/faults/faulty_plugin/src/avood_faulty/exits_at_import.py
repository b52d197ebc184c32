"""A plugin module that ends the process while it is imported (a stray sys.exit in a plugin)."""

raise SystemExit(3)
