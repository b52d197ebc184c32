"""``avood bench``: time the full pipeline per stage on benchmark-sized synthetic trees (no torch at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from avood_core.cli.jsonio import JSON_OPTION, emit, split_list, status
from avood_core.cli.options import QUIET_OPTION, at_least
from avood_core.errors import AvoodError


def bench(
    dataset: Optional[list[str]] = typer.Option(
        None, "--dataset", help="ucf, activitynet or vggsound; repeatable (default: all three)."),
    epochs_scale: float = typer.Option(
        1.0, "--epochs-scale", callback=at_least("--epochs-scale", 0, strict=True), help="Multiply every component's training length (1 = the paper's epochs); "
        "trained stages are also extrapolated linearly to full epochs."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N (the N-th GPU) or auto (cuda when available)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", readable=False,
                                              help="Folder for bench.json, bench.md and the cached trees (default: bench)."),
    data_scale: float = typer.Option(1.0, "--data-scale", callback=at_least("--data-scale", 0, strict=True), help="Clips per class times this (1 = the dataset's size)."),
    stages: Literal["2", "both"] = typer.Option("2", "--stages", help="2: stage 2 only (fit on train_val, report on test); "
                                                "both: stage 1 then 2."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the runs."),
    data_seed: Optional[int] = typer.Option(None, "--data-seed", help="Random seed of the synthetic trees (names, counts, "
                                            "features; default 0)."),
    threads: Optional[int] = typer.Option(None, "--threads", callback=at_least("--threads", 1), help="torch threads (default: every usable core, or OMP_NUM_THREADS); "
                                          "split between the processes with --jobs."),
    jobs: int = typer.Option(1, "--jobs", "-j", callback=at_least("--jobs", 1), help="Processes fitting components side by side (2: the unseen classifier "
                             "in a worker process, as 'avood run --jobs 2')."),
    precision: Optional[Literal["fp32", "bf16", "auto"]] = typer.Option(
        None, "--precision", help="For every component with a precision param ('auto': the generator and the "
        "cross_attention classifier only; bf16 where the CPU/GPU has native bf16) (default: as the presets/config say)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Config override KEY=VALUE on top of the preset, e.g. unseen.epochs=10."),
    generated: bool = typer.Option(False, "--generated", help="Generated class splits even when --splits or AVOOD_SPLITS is given."),
    torch_profile: bool = typer.Option(False, "--torch-profile", help="torch.profiler per stage: top ops into <output-dir>/profile/ "
                                       "and bench.json (inflates the times; use with a small --epochs-scale)."),
    splits: Optional[Path] = typer.Option(
        None, "--splits", readable=False, help="Folder with the real <DS>/class-split and w2v/ (e.g. the avgzsl metadata folder); default: "
        "the AVOOD_SPLITS environment variable, else generated class names and text vectors."),
    as_json: bool = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """Run the full pipeline with the paper presets and report per stage: wall, CPU, steps/s, samples/s, peak RSS.

    stdout: the markdown table, or with --json {"output_dir", "bench"} (bench = bench.json's content)."""
    from avood_core.bench.core import BenchOptions, render_markdown, run_bench

    if dataset and not split_list(dataset):
        raise AvoodError("--dataset '': give ucf, activitynet or vggsound (or leave --dataset out for all three)")
    names = split_list(dataset)
    out = output_dir or Path("bench")
    opts = BenchOptions(
        datasets=[d.lower() for d in names] or ["ucf", "activitynet", "vggsound"], out=out, epochs_scale=epochs_scale,
        device=device, data_scale=data_scale, seed=seed, tree_seed=data_seed or 0, stages=stages, threads=threads, jobs=jobs,
        precision=precision, overrides=list(sets or []), splits_dir=splits, generated=generated, profile=torch_profile,
    )
    result = run_bench(opts, log=(lambda m: None) if quiet else status)
    if as_json:
        emit({"output_dir": out, "bench": result})
    else:
        typer.echo(render_markdown(result))
    status(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
