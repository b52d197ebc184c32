"""The unseen cross-attention classifier's training step at UCF sizes, and two candidate changes, one at a time.

    python benchmarks/unseen_step.py [--threads 1] [--steps 40] [--reps 30] [--json out.json]

fp32, UCF preset shapes (a, v 512-d, text 300-d, 112
positives + 112 negatives per step as two calls of 112 rows; ``plugins/unseen/cross_attention.py``).
Reported, as CPU ms (``time.process_time``; the median and the best of the repeats, wall
alongside; on a shared machine CPU time is the steadier figure):

* ``step``: the whole training step, from ``CrossAttentionClassifier.fit`` over ``--steps``
  steps after a warm-up fit (as ``benchmarks/cnr_cost.py``).
* ``encoders``: forward + backward of the audio and video encoders (``A_enc``, ``V_enc``:
  ``Linear 512->512 -> BN -> ReLU -> Dropout -> Linear 512->300 -> BN -> ReLU -> Dropout``) on one
  112-row call, as today (two ``nn.Sequential``) and **stacked** (weights as ``(2, in, out)``,
  ``torch.baddbmm``, one BatchNorm over both modalities' channels, one dropout mask).
* ``masks``: the dropout masks of one step, recorded from a real step: one ``keep_scale`` per
  dropout call (today) against **one draw per step** cut into the same shapes.

Neither candidate is bit-identical to today's code: ``baddbmm`` rounds differently from
``addmm`` (the max difference is printed), and one draw per step hands each layer other random
bits (same distribution). So they could only be opt-in; the figures say whether that would pay.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

B, AV, HID, EMB = 112, 512, 512, 300  # UCF preset: batch 112 per call, features 512, enc_hidden 512, embed_dim 300
P_ENC = 0.5  # UCF r_enc


def _timed(fn, reps: int) -> dict[str, float]:
    cpu, wall = [], []
    fn()  # warm-up
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(1000 * (time.process_time() - c))
        wall.append(1000 * (time.perf_counter() - w))
    return {"cpu_ms_median": round(statistics.median(cpu), 3), "cpu_ms_best": round(min(cpu), 3),
            "wall_ms_median": round(statistics.median(wall), 3)}


def bench_step(steps: int) -> dict[str, float]:
    from avood_core.protocols import FitContext
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
    from avood_core.train.loops import seed_everything
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    task = make_synthetic_task(0, SyntheticSpec())  # UCF-shaped: 512-d audio and video, 300-d text
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=0)
    seed_everything(0)
    params = dict(batch_size=B, r_enc=P_ENC, r_proj=0.4, r_dec=0.4)
    CrossAttentionClassifier(epochs=1, batches_per_epoch=5, **params).fit(task.train, task.text, ctx)  # warm-up
    clf = CrossAttentionClassifier(epochs=1, batches_per_epoch=steps, **params)
    c, w = time.process_time(), time.perf_counter()
    clf.fit(task.train, task.text, ctx)
    return {"cpu_ms_per_step": round(1000 * (time.process_time() - c) / steps, 3),
            "wall_ms_per_step": round(1000 * (time.perf_counter() - w) / steps, 3), "steps": steps}


class StackedEncoders(nn.Module):
    """``A_enc`` and ``V_enc`` as one module: ``(2, in, out)`` weights, ``baddbmm``, BN over both modalities' channels."""

    def __init__(self, a_enc: nn.Sequential, v_enc: nn.Sequential, p: float) -> None:
        super().__init__()
        lin = [(a_enc[i], v_enc[i]) for i in (0, 4)]
        self.w = nn.ParameterList([nn.Parameter(torch.stack([a.weight.T, v.weight.T]).detach().clone()) for a, v in lin])
        self.b = nn.ParameterList([nn.Parameter(torch.stack([a.bias, v.bias]).unsqueeze(1).detach().clone()) for a, v in lin])
        self.bn = nn.ModuleList([nn.BatchNorm1d(2 * HID), nn.BatchNorm1d(2 * EMB)])  # per-channel: two BNs in one
        with torch.no_grad():  # the same BN affine parameters (reference_init draws them)
            for bn, i in zip(self.bn, (1, 5)):
                bn.weight.copy_(torch.cat([a_enc[i].weight, v_enc[i].weight]))
                bn.bias.copy_(torch.cat([a_enc[i].bias, v_enc[i].bias]))
        self.p = p

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from avood_core.train.precision import dropout

        x = torch.stack([a, v])  # (2, B, in)
        for w, b, bn in zip(self.w, self.b, self.bn):
            h = torch.baddbmm(b, x, w)  # (2, B, out)
            out = h.shape[-1]
            h = bn(h.transpose(0, 1).reshape(len(a), 2 * out)).relu()  # (B, 2 out): audio channels, then video
            h = dropout(h, self.p, self.training)
            x = h.view(len(a), 2, out).transpose(0, 1)
        return x[0], x[1]


