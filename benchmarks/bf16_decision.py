"""Should bf16 autocast be the default where the hardware has native bf16? fp32 against bf16, paired by seed.

    python benchmarks/bf16_decision.py --data ROOT [--dataset ucf] [--seeds 0,1,2,3,4] [--profile paper] \\
        [--out sweeps/bf16-decision] [--max-parallel 2] [--set KEY=VALUE ...]

One ``avood sweep`` over ``generator.precision`` x ``unseen.precision`` in {fp32, bf16} (the two
matmul-heavy components, the ones ``precision = "auto"`` reaches) and the seeds, then ``avood
compare`` of each bf16 config against fp32 in both, paired by seed (Student t interval of the mean
paired difference, exact sign-flip p; docs/statistics.md). The sweep shares fits between its
configs (the seen classifier once per seed; each generator and unseen classifier once per seed
and precision) and resumes where it stopped: rerun the same command after an interruption.

Rule (docs/performance.md, "bf16 autocast"): bf16 may become the default on hardware with native
bf16 iff the 95 % interval of the paired HM difference (bf16 − fp32) lies above -1.0 HM point,
over at least 5 seeds at full epochs (``--profile paper``). Writes ``decision.md`` and
``decision.json`` into the sweep folder and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from avood_core.util.io import atomic_write_json, atomic_write_text

FLOOR = -1.0  # HM points: the lowest paired difference the rule accepts
MIN_SEEDS = 5
ARMS = {"bf16 (generator + unseen)": ("bf16", "bf16"), "bf16 generator only": ("bf16", "fp32"),
        "bf16 unseen only": ("fp32", "bf16")}


def config_row(generator: str, unseen: str) -> str:
    """The sweep's name of a config row (its axes in spec order)."""
    return f"generator.precision={generator}, unseen.precision={unseen}"


def avood(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avood_core.cli", *args], capture_output=True, text=True)


def per_seed_hm(out: Path, generator: str, unseen: str) -> dict[int, float]:
    """HM of each finished trial of a config, by seed (from the trials' results.json)."""
    found = {}
    for res in (out / "trials").glob(f"generator.precision-{generator}_unseen.precision-{unseen}_seed-*/results.json"):
        seed = int(res.parent.name.rsplit("seed-", 1)[1])
        found[seed] = json.loads(res.read_text())["metrics"]["HM"]
    return dict(sorted(found.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="benchmark root of a UCF-shaped tree (avood data synth writes one)")
    ap.add_argument("--dataset", default="ucf")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--profile", default="paper", help="paper = full epochs (the rule's setting); quick for a pilot")
    ap.add_argument("--out", type=Path, default=Path("sweeps/bf16-decision"))
    ap.add_argument("--max-parallel", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for every trial")
    args = ap.parse_args()
    args.data = str(Path(args.data).resolve())

    sweep = ["sweep", "--preset", args.dataset, "--data", args.data, "--dataset", args.dataset, "--profile", args.profile,
             "--seeds", args.seeds, "--axis", "generator.precision=fp32,bf16", "--axis", "unseen.precision=fp32,bf16",
             "--max-parallel", str(args.max_parallel), "-o", str(args.out), "-q", *[a for kv in args.set for a in ("--set", kv)]]
    done = avood(*sweep)
    if done.returncode:
        sys.exit(f"bf16_decision: avood {' '.join(sweep)} failed: {done.stderr.strip()[-2000:]}")
    fp32 = per_seed_hm(args.out, "fp32", "fp32")
    record = {"data": args.data, "profile": args.profile, "seeds": sorted(fp32), "fp32_hm": fp32, "arms": {}}
    lines = [f"bf16 against fp32, paired by seed ({args.profile} profile, {args.data}); rule: the 95 % interval of "
             f"the HM difference above {FLOOR} with at least {MIN_SEEDS} seeds at full epochs.", "",
             "| arm | seeds | HM fp32 per seed | HM arm per seed | mean diff | 95 % interval | p | rule |",
             "|---|---:|---|---|---:|---|---:|---|"]
    for arm, (gen, uns) in ARMS.items():
        cmp = avood("compare", str(args.out), str(args.out), "--config-a", config_row("fp32", "fp32"),
                    "--config-b", config_row(gen, uns), "--pair", "seed", "--json")
        if cmp.returncode:
            sys.exit(f"bf16_decision: avood compare failed for {arm}: {cmp.stderr.strip()[-1000:]}")
        hm = json.loads(cmp.stdout)["metrics"]["HM"]
        other = per_seed_hm(args.out, gen, uns)
        seeds = sorted(set(fp32) & set(other))
        enough = len(seeds) >= MIN_SEEDS and args.profile == "paper"
        verdict = ("passes" if hm["ci"][0] > FLOOR else "fails") + ("" if enough else " (not the rule's setting)")
        record["arms"][arm] = {"hm": other, "diff": hm["diff"], "ci": hm["ci"], "p": hm["p"], "verdict": verdict}
        lines.append(f"| {arm} | {len(seeds)} | {', '.join(f'{fp32[s]:.2f}' for s in seeds)} | "
                     f"{', '.join(f'{other[s]:.2f}' for s in seeds)} | {hm['diff']:+.2f} | "
                     f"[{hm['ci'][0]:+.2f}, {hm['ci'][1]:+.2f}] | {hm['p']:.3g} | {verdict} |")
    atomic_write_json(args.out / "decision.json", record)
    atomic_write_text(args.out / "decision.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
