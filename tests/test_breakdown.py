"""The step breakdown of ``avood bench`` (avood_core.bench.breakdown): categories, the profiled window, the record."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from avood_core.bench.breakdown import CATEGORIES, category, step_breakdown, summarize
from avood_core.bench.report import breakdown_lines
from avood_core.protocols import FitContext

SMALL = dict(epochs=1, batches_per_epoch=3, batch_size=16, embed_dim=12, enc_hidden=16, proj_hidden=16,
             joint_dim=6, heads=3, ff_dim=8)


@dataclass
class Ev:
    """A stand-in for torch.profiler's FunctionEvent: what summarize reads."""

    name: str
    self_cpu_time_total: float
    cpu_parent: "Ev | None" = None
    input_shapes: list = field(default_factory=lambda: [[4, 4]])


def test_each_op_goes_to_the_first_category_that_claims_it():
    assert category("aten::copy_", ["aten::add", "aten::to", "aten::_to_copy"], cast=True) == "casts"
    assert category("aten::mm", ["AddmmBackward0"]) == "matmul"
    assert category("aten::_fused_adam_", ["Optimizer.step#Adam.step"]) == "optimizer"
    assert category("aten::random_", []) == "random"
    assert category("aten::native_batch_norm_backward", []) == "normalization"
    assert category("autograd::engine::evaluate_function: MulBackward0", []) == "framework"
    assert category("aten::mul", []) == "elementwise"


def test_summarize_shares_calls_and_casts_of_tensors_only():
    step = Ev("Optimizer.step#Adam.step", 10)
    cast = Ev("aten::_to_copy", 4, input_shapes=[[512, 512]])
    scalar = Ev("aten::_to_copy", 1, input_shapes=[[]])  # a Python scalar wrapped as an operand: not a cast
    events = [Ev("aten::mm", 60), Ev("aten::addmm", 20), step, Ev("aten::_fused_adam_", 5, step),
              cast, Ev("aten::copy_", 3, cast), Ev("aten::empty_strided", 1, cast),
              Ev("aten::add", 2), scalar, Ev("aten::copy_", 1, scalar)]
    out = summarize(events, steps=2, wall_s=0.0002)
    cats = out["categories"]
    assert list(cats) == list(CATEGORIES)
    assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0, abs=1e-3)
    assert cats["matmul"]["share"] == pytest.approx(80 / 107, abs=1e-4)
    assert cats["casts"]["ms_per_step"] == pytest.approx(8 / 1000 / 2)
    assert cats["casts"]["calls_per_step"] == 0.5  # one cast over two steps; its copy_ is not a second call
    assert cats["optimizer"]["calls_per_step"] == 0.5 and cats["elementwise"]["calls_per_step"] == 1.0
    assert out["wall_ms_per_step"] == 0.1 and out["ops_share_of_wall"] == 0.535  # 107 µs of ops in 200 µs
    assert out["top_ops"][0]["op"] == "aten::mm"


def _ctx(task) -> FitContext:
    return FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                      device=torch.device("cpu"), seed=0)


def test_a_loop_component_is_profiled_over_exactly_its_window(tiny_task):
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    calls = {}
    for precision in ("fp32", "bf16"):
        comp = CrossAttentionClassifier(**SMALL, precision=precision)
        out = step_breakdown(comp, (tiny_task.train, tiny_task.text), _ctx(tiny_task), steps=4, warmup=2)
        assert comp.stats.steps == 6  # two warm-up steps, then four profiled: across epochs of three batches
        assert out["steps"] == 4 and out["wall_ms_per_step"] > 0 and 0 < out["ops_share_of_wall"] <= 1.0
        calls[precision] = {k: c["calls_per_step"] for k, c in out["categories"].items()}
        assert calls[precision]["matmul"] > 0 and calls[precision]["optimizer"] == 1.0
        lines = breakdown_lines({"stage": "unseen", "component": "cross_attention", "precision": precision,
                                 "threads": 1, **out})
        assert lines[0].startswith("Step breakdown of unseen") and "| matmul |" in "\n".join(lines)
    # fp32 casts only each dropout mask (one draw each) to float; bf16 autocast casts every Linear's weight too
    assert calls["fp32"]["casts"] == calls["fp32"]["random"] > 0
    linears = sum(isinstance(m, torch.nn.Linear) for m in comp.net.modules())
    assert calls["bf16"]["casts"] >= calls["fp32"]["casts"] + linears


def test_a_component_with_its_own_fit_is_skipped_with_the_reason(tiny_task):
    from avood_core.protocols import SeenClassifier

    class Own(SeenClassifier):
        def fit(self, train, ctx):
            return self

    out = step_breakdown(Own(), (tiny_task.train,), _ctx(tiny_task))
    assert "runs its own fit" in out["skipped"]
    assert "none (Own runs its own fit" in breakdown_lines(out)[0]
