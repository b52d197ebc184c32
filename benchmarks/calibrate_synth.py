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
    python benchmarks/calibrate_synth.py --datasets ucf --profile paper --kinds unseen --probe-zsl 40

``--probe-zsl P`` (and ``--probe-seen``) calibrate the tree's ridge probe to ``P`` instead of
turning the published target into a probe target: the (P, measured UC_acc) pairs at full epochs
are the measured transfer curves in ``avood_core.data.latent.TRANSFER``.

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


def stage2_task(dataset: str, scale: float, seed: int, splits: Path | None, workdir: Path,
                probes: tuple[float | None, float | None] = (None, None)):
    """The reported task, the probes' (targets, reached) and the generator's note for one preset."""
    if dataset == "embedded":
        from avood_core.data.latent import make_ucf_task

        if probes != (None, None):
            raise SystemExit("--probe-seen / --probe-zsl apply to the dataset trees, not to the embedded task")
        task = make_ucf_task(seed, scale)
        m = task.meta
        return task, f"probe targets {m['probe_targets'][0]:.2f} / {m['probe_targets'][1]:.2f}, reached {m['seen_probe']:.2f} / {m['zsl_probe']:.2f}"
    from avood_core.data import load_benchmark, write_synthetic_tree

    report = write_synthetic_tree(workdir, dataset, scale=scale, seed=seed, splits_dir=splits, overwrite=True,
                                  seen_acc=probes[0], zsl_acc=probes[1], probe=probes != (None, None))
    note = next((n for n in report.notes if n.startswith("calibrated")), "")
    return load_benchmark(workdir, dataset).stage2, note


def measure(dataset: str, profile: str, scale: float, seed: int, splits: Path | None, workdir: Path,
            overrides: list[str] = (), kinds: tuple[str, ...] = ("seen", "unseen"),
            probes: tuple[float | None, float | None] = (None, None)) -> dict:
    """SC_acc and UC_acc of the preset's seen MLP and embedding model on one synthetic task."""
    task, note = stage2_task(dataset, scale, seed, splits, workdir, probes)
    preset = "ucf" if dataset == "embedded" else dataset
    config = resolve(build_config(preset=preset, overrides=[f"profile={profile}", f"seed={seed}", *overrides]))
    registry = get_registry()
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=seed, val=task.val)
    test = task.test
    is_seen = torch.isin(test.labels, task.seen_classes)
    budget = profile + "".join(f", {o}" for o in overrides)
    out = {"dataset": dataset, "profile": budget, "scale": scale, "seed": seed, "note": note,
           "target_SC": PUBLISHED[preset][0], "target_UC": PUBLISHED[preset][1], "probe_targets": list(probes),
           "SC_acc": None, "UC_acc": None}
    started = time.perf_counter()
    for kind in kinds:
        began = time.perf_counter()
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
        out[f"{kind}_s"] = round(time.perf_counter() - began, 1)
    out["train_s"] = round(time.perf_counter() - started, 1)
    return out


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | profile | scale | SC_acc (target) | UC_acc (target) | generator | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['profile']} | {r['scale']} | {_pct(r['SC_acc'])} ({r['target_SC']:.2f}) | "
                     f"{_pct(r['UC_acc'])} ({r['target_UC']:.2f}) | {r['note']} | {r['train_s']} |")
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
    ap.add_argument("--kinds", default="seen,unseen", help="which classifiers to train: seen, unseen, both (= seen,unseen)")
    ap.add_argument("--probe-seen", type=float, default=None, help="calibrate the seen probe to this (percent) instead")
    ap.add_argument("--probe-zsl", type=float, default=None, help="calibrate the ZSL ridge probe to this (percent) instead")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here (appends to a .jsonl file)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kinds = tuple(dict.fromkeys(k.strip() for k in args.kinds.replace("both", "seen,unseen").split(",") if k.strip()))
    if not kinds or set(kinds) - {"seen", "unseen"}:
        raise SystemExit(f"--kinds: seen, unseen, both or seen,unseen; got {args.kinds!r}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="avood-calib-") as tmp:
        for ds in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            rows.append(measure(ds, args.profile, args.scale, args.seed, args.splits, Path(tmp), args.set, kinds,
                                (args.probe_seen, args.probe_zsl)))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if args.json and args.json.suffix == ".jsonl":
        with args.json.open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    elif args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
