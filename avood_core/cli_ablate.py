"""``avood ablate gates|classifiers|losses``: the paper's ablation tables, one command each.

Each command takes the config options of ``avood run`` (config file, ``--preset``, ``--set``,
component choices, ``--seed``, ``--data``/``--dataset``...), prints a markdown table on stdout
and writes ``results.json``, ``table.md`` and per-row predictions into a fresh run folder.
Slot options (``--detector NAME``, ``--set detector.lr=...``) set the base config; a row that
puts another plugin in that slot starts from that plugin's defaults plus its plugin-keyed
params (``--set params.detector.binary.lr=...``, or a preset's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

ablate_app = typer.Typer(
    help="Rerun the paper's ablations: gates (Table 2), classifiers (Table 3), losses (supplement Table 1).",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML run config.")
PresetOpt = typer.Option(None, "--preset", help="Per-dataset paper hyperparameters (see 'avood presets').")
SetOpt = typer.Option(None, "--set", help="Override one value: KEY=VALUE, e.g. seed=3 or params.detector.binary.lr=0.001.")
GenOpt = typer.Option(None, "--generator", help="Generator plugin name.")
DetOpt = typer.Option(None, "--detector", help="OOD detector plugin name (rows of 'gates' replace it).")
SeenOpt = typer.Option(None, "--seen", help="Seen-classifier plugin name (rows of 'classifiers' replace it).")
UnseenOpt = typer.Option(None, "--unseen", help="Unseen-classifier plugin name (rows of 'classifiers' replace it).")
ProfileOpt = typer.Option(None, "--profile", help="quick (reduced epochs) or paper (full budgets).")
SeedOpt = typer.Option(None, "--seed", help="Random seed.")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda or auto.")
OutOpt = typer.Option(None, "--output-dir", "-o", help="Parent folder of the run folder.")
DataOpt = typer.Option(None, "--data", help="Benchmark root (avgzsl_benchmark_datasets); runs the stage-1/stage-2 protocol.")
DatasetOpt = typer.Option(None, "--dataset", help="ucf, activitynet or vggsound (with --data).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")


def _run(name: str, config, preset, generator, detector, seen, unseen, sets, profile, seed, device, output_dir,
         data, dataset, quiet) -> None:
    from avood_core.ablate import run_ablation
    from avood_core.config import assemble_config

    overrides = list(sets or [])
    if data is not None:
        overrides += ["data.source=benchmark", f"data.path={json.dumps(str(data))}"]
    if dataset is not None:
        overrides.append(f"data.dataset={json.dumps(dataset)}")
    for key, value in (("profile", profile), ("device", device), ("output_dir", output_dir)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value))}")
    if seed is not None:
        overrides.append(f"seed={int(seed)}")
    assembled = assemble_config(config, {"generator": generator, "detector": detector, "seen": seen, "unseen": unseen},
                                overrides, preset=preset)
    result = run_ablation(name, assembled, quiet=quiet, echo=lambda m: typer.echo(m, err=True))
    typer.echo(result.markdown, nl=False)
    typer.echo(f"run folder: {result.run_dir}")


@ablate_app.command("gates")
def gates(
    config: Optional[Path] = ConfigOpt, preset: Optional[str] = PresetOpt, generator: Optional[str] = GenOpt,
    detector: Optional[str] = DetOpt, seen: Optional[str] = SeenOpt, unseen: Optional[str] = UnseenOpt,
    sets: Optional[list[str]] = SetOpt, profile: Optional[str] = ProfileOpt, seed: Optional[int] = SeedOpt,
    device: Optional[str] = DeviceOpt, output_dir: Optional[Path] = OutOpt, data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt, quiet: bool = QuietOpt,
) -> None:
    """Table 2: calibrated stacking, binary and entropy gates over the same fitted classifiers (AUC, FPR and HM at TPR 60 %)."""
    _run("gates", config, preset, generator, detector, seen, unseen, sets, profile, seed, device, output_dir,
         data, dataset, quiet)


@ablate_app.command("classifiers")
def classifiers(
    config: Optional[Path] = ConfigOpt, preset: Optional[str] = PresetOpt, generator: Optional[str] = GenOpt,
    detector: Optional[str] = DetOpt, seen: Optional[str] = SeenOpt, unseen: Optional[str] = UnseenOpt,
    sets: Optional[list[str]] = SetOpt, profile: Optional[str] = ProfileOpt, seed: Optional[int] = SeedOpt,
    device: Optional[str] = DeviceOpt, output_dir: Optional[Path] = OutOpt, data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt, quiet: bool = QuietOpt,
) -> None:
    """Table 3: MLP & MLP, Embedding & Embedding, MLP & Embedding classifiers with one gate (SC_acc, UC_acc, HM)."""
    _run("classifiers", config, preset, generator, detector, seen, unseen, sets, profile, seed, device, output_dir,
         data, dataset, quiet)


@ablate_app.command("losses")
def losses(
    config: Optional[Path] = ConfigOpt, preset: Optional[str] = PresetOpt, generator: Optional[str] = GenOpt,
    detector: Optional[str] = DetOpt, seen: Optional[str] = SeenOpt, unseen: Optional[str] = UnseenOpt,
    sets: Optional[list[str]] = SetOpt, profile: Optional[str] = ProfileOpt, seed: Optional[int] = SeedOpt,
    device: Optional[str] = DeviceOpt, output_dir: Optional[Path] = OutOpt, data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt, quiet: bool = QuietOpt,
) -> None:
    """Supplement Table 1: the unseen classifier's loss terms L+, L+ + L-trip/rec/reg, L+ + L- (UC_acc, HM)."""
    _run("losses", config, preset, generator, detector, seen, unseen, sets, profile, seed, device, output_dir,
         data, dataset, quiet)
