"""Which ops of the unseen classifier's step depend on the thread count, and what invariance costs.

    python benchmarks/thread_invariance.py [--threads 2] [--steps 30] [--timing-steps 100]

The idle core: when the main path of a ``jobs = 2`` run ends, the worker training
the cross-attention classifier could take the freed core as a second intra-op thread. The
moment is set by the clock, so that is deterministic only if the training step gives the same
bits at one and at two threads. This script measures:

1. **Per op**, on ``--rows`` x 512 inputs (112: one BatchNorm call of a ucf-preset step): is
   the result at ``--threads`` bit-identical to one thread? Forward and backward of matmul, ``nn.Linear``, ``BatchNorm1d``
   and ``LayerNorm`` (training mode), the losses (``mse_loss``, ``triplet_margin_loss``),
   softmax and a full ``sum``.
2. **Whole fits** of the UCF preset's unseen classifier (``--steps`` steps on the embedded
   task) at one and at ``--threads`` threads: how many state tensors differ, with PyTorch's
   norms and with *thread-invariant norms* defined here (BatchNorm as an autograd function whose
   reductions are per-feature ``sum(0)``s, LayerNorm as per-row means). A reduction whose
   output has more than one element runs each output's sum on one thread, in the same order at
   any thread count; ATen's fused BatchNorm / LayerNorm kernels split the batch between threads
   for the weight and bias gradients and the batch statistics.
3. **Milliseconds per step** for both variants at one and at ``--threads`` threads (the
   difference of a long and a short fit, so set-up cancels).

The invariant norms change the last bits against PyTorch's at any thread count: they are an
experiment here, not a component option. docs/performance.md ("Giving the freed core to the
worker") records the figures and the decision.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _InvariantBN(torch.autograd.Function):
    """Training-mode batch norm over dim 0 with per-feature reductions only."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float):  # type: ignore[override]
        mean = x.mean(0)
        xc = x - mean
        var = (xc * xc).mean(0)
        invstd = torch.rsqrt(var + eps)
        xhat = xc * invstd
        ctx.save_for_backward(xhat, invstd, weight)
        return torch.addcmul(bias, xhat, weight), mean, var

    @staticmethod
    def backward(ctx, dy: Tensor, _dmean: Tensor, _dvar: Tensor):  # type: ignore[override]
        xhat, invstd, weight = ctx.saved_tensors
        n = dy.shape[0]
        dbias, dweight = dy.sum(0), (dy * xhat).sum(0)
        return (dy - dbias / n - xhat * (dweight / n)) * (invstd * weight), dweight, dbias, None


def _bn_forward(self: nn.BatchNorm1d, x: Tensor) -> Tensor:
    if not self.training or self.momentum is None or not self.affine:
        return _STOCK["bn"](self, x)
    y, mean, var = _InvariantBN.apply(x, self.weight, self.bias, self.eps)
    with torch.no_grad():  # running statistics as ATen keeps them: the unbiased variance
        n = x.shape[0]
        self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
        self.running_var.mul_(1 - self.momentum).add_(var * (n / (n - 1)), alpha=self.momentum)
        self.num_batches_tracked.add_(1)
    return y


def _ln_forward(self: nn.LayerNorm, x: Tensor) -> Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


_STOCK = {"bn": nn.BatchNorm1d.forward, "ln": nn.LayerNorm.forward}


@contextlib.contextmanager
def invariant_norms(on: bool) -> Iterator[None]:
    """Swap BatchNorm1d / LayerNorm forwards for the thread-invariant ones while inside."""
    if on:
        nn.BatchNorm1d.forward, nn.LayerNorm.forward = _bn_forward, _ln_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.BatchNorm1d.forward, nn.LayerNorm.forward = _STOCK["bn"], _STOCK["ln"]  # type: ignore[method-assign]


