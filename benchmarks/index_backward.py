"""The op behind the same-seed drift of the unseen classifier, and its replacement.

    python benchmarks/index_backward.py [THREADS]

``W_proj[0](text)`` is a (classes, 512) table gathered to the batch's 224 rows; the gradient of
that gather adds each class's rows back together. With advanced indexing (``x[idx]``) PyTorch's
CPU backward is ``aten::_index_put_impl_`` with ``accumulate=True``, whose threads add into the
same rows concurrently: at two threads the sum's order, and so its last bits, change from one
call to the next. ``index_select``'s backward (``index_add_``) adds in index order. Prints how
often a repeat differs from the first result (200 repeats) and the CPU time of forward +
backward (docs/performance.md, "Reproducibility").
"""

import sys
import time

import torch


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    g = torch.Generator().manual_seed(0)
    classes, width, rows = 40, 512, 224  # UCF: 30 seen classes in a batch at most; proj_hidden 512; 112 + 112 rows
    x = torch.randn(classes, width, generator=g, requires_grad=True)
    idx = torch.randint(classes, (rows,), generator=g)
    upstream = torch.randn(rows, width, generator=g)

    def grad(gather) -> torch.Tensor:
        x.grad = None
        gather(x).backward(upstream)
        return x.grad.clone()

    cases = {"x[idx] (index_put_ accumulate)": lambda t: t[idx], "x.index_select(0, idx) (index_add_)": lambda t: t.index_select(0, idx),
             "embedding(idx, x)": lambda t: torch.nn.functional.embedding(idx, t)}
    print(f"{torch.get_num_threads()} threads")
    for name, gather in cases.items():
        ref = grad(gather)
        differ = sum(not torch.equal(grad(gather), ref) for _ in range(200))
        start = time.process_time()
        for _ in range(300):
            grad(gather)
        ms = 1000 * (time.process_time() - start) / 300
        print(f"{name}: backward differs on {differ}/200 repeats; {ms:.3f} CPU ms forward + backward", flush=True)
    torch.use_deterministic_algorithms(True)
    ref = grad(cases["x[idx] (index_put_ accumulate)"])
    differ = sum(not torch.equal(grad(cases["x[idx] (index_put_ accumulate)"]), ref) for _ in range(200))
    print(f"x[idx] under torch.use_deterministic_algorithms(True): differs on {differ}/200 repeats")


if __name__ == "__main__":
    main()
