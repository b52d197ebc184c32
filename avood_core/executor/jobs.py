"""Jobs on an engine: :func:`schedule` (at most ``max_parallel`` at once, never two fitting the same
component side by side), :func:`run_jobs` with progress lines, :func:`run_seeds` on a new engine."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from avood_core.errors import AvoodError
from avood_core.executor.engines import make_engine
from avood_core.limits import SEED_MAX, SEED_MIN
from avood_core.util.threads import usable_cores


@dataclass
class Job:
    """``fn(payload, echo)`` (a module-level function) and the components it would fit (``keys``)."""

    id: str
    fn: Callable[[dict, Callable[[str], None]], dict]
    payload: dict
    keys: frozenset = frozenset()
    label: str = ""


def schedule(jobs: list[Job], engine, max_parallel: int, on_done: Callable[[Job, dict], None],
             on_state: Callable[[int, int], None] = lambda running, pending: None,
             released: Callable[[Hashable], bool] = lambda key: False) -> None:
    """Run ``jobs``, at most ``max_parallel`` at once, a job sharing ``keys`` with a running one waiting
    until that job ends or ``released(key)`` holds for every shared key (e.g. the component is published
    where the waiting job reuses it); ``on_done(job, info)`` per job, ``info`` with the driver's
    ``submitted``/``received`` times."""
    pending, running = list(jobs), {}
    finished = False
    try:
        while pending or running:
            held = frozenset().union(*(j.keys for j, _ in running.values()))
            busy = frozenset(k for k in held if not released(k))
            while pending and len(running) < max_parallel:
                job = next((j for j in pending if not (j.keys & busy)), None)
                if job is None:
                    break
                pending.remove(job)
                busy |= job.keys
                running[engine.submit(job.fn, job.payload)] = (job, time.time())
                on_state(len(running), len(pending))
            for handle in engine.wait(list(running), timeout=0.5):
                job, submitted = running.pop(handle)
                info = engine.result(handle)
                info.update(submitted=submitted, received=time.time())
                on_done(job, info)
            on_state(len(running), len(pending))
        finished = True
    finally:
        engine.close(abort=not finished)  # interrupted: stop the running jobs, do not wait for them


def trial_line(n: int, total: int, name: str, info: dict) -> str:
    if info.get("status") != "done":
        return f"[{n}/{total}] {name}: FAILED: {info.get('error')}"
    if "metrics" not in info:
        return f"[{n}/{total}] {name}: done ({info.get('wall_s', 0):.1f} s)"
    m = info["metrics"]
    reused = sum(len(v) for v in info.get("reused", {}).values())
    return (f"[{n}/{total}] {name}: S {m['S']:.2f}  U {m['U']:.2f}  HM {m['HM']:.2f}  ZSL {m['ZSL']:.2f}  "
            f"({info.get('wall_s', 0):.1f} s, {reused} component fit(s) reused)")


def run_jobs(jobs: list[Job], engine, max_parallel: int, quiet: bool, echo: Callable[[str], None], title: str,
             on_done: Callable[[Job, dict], None] = lambda job, info: None,
             released: Callable[[Hashable], bool] = lambda key: False) -> dict[str, dict]:
    """:func:`schedule` with a line per finished job and, on a terminal, one rich line on stderr (done /
    running / failed, ETA); ``{job id: its result}``."""
    out: dict[str, dict] = {}
    bar = None
    if not quiet and sys.stderr.isatty():
        # the terminal's stream itself: an inline trial sends sys.stderr to its log.txt meanwhile
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[state]}"), TimeElapsedColumn(), TextColumn("ETA"),
                       TimeRemainingColumn(), console=Console(file=sys.stderr))
        task = bar.add_task(title, total=len(jobs), state="")
        bar.start()

    def state(running: int, pending: int) -> None:
        if bar is not None:
            failed = sum(info.get("status") != "done" for info in out.values())
            bar.update(task, completed=len(out), state=f"done {len(out) - failed}  running {running}  failed {failed}")

    def done(job: Job, info: dict) -> None:
        out[job.id] = info
        line = trial_line(len(out), len(jobs), job.label, info)
        if bar is not None:
            bar.console.print(line, highlight=False, markup=False)
        elif not quiet:
            echo(line)
        on_done(job, info)

    try:
        schedule(jobs, engine, max_parallel, done, state, released)
    finally:
        if bar is not None:
            bar.stop()
    return out


def run_plain(jobs: list[Job], engine: str = "local", max_parallel: int = 1, address: str | None = None,
              quiet: bool = False, echo: Callable[[str], None] = print, title: str = "seeds") -> dict[str, dict]:
    """Jobs on a new ``engine`` (``local``: in this process with its own threads when ``max_parallel``
    is 1, else a pool sharing the cores; ``ray``: one CPU each); ``{job id: its result}``."""
    local = engine == "local"
    threads = None if local and max_parallel == 1 else max(1, usable_cores() // max_parallel) if local else 1
    for job in jobs:
        job.payload["threads"] = threads
    eng = make_engine(engine, max_parallel, threads or 1, address=address, echo=(lambda m: None) if quiet else echo)
    return run_jobs(jobs, eng, max_parallel, quiet or len(jobs) == 1, echo, title)


def run_seeds(parent: Path, seeds: list[int], job: Callable[[int], Job], engine: str, max_parallel: int,
              address: str | None, quiet: bool, echo: Callable[[str], None], what: str = "") -> dict[int, dict]:
    """One job per seed (``job(seed)``) on a new ``engine``; a failed seed is one line naming its log."""
    done = run_plain([job(s) for s in seeds], engine, max_parallel, address, quiet, echo)
    for seed in seeds:
        info = done[f"seed-{seed}"]
        if info.get("status") != "done":
            raise AvoodError(f"{what}seed {seed} failed: {info.get('error')} "
                             f"(log: {parent / f'seed-{seed}' / 'log.txt'})")
    return {seed: done[f"seed-{seed}"] for seed in seeds}


def check_seeds(seeds: list[int]) -> None:
    """``--seeds``: distinct 64-bit integers, at least one."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise AvoodError(f"--seeds {seeds}: give distinct integers, e.g. --seeds 0,1,2")
    bad = [s for s in seeds if not SEED_MIN <= s <= SEED_MAX]
    if bad:
        raise AvoodError(f"--seeds: {bad[0]} is not a 64-bit integer ({SEED_MIN}..{SEED_MAX}); pick smaller seeds")
