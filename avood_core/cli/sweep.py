"""``avood sweep [SPEC]``: the trials of a spec on a process pool or on Ray (docs/scaling.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from avood_core.cli.jsonio import JSON_OPTION, emit, int_list, seeds_option, split_list, status
from avood_core.cli.options import QUIET_OPTION, ConfigOptions, Engine, at_least, config_options, usage_error

# The scale-out options of the commands that run several seeds (avood run --seeds, avood ablate NAME --seeds).
ENGINE_OPTION: Any = typer.Option("local", "--engine", help="With --seeds: local (process pool) or ray (docs/scaling.md).")
MAX_PARALLEL_OPTION: Any = typer.Option(1, "--max-parallel", callback=at_least("--max-parallel", 1), help="With --seeds: seeds at once (1: one after another here).")
ADDRESS_OPTION: Any = typer.Option(None, "--address", help="With --seeds --engine ray: auto or ray://host:10001.")

METRICS_HELP = ("Table columns, repeated or comma-separated: dotted keys of the trials' results.json metrics, e.g. "
                "S,U,HM,ZSL,gate.AUROC,gate.FPR@TPR60 (default: S, U, HM, ZSL; plus gate.AUROC, gate.FPR@TPR60 when "
                "the detector varies).")


@config_options("config", "preset", "sets", "profile", "data", "dataset", "loggers", help={
    "config": "Base run-config TOML (replaces the spec's 'config').",
    "preset": "Base preset (replaces the spec's 'preset').",
    "sets": "Base override KEY=VALUE, added to the spec's 'set' (one value for every trial).",
})
def sweep(
    opts: ConfigOptions,
    spec: Optional[Path] = typer.Argument(None, help="Sweep spec (TOML): base config, seeds, an axes table, engine (docs/scaling.md)."),
    seeds: Optional[list[str]] = seeds_option("the seeds of every config."),
    axis: Optional[list[str]] = typer.Option(None, "--axis", help="KEY=V1,V2: an axis (a component slot, dataset, "
                                             "preset or any --set key), e.g. detector=entropy,calibrated_stacking; K1+K2=V1,V2 ties "
                                             "keys (each value sets both)."),
    engine: Optional[Engine] = typer.Option(None, "--engine", help="local (process pool, default) or ray."),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", callback=at_least("--max-parallel", 1),
                                               help="Trials at once (local default 1; ray: cluster CPUs / num_cpus)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, HOST:6379, ray://host:10001 or "
                                          "local (default: this machine's cluster, $RAY_ADDRESS or the last "
                                          "'ray start', else a local instance)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", callback=at_least("--num-cpus", 1),
                                           help="Torch threads (and Ray CPUs) per trial."),
    num_gpus: Optional[float] = typer.Option(None, "--num-gpus", callback=at_least("--num-gpus", 0),
                                             help="Ray GPUs per trial."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", readable=False,
                                              help="The sweep folder (default sweeps/<name or spec stem>); a rerun resumes it."),
    metrics: Optional[list[str]] = typer.Option(None, "--metrics", help=METRICS_HELP),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Rerun a sweep folder made by a changed spec "
                                       "(trials whose config changed are refitted)."),
    report: Optional[bool] = typer.Option(None, "--report/--no-report", help="Each trial writes report.md/.html."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run every (config, seed) of a sweep as an ordinary run folder; print the table of its metrics over seeds.

    --json: {"output_dir", "table", "sweep"} (sweep = the sweep folder's sweep.json).

    Exit status 1 when a trial failed; each is named on stderr with its reason."""
    if spec is None and not axis:
        raise usage_error("give a sweep spec (a TOML file, docs/scaling.md), e.g. 'avood sweep gates.toml', "
                          "or the configs with --axis KEY=V1,V2")
    from avood_core.errors import AvoodError
    from avood_core.sweep.core import run_sweep
    from avood_core.sweep.spec import load_spec, parse_axis

    flags: dict = {"set": list(opts.sets or []), "values": opts.values(),
                   "axes": dict(parse_axis(a) for a in axis or [])}
    for key, value in (("config", opts.config), ("preset", opts.preset), ("engine", engine),
                       ("max_parallel", max_parallel), ("address", address), ("output", output_dir), ("report", report)):
        if value is not None:
            flags[key] = value
    if seeds:
        flags["seeds"] = int_list(seeds, "--seeds")
    flags["resources"] = {k: v for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)) if v is not None}
    loaded = load_spec(spec, flags)
    if loaded.name is None and spec is not None:
        loaded = loaded.model_copy(update={"name": spec.stem})
    result = run_sweep(loaded, allow_changes=allow_changes, quiet=quiet, echo=status,
                       source=str(spec) if spec else "sweep", metrics=split_list(metrics) or None)
    if as_json:
        import json

        emit({"output_dir": result.folder, "table": result.markdown,
              "sweep": json.loads((result.folder / "sweep.json").read_text(encoding="utf-8"))})
    else:
        typer.echo(result.markdown, nl=False)
    status(f"sweep folder: {result.folder}")
    if result.failed:
        for line in result.failure_lines():
            status(line)
        raise AvoodError(f"{len(result.failed)} of {len(result.records)} trials failed (listed above); "
                         "rerun the same command to retry them (finished trials are kept)")
