"""Output shared by the ``avood`` commands: one ``--json`` document on stdout (:func:`emit`, keys in
:data:`JSON_KEYS`), everything else on stderr (:func:`status`), a run's summary (docs/cli.md)."""

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


def format_summary(results: dict) -> str:
    """The headline numbers as a short plain-text table: one run with its 95 % bootstrap intervals
    (``HM 30.31 [27.9, 32.6]``), several seeds as mean ± std [95 % t interval of the mean] (n)."""
    from avood_core.eval.render import ci_cell
    from avood_core.eval.report import seed_stats
    from avood_core.eval.stats import format_interval

    if "seeds" in results:
        sec = results["seeds"]
        head = "\n".join(f"  {name:11s}{format_interval(seed_stats(sec, k))}"
                         for name, k in (("S", "S"), ("U", "U"), ("HM", "HM"), ("ZSL", "ZSL"), ("gate AUROC", "gate.AUROC"))
                         if seed_stats(sec, k)["mean"] is not None)
        base = sec["mean"]["baseline_no_gate"]
        what = "mean ± std [95 % t interval of the mean] (n seeds)" if len(sec["seeds"]) > 1 else "one seed (n = 1)"
        return (f"over seeds {sec['seeds']}: {what}\n{head}\n"
                f"unseen clf alone, no gate (mean): S {base['S']:.2f}  U {base['U']:.2f}  HM {base['HM']:.2f}")
    m = results["metrics"]
    ci = results.get("metrics_ci") or {}
    b = m["baseline_no_gate"]
    g = m["gate"]
    cell = lambda value, key=None: ci_cell(value, ci.get(key) if key else None)  # noqa: E731
    rows = [
        ("AV-OOD (gated)", *(cell(m[k], k) for k in ("S", "U", "HM"))),
        ("unseen clf alone, no gate", *(cell(b[k]) for k in ("S", "U", "HM"))),
    ]
    width = max(8, *(len(c) + 2 for r in rows for c in r[1:]))
    out = [f"{'':28s}" + "".join(f"{k:>{width}s}" for k in ("S", "U", "HM"))]
    out += [f"{name:28s}" + "".join(f"{c:>{width}s}" for c in cells) for name, *cells in rows]
    out.append(f"ZSL {cell(m['ZSL'], 'ZSL')}   seen clf acc {m['seen_classifier_acc']:.2f}   "
               f"gate AUROC {cell(g['AUROC'], 'AUROC')}  TPR {g['TPR']:.2f}  FPR {g['FPR']:.2f}  "
               f"threshold {g['threshold']:.4g}")
    if ci:
        out.append(f"[ ]: {100 * ci['level']:.0f} % {ci['method']}, {ci['resamples']} resamples, seed {ci['seed']}")
    return "\n".join(out)
