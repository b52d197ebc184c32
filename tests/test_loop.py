"""The core's training loop (avood_core/train/loop.py): what a component gets by describing its step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from avood_core.callbacks import Callback, CallbackList
from avood_core.errors import TrainingDiverged
from avood_core.protocols import FitContext, TorchComponent
from avood_core.train.loop import Plateau, Training, fit_loop

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def _doc_block() -> str:
    match = re.search(r"<!-- doc-test: softmax_seen[^>]*-->\s*```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match, "docs/writing-a-plugin.md: no softmax_seen block"
    return match.group(1)


def test_the_guide_s_loop_component_is_short_and_passes_the_kit():
    from avood_core.testing import check_component

    block = _doc_block()
    assert len(block.strip().splitlines()) < 60
    namespace: dict = {}
    exec(compile(block, "writing-a-plugin.md", "exec"), namespace)
    check_component(namespace["SoftmaxSeen"], name="softmax_seen")


class Heard(Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_step(self, kind, step, metrics):
        self.events.append(("step", kind, step, sorted(metrics)))

    def on_epoch(self, kind, epoch, metrics):
        self.events.append(("epoch", kind, epoch, sorted(metrics)))


class Toy(TorchComponent):
    kind = "seen"

    def make_net(self, d: int) -> torch.nn.Module:
        return torch.nn.Linear(d, 1)


def _training(comp: Toy, poison_at: int | None = None, **options) -> Training:
    net = comp.build("cpu", d=3)
    x, seen = torch.randn(40, 3), [0]

    def step(rows):
        seen[0] += 1
        out = net(x[rows]).pow(2).mean()
        if seen[0] == poison_at:
            out = out * float("nan")
        return torch.stack([out, out.detach() * 2])

    return Training(net, torch.optim.SGD(net.parameters(), lr=0.1), ("loss", "twice"), 3,
                    lambda: torch.randperm(40).split(10), 4, step, **options)


def _ctx(callbacks: CallbackList) -> FitContext:
    return FitContext(text=torch.zeros(1, 1), seen_classes=[0], unseen_classes=[1], device=torch.device("cpu"),
                      seed=0, callbacks=callbacks)


def test_the_loop_fills_stats_fires_callbacks_and_steps_the_plateau():
    comp, heard = Toy(), Heard()
    history = fit_loop(comp, _ctx(CallbackList([heard], every_n_steps=6)),
                       _training(comp, plateau=Plateau(0.5, 0, lambda record, steps: 1.0)))  # never improves
    assert comp.fitted and comp.stats.steps == 12 and comp.stats.samples == 120 and len(history) == 3
    assert [e[:3] for e in heard.events] == [("epoch", "seen", 0), ("step", "seen", 6), ("epoch", "seen", 1),
                                             ("step", "seen", 12), ("epoch", "seen", 2)]
    assert heard.events[0][3] == heard.events[1][3] == ["loss", "lr", "twice"]
    assert [h["lr"] for h in history] == [0.1, 0.1, 0.05]  # the lr each epoch trained with: halved after no gain


def test_a_non_finite_loss_stops_the_fit_naming_the_component():
    comp = Toy()
    with pytest.raises(TrainingDiverged, match=r"^seen Toy: loss became nan in epoch 2; .*lower the learning rate"):
        fit_loop(comp, _ctx(CallbackList()), _training(comp, poison_at=6))
