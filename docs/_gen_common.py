"""The command line shared by the docs generators: rewrite the generated file, or ``--check`` it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def generate(out: Path, render: Callable[[], str], doc: str, script: str, argv: list[str] | None = None) -> int:
    """Write ``render()`` to ``out``; with ``--check``, return 1 (and print a hint) if ``out`` is out of date.

    ``doc`` is the generator's module docstring (its first line describes the command), ``script`` its path.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(f"{out} is out of date; run: python docs/{Path(script).name}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
