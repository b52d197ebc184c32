"""The ``avood`` command line. Torch is imported only by commands that train or evaluate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from avood_core.cli.ablate import ablate_app
from avood_core.cli.data import data_app
from avood_core.cli.jsonio import JSON_OPTION, emit, format_summary, int_list, seeds_option, split_list, status
from avood_core.cli.options import (DEVICE_OPTION, EXIT_ERROR, EXIT_INTERRUPTED, QUIET_OPTION, ConfigOptions, Dataset,
                                    Engine, announce, at_least, config_options, new_app, option)
from avood_core.cli.sweep import ADDRESS_OPTION, ENGINE_OPTION, MAX_PARALLEL_OPTION, sweep
from avood_core.errors import AvoodError, Interrupted

app = new_app("Audio-visual GZSL with out-of-distribution detection (BMVC 2024 AV-OOD), as swappable plugins.",
              completion=True)


def _version(value: bool) -> None:
    if value:
        from avood_core import __version__

        typer.echo(f"avood {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Audio-visual GZSL with out-of-distribution detection (BMVC 2024 AV-OOD), as swappable plugins."""


@app.command()
@config_options()
def run(
    opts: ConfigOptions,
    quiet: bool = QUIET_OPTION,
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue in RUN_DIR: reuse components whose config hash matches, refit the rest. "
                               "A config that differs from RUN_DIR/config.toml is refused (see --allow-changes)."
    ),
    allow_changes: bool = typer.Option(
        False, "--allow-changes", help="With --resume and a changed config: write a NEW run folder (beside RUN_DIR, or "
                                       "under -o) that copies the matching components; RUN_DIR is left as it is."
    ),
    seeds: Optional[list[str]] = seeds_option("mean ± std, each seed kept."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md/report.html with figures."),
    tsne_cap: int = typer.Option(1000, "--tsne-cap", callback=at_least("--tsne-cap", 0), help="t-SNE on at most this many test clips (0: no t-SNE)."),
    as_json: bool = JSON_OPTION,
    engine: Engine = ENGINE_OPTION,
    max_parallel: int = MAX_PARALLEL_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
) -> None:
    """Train the four components, route the test set through the gate, print S/U/HM/ZSL.

    --json: {"run_dir", "results"} (results = the run folder's results.json)."""
    if allow_changes and resume is None:
        raise AvoodError("--allow-changes only applies to --resume RUN_DIR; drop it for a new run")
    if resume is not None and not resume.is_dir():
        raise AvoodError(f"--resume '{resume}' is not a folder; pass a run folder written by 'avood run'")
    if resume is not None and opts.config is None:
        opts.config = resume / "config.toml"
    if resume is not None and opts.output_dir is None:
        opts.output_dir = resume.parent  # where --allow-changes puts the new run folder
    cfg, recipe = opts.build_recipe()
    from avood_core.run.driver import RunOptions, execute, execute_seeds

    run_dirs: list[Path] = []  # the folder being written, named on Ctrl-C

    def started(run_dir: Path) -> None:
        """The run folder exists: the recipe goes first on stderr (a fault before stays one line)."""
        if not run_dirs:
            announce(recipe, quiet)
        run_dirs.append(run_dir)
    options = RunOptions(report=report, tsne_cap=tsne_cap, quiet=quiet, echo=status, resume=resume,
                         allow_changes=allow_changes, recipe=recipe.as_dict(), on_run_dir=started)
    try:
        if seeds:
            if resume is not None:
                raise AvoodError("--seeds and --resume cannot be combined; resume one seed's folder")
            result = execute_seeds(cfg, int_list(seeds, "--seeds"), options, engine, max_parallel, address)
        else:
            result = execute(cfg, options)
    except KeyboardInterrupt:  # typer would turn it into a silent exit 130
        from avood_core.run.folder import interrupted_message

        raise Interrupted(interrupted_message(run_dirs[-1] if run_dirs else None)) from None
    if as_json:
        emit({"run_dir": result.run_dir, "results": result.results})
    else:
        typer.echo(format_summary(result.results))
    status(f"run folder: {result.run_dir}")


