"""``python -m avood_core.cli``: the same as the ``avood`` console script."""

from avood_core.cli.commands import main

main()
