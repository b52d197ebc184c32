"""The ``avood`` command line. Torch is imported only by commands that train or evaluate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from avood_core.cli_ablate import ablate_app
from avood_core.cli_data import data_app
from avood_core.cli_sweep import ADDRESS_OPTION, ENGINE_OPTION, MAX_PARALLEL_OPTION, sweep
from avood_core.cli_options import QUIET_OPTION, ConfigOptions, config_options, new_app, option
from avood_core.errors import AvoodError

app = new_app("Audio-visual GZSL with out-of-distribution detection (BMVC 2024 AV-OOD), as swappable plugins.")


@app.command()
@config_options()
def run(
    opts: ConfigOptions,
    quiet: bool = QUIET_OPTION,
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue in RUN_DIR: reuse components whose config hash matches, refit the rest."
    ),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2: mean ± std, each seed kept."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md/report.html with figures."),
    tsne_cap: int = typer.Option(1000, "--tsne-cap", help="t-SNE on at most this many test clips (0: no t-SNE)."),
    engine: str = ENGINE_OPTION,
    max_parallel: int = MAX_PARALLEL_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
) -> None:
    """Train the four components, route the test set through the gate, print S/U/HM/ZSL."""
    if resume is not None and opts.config is None:
        opts.config = resume / "config.toml"
    cfg = opts.build()
    from avood_core.registry import get_registry
    from avood_core.config import resolve
    from avood_core.run import execute, execute_seeds, format_summary

    resolve(cfg, get_registry())  # fail fast on bad names/params before any work
    echo = lambda m: typer.echo(m, err=True)  # noqa: E731
    if seeds is not None:
        if resume is not None:
            raise AvoodError("--seeds and --resume cannot be combined; resume one seed's folder")
        result = execute_seeds(cfg, _int_list(seeds, "--seeds"), quiet=quiet, echo=echo, report=report, tsne_cap=tsne_cap,
                               engine=engine, max_parallel=max_parallel, address=address)
    else:
        result = execute(cfg, quiet=quiet, echo=echo, resume=resume, report=report, tsne_cap=tsne_cap)
    typer.echo(format_summary(result.results))
    typer.echo(f"run folder: {result.run_dir}")


@app.command("config")
@config_options("config", "preset", "generator", "detector", "seen", "unseen", "sets", "profile", "data", "dataset")
def show_config(
    opts: ConfigOptions,
    fmt: str = typer.Option("toml", "--format", help="toml or json."),
) -> None:
    """Print the fully resolved run config, every default visible."""
    from avood_core.config import resolve, to_toml

    resolved = resolve(opts.build()).model_dump(mode="json")
    typer.echo(json.dumps(resolved, indent=2) if fmt == "json" else to_toml(resolved), nl=False)


@app.command("presets")
def presets_cmd() -> None:
    """List the per-dataset presets (the paper's hyperparameters) for --preset."""
    from avood_core.presets import list_presets

    items = list_presets()
    width = max((len(p.name) for p in items), default=0)
    for p in items:
        typer.echo(f"{p.name.ljust(width)}  {p.description}")


@app.command()
def plugins() -> None:
    """List the installed components: kind, name, distribution, version; and broken plugins."""
    from avood_core.registry import get_registry

    reg = get_registry()
    rows = [(e.kind, e.name, e.provider.dist or "-", e.provider.version or "-", e.provider.plugin) for e in reg]
    header = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "PLUGIN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    for broken in reg.broken:
        typer.echo(f"BROKEN  {broken.provider}: {broken.error}")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AvoodError(f"{option} '{text}': expected comma-separated integers, e.g. 0,1,2") from None


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'.")) -> None:
    """(Re)write report.md and report.html (figures embedded) for a run folder."""
    from avood_core.report import write_report

    md, html = write_report(run_dir)
    typer.echo(f"wrote {md} and {html}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark root to evaluate on instead of the run's data (same dataset)."),
    dataset: Optional[str] = option("dataset"),
) -> None:
    """Reload a fitted pipeline (no retraining) and evaluate it on its run's test split."""
    from avood_core.pipeline import Pipeline
    from avood_core.run import build_task, format_summary

    pipeline = Pipeline.load(run_dir)
    cfg = ConfigOptions(run_dir / "config.toml", data=data, dataset=dataset).build()
    task = pipeline.check_task(build_task(cfg))
    typer.echo(format_summary({"metrics": pipeline.evaluate(task.test)}))


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'avood run'."),
    input: Path = typer.Argument(..., help="An .npz or .h5 file with 'audio' (N, Da) and 'video' (N, Dv) arrays."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write .csv or .json here (default: csv on stdout)."),
) -> None:
    """Classify new clips with a fitted pipeline: class id, class name, gate score, routed branch."""
    from avood_core.pipeline import Pipeline
    from avood_core.predict_io import check_output, read_features, write_predictions

    check_output(output)
    pipeline = Pipeline.load(run_dir)
    audio, video = read_features(input)
    text = write_predictions(pipeline, pipeline.predict(audio, video), output)
    if text is not None:
        typer.echo(text, nl=False)


app.add_typer(data_app, name="data")
app.command("bench")(__import__("avood_core.cli_bench", fromlist=["bench"]).bench)  # avood bench (docs/performance.md)
app.add_typer(ablate_app, name="ablate")
app.command("sweep")(sweep)  # avood sweep (docs/scaling.md)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    # Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU spinning threads
    # made small-model training 7-9x slower (measured); must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except AvoodError as exc:
        typer.echo(f"avood: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("avood: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
