"""Should bf16 autocast be the default where the hardware has native bf16? fp32 against bf16, paired by seed.

    python benchmarks/bf16_decision.py --data ROOT [--dataset ucf] [--seeds 0,1,2,3,4] [--profile paper] \\
        [--out sweeps/bf16-decision] [--max-parallel 2] [--grid] [--report-only] [--set KEY=VALUE ...]

One ``avood sweep`` of fp32 against bf16 in both matmul-heavy components (the generator and the
unseen classifier, the ones ``precision = "auto"`` reaches; one tied axis
``generator.precision+unseen.precision``), or with ``--grid`` their 2 x 2 product (which of the
two costs HM), and the seeds; then ``avood compare`` of each bf16 config against fp32, paired by
seed (Student t interval of the mean paired difference, exact sign-flip p; docs/statistics.md).
The sweep shares fits between its configs (the seen classifier once per seed) and runs seed by
seed, so an interrupted sweep holds complete pairs; rerun the same command to resume it, or add
``--report-only`` for the table of the pairs finished so far (nothing is run).

Rule (docs/performance.md, "bf16 autocast"): bf16 may become the default on hardware with native
bf16 iff the 95 % interval of the paired HM difference (bf16 − fp32) lies above -1.0 HM point,
over at least 5 seeds at full epochs (``--profile paper``). Writes ``decision.md`` and
``decision.json`` into the sweep folder and prints the table, with the standard deviation of the
paired differences and the seeds an interval of ±1 point would need at that spread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from avood_core.eval.stats import mean_interval
from avood_core.util.io import atomic_write_json, atomic_write_text

FLOOR = -1.0  # HM points: the lowest paired difference the rule accepts
MIN_SEEDS = 5
TIED = "generator.precision+unseen.precision"
GRID = {"bf16 (generator + unseen)": ("bf16", "bf16"), "bf16 generator only": ("bf16", "fp32"),
        "bf16 unseen only": ("fp32", "bf16")}


def layout(grid: bool) -> tuple[list[str], str, dict[str, str]]:
    """The sweep's ``--axis`` flags, the config row label of fp32, and that of each bf16 arm."""
    if not grid:
        return [f"{TIED}=fp32,bf16"], f"{TIED}=fp32", {"bf16 (generator + unseen)": f"{TIED}=bf16"}

    def row(gen: str, uns: str) -> str:
        return f"generator.precision={gen}, unseen.precision={uns}"
    return (["generator.precision=fp32,bf16", "unseen.precision=fp32,bf16"], row("fp32", "fp32"),
            {arm: row(*pair) for arm, pair in GRID.items()})


def avood(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avood_core.cli", *args], capture_output=True, text=True)


def per_seed_hm(out: Path, label: str) -> dict[int, float]:
    """HM of each finished trial of the config row ``label``, by seed (the sweep's ``sweep.json`` records)."""
    trials = json.loads((out / "sweep.json").read_text())["trials"]
    return dict(sorted((int(t["seed"]), float(t["metrics"]["HM"])) for t in trials
                       if t.get("label") == label and t.get("status") == "done"))


def seeds_for(sd: float, half_width: float = -FLOOR, level: float = 0.95, cap: int = 10_000) -> int | None:
    """Seeds whose Student t interval of the mean paired difference is at most ``±half_width`` at this spread
    (``sd`` of the paired differences): the smallest n with t(level, n - 1) · sd / √n ≤ half_width."""
    from scipy.stats import t

    return next((n for n in range(2, cap + 1) if t.ppf((1 + level) / 2, n - 1) * sd / n ** 0.5 <= half_width), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="benchmark root of a UCF-shaped tree (avood data synth writes one)")
    ap.add_argument("--dataset", default="ucf")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--profile", default="paper", help="paper = full epochs (the rule's setting); quick for a pilot")
    ap.add_argument("--out", type=Path, default=Path("sweeps/bf16-decision"))
    ap.add_argument("--max-parallel", type=int, default=2)
    ap.add_argument("--grid", action="store_true", help="the 2 x 2 of generator and unseen precision, not the tied pair")
    ap.add_argument("--report-only", action="store_true", help="the table of the finished pairs; run nothing")
    ap.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for every trial")
    args = ap.parse_args()
    args.data = str(Path(args.data).resolve())
    axes, base, arms = layout(args.grid)

    sweep = ["sweep", "--preset", args.dataset, "--data", args.data, "--dataset", args.dataset, "--profile", args.profile,
             "--seeds", args.seeds, *[a for axis in axes for a in ("--axis", axis)],
             "--max-parallel", str(args.max_parallel), "-o", str(args.out), "-q", *[a for kv in args.set for a in ("--set", kv)]]
    done = None if args.report_only else avood(*sweep)
    if done is not None and done.returncode:
        sys.exit(f"bf16_decision: avood {' '.join(sweep)} failed: {done.stderr.strip()[-2000:]}")
    fp32 = per_seed_hm(args.out, base)
    record = {"data": args.data, "profile": args.profile, "seeds": sorted(fp32), "fp32_hm": fp32, "arms": {}}
    lines = [f"bf16 against fp32, paired by seed ({args.profile} profile, {args.data}); rule: the 95 % interval of "
             f"the HM difference above {FLOOR} with at least {MIN_SEEDS} seeds at full epochs.", "",
             "| arm | seeds | HM fp32 per seed | HM arm per seed | mean diff | 95 % interval | p | sd of diffs | "
             f"seeds for ±{-FLOOR:g} | rule |",
             "|---|---:|---|---|---:|---|---:|---:|---:|---|"]
    for arm, label in arms.items():
        cmp = avood("compare", str(args.out), str(args.out), "--config-a", base, "--config-b", label,
                    "--pair", "seed", "--json")
        if cmp.returncode:
            sys.exit(f"bf16_decision: avood compare failed for {arm}: {cmp.stderr.strip()[-1000:]}")
        hm = json.loads(cmp.stdout)["metrics"]["HM"]
        other = per_seed_hm(args.out, label)
        seeds = sorted(set(fp32) & set(other))
        enough = len(seeds) >= MIN_SEEDS and args.profile == "paper"
        ci = hm["ci"]  # None for one pair
        verdict = ("no interval (one pair)" if ci is None else "passes" if ci[0] > FLOOR else "fails") + \
            ("" if enough else " (not the rule's setting)")
        sd = mean_interval([other[s] - fp32[s] for s in seeds])["std"] if seeds else None  # None for one pair
        need = None if sd is None else seeds_for(sd)  # how many seeds a ±1-point interval needs at this spread
        record["arms"][arm] = {"hm": other, "diff": hm["diff"], "ci": ci, "p": hm["p"], "sd": sd,
                               "seeds_for_unit_interval": need, "verdict": verdict}
        lines.append(f"| {arm} | {len(seeds)} | {', '.join(f'{fp32[s]:.2f}' for s in seeds)} | "
                     f"{', '.join(f'{other[s]:.2f}' for s in seeds)} | {hm['diff']:+.2f} | "
                     f"{'–' if ci is None else f'[{ci[0]:+.2f}, {ci[1]:+.2f}]'} | {hm['p']:.3g} | "
                     f"{'–' if sd is None else f'{sd:.2f}'} | {'–' if need is None else need} | {verdict} |")
    atomic_write_json(args.out / "decision.json", record)
    atomic_write_text(args.out / "decision.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
