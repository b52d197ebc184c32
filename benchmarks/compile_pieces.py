"""``torch.compile`` on the unseen step's fused pieces, against eager, forward + backward per call.

    python benchmarks/compile_pieces.py [--threads 1] [--reps 200]

The pieces of one encoder block of the cross-attention classifier at UCF sizes (112 rows, 512 wide;
``plugins/unseen/_avca_net.py``): BatchNorm + ReLU; Linear + BatchNorm + ReLU; the block with dropout;
its elementwise tail (BatchNorm + ReLU + dropout). Eager uses avood's dropout
(``avood_core.train.precision.dropout``); the compiled graphs use ``F.dropout`` (inductor fuses its own
RNG; other random bits, so a compiled piece could only be opt-in). Prints the best and the median
of 5 repeats in CPU ms per call (``time.process_time``), after the compilation (timed separately).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from avood_core.train.precision import dropout

B, D, P = 112, 512, 0.5  # UCF preset: 112 rows per call, enc_hidden 512, r_enc 0.5


class Piece(nn.Module):
    def __init__(self, linear: bool, drop: str | None) -> None:
        super().__init__()
        self.lin = nn.Linear(D, D) if linear else nn.Identity()
        self.bn, self.drop = nn.BatchNorm1d(D), drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.lin(x)).relu()
        if self.drop == "avood":
            return dropout(h, P, True)
        return F.dropout(h, P, True) if self.drop == "torch" else h


def per_call_ms(fn, x: torch.Tensor, reps: int) -> tuple[float, float]:
    for _ in range(20):
        fn(x).sum().backward()
    times = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(reps):
            fn(x).sum().backward()
        times.append(1000 * (time.process_time() - start) / reps)
    return round(min(times), 3), round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(B, D, requires_grad=True)
    print("| piece | eager best / median ms | compiled best / median ms | compile s |\n|---|---:|---:|---:|")
    for name, linear, drop in (("BatchNorm + ReLU", False, None), ("Linear + BatchNorm + ReLU", True, None),
                               ("Linear + BatchNorm + ReLU + dropout", True, "avood"),
                               ("BatchNorm + ReLU + dropout", False, "avood")):
        compiled = torch.compile(Piece(linear, "torch" if drop else None))
        start = time.perf_counter()
        compiled(x).sum().backward()
        compile_s = time.perf_counter() - start
        eager = per_call_ms(Piece(linear, drop), x, args.reps)
        print(f"| {name} | {eager[0]} / {eager[1]} | {' / '.join(map(str, per_call_ms(compiled, x, args.reps)))} | "
              f"{compile_s:.1f} |")


if __name__ == "__main__":
    main()