def op_results(threads: int, rows: int) -> dict[str, Tensor]:
    """Each probed op's outputs and gradients on ``rows`` x 512 inputs at ``threads`` threads."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x, g = torch.randn(rows, 512, generator=gen), torch.randn(rows, 512, generator=gen)
    w = torch.randn(512, 512, generator=gen) * 0.05
    out: dict[str, Tensor] = {"matmul": x @ w, "matmul x^T g": x.t() @ g, "softmax": torch.softmax(x, 1),
                              "sum(0)": g.sum(0), "sum() (one output)": x.sum()}
    modules = {"Linear": nn.Linear(512, 512), "BatchNorm1d": nn.BatchNorm1d(512), "LayerNorm": nn.LayerNorm(512)}
    for name, mod in modules.items():
        torch.manual_seed(1)
        mod.reset_parameters()
        xx = x.clone().requires_grad_()
        y = mod(xx)
        (y * g).sum(1).sum().backward()
        out[f"{name} forward"] = y.detach()
        out[f"{name} grad input"] = xx.grad
        out[f"{name} grad weight/bias"] = torch.cat([p.grad.flatten() for p in mod.parameters()])
    for name, fn in {"mse_loss": lambda a: F.mse_loss(a, g),
                     "triplet_margin_loss": lambda a: F.triplet_margin_loss(a, g, g.flip(0))}.items():
        xx = x.clone().requires_grad_()
        loss = fn(xx)
        loss.backward()
        out[f"{name} value"], out[f"{name} grad"] = loss.detach(), xx.grad
    return out


@functools.lru_cache(maxsize=1)
def _task():
    """The embedded UCF-like task every fit trains on (built once)."""
    from avood_core.data.latent import make_ucf_task

    return make_ucf_task(0, 0.2)


def _fit(threads: int, steps: int, invariant: bool):
    """The UCF preset's unseen classifier after ``steps`` steps at ``threads`` threads, and its wall time."""
    from avood_core.protocols import FitContext
    from avood_core.registry import get_registry
    from avood_core.train.loops import seed_everything

    torch.set_num_threads(threads)
    task = _task()
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=0, val=task.val)
    seed_everything(5)
    comp = get_registry().component_class("unseen", "cross_attention")({"epochs": 1, "batches_per_epoch": steps})
    with invariant_norms(invariant):
        start = time.perf_counter()
        comp.fit(task.train, task.text, ctx)
        wall = time.perf_counter() - start
    return {k: v.clone() for k, v in comp.net.state_dict().items()}, wall


def _differences(a: dict[str, Tensor], b: dict[str, Tensor]) -> tuple[int, float]:
    """How many tensors of two state dicts differ in any bit, and the largest absolute difference."""
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    return len(diff), max(((a[k].double() - b[k].double()).abs().max().item() for k in diff), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="the thread count compared with one thread")
    ap.add_argument("--rows", type=int, default=112,
                    help="rows of the per-op probe (112: one half of a ucf-preset batch, one BatchNorm call)")
    ap.add_argument("--steps", type=int, default=30, help="training steps of the whole-fit comparison")
    ap.add_argument("--timing-steps", type=int, default=100, help="extra steps timed per variant (0: no timing)")
    args = ap.parse_args()
    n = args.threads
    one, many = op_results(1, args.rows), op_results(n, args.rows)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}; 1 vs {n} threads\n")
    print(f"| op ({args.rows} x 512) | bit-identical at {n} threads |\n|---|---|")
    for name in one:
        print(f"| {name} | {'yes' if torch.equal(one[name], many[name]) else 'no'} |")
    print(f"\n| norms | state tensors differing after {args.steps} steps | max abs difference |"
          + ("".join(f" ms/step, {t} thread{'s' * (t > 1)} |" for t in (1, n)) if args.timing_steps else "")
          + "\n|---|---|---|" + "---:|" * (2 if args.timing_steps else 0))
    single = {}
    for invariant in (False, True):
        a, _ = single[invariant] = _fit(1, args.steps, invariant)
        b, _ = _fit(n, args.steps, invariant)
        count, worst = _differences(a, b)
        row = f"| {'thread-invariant' if invariant else 'PyTorch'} | {count} of {len(a)} | {worst:.3g} |"
        for t in (1, n) if args.timing_steps else ():
            short, long_ = _fit(t, 10, invariant)[1], _fit(t, 10 + args.timing_steps, invariant)[1]
            row += f" {(long_ - short) / args.timing_steps * 1e3:.1f} |"
        print(row)
    count, worst = _differences(single[False][0], single[True][0])
    print(f"\nOne thread, PyTorch's norms vs the thread-invariant ones: {count} of {len(single[False][0])} "
          f"state tensors differ, max abs difference {worst:.3g}.")


if __name__ == "__main__":
    main()
