"""Fit one component in a worker process while the pipeline fits the others (``jobs = 2``).

The unseen classifier (71 % of a UCF run on a CPU, docs/performance.md) needs neither the
generator nor the other classifiers, so on a machine with two cores it can train beside them.
Every stage seeds itself with ``derive_seed(seed, kind)`` before its fit, in whatever process
runs it, so a component fitted in a worker is the one a sequential run fits: bit-identical at
the same per-process thread count (tested).

The worker is a fresh interpreter, ``python -m avood_core.parallel FOLDER`` (no forked OpenMP or
CUDA state, and unlike multiprocessing's spawn it never re-runs the user's main script). The job
and the result are pickles of the component and the features in a private temporary folder
(tensors by value: no shared memory that a container's small ``/dev/shm`` could break); the
worker writes its step counter to a file there, which the parent shows while it waits. An
error in the worker comes back as the same :class:`AvoodError` class with its message (other
exceptions as one line naming the component); a worker that dies (killed, out of memory) is
reported with its exit code. A component whose class lives in ``__main__`` (or that cannot be
pickled) is fitted in the main process instead, with a log line saying so.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from avood_core.errors import AvoodError

_PROGRESS_EVERY_S = 0.5  # the worker writes its step counter at most this often
JOB, RESULT, PROGRESS = "job.pkl", "result.pkl", "progress"


@dataclass
class Job:
    """What a worker needs: the unfitted component, the arguments of its ``fit`` and the seeding."""

    kind: str
    component: Any
    args: tuple
    seed: int
    threads: int


@dataclass
class WorkerResult:
    """A fitted component and how its fit went in the worker."""

    component: Any
    wall_s: float
    cpu_s: float
    peak_rss_mb: float | None
    logs: list[str] = field(default_factory=list)
    events: list = field(default_factory=list)
    """The fit's step/epoch reports (avood_core.callbacks.EventRecorder), replayed by the parent."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _CounterTracker:
    """The worker's progress tracker: writes "done total" into the progress file, throttled."""

    def __init__(self, path: Path, total: int) -> None:
        self._path, self._total, self._count, self._last = path, total, 0, 0.0
        self._write()

    def _write(self) -> None:
        _write_atomic(self._path, f"{self._count} {self._total}".encode())

    def update(self, n: int = 1, **metrics: float) -> None:
        self._count += n
        now = time.monotonic()
        if now - self._last >= _PROGRESS_EVERY_S:
            self._last = now
            self._write()

    def close(self) -> None:
        self._write()