def bench_encoders(reps: int) -> dict[str, object]:
    from avood_plugins.unseen._avca_net import mlp

    torch.manual_seed(0)
    a_enc, v_enc = mlp([AV, HID, EMB], P_ENC, 0.1), mlp([AV, HID, EMB], P_ENC, 0.1)
    stacked = StackedEncoders(a_enc, v_enc, P_ENC)
    a, v = torch.randn(B, AV), torch.randn(B, AV)

    def separate() -> None:
        (a_enc(a).sum() + v_enc(v).sum()).backward()

    def together() -> None:
        ya, yv = stacked(a, v)
        (ya.sum() + yv.sum()).backward()

    # Same function? Dropout off (its masks differ by construction), BN in training mode.
    for m in (a_enc, v_enc, stacked):
        m.train()
    for d in [*a_enc, *v_enc]:
        if isinstance(d, nn.Dropout):
            d.p = 0.0
    stacked.p = 0.0
    ref = (a_enc(a), v_enc(v))
    got = stacked(a, v)
    diff = max(float((r - g).detach().abs().max()) for r, g in zip(ref, got))
    for d in [*a_enc, *v_enc]:
        if isinstance(d, nn.Dropout):
            d.p = P_ENC
    stacked.p = P_ENC
    return {"today": _timed(separate, reps), "stacked": _timed(together, reps), "max_abs_diff_no_dropout": diff}


def bench_masks(reps: int) -> dict[str, object]:
    """Record the dropout multipliers' shapes (``keep_scale``) of one real training step, then time per-call draws against one draw."""
    from avood_core.train import precision as perf
    from avood_core.protocols import FitContext
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    shapes: list[tuple[tuple[int, ...], float]] = []
    original = perf.keep_scale

    def recording(shape, p, dtype, device="cpu"):
        shapes.append((tuple(shape), p))
        return original(shape, p, dtype, device)

    task = make_synthetic_task(0, SyntheticSpec())
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=0)
    perf.keep_scale = recording
    try:
        CrossAttentionClassifier(epochs=1, batches_per_epoch=1, batch_size=B, r_enc=P_ENC, r_proj=0.4,
                                 r_dec=0.4).fit(task.train, task.text, ctx)
    finally:
        perf.keep_scale = original
    sizes = [int(torch.Size(s).numel()) for s, _ in shapes]

    def per_call() -> None:
        for s, p in shapes:
            original(s, p, torch.float32)

    def one_draw() -> None:
        words = torch.empty((sum(sizes) + 3) // 4, dtype=torch.int64)
        words.random_(-(2**63), None)
        lanes = words.view(torch.int16)[: sum(sizes)]
        for (s, p), part in zip(shapes, lanes.split(sizes)):
            (part.view(s) >= int(round(p * 65536)) - 32768).to(torch.float32).mul_(1.0 / (1.0 - p))

    return {"dropout_calls_per_step": len(shapes), "mask_elements_per_step": sum(sizes),
            "per_call": _timed(per_call, reps), "one_draw": _timed(one_draw, reps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40, help="training steps timed in 'step'")
    ap.add_argument("--reps", type=int, default=30, help="repeats of the encoder and mask micro benchmarks")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "torch": torch.__version__, "load_avg_start": [round(x, 2) for x in os.getloadavg()],
              "encoders": bench_encoders(args.reps), "masks": bench_masks(args.reps), "step": bench_step(args.steps)}
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
