"""Does MKL's float32 sgemm give other bits for the same values at another memory alignment, or on a repeat?

    MKL_CBWR= python benchmarks/mkl_repro.py [THREADS]      # CNR off (empty value)
    python benchmarks/mkl_repro.py [THREADS]                # as avood runs: MKL_CBWR=AUTO

For UCF-shaped Linear calls of the unseen classifier (224 rows = 112 positives + 112
negatives; widths 512, 300, 900), each call is repeated with both operands moved to 48
alignments (0-15 floats past a 64-byte boundary for the input, 0/1/3 for the weight) and 50
times in place, and compared bit for bit with the first result (docs/performance.md,
"Reproducibility").
"""

import itertools
import os
import sys

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
SHAPES = [(224, 512, 512), (224, 512, 300), (448, 300, 900), (448, 300, 300), (224, 300, 512), (512, 224, 300),
          (300, 224, 512), (12, 512, 512), (900, 448, 300)]


def shifted(t: torch.Tensor, off: int) -> torch.Tensor:
    view = torch.empty(t.numel() + 64)[off:off + t.numel()].view_as(t)
    return view.copy_(t)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    print(f"MKL_CBWR={os.environ.get('MKL_CBWR')!r}, {torch.get_num_threads()} threads")
    for m, k, n in SHAPES:
        a, w = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
        ref = torch.nn.functional.linear(a, w)
        moved = sum(not torch.equal(torch.nn.functional.linear(shifted(a, i), shifted(w, j)), ref)
                    for i, j in itertools.product(range(16), (0, 1, 3)))
        repeat = sum(not torch.equal(torch.nn.functional.linear(a, w), ref) for _ in range(50))
        print(f"linear {m}x{k} @ {k}x{n}: differs at {moved}/48 alignments, on {repeat}/50 repeats", flush=True)


if __name__ == "__main__":
    if "MKL_CBWR" not in os.environ:
        import avood_core  # noqa: F401  (sets MKL_CBWR=AUTO before the first MKL call, as avood does)
    main()
