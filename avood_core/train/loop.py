"""The training loop: a component describes its model, optimizer and one step; the loop runs the rest.

A component returns a :class:`Training` from ``training(*fit_inputs, ctx=ctx)`` and inherits ``fit`` and
``assist`` from :class:`LoopComponent`; docs/architecture.md ("The training loop") shows what
:func:`fit_loop` runs.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from avood_core.errors import TrainingDiverged
from avood_core.train.precision import autocast, resolve_precision
from avood_core.train.strategy import Halves, SplitStep, serve

__all__ = ["Halves", "LoopComponent", "Plateau", "Training", "fit_loop", "resolve", "update"]

_READOUT_EVERY = 25  # steps between loss readouts on the progress bar (each one syncs the device)


@dataclass
class Plateau:
    """``ReduceLROnPlateau(mode, factor, patience)`` stepped after each epoch on ``metric``: a field of the
    epoch's record, or ``metric(record, steps)``."""

    factor: float
    patience: int
    metric: str | Callable[[dict[str, float], int], float] = "loss"
    mode: str = "min"


@dataclass
class Training:
    """What :func:`fit_loop` needs of a component: the network, the optimizer, the batches and one step."""

    net: nn.Module
    optimizer: Optimizer
    """Stepped by the loop after each step's backward; its lr is reported (the first of a ``manual`` step's)."""
    terms: tuple[str, ...]
    """Names of the stacked loss terms a step returns, the total first."""
    epochs: int
    batches: Callable[[], Iterable[Any]]
    """One epoch's batches (a generator draws each batch when its step comes)."""
    steps_per_epoch: int
    step: Callable[[Any], Tensor] | None = None
    """``batch -> terms`` with the graph attached; a ``manual`` step returns them detached."""
    halves: Halves | None = None
    """Instead of ``step``: a step of two halves, data-parallel under ``jobs = 2``."""
    manual: bool = False
    plateau: Plateau | None = None
    epoch_end: Callable[[int], dict[str, float]] | None = None
    """Fields added to an epoch's record (e.g. a selection metric) before the plateau step."""
    hint: str = "lower the learning rate"
    weighted: bool = False
    """Epoch means weighted by the batch's rows (else one weight per step)."""
    rows_per_sample: int = 1
    """``stats.samples`` per batch row."""
    precision: str = "fp32"
    log_epochs: bool = False
    """Log each epoch's means (``ctx.log``), not only the last."""

    def autocast(self):
        """The forward passes' precision context on the network's device."""
        return autocast(next(self.net.parameters()).device, self.precision)


def resolve(comp: Any, ctx: Any) -> str:
    """``comp.params.precision`` resolved on ``ctx.device`` ("auto": bf16 where native, logged), kept in
    ``comp.precision_used``."""
    asked = comp.params.precision
    comp.precision_used = resolve_precision(asked, ctx.device)
    if asked == "auto":
        ctx.log(f"{comp.label}: precision auto -> {comp.precision_used} on {torch.device(ctx.device)}")
    return comp.precision_used


