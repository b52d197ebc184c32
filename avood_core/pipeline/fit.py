"""Fitting the four stages in the order of the stage table (avood_core.stages), some in workers.

One process fits the kinds in :data:`~avood_core.stages.FIT_ORDER`, each with its table
inputs (paper Fig. 2: the generator first, its synthetic unseen features right after it, the
gate last). With ``jobs > 1`` the kinds of :data:`~avood_core.stages.WORKER_KINDS` train in
worker processes (avood_core.pipeline.worker) as soon as their data and the kinds their
component ``depends_on`` are ready; a kind that needs a worker's result joins it first.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch

from avood_core.callbacks import CallbackList, replay
from avood_core.pipeline import boundary
from avood_core.pipeline import worker as parallel
from avood_core.protocols import Component, FitContext
from avood_core.stages import BY_KIND, FIT_ORDER, SYNTHETIC_FROM, WORKER_KINDS
from avood_core.task import AVGZSLTask
from avood_core.train import exchange
from avood_core.train.loops import derive_seed, seed_everything
from avood_core.util.threads import torch_threads

if TYPE_CHECKING:
    from avood_core.pipeline.core import Pipeline


def _no_log(message: str) -> None:
    """The log of a job's context in a worker (its lines come back with the result)."""


def worker_kinds(jobs: int, skip: frozenset[str] = frozenset()) -> list[str]:
    """The kinds ``fit(jobs=...)`` sends to its ``jobs - 1`` worker processes, in table rank."""
    if jobs <= 1:
        return []
    return [k for k in WORKER_KINDS if k not in skip][: jobs - 1]


