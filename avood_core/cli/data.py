"""``avood data``: write a synthetic benchmark tree, or check a downloaded one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from avood_core.cli.jsonio import JSON_OPTION, emit
from avood_core.cli.options import Dataset, new_app
from avood_core.errors import DataError

data_app = new_app("The AV-GZSL benchmark on disk (UCF, ActivityNet, VGGSound): write a synthetic tree, check a tree.")


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., readable=False, help="Benchmark root to write <DS>/ into (like avgzsl_benchmark_datasets)."),
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help="The dataset whose format and size to copy (required)."),
    data_scale: Optional[float] = typer.Option(None, "--data-scale", help="Clips per class times this (at least 1 per class; default 1)."),
    data_seed: Optional[int] = typer.Option(None, "--data-seed", help="Random seed of names, counts and features (default 0)."),
    splits: Optional[Path] = typer.Option(
        None, "--splits", readable=False, help="Folder with the real <DS>/class-split and w2v/ (e.g. the shared avgzsl folder)."
    ),
    features: Literal["main", "cls"] = typer.Option("main", "--features", help="main (512/512) or cls (128/4096)."),
    audio_dim: Optional[int] = typer.Option(None, "--audio-dim", help="Override the audio feature width."),
    video_dim: Optional[int] = typer.Option(None, "--video-dim", help="Override the video feature width."),
    caches: bool = typer.Option(True, "--caches/--no-caches", help="Also write the _features_processed pkl caches."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing <DS> folder."),
    seen_acc: Optional[float] = typer.Option(
        None, "--seen-acc", help="Seen MLP accuracy in % at full epochs to calibrate to (default: the dataset's SC_acc, paper Table 3)."
    ),
    zsl_acc: Optional[float] = typer.Option(
        None, "--zsl-acc", help="Embedding model ZSL accuracy in % at full epochs to calibrate to (default: the dataset's UC_acc, paper Table 3)."
    ),
) -> None:
    """Write a complete tree in the download's exact format, with learnable synthetic features."""
    from avood_core.data import write_synthetic_tree

    if dataset is None:
        raise typer.BadParameter("give the dataset to imitate, e.g. --dataset ucf", param_hint="--dataset")
    report = write_synthetic_tree(
        out, dataset, scale=1.0 if data_scale is None else data_scale, seed=data_seed or 0, splits_dir=splits, features=features,
        audio_dim=audio_dim, video_dim=video_dim, caches=caches, overwrite=overwrite,
        seen_acc=seen_acc, zsl_acc=zsl_acc,
    )
    typer.echo(report.summary())


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., readable=False, help="Benchmark root (holding UCF/, ActivityNet/, VGGSound/) or one dataset folder."),
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help="Only this dataset."),
    quick: bool = typer.Option(False, "--quick", help="Skip reading feature values (no NaN/inf or cache value checks)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a table per split (classes, clips, dims, text coverage, problems); fail if anything is wrong.

    --json: {"root", "ok", "problems", "sections"} (sections: per dataset and split, the stage and cache rows);
    the exit status is 1 when there are problems, as without --json."""
    from avood_core.data import check_tree

    report = check_tree(root, dataset, deep=not quick)
    if as_json:
        emit({"root": report.root, "ok": not report.problems, "problems": report.problems, "sections": report.sections})
    else:
        typer.echo(report.render())
    if report.problems:
        raise DataError(f"{len(report.problems)} problem(s) in '{root}'; the first: {report.problems[0]}")