@app.command("config")
@config_options()
def show_config(
    opts: ConfigOptions,
    fmt: Literal["toml", "json"] = typer.Option("toml", "--format", help="toml or json (json also shows unset values as null)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Print the fully resolved run config 'avood run' would use with the same options, every default visible
    (its recipe line and any warning on stderr)."""
    from avood_core.config import resolve, to_toml

    cfg, recipe = opts.build_recipe()
    resolved = resolve(cfg).model_dump(mode="json")
    announce(recipe)
    if fmt == "json" or as_json:
        typer.echo(json.dumps(resolved, indent=2))
    else:
        typer.echo(to_toml(resolved), nl=False)


@app.command("presets")
def presets_cmd(as_json: bool = JSON_OPTION) -> None:
    """List the per-dataset presets (the paper's hyperparameters) for --preset.

    --json: {"presets": [{"name", "description"}]}."""
    from avood_core.recipe import list_presets

    items = list_presets()
    if as_json:
        emit({"presets": [{"name": p.name, "description": p.description} for p in items]})
        return
    width = max((len(p.name) for p in items), default=0)
    for p in items:
        typer.echo(f"{p.name.ljust(width)}  {p.description}")


@app.command()
def plugins(as_json: bool = JSON_OPTION) -> None:
    """List the installed components and loggers: kind, name, distribution, version; and broken plugins.

    --json: {"plugins": [{"kind", "name", "distribution", "version", "plugin"}], "broken": [{"plugin", "error"}]}."""
    from avood_core.registry import get_registry

    reg = get_registry()
    entries = list(reg.all_entries())
    if as_json:
        emit({"plugins": [{"kind": e.kind, "name": e.name, "distribution": e.provider.dist, "version": e.provider.version,
                           "plugin": e.provider.plugin} for e in entries],
              "broken": [{"plugin": str(b.provider), "error": b.error} for b in reg.broken]})
        return
    rows = [(e.kind, e.name, e.provider.dist or "-", e.provider.version or "-", e.provider.plugin) for e in entries]
    header = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "PLUGIN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    for broken in reg.broken:
        typer.echo(f"BROKEN  {broken.provider}: {broken.error}")


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'.")) -> None:
    """(Re)write report.md and report.html (figures embedded) for a run folder."""
    from avood_core.eval.report import write_report

    md, html = write_report(run_dir)
    status(f"wrote {md} and {html}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark root to evaluate on instead of the run's data (same dataset)."),
    dataset: Optional[Dataset] = option("dataset"),
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Reload a fitted pipeline (no retraining) and evaluate it on its run's test split.

    --json: {"run_dir", "metrics"} (metrics as in results.json)."""
    from avood_core.pipeline import Pipeline
    from avood_core.run.fitting import build_task
    from avood_core.train.loops import resolve_device

    pipeline = Pipeline.load(run_dir).to(resolve_device(device))
    cfg = ConfigOptions(run_dir / "config.toml", data=data, dataset=dataset).build_recipe()[0]
    task = pipeline.check_task(build_task(cfg))
    scores = pipeline.evaluate(task.test).metrics
    if as_json:
        emit({"run_dir": run_dir, "metrics": scores})
    else:
        typer.echo(format_summary({"metrics": scores}))


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'."),
    input: Path = typer.Argument(..., help="An .npz or .h5 file with 'audio' (N, Da) and 'video' (N, Dv) arrays."),
    output: Optional[Path] = typer.Option(None, "--output", readable=False,
                                          help="Output FILE, .csv or .json (default: csv on stdout)."),
    device: str = DEVICE_OPTION,
) -> None:
    """Classify new clips with a fitted pipeline: class id, class name, gate score, routed branch."""
    from avood_core.pipeline import Pipeline
    from avood_core.run.predict_io import check_output, read_features, write_predictions
    from avood_core.train.loops import resolve_device

    check_output(output)
    pipeline = Pipeline.load(run_dir).to(resolve_device(device))
    audio, video = read_features(input)
    text = write_predictions(pipeline, pipeline.predict(audio, video), output)
    if text is not None:
        typer.echo(text, nl=False)


app.add_typer(data_app, name="data")


@app.command("bench")  # docs/performance.md
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
    breakdown_steps: int = typer.Option(
        10, "--breakdown-steps", callback=at_least("--breakdown-steps", 0),
        help="After the timed run, profile this many steps of the longest training stage (torch.profiler): the share of "
        "matmuls, casts, elementwise ops, optimizer and framework time per step, in bench.md and bench.json (0: none)."),
    breakdown_stage: Optional[str] = typer.Option(
        None, "--breakdown-stage", help="The stage --breakdown-steps profiles: generator, seen, unseen or detector "
        "(default: the trained stage with the longest wall)."),
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
        breakdown_steps=breakdown_steps, breakdown_stage=breakdown_stage,
    )
    result = run_bench(opts, log=(lambda m: None) if quiet else status)
    if as_json:
        emit({"output_dir": out, "bench": result})
    else:
        typer.echo(render_markdown(result))
    status(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")


app.add_typer(ablate_app, name="ablate")
app.command("sweep")(sweep)  # avood sweep (docs/scaling.md)


@app.command("compare")  # the paired difference of two runs, seed sets or sweep rows (avood_core.eval.compare)
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


def main() -> None:
    """Console entry point: errors become one line on stderr; exit statuses as in ``EXIT_CODES``."""
    # Idle OpenMP threads sleep instead of spinning, which slows small models on a shared or busy
    # CPU (docs/performance.md); it must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from avood_core.util.io import os_failure_line, stdout_broken

    code: int | str | None = 0
    try:
        app()
    except AvoodError as exc:
        typer.echo(f"avood: error: {exc}", err=True)
        code = EXIT_ERROR
    except Interrupted as exc:  # Ctrl-C in 'avood run': what was saved and how to resume
        typer.echo(f"avood: {exc}", err=True)
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        typer.echo("avood: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except SystemExit as exc:  # typer turns Ctrl-C in the other commands into a silent exit 130
        if exc.code == EXIT_INTERRUPTED:
            typer.echo("avood: interrupted", err=True)
        code = exc.code
    except OSError as exc:  # a full disk, no inodes, too many open files, stdout on /dev/full
        line = ("cannot write to standard output ({}); redirect it to a file or pipe that takes it".format(
            exc.strerror or exc) if stdout_broken(exc) else os_failure_line(exc))
        typer.echo(f"avood: error: {line}", err=True)
        code = EXIT_ERROR
    if stdout_broken():  # what is still buffered for stdout cannot be written
        typer.echo("avood: error: cannot write to standard output; redirect it to a file or pipe that takes it", err=True)
        code = code or EXIT_ERROR
    sys.exit(code)


if __name__ == "__main__":
    main()