def _worker_main(folder: Path) -> int:
    """Run the job in ``folder`` and write its result there (``python -m avood_core.parallel FOLDER``)."""
    try:
        with open(folder / JOB, "rb") as fh:  # streamed: the features are read once, into their arrays
            job: Job = pickle.load(fh)
        import torch

        from avood_core.bench_meter import peak_rss_mb
        from avood_core.callbacks import EventRecorder
        from avood_core.training import derive_seed, seed_everything

        torch.set_num_threads(job.threads)
        logs: list[str] = []
        *head, ctx = job.args
        ctx = dataclasses.replace(ctx, log=logs.append,
                                  progress=lambda total, desc: _CounterTracker(folder / PROGRESS, total))
        recorder = EventRecorder()
        ctx.callbacks.callbacks.append(recorder)
        seed_everything(derive_seed(job.seed, job.kind))
        wall, cpu = time.perf_counter(), time.process_time()
        job.component.fit(*head, ctx)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        message: tuple = ("ok", WorkerResult(job.component, wall, cpu, peak_rss_mb(), logs, recorder.events))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        cls = type(exc)
        message = ("error", cls.__module__, cls.__qualname__, str(exc), traceback.format_exc())
    _write_atomic(folder / RESULT, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


class Worker:
    """One component fitting in a child interpreter; :meth:`result` waits for it."""

    def __init__(self, job: Job) -> None:
        self.kind = job.kind
        self.name = type(job.component).__name__
        self.folder = Path(tempfile.mkdtemp(prefix=f"avood-{job.kind}-"))
        try:
            # Streamed protocol-5 pickle: AVSamples go as NumPy arrays written from their memory (no copy).
            # An unpicklable component fails here, not in the child.
            with open(self.folder / JOB, "wb") as fh:
                pickle.dump(job, fh, protocol=5)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)  # the parent's imports
            self._proc = subprocess.Popen([sys.executable, "-m", "avood_core.parallel", str(self.folder)],
                                          env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.started = time.perf_counter()

    def _progress(self) -> tuple[int, int]:
        try:
            done, total = (self.folder / PROGRESS).read_text().split()
            return int(done), int(total)
        except (OSError, ValueError):
            return 0, 0

    def result(self, progress: Callable[[int, str], Any] | None = None) -> WorkerResult:
        """Wait for the fit (showing its progress when ``progress`` is given) and return it."""
        tracker, shown = None, 0

        def show() -> None:
            nonlocal tracker, shown
            done, total = self._progress()
            if progress is not None and total:
                tracker = tracker or progress(total, f"{self.kind} (worker)")
                tracker.update(max(0, done - shown))
                shown = max(shown, done)

        try:
            while self._proc.poll() is None:
                show()
                time.sleep(0.2)
            show()  # the last steps
            try:
                message = pickle.loads((self.folder / RESULT).read_bytes())
            except (OSError, EOFError, pickle.UnpicklingError):
                raise AvoodError(
                    f"{self.kind} '{self.name}': its worker process exited with code {self._proc.returncode} before "
                    "finishing (killed, or out of memory?); rerun with jobs = 1 to fit it in the main process"
                ) from None
        finally:
            if tracker is not None:
                tracker.close()
            self.stop()
        if message[0] == "ok":
            return message[1]
        _, module, qualname, text, trace = message
        raise _rebuild_error(self.kind, self.name, module, qualname, text, trace)

    def stop(self) -> None:
        """Make sure the process is gone (terminated if still running) and its folder removed."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _rebuild_error(kind: str, name: str, module: str, qualname: str, text: str, trace: str) -> Exception:
    """The worker's exception as the same AvoodError class, or a one-line AvoodError otherwise."""
    try:
        cls = getattr(importlib.import_module(module), qualname)
        if isinstance(cls, type) and issubclass(cls, AvoodError):
            return cls(text)
    except Exception:  # noqa: BLE001 - fall through to the generic error
        pass
    if qualname == "KeyboardInterrupt":
        return KeyboardInterrupt()
    if os.environ.get("AVOOD_DEBUG"):
        return AvoodError(f"{kind} '{name}' failed in its worker process:\n{trace}")
    last = trace.strip().splitlines()[-1] if trace.strip() else f"{qualname}: {text}"
    return AvoodError(f"{kind} '{name}' failed in its worker process: {last} (AVOOD_DEBUG=1 shows its traceback)")


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes: the current setting split between them."""
    import torch

    return max(1, torch.get_num_threads() // max(1, jobs))


def start(kind: str, component: Any, args: tuple, seed: int, threads: int, log: Callable[[str], None]) -> Worker | None:
    """A :class:`Worker` fitting ``component``; ``None`` (fit in this process) when it cannot be sent."""
    if type(component).__module__ == "__main__":
        log(f"{kind}: {type(component).__name__} is defined in __main__, which a worker process cannot import "
            "(move it into a module to train it there); fitting it in this process")
        return None
    try:
        return Worker(Job(kind, component, args, seed, threads))
    except (pickle.PicklingError, TypeError, AttributeError, OSError) as exc:
        log(f"{kind}: cannot be sent to a worker process ({exc}); fitting it in this process")
        return None


if __name__ == "__main__":  # run by Worker; the module import keeps pickled names as avood_core.parallel.*
    from avood_core.parallel import _worker_main as _main

    sys.exit(_main(Path(sys.argv[1])))
