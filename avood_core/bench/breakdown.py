"""Where a training step's time goes: ``torch.profiler`` over a few steps of one stage, ops by category.

``avood bench`` profiles the longest training stage this way after its timed run (docs/performance.md,
"Where a step's time goes"): a fresh component of the same plugin and params takes ``warmup`` steps, then
``steps`` steps under the profiler, each step the loop's own (:func:`avood_core.train.loop.fit_loop`) at the
thread count the stage trained at. Each profiled op's self time (CPU, or the GPU's kernel time on CUDA)
goes to the first category that claims it, in :data:`CATEGORIES` order.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

CATEGORIES = ("casts", "matmul", "optimizer", "random", "normalization", "elementwise", "framework")
"""``casts``: a tensor's ``aten::_to_copy`` and what runs inside it (dtype casts under autocast, masks to
float, device copies; not the 0-dim wraps of Python scalars);
``matmul``: :data:`MATMUL_OPS`; ``optimizer``: inside ``Optimizer.step``; ``random``: RNG draws;
``normalization``: BatchNorm / LayerNorm forward and backward; ``elementwise``: every other aten op
(activations, dropout multiplies, losses, reductions, copies); ``framework``: the self time of the
autograd engine's nodes and of named ranges, i.e. dispatch outside aten kernels."""

MATMUL_OPS = frozenset({
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::mv", "aten::addmv",
    "aten::dot", "aten::_addmm_activation", "aten::mkldnn_linear", "aten::_int_mm", "aten::convolution",
    "aten::mkldnn_convolution", "aten::cudnn_convolution", "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention", "aten::_efficient_attention_backward",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward", "aten::_flash_attention_backward",
})
_RANDOM = ("aten::random_", "aten::uniform_", "aten::normal_", "aten::bernoulli_", "aten::exponential_",
           "aten::randperm", "aten::multinomial")
_NORM = ("aten::native_batch_norm", "aten::native_layer_norm", "aten::_batch_norm", "aten::batch_norm",
         "aten::cudnn_batch_norm", "aten::miopen_batch_norm", "aten::native_group_norm")


def _is_cast(event: Any) -> bool:
    """An ``aten::_to_copy`` of a tensor (not of a Python scalar wrapped as a 0-dim operand)."""
    shapes = getattr(event, "input_shapes", None)
    return event.name == "aten::_to_copy" and not (shapes and shapes[0] == [])


def category(name: str, ancestors: list[str], cast: bool = False) -> str:
    """The category of an op ``name`` called inside ``ancestors`` (outermost first); ``cast``: it is or runs
    inside a tensor's ``aten::_to_copy``."""
    if cast:
        return "casts"
    if name in MATMUL_OPS:
        return "matmul"
    if any(a.startswith("Optimizer.step") for a in ancestors) or name.startswith("Optimizer.step"):
        return "optimizer"
    if not name.startswith("aten::"):
        return "framework"
    if name.startswith(_RANDOM):
        return "random"
    if name.startswith(_NORM):
        return "normalization"
    return "elementwise"


def _self_time_us(event: Any, cuda: bool) -> float:
    """An event's self time in µs: its kernels' device time on CUDA, else its CPU time."""
    if cuda:
        return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))
    return float(event.self_cpu_time_total)


def summarize(events: list[Any], steps: int, wall_s: float, cuda: bool = False) -> dict[str, Any]:
    """Per-category shares, ms and calls per step of profiled ``events`` (FunctionEvents with ``cpu_parent``)."""
    time_us: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    per_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    cats: dict[int, str] = {}
    for e in events:
        chain, parent = [], e.cpu_parent
        while parent is not None:
            chain.append(parent)
            parent = parent.cpu_parent
        cat = cats[id(e)] = category(e.name, [a.name for a in reversed(chain)], any(map(_is_cast, [e, *chain])))
        us = _self_time_us(e, cuda)
        time_us[cat] += us
        if not chain or cats.get(id(chain[0])) != cat:  # events come in start order: a parent is seen first
            calls[cat] += 1  # the outermost op of its category: a cast's copy_ is not a second call
        per_op[e.name][0] += us
        per_op[e.name][1] += 1
    total = sum(time_us.values()) or 1.0
    top = sorted(per_op.items(), key=lambda kv: kv[1][0], reverse=True)[:8]
    return {
        "time": "self GPU kernel time" if cuda else "self CPU time",
        "steps": steps, "wall_ms_per_step": round(1000 * wall_s / steps, 3),
        "op_ms_per_step": round(total / 1000 / steps, 3),
        "ops_share_of_wall": round(total / 1e6 / wall_s, 4) if wall_s > 0 else None,
        "categories": {c: {"share": round(time_us[c] / total, 4), "ms_per_step": round(time_us[c] / 1000 / steps, 3),
                           "calls_per_step": round(calls[c] / steps, 1)} for c in CATEGORIES},
        "top_ops": [{"op": name, "share": round(us / total, 4), "calls_per_step": round(n / steps, 1)}
                    for name, (us, n) in top],
    }


def _window(batches: Callable[[], Any], warmup: int, steps: int, start: Callable[[], None],
            stop: Callable[[], None]) -> Iterator[Any]:
    """``warmup + steps`` batches over as many epochs as it takes (fewer if an epoch is empty); ``start()``
    right before step ``warmup`` (the previous step done), ``stop()`` once the last step is done."""
    drawn, started = 0, False
    try:
        while drawn < warmup + steps:
            before = drawn
            for batch in batches():
                if drawn == warmup:
                    start()
                    started = True
                yield batch
                drawn += 1
                if drawn == warmup + steps:
                    break
            if drawn == before:
                return
    finally:
        if started:
            stop()


def step_breakdown(comp: Any, inputs: tuple, ctx: Any, steps: int = 10, warmup: int = 5) -> dict[str, Any]:
    """Profile ``steps`` training steps of ``comp`` (a fresh, unfitted component) after ``warmup`` steps; the
    record of :func:`summarize`, or ``{"skipped": why}`` for a component that runs its own ``fit``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from avood_core.train.loop import LoopComponent, fit_loop

    if not isinstance(comp, LoopComponent) or type(comp).fit is not LoopComponent.fit:
        return {"skipped": f"{type(comp).__name__} runs its own fit, so the core's loop cannot time its steps"}
    if steps < 1 or warmup < 0:
        raise ValueError(f"step breakdown: steps must be >= 1 and warmup >= 0, got {steps} and {warmup}")
    t = comp.training(*inputs, ctx=ctx)
    cuda = torch.device(ctx.device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize(ctx.device)) if cuda else (lambda: None)
    prof = profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])], record_shapes=True)
    clock: list[float] = []

    def start() -> None:
        sync()
        prof.start()
        clock.append(time.perf_counter())

    def stop() -> None:
        sync()
        clock.append(time.perf_counter())
        prof.stop()

    window = dataclasses.replace(t, epochs=1, steps_per_epoch=warmup + steps, plateau=None, epoch_end=None,
                                 log_epochs=False, batches=lambda: _window(t.batches, warmup, steps, start, stop))
    fit_loop(comp, ctx, window)
    if len(clock) != 2:
        raise RuntimeError(f"step breakdown: the profiled window did not run {steps} steps")
    cpu_ops = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]  # a kernel counts in its op
    return summarize(cpu_ops, steps, clock[1] - clock[0], cuda)
