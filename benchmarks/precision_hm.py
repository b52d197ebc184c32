"""HM of fp32 against ``precision = "auto"`` over seeds and UCF-shaped trees (issue 19's bf16 check).

``precision = "auto"`` (avood_core.train.precision) trains the matmul-heavy components, the
generator and the unseen classifier, in bf16 where the CPU has native bf16 (AVX512-BF16, AMX)
and in fp32 elsewhere. It may become the default only if, on each tree, the mean HM of auto
over the seeds lies within one standard deviation (of the fp32 runs) of the fp32 mean. This
runs ``avood run`` for every (tree, seed, precision), one after another, and writes each run's
metrics to ``--out/runs.jsonl`` (appended as they finish: a stopped sweep keeps its runs) and
the table to ``--out/table.md``::

    python benchmarks/precision_hm.py --seeds 0 1 2 --tree embedded --tree ucf=PATH/TO/ROOT \\
        --profile quick --jobs 2 --out precision-hm

``embedded`` is the built-in UCF-shaped task (``avood run`` without ``--data``); ``ucf=ROOT``
a benchmark tree (``avood bench`` writes one under ``-o/trees``), run with the stage-1 / stage-2
protocol. ``--set KEY=VALUE`` passes overrides to every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from avood_core.train.precision import native_bf16
from avood_core.util.io import atomic_write_text

PRECISIONS = ("fp32", "auto")


def run_one(tree: str, seed: int, precision: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "avood_core.cli", "run", "--json", "--no-report", "-q", "--seed", str(seed),
           "--profile", args.profile, "--jobs", str(args.jobs), "-o", str(args.out / "runs"),
           "--set", f"generator.precision={precision}", "--set", f"unseen.precision={precision}"]
    if tree != "embedded":
        name, _, root = tree.partition("=")
        cmd += ["--data", root, "--dataset", name]
    for kv in args.set:
        cmd += ["--set", kv]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"precision_hm: {' '.join(cmd)} failed: {out.stderr.strip().splitlines()[-1:]}")
    results = json.loads(out.stdout)["results"]
    m = results["metrics"]
    return {"tree": tree, "seed": seed, "precision": precision, "wall_s": round(time.perf_counter() - start, 1),
            "S": m["S"], "U": m["U"], "HM": m["HM"], "ZSL": m["ZSL"], "run_dir": json.loads(out.stdout)["run_dir"],
            "auto_is_bf16": native_bf16("cpu")}


def table(rows: list[dict]) -> str:
    lines = ["| tree | precision | seeds | HM per seed | HM mean ± std | S mean | U mean | within one fp32 std |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    verdicts = []
    for tree in dict.fromkeys(r["tree"] for r in rows):
        ref = [r["HM"] for r in rows if r["tree"] == tree and r["precision"] == "fp32"]
        ref_mean = statistics.fmean(ref) if ref else None
        ref_std = statistics.stdev(ref) if len(ref) > 1 else None
        for prec in PRECISIONS:
            sel = [r for r in rows if r["tree"] == tree and r["precision"] == prec]
            if not sel:
                continue
            hm = [r["HM"] for r in sel]
            mean, std = statistics.fmean(hm), (statistics.stdev(hm) if len(hm) > 1 else float("nan"))
            within = "" if prec == "fp32" or ref_std is None else ("yes" if abs(mean - ref_mean) <= ref_std else "no")
            if within:
                verdicts.append(within == "yes")
            lines.append(f"| {tree.partition('=')[0]} | {prec} | {len(sel)} | {', '.join(f'{v:.2f}' for v in hm)} | "
                         f"{mean:.2f} ± {std:.2f} | {statistics.fmean(r['S'] for r in sel):.2f} | "
                         f"{statistics.fmean(r['U'] for r in sel):.2f} | {within} |")
    decision = ("auto is within one fp32 standard deviation on every tree" if verdicts and all(verdicts)
                else "auto is NOT within one fp32 standard deviation on every tree" if verdicts else "incomplete")
    return "\n".join(lines) + f"\n\nDecision rule: {decision}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tree", action="append", default=[], help="embedded, or NAME=ROOT of a benchmark tree")
    ap.add_argument("--profile", default="quick", choices=["quick", "paper"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE override for every run")
    ap.add_argument("--out", type=Path, default=Path("precision-hm"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    done = {(r["tree"], r["seed"], r["precision"]): r for r in map(json.loads, log.read_text().splitlines())} \
        if log.exists() else {}
    for tree in args.tree or ["embedded"]:
        for seed in args.seeds:
            for prec in PRECISIONS:
                if (tree, seed, prec) in done:
                    continue
                row = run_one(tree, seed, prec, args)
                done[(tree, seed, prec)] = row
                with open(log, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{tree} seed {seed} {prec}: HM {row['HM']:.2f} (S {row['S']:.2f}, U {row['U']:.2f}) "
                      f"in {row['wall_s']} s", flush=True)
    text = table(list(done.values()))
    atomic_write_text(args.out / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