def update(loss: Tensor, *optimizers: Optimizer) -> None:
    """One update of ``optimizers`` on ``loss`` (zero their gradients, back-propagate, step each in order)."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()


def _check(values: Tensor, names: tuple[str, ...], label: str, epoch: int, hint: str) -> None:
    """Stop training with a clear message when a loss term is NaN or infinite."""
    if not torch.isfinite(values).all():
        i = int((~torch.isfinite(values)).nonzero()[0])
        hint = hint if i == 0 else f"{hint} ({names[i]} diverged)"
        raise TrainingDiverged(f"{label}: loss became {values[i].item()} in epoch {epoch}; training stopped and "
                               f"nothing was saved; {hint} or change the seed")


def fit_loop(comp: Any, ctx: Any, t: Training) -> list[dict[str, float]]:
    """Train ``t`` for ``t.epochs`` epochs; ``comp.stats`` gets the epoch records, steps and rows. A non-finite
    loss term (at each progress readout and in the epoch's means) raises TrainingDiverged with ``t.hint``."""
    net, opt, names, label = t.net, t.optimizer, tuple(t.terms), comp.label
    kind = comp.kind or label
    dev = next(net.parameters()).device
    sched = None if t.plateau is None else torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=t.plateau.mode, factor=t.plateau.factor, patience=t.plateau.patience)
    split = None if t.halves is None else SplitStep(net, t.halves, t.precision,
                                                    ctx.assist if dev.type == "cpu" else None, ctx.log, label)
    stats, callbacks = comp.stats, ctx.callbacks
    stats.reset()
    bar = ctx.track(t.epochs * t.steps_per_epoch, kind)
    try:
        for epoch in range(t.epochs):
            net.train()
            sums = torch.zeros(len(names), device=dev)
            rows = steps = 0
            for batch in t.batches():
                if isinstance(batch, Tensor):
                    batch = batch.to(dev)
                values = split(batch) if split is not None else t.step(batch)
                if split is not None:
                    opt.step()
                elif not t.manual:
                    update(values[0], opt)
                values = values.detach()
                steps += 1
                stats.steps += 1
                stats.samples += t.rows_per_sample * len(batch)
                weight = len(batch) if t.weighted else 1
                rows += weight
                sums += values * weight
                if callbacks.step_due(stats.steps):
                    callbacks.on_step(kind, stats.steps, {**dict(zip(names, values.tolist())),
                                                          "lr": opt.param_groups[0]["lr"]})
                if steps % _READOUT_EVERY == 0 or steps == t.steps_per_epoch:
                    _check(values, names, label, epoch + 1, t.hint)
                    bar.update(1, **dict(zip(names, values.tolist())))
                else:
                    bar.update(1)
            means = sums / max(rows, 1)
            _check(means, names, label, epoch + 1, t.hint)
            record = {"epoch": epoch, **dict(zip(names, means.tolist())), "lr": opt.param_groups[0]["lr"]}
            record.update(t.epoch_end(epoch) if t.epoch_end else {})
            if sched is not None:
                metric = t.plateau.metric
                sched.step(record[metric] if isinstance(metric, str) else metric(record, steps))
            stats.history.append(record)
            callbacks.on_epoch(kind, epoch, record)
            if t.log_epochs:
                ctx.log(f"{label} epoch {epoch + 1}/{t.epochs}: " + " ".join(f"{k}={record[k]:.4g}" for k in names))
    finally:
        if split is not None:
            split.close()
        bar.close()
    if split is not None and split.split_steps:
        ctx.log(f"{label}: the main process computed the second half of {split.split_steps} of "
                f"{stats.steps} steps (jobs = 2, same result as one process)")
    net.eval()
    last = stats.history[-1] if stats.history else {}
    ctx.log(f"{label}: final " + ", ".join(f"{k} {last[k]:.4g}" for k in names if k in last))
    comp.fitted = True
    return stats.history


class LoopComponent:
    """Mixin: ``fit`` runs :func:`fit_loop` on :meth:`training`; ``assist`` computes the second half of
    a worker's remaining steps when the training is a :class:`Halves` step (``jobs = 2``)."""

    def training(self, *inputs: Any, ctx: Any) -> Training:
        """The training of this component on its fit inputs (the arguments of ``fit`` before ``ctx``)."""
        raise NotImplementedError

    def fit(self, *inputs: Any, ctx: Any = None) -> Any:
        """``fit(*inputs, ctx)``: :func:`fit_loop` on ``self.training(*inputs, ctx=ctx)``."""
        if ctx is None:
            *inputs, ctx = inputs
        fit_loop(self, ctx, self.training(*inputs, ctx=ctx))
        return self

    def assist(self, channel: Any, *args: Any) -> int | None:
        """``assist(channel, *inputs, ctx, tick)``, in the main process while ``fit`` runs in a worker:
        builds the same step from the same inputs and serves its second halves
        (:func:`avood_core.train.strategy.serve`). Returns the steps served (None: not a
        :class:`Halves` step); the fit gives the same bits with or without it."""
        *inputs, ctx, tick = args
        with torch.random.fork_rng(devices=[]):  # the partner sets the generator each step; ours is kept
            quiet = dataclasses.replace(ctx, log=lambda message: None)
            t = copy.copy(self).training(*inputs, ctx=quiet)
            if t.halves is None:
                return None
            return serve(channel, t.net, t.halves, t.precision, tick)
