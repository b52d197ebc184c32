"""``avood compare A B``: the paired difference of two runs, seed sets or sweep rows (avood_core.eval.compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from avood_core.cli.jsonio import JSON_OPTION, emit


def compare(
    a: Path = typer.Argument(..., metavar="A", help="Folder A: a run, a seed set (run --seeds) or a sweep folder."),
    b: Path = typer.Argument(..., metavar="B", help="Folder B, of the same kind of task and test split."),
    config_a: Optional[str] = typer.Option(None, "--config-a", help="A's config row when A is a sweep of several configs."),
    config_b: Optional[str] = typer.Option(None, "--config-b", help="B's config row when B is a sweep of several configs."),
    pair: Literal["auto", "seed", "clip"] = typer.Option("auto", "--pair", help="auto (by seed when A and B share >= 2 seeds, else by clip), "
                             "seed or clip (paired bootstrap over the test clips of predictions.npz)."),
    resamples: int = typer.Option(1000, "--resamples", min=100, max=100_000, help="Bootstrap resamples (by clip)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples (by clip)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Is B different from A? Per metric (S, U, HM, ZSL, gate AUROC): B − A, its 95 % interval, a p-value
    and a verdict ("no difference detected at this n" when the interval spans 0).

    --json: {"a", "b", "pairing", "pairs", "level", "interval_method", "p_method", "metrics"}."""
    from avood_core.eval.compare import compare as run_compare, markdown

    doc = run_compare(a, b, config_a, config_b, pair, resamples=resamples, seed=seed)
    if as_json:
        emit(doc)
    else:
        typer.echo(markdown(doc), nl=False)
