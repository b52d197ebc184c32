"""Which BLAS / oneDNN kernels the unseen classifier's training step dispatches to, and their share.

    python benchmarks/kernel_dispatch.py [--precision fp32|bf16] [--steps 3] [--threads 1]

The Intel gap: the fp32 step of the cross-attention classifier ran at ~17 % of an
AVX-512 core's peak on an Intel Xeon and ~56 % on an AMD EPYC. This script re-runs itself with
``MKL_VERBOSE=1`` and ``ONEDNN_VERBOSE=1`` (read by MKL and oneDNN at their first call, so they
must be in the environment before torch starts), trains ``--steps`` steps of the UCF preset's
unseen classifier on a small embedded task, and summarizes the calls made inside the fit: the
library and version, the instruction set oneDNN detected, each GEMM shape (MKL's
``transa, transb, m, n, k``) or oneDNN implementation, its count and its share of the logged
kernel time. Verbose logging adds its own overhead: read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys

_MARK = "=== avood fit"
_UNITS = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def child(precision: str, steps: int, threads: int) -> None:
    """Fit the unseen classifier for ``steps`` steps between two marker lines."""
    import torch

    from avood_core.data.latent import make_ucf_task
    from avood_core.protocols import FitContext
    from avood_core.registry import get_registry

    torch.set_num_threads(threads)
    task = make_ucf_task(0, 0.2)
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=0, val=task.val)
    comp = get_registry().component_class("unseen", "cross_attention")(
        {"epochs": 1, "batches_per_epoch": steps, "precision": precision})
    print(f"{_MARK} start", flush=True)
    comp.fit(task.train, task.text, ctx)
    print(f"{_MARK} end", flush=True)


def summarize(log: str, steps: int) -> str:
    """A markdown summary of the verbose lines logged between the markers."""
    info = [ln for ln in log.splitlines() if ln.startswith("MKL_VERBOSE oneMKL") or ",info,cpu,isa:" in ln
            or ",info,oneDNN" in ln]
    inside = log.split(f"{_MARK} start", 1)[-1].split(f"{_MARK} end", 1)[0].splitlines()
    calls: collections.Counter = collections.Counter()
    micros: dict[tuple, float] = collections.defaultdict(float)
    for ln in inside:
        m = re.match(r"MKL_VERBOSE (\w+)\(([^)]*)\) ([\d.]+)(ns|us|ms|s)\b", ln)
        if m:
            key = ("MKL " + m.group(1), ",".join(m.group(2).split(",")[:5]))
            calls[key] += 1
            micros[key] += float(m.group(3)) * _UNITS[m.group(4)]
        elif ln.startswith("onednn_verbose") and ",exec," in ln:
            f = ln.split(",")
            key = (f"oneDNN {f[5]} {f[6]}", f[-2] if len(f) > 2 else "")
            calls[key] += 1
            micros[key] += float(f[-1]) * 1e3  # oneDNN logs milliseconds
    total = sum(micros.values()) or 1.0
    rows = [f"| {k[0]} | {k[1]} | {n / steps:g} | {100 * micros[k] / total:.1f} |"
            for k, n in sorted(calls.items(), key=lambda kv: -micros[kv[0]])]
    head = "\n".join(f"    {ln[:160]}" for ln in dict.fromkeys(info))
    head += f"\n\n{sum(calls.values()) / steps:g} logged kernel calls per step ({len(calls)} kinds)"
    return (f"{head}\n\n| kernel | shape (MKL: transa,transb,m,n,k; oneDNN: problem) | calls/step | % of logged time |\n"
            f"|---|---|---:|---:|\n" + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.precision, args.steps, args.threads)
        return
    env = {**os.environ, "MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}
    cmd = [sys.executable, __file__, "--child", "--precision", args.precision, "--steps", str(args.steps),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the verbose fit failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    print(summarize(done.stdout + done.stderr, args.steps))


if __name__ == "__main__":
    main()
