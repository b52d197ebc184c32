"""``avood sweep [SPEC]``: the trials of a spec (configs × seeds) on a process pool or on Ray (docs/scaling.md).

Flags add to (axes, ``--set``) or replace (the rest) the spec file's values; with no file the
flags are the whole spec. Torch and Ray are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from avood_core.cli.jsonio import int_list, seeds_option
from avood_core.cli.options import QUIET_OPTION, ConfigOptions, at_least, config_options

# The scale-out options of the commands that run several seeds (avood run --seeds, avood ablate NAME --seeds).
ENGINE_OPTION: Any = typer.Option("local", "--engine", help="With --seeds: local (process pool) or ray (docs/scaling.md).")
MAX_PARALLEL_OPTION: Any = typer.Option(1, "--max-parallel", callback=at_least("--max-parallel", 1), help="With --seeds: seeds at once (1: one after another here).")
ADDRESS_OPTION: Any = typer.Option(None, "--address", help="With --seeds --engine ray: auto or ray://host:10001.")


@config_options("config", "preset", "sets", "profile", "data", "dataset", help={
    "config": "Base run-config TOML (replaces the spec's 'config').",
    "preset": "Base preset (replaces the spec's 'preset').",
    "sets": "Base override KEY=VALUE, added to the spec's 'set' (one value for every trial).",
})
def sweep(
    opts: ConfigOptions,
    spec: Optional[Path] = typer.Argument(None, help="Sweep spec (TOML): base config, seeds, an axes table, engine (docs/scaling.md)."),
    seeds: Optional[list[str]] = seeds_option("the seeds of every config."),
    axis: Optional[list[str]] = typer.Option(None, "--axis", help="KEY=V1,V2: an axis (a component slot, dataset, "
                                             "preset or any --set key), e.g. detector=entropy,calibrated_stacking."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local (process pool, default) or ray."),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", callback=at_least("--max-parallel", 1), help="Trials at once (local default 1; "
                                               "ray: cluster CPUs / num_cpus)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto or ray://host:10001 "
                                          "(default: start a local Ray instance)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", callback=at_least("--num-cpus", 1), help="Torch threads (and Ray CPUs) per trial."),
    num_gpus: Optional[float] = typer.Option(None, "--num-gpus", callback=at_least("--num-gpus", 0), help="Ray GPUs per trial."),
    output: Optional[Path] = typer.Option(None, "--sweep-dir", readable=False, help="Sweep folder (default sweeps/<name or spec stem>)."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Rerun a sweep folder made by a changed spec "
                                       "(trials whose config changed are refitted)."),
    report: Optional[bool] = typer.Option(None, "--report/--no-report", help="Each trial writes report.md/.html."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Run every (config, seed) of a sweep as an ordinary run folder; print the mean ± std table."""
    from avood_core.sweep.core import run_sweep
    from avood_core.sweep.spec import load_spec, parse_axis

    flags: dict = {"set": list(opts.sets or []), "values": opts.values(),
                   "axes": dict(parse_axis(a) for a in axis or [])}
    for key, value in (("config", opts.config), ("preset", opts.preset), ("engine", engine),
                       ("max_parallel", max_parallel), ("address", address), ("output", output), ("report", report)):
        if value is not None:
            flags[key] = value
    if seeds:
        flags["seeds"] = int_list(seeds, "--seeds")
    flags["resources"] = {k: v for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)) if v is not None}
    loaded = load_spec(spec, flags)
    if loaded.name is None and spec is not None:
        loaded = loaded.model_copy(update={"name": spec.stem})
    result = run_sweep(loaded, allow_changes=allow_changes, quiet=quiet, echo=lambda m: typer.echo(m, err=True),
                       source=str(spec) if spec else "sweep")
    typer.echo(result.markdown, nl=False)
    typer.echo(f"sweep folder: {result.folder}", err=True)
