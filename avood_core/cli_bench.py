"""``avood bench``: time the full pipeline per stage on benchmark-sized synthetic trees (no torch at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def bench(
    datasets: str = typer.Option("ucf,activitynet,vggsound", "--datasets", help="Comma-separated: ucf, activitynet, vggsound."),
    epochs_scale: float = typer.Option(
        1.0, "--epochs-scale", help="Multiply every component's training length (1 = the paper's epochs); "
        "trained stages are also extrapolated linearly to full epochs."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    out: Path = typer.Option(Path("bench"), "--out", "-o", readable=False, help="Folder for bench.json, bench.md and the cached trees."),
    data_scale: float = typer.Option(1.0, "--data-scale", help="Clips per class times this (1 = the dataset's size)."),
    stages: str = typer.Option("2", "--stages", help="2: stage 2 only (fit on train_val, report on test); both: stage 1 then 2."),
    seed: int = typer.Option(0, "--seed", help="Seed of the runs."),
    tree_seed: int = typer.Option(0, "--tree-seed", help="Seed of the synthetic trees (names, counts, features)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: every usable core, or OMP_NUM_THREADS); "
                                          "split between the processes with --jobs."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Processes fitting components side by side (2: the unseen classifier "
                             "in a worker process, as 'avood run --jobs 2')."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 or bf16 for every component with a precision param "
                                            "(default: as the presets/config say)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Config override KEY=VALUE on top of the preset, e.g. unseen.epochs=10."),
    generated: bool = typer.Option(False, "--generated", help="Generated class splits even when the shared avgzsl folder exists."),
    profile: bool = typer.Option(False, "--profile", help="torch.profiler per stage: top ops into <out>/profile/ and bench.json "
                                 "(inflates the times; use with a small --epochs-scale)."),
    splits: Optional[Path] = typer.Option(None, "--splits", readable=False, help="Folder with the real <DS>/class-split and w2v/ (default: ../shared/avgzsl if present)."),
) -> None:
    """Run the full pipeline with the paper presets and report per stage: wall, CPU, steps/s, samples/s, peak RSS."""
    from avood_core.bench import BenchOptions, render_markdown, run_bench
    from avood_core.errors import AvoodError

    if precision not in (None, "fp32", "bf16"):
        raise AvoodError(f"--precision '{precision}': use fp32 or bf16")
    opts = BenchOptions(
        datasets=[d.strip().lower() for d in datasets.split(",") if d.strip()], out=out, epochs_scale=epochs_scale,
        device=device, data_scale=data_scale, seed=seed, tree_seed=tree_seed, stages=stages, threads=threads, jobs=jobs, precision=precision,
        overrides=list(sets or []), splits_dir=splits, generated=generated, profile=profile,
    )
    result = run_bench(opts, log=lambda m: typer.echo(m, err=True))
    typer.echo(render_markdown(result))
    typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
