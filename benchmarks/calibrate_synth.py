"""Calibration benchmark: do the synthetic trees give the paper's published classifier accuracies?

For each dataset preset, write a synthetic tree (``avood data synth``: real class splits and
word2vec vectors from ``--splits`` when that folder exists), load its stage-2 task, train the
paper's seen classifier (``mlp``) and unseen classifier (``cross_attention``) with the preset's
hyperparameters at ``--profile`` (quick: the plugins' reduced epochs; paper: full epochs) and
report SC_acc (seen classifier on the seen test clips) and UC_acc (unseen classifier on the unseen
test clips, among the unseen classes) next to the published targets (paper Table 3, "MLP &
Embedding") and the generator's probe accuracies. ``embedded`` measures the embedded default
task (``make run``'s) the same way.

    python benchmarks/calibrate_synth.py --datasets ucf,embedded --profile quick
    python benchmarks/calibrate_synth.py --datasets ucf,activitynet,vggsound --profile paper
    python benchmarks/calibrate_synth.py --datasets ucf --profile paper --set unseen.epochs=8

Not a unit test: full epochs take hours on a CPU. Prints a markdown table; ``--json`` writes one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from avood_core.config import build_config, resolve
from avood_core.data.latent import PUBLISHED
from avood_core.eval.metrics import mean_class_accuracy
from avood_core.protocols import FitContext
from avood_core.registry import get_registry
from avood_core.train.loops import derive_seed, seed_everything

SPLITS = Path(__file__).resolve().parents[1].parent / "shared" / "avgzsl"


def stage2_task(dataset: str, scale: float, seed: int, splits: Path | None, workdir: Path):
    """The reported task and the generator's calibration note for one preset."""
    if dataset == "embedded":
        from avood_core.data.embedded import make_ucf_task

        task = make_ucf_task(seed, scale)
        return task, f"probes {task.meta['seen_probe']:.2f} / {task.meta['zsl_probe']:.2f}"
    from avood_core.data import load_benchmark, write_synthetic_tree

    report = write_synthetic_tree(workdir, dataset, scale=scale, seed=seed, splits_dir=splits, overwrite=True)
    note = next((n for n in report.notes if n.startswith("calibrated")), "")
    return load_benchmark(workdir, dataset).stage2, note


def measure(dataset: str, profile: str, scale: float, seed: int, splits: Path | None, workdir: Path,
            overrides: list[str] = ()) -> dict:
    """SC_acc and UC_acc of the preset's seen MLP and embedding model on one synthetic task."""
    task, note = stage2_task(dataset, scale, seed, splits, workdir)
    preset = "ucf" if dataset == "embedded" else dataset
    config = resolve(build_config(preset=preset, overrides=[f"profile={profile}", f"seed={seed}", *overrides]))
    registry = get_registry()
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=seed, val=task.val)
    test = task.test
    is_seen = torch.isin(test.labels, task.seen_classes)
    budget = profile + "".join(f", {o}" for o in overrides)
    out = {"dataset": dataset, "profile": budget, "scale": scale, "seed": seed, "note": note,
           "target_SC": PUBLISHED[preset][0], "target_UC": PUBLISHED[preset][1]}
    started = time.perf_counter()
    for kind in ("seen", "unseen"):
        spec = config.component(kind)
        comp = registry.component_class(kind, spec.name)(spec.params)
        seed_everything(derive_seed(seed, kind))
        if kind == "seen":
            comp.fit(task.train, ctx)
            part = test.subset(is_seen)
            out["SC_acc"] = mean_class_accuracy(comp.predict(part), part.labels, task.seen_classes)
        else:
            comp.fit(task.train, task.text, ctx)
            part = test.subset(~is_seen)
            pred = comp.predict(part, task.unseen_classes, task.text)
            out["UC_acc"] = mean_class_accuracy(pred, part.labels, task.unseen_classes)
    out["train_s"] = round(time.perf_counter() - started, 1)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| dataset | profile | scale | SC_acc (target) | UC_acc (target) | generator | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['profile']} | {r['scale']} | {r['SC_acc']:.2f} ({r['target_SC']:.2f}) | "
                     f"{r['UC_acc']:.2f} ({r['target_UC']:.2f}) | {r['note']} | {r['train_s']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="ucf,embedded", help="comma list of ucf, activitynet, vggsound, embedded")
    ap.add_argument("--profile", default="quick", choices=("quick", "paper"))
    ap.add_argument("--scale", type=float, default=1.0, help="clips per class times this (VGGSound is ~94k clips at 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", type=Path, default=SPLITS if SPLITS.is_dir() else None,
                    help="folder with the real class splits and w2v (default: ../shared/avgzsl when present)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override as for `avood run --set`, e.g. unseen.epochs=8 (a stated reduced budget)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="avood-calib-") as tmp:
        for ds in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            rows.append(measure(ds, args.profile, args.scale, args.seed, args.splits, Path(tmp), args.set))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