@dataclass
class Scheduler:
    """One ``Pipeline.fit``: which kinds are fitted, which train in a worker, and their bookkeeping."""

    pipe: "Pipeline"
    task: AVGZSLTask
    ctx: FitContext
    skip: frozenset[str]
    on_fitted: Callable[[str], None]
    stage_name: str
    offload: list[str]
    threads: int
    workers: dict[str, parallel.Worker] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def info(self, kind: str, **extra: object) -> dict:
        """What stage callbacks hear about ``kind``."""
        return {"name": self.pipe.names.get(kind, type(self.pipe.components[kind]).__name__),
                "stage": self.stage_name, **extra}

    def inputs(self, kind: str) -> tuple:
        """The arguments of ``kind``'s ``fit`` before the context, as the stage table names them."""
        return BY_KIND[kind].fit_args(self.task.train, self.task.text, self.pipe.synthetic)

    def deps(self, kind: str) -> tuple[str, ...]:
        return tuple(getattr(self.pipe.components[kind], "depends_on", ()))

    def can_start_worker(self, kind: str) -> bool:
        """Whether ``kind`` may go to a worker now: its data and its ``depends_on`` kinds are ready."""
        comp: Component = self.pipe.components[kind]
        if kind in self.workers or kind in self.ctx.fitted:
            return False
        if (BY_KIND[kind].uses_synthetic or comp.uses_synthetic) and self.pipe.synthetic is None:
            return False
        return all(dep in self.ctx.fitted for dep in self.deps(kind))

    def launch_ready(self) -> None:
        """Start a worker for every offloaded kind that can start now."""
        ctx, callbacks = self.ctx, self.ctx.callbacks
        for kind in self.offload:
            if not self.can_start_worker(kind):
                continue
            job_ctx = dataclasses.replace(ctx, log=_no_log, progress=None,
                                          callbacks=CallbackList(every_n_steps=callbacks.every_n_steps),
                                          fitted={d: ctx.fitted[d] for d in self.deps(kind)})
            worker = parallel.start(kind, self.pipe.components[kind], (*self.inputs(kind), job_ctx), ctx.seed,
                                    self.threads, ctx.log)
            if worker is not None:
                self.workers[kind] = worker
                callbacks.on_stage_start(kind, self.info(kind))
                ctx.log(f"{kind}: training in a worker process ({self.threads} thread{'s' * (self.threads > 1)})")

    def join(self, kind: str) -> None:
        """Wait for ``kind``'s worker and take its fitted component, curves and logs."""
        pipe, ctx = self.pipe, self.ctx
        worker = self.workers.pop(kind)
        comp = pipe.components[kind]
        assisted = None
        if callable(getattr(comp, "assist", None)) and exchange.enabled() and torch.device(ctx.device).type == "cpu":
            args = self.inputs(kind)
            assisted = worker.help(lambda channel, tick: comp.assist(channel, *args, ctx, tick), ctx.progress, ctx.log)
        res = worker.result(ctx.progress)
        vars(pipe.components[kind]).update(vars(res.component))  # the caller's object is the fitted one
        pipe.worker_info[kind] = {"wall_s": res.wall_s, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb,
                                  "threads": self.threads, "start_s": worker.started - self.started,
                                  "end_s": time.perf_counter() - self.started}
        if assisted is not None:
            pipe.worker_info[kind]["assist"] = {**assisted, "start_s": round(worker.started - self.started
                                                                          + assisted["start_s"], 3)}
        for line in res.logs:
            ctx.log(line)
        replay(res.events, ctx.callbacks)
        ctx.callbacks.on_stage_end(kind, self.info(kind, wall_s=res.wall_s), pipe.components[kind])
        pipe.timings[kind] = res.wall_s
        self.on_fitted(kind)
        ctx.fitted[kind] = pipe.components[kind]

    def stage(self, kind: str) -> None:
        """Fit ``kind`` here, unless it is in a worker (joined later) or already fitted or reused."""
        pipe, ctx = self.pipe, self.ctx
        if kind in self.workers or kind in ctx.fitted:
            return
        for dep in self.deps(kind):
            if dep in self.workers:
                self.join(dep)
        if kind not in self.skip:
            seed_everything(derive_seed(ctx.seed, kind))
            ctx.callbacks.on_stage_start(kind, self.info(kind))
            start = time.perf_counter()
            boundary.fit(pipe.components[kind], (*self.inputs(kind), ctx))
            pipe.timings[kind] = time.perf_counter() - start
            ctx.callbacks.on_stage_end(kind, self.info(kind, wall_s=pipe.timings[kind]), pipe.components[kind])
            self.on_fitted(kind)
        ctx.fitted[kind] = pipe.components[kind]

    def synthesize(self) -> None:
        """The generator's ``syn_num`` features per unseen class: the ``synthetic`` fit input."""
        pipe = self.pipe
        seed_everything(derive_seed(self.ctx.seed, "synthesize"))
        self.ctx.callbacks.on_synthesis_start(self.info(SYNTHETIC_FROM, n_per_class=pipe.syn_num))
        start = time.perf_counter()
        pipe.synthetic = boundary.generate(pipe.components[SYNTHETIC_FROM], self.task.unseen_classes, self.task.text,
                                           pipe.syn_num, pipe.dims)
        pipe.timings["synthesize"] = time.perf_counter() - start
        self.ctx.callbacks.on_synthesis_end(self.info(SYNTHETIC_FROM, n_per_class=pipe.syn_num, wall_s=pipe.timings["synthesize"]))
        self.ctx.synthetic = pipe.synthetic

    def run(self) -> None:
        """Every kind in fitting order (workers started when ready), then every worker joined."""
        try:
            for kind in FIT_ORDER:
                self.launch_ready()
                self.stage(kind)
                if kind == SYNTHETIC_FROM:
                    self.synthesize()
            for kind in list(self.workers):
                self.join(kind)
        finally:
            for worker in self.workers.values():
                worker.stop()


def fit_pipeline(pipe: "Pipeline", task: AVGZSLTask, ctx: FitContext, skip: frozenset[str],
                 on_fitted: Callable[[str], None], jobs: int, stage_name: str) -> None:
    """Fit ``pipe``'s components on ``task`` (see :meth:`avood_core.pipeline.Pipeline.fit`)."""
    offload = worker_kinds(jobs, skip)
    threads = parallel.threads_per_job(jobs) if offload else torch.get_num_threads()
    pipe.worker_info = {}
    with torch_threads(threads):
        Scheduler(pipe, task, ctx, skip, on_fitted, stage_name, offload, threads).run()
