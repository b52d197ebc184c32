"""Fitting the stages in the table's order (paper Fig. 2), the offloaded kinds in worker processes.

With ``jobs > 1`` an offloaded kind starts in a worker (avood_core.pipeline.worker) once its inputs
and its ``depends_on`` kinds are ready; a kind that needs a worker's result joins it first.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from avood_core.callbacks import CallbackList, replay
from avood_core.pipeline import boundary
from avood_core.pipeline import worker as parallel
from avood_core.protocols import Component, FitContext
from avood_core.stages import Stage, fit_order, kind_of
from avood_core.train import exchange
from avood_core.train.loops import derive_seed, seed_everything
from avood_core.util.threads import torch_threads


def _no_log(message: str) -> None:
    """The log of a job's context in a worker (its lines come back with the result)."""


@dataclass
class Scheduler:
    """One fit of a pipeline's components: which are fitted where, and what each fit took."""

    components: dict[str, Component]
    stages: tuple[Stage, ...]
    ctx: FitContext
    data: dict[str, object]
    """The fit inputs by name (``train``, ``text``; ``synthetic`` once the generator has synthesized)."""
    names: dict[str, str]
    syn_num: int
    dims: dict[str, int]
    skip: frozenset[str]
    on_fitted: Callable[[str], None]
    stage_name: str
    offload: list[str]
    threads: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    worker_info: dict[str, dict] = field(default_factory=dict)
    workers: dict[str, parallel.Worker] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def info(self, kind: str, **extra: object) -> dict:
        """What stage callbacks hear about ``kind``."""
        return {"name": self.names.get(kind, type(self.components[kind]).__name__), "stage": self.stage_name, **extra}

    def row(self, kind: str) -> Stage:
        return next(s for s in self.stages if s.kind == kind)

    def inputs(self, kind: str) -> tuple:
        return self.row(kind).fit_args(self.data)

    def deps(self, kind: str) -> tuple[str, ...]:
        return tuple(getattr(self.components[kind], "depends_on", ()))

    def launch_ready(self) -> None:
        """Start a worker for every offloaded kind whose inputs and ``depends_on`` kinds are ready."""
        ctx, callbacks = self.ctx, self.ctx.callbacks
        for kind in self.offload:
            synthetic = self.row(kind).uses_synthetic or self.components[kind].uses_synthetic
            if kind in self.workers or kind in ctx.fitted or (synthetic and "synthetic" not in self.data) \
                    or not all(dep in ctx.fitted for dep in self.deps(kind)):
                continue
            job_ctx = dataclasses.replace(ctx, log=_no_log, progress=None,
                                          callbacks=CallbackList(every_n_steps=callbacks.every_n_steps),
                                          fitted={d: ctx.fitted[d] for d in self.deps(kind)})
            worker = parallel.start(kind, self.components[kind], (*self.inputs(kind), job_ctx), ctx.seed,
                                    self.threads, ctx.log)
            if worker is not None:
                self.workers[kind] = worker
                callbacks.on_stage_start(kind, self.info(kind))
                ctx.log(f"{kind}: training in a worker process ({self.threads} thread{'s' * (self.threads > 1)})")

    def join(self, kind: str) -> None:
        """Wait for ``kind``'s worker and take its fitted component, curves and logs."""
        ctx, comp = self.ctx, self.components[kind]
        worker = self.workers.pop(kind)
        assisted = None
        if callable(getattr(comp, "assist", None)) and exchange.enabled() and torch.device(ctx.device).type == "cpu":
            args = self.inputs(kind)
            assisted = worker.help(lambda channel, tick: comp.assist(channel, *args, ctx, tick), ctx.progress, ctx.log)
        res = worker.result(ctx.progress)
        vars(comp).update(vars(res.component))  # the caller's object is the fitted one
        self.worker_info[kind] = {"wall_s": res.wall_s, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb,
                                  "threads": self.threads, "start_s": worker.started - self.started,
                                  "end_s": time.perf_counter() - self.started}
        if assisted is not None:
            self.worker_info[kind]["assist"] = {**assisted, "start_s": round(worker.started - self.started
                                                                           + assisted["start_s"], 3)}
        for line in res.logs:
            ctx.log(line)
        replay(res.events, ctx.callbacks)
        self.fitted(kind, res.wall_s)

    def fitted(self, kind: str, wall_s: float | None) -> None:
        """``kind`` is fitted (in ``wall_s``; None: reused): its timing, callbacks and ``ctx.fitted``."""
        if wall_s is not None:
            self.timings[kind] = wall_s
            self.ctx.callbacks.on_stage_end(kind, self.info(kind, wall_s=wall_s), self.components[kind])
            self.on_fitted(kind)
        self.ctx.fitted[kind] = self.components[kind]

    def stage(self, kind: str) -> None:
        """Fit ``kind`` here, unless it is in a worker (joined later) or already fitted or reused."""
        ctx, comp = self.ctx, self.components[kind]
        if kind in self.workers or kind in ctx.fitted:
            return
        for dep in self.deps(kind):
            if dep in self.workers:
                self.join(dep)
        if kind in self.skip:
            return self.fitted(kind, None)
        seed_everything(derive_seed(ctx.seed, kind))
        ctx.callbacks.on_stage_start(kind, self.info(kind))
        start = time.perf_counter()
        boundary.fit(comp, (*self.inputs(kind), ctx))
        self.fitted(kind, time.perf_counter() - start)

    def synthesize(self, kind: str) -> None:
        """The generator's ``syn_num`` features per unseen class: the ``synthetic`` fit input."""
        seed_everything(derive_seed(self.ctx.seed, "synthesize"))
        self.ctx.callbacks.on_synthesis_start(self.info(kind, n_per_class=self.syn_num))
        start = time.perf_counter()
        synthetic = boundary.generate(self.components[kind], self.ctx.unseen_classes, self.ctx.text, self.syn_num,
                                      self.dims)
        self.timings["synthesize"] = time.perf_counter() - start
        self.ctx.callbacks.on_synthesis_end(self.info(kind, n_per_class=self.syn_num,
                                                      wall_s=self.timings["synthesize"]))
        self.data["synthetic"] = self.ctx.synthetic = synthetic

    def run(self, jobs: int) -> None:
        """Every kind in fitting order (workers started when ready), then every worker joined, at
        ``torch threads // jobs`` threads per process when some kind is offloaded."""
        self.threads = max(1, torch.get_num_threads() // max(1, jobs)) if self.offload else torch.get_num_threads()
        generator = kind_of("Generator", self.stages)
        with torch_threads(self.threads):
            try:
                for kind in fit_order(self.stages):
                    self.launch_ready()
                    self.stage(kind)
                    if kind == generator:
                        self.synthesize(kind)
                for kind in list(self.workers):
                    self.join(kind)
            finally:
                for worker in self.workers.values():
                    worker.stop()
