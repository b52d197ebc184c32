"""Scriptable output shared by the ``avood`` commands: ``--json``, status lines on stderr, aliases.

With ``--json`` a command prints exactly one JSON document on stdout (:func:`emit`); everything
else (progress bars, log lines, "run folder: ...", "wrote ...") goes to stderr (:func:`status`),
so ``avood run --json | jq .metrics.HM`` and ``avood ablate gates > table.md`` hold nothing else.
The keys of each command's document are listed in :data:`JSON_KEYS` (tested, and shown in
docs/cli.md). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

import typer

JSON_OPTION: Any = typer.Option(False, "--json", help="Print one JSON document on stdout; everything else goes to stderr.")

# The top-level keys of each command's --json document.
JSON_KEYS: dict[str, tuple[str, ...]] = {
    "run": ("run_dir", "results"),
    "evaluate": ("run_dir", "metrics"),
    "plugins": ("plugins", "broken"),
    "presets": ("presets",),
    "ablate": ("ablation", "run_dir", "table", "results"),
    "data check": ("root", "ok", "problems", "sections"),
    "bench": ("output_dir", "bench"),
    "sweep": ("output_dir", "table", "sweep"),
    "compare": ("a", "b", "pairing", "pairs", "level", "interval_method", "p_method", "metrics"),
}


def _plain(value: Any) -> Any:
    """``value`` as JSON data: dataclasses and mappings as objects, paths as strings, NaN/inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def emit(document: dict[str, Any]) -> None:
    """Write ``document`` as the command's one JSON document on stdout (strict JSON: no NaN)."""
    typer.echo(json.dumps(_plain(document), indent=2, allow_nan=False))


def status(message: str) -> None:
    """A status line ("run folder: ...", "wrote ...") on stderr, never mixed into stdout's result."""
    typer.echo(message, err=True)


def split_list(values: Iterable[str] | None) -> list[str]:
    """A repeatable option's values, each also split at commas (``--seeds 0,1 --seeds 2``: 0, 1, 2)."""
    return [part.strip() for value in values or [] for part in str(value).split(",") if part.strip()]


def int_list(values: Iterable[str], option: str) -> list[int]:
    """A repeatable integer option's values (each also split at commas); a non-integer: one-line error."""
    from avood_core.errors import AvoodError

    try:
        return [int(v) for v in split_list(values)]
    except ValueError:
        raise AvoodError(f"{option} '{','.join(values)}': expected integers, e.g. {option} 0,1,2") from None


def seeds_option(help: str) -> Any:
    """``--seeds``, one vocabulary everywhere: repeated or comma-separated (``--seeds 0 --seeds 1`` = ``--seeds 0,1``)."""
    return typer.Option(None, "--seeds", help=f"Seeds, repeated or comma-separated (--seeds 0,1,2): {help}")


def alias(name: str, target: str, **kwargs: Any) -> Any:
    """A hidden option spelled ``name``: an old spelling of ``target`` kept for one release."""
    return typer.Option(kwargs.pop("default", None), name, hidden=True, help=f"Old spelling of {target}.", **kwargs)


def pick(new: Any, old: Any, new_name: str, old_name: str) -> Any:
    """The value of an option given by its new or its old (hidden) spelling; both: an error."""
    from avood_core.errors import AvoodError

    if old is not None and old != [] and new is not None and new != []:
        raise AvoodError(f"{old_name} is the old spelling of {new_name}; give only {new_name}")
    if old is not None and old != []:
        status(f"avood: note: {old_name} is now {new_name}; the old spelling goes away in a later release")
        return old
    return new
