"""Fit one component in a worker process while the pipeline fits the others (``jobs = 2``).

A fresh ``python -m avood_core.pipeline.worker FOLDER PARENT`` interpreter; job, result and step counter
are files in a private temporary folder. Seeded by ``derive_seed`` as in one process, so bit-identical at
the same threads; errors come back as one line; it dies with its parent (docs/architecture.md, "Fitting in
two processes").
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from avood_core.bench.meter import peak_rss_mb
from avood_core.callbacks import EventRecorder
from avood_core.errors import AvoodError
from avood_core.pipeline import boundary
from avood_core.train.exchange import SHM, Offer, PartnerGone, connect
from avood_core.train.loops import derive_seed, seed_everything
from avood_core.util.io import atomic_write, atomic_write_text

_PROGRESS_EVERY_S = 0.5  # the worker writes its step counter at most this often
JOB, RESULT, PROGRESS, OWNER = "job.pkl", "result.pkl", "progress", "owner"
PREFIX = "avood-"  # temporary folders: avood-<kind>-<random>
_PARENT_GONE = 3  # the worker's exit status when its parent died


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


class _CounterTracker:
    """The worker's progress tracker: writes "done total" into the progress file, throttled."""

    def __init__(self, path: Path, total: int) -> None:
        self.path, self.total, self.count, self.last = path, total, 0, 0.0
        self.close()

    def update(self, n: int = 1, **metrics: float) -> None:
        self.count += n
        if time.monotonic() - self.last >= _PROGRESS_EVERY_S:
            self.close()

    def close(self) -> None:
        self.last = time.monotonic()
        atomic_write_text(self.path, f"{self.count} {self.total}")


def exit_with_parent(parent: int, leave: Callable[..., None], fd: int = 0) -> None:
    """Call ``leave`` (which must exit) as soon as process ``parent`` is gone: EOF on ``fd``, the read
    end of a pipe whose write end only the parent holds (any OS), and on Linux the
    ``PR_SET_PDEATHSIG`` SIGTERM (see the module docstring). Also used by the sweep's process pool."""
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):  # the parent never writes: b"" (EOF) once its end is closed
                pass
        leave()

    signal.signal(signal.SIGTERM, leave)  # the parent's stop(), or PR_SET_PDEATHSIG below
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no libc prctl: the pipe still works
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    threading.Thread(target=watch, name="avood-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the watch began
        leave()


def clean_stale(root: str | Path | None = None) -> list[Path]:
    """Remove worker folders under ``root`` (the temp dir) whose parent and worker are both dead."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        try:
            pids = [int(p) for p in (folder / OWNER).read_text().split()]
        except (OSError, ValueError):
            continue  # not a worker folder, or one whose owner is still being written
        if pids and not any(_alive(pid) for pid in pids):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for arena in Path(SHM).glob(f"{PREFIX}*-{PREFIX}*") if root is None else ():  # assist arenas (pid of their creator)
        try:
            pid = int(arena.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not _alive(pid):
            arena.unlink(missing_ok=True)
            removed.append(arena)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _worker_main(folder: Path, parent: int | None = None) -> int:
    """Run the job in ``folder`` and write its result there (``python -m avood_core.pipeline.worker FOLDER PARENT_PID``)."""
    def leave(*_: object) -> None:  # the parent is gone: remove the folder and exit
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(_PARENT_GONE)

    if parent is not None:
        exit_with_parent(parent, leave)
    try:
        with open(folder / JOB, "rb") as fh:  # streamed: the features are read once, into their arrays
            job: Job = pickle.load(fh)
        torch.set_num_threads(job.threads)
        logs: list[str] = []
        *head, ctx = job.args
        offer = Offer.open(folder)
        ctx = dataclasses.replace(ctx, log=logs.append, assist=offer,
                                  progress=lambda total, _: _CounterTracker(folder / PROGRESS, total))
        recorder = EventRecorder()
        ctx.callbacks.callbacks.append(recorder)
        seed_everything(derive_seed(job.seed, job.kind))
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            boundary.fit(job.component, (*head, ctx))  # its errors come back as one line (pipeline.boundary)
        finally:
            if offer is not None:
                offer.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        message: tuple = ("ok", WorkerResult(job.component, wall, cpu, peak_rss_mb(), logs, recorder.events))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        cls = type(exc)
        message = ("error", cls.__module__, cls.__qualname__, str(exc), traceback.format_exc())
    atomic_write(folder / RESULT, lambda tmp: tmp.write_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)))
    return 0


class Worker:
    """One component fitting in a child interpreter; :meth:`result` waits for it."""

    def __init__(self, job: Job) -> None:
        self.kind = job.kind
        self.name = type(job.component).__name__
        clean_stale()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{job.kind}-"))
        try:
            # Streamed protocol-5 pickle: AVSamples go as NumPy arrays written from their memory (no copy).
            # An unpicklable component fails here, not in the child.
            with open(self.folder / JOB, "wb") as fh:
                pickle.dump(job, fh, protocol=5)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}  # parent's imports
            # stdin: a pipe only this process writes to; its EOF tells the worker that we are gone
            self._proc = subprocess.Popen([sys.executable, "-m", "avood_core.pipeline.worker", str(self.folder), str(os.getpid())],
                                          env=env, stdin=subprocess.PIPE)
            atomic_write_text(self.folder / OWNER, f"{os.getpid()} {self._proc.pid}")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.started = time.perf_counter()
        self._tracker: Any = None
        self._shown, self._last = 0, 0.0

    def _show(self, progress: Callable[[int, str], Any] | None, every_s: float = 0.0) -> None:
        """Advance the parent's progress bar to the worker's step counter (at most once per ``every_s``)."""
        if time.perf_counter() - self._last < every_s:
            return
        self._last = time.perf_counter()
        try:
            done, total = (int(n) for n in (self.folder / PROGRESS).read_text().split())
        except (OSError, ValueError):
            return
        if progress is not None and total:
            self._tracker = self._tracker or progress(total, f"{self.kind} (worker)")
            self._tracker.update(max(0, done - self._shown))
            self._shown = max(self._shown, done)

    def help(self, serve: Callable[[Any, Callable[[], None]], int], progress: Callable[[int, str], Any] | None = None,
             log: Callable[[str], None] = lambda message: None) -> dict | None:
        """Lend this process to the worker's fit (avood_core.train.strategy) until it ends.

        ``serve(channel, tick)`` is the component's ``assist`` with its fit arguments bound (the steps it
        computed half of; None: its step cannot be split). Returns ``{"steps", "start_s", "wall_s"}``, or
        None without assistance. A failure is logged, not raised: the worker finishes alone, same result."""
        channel = connect(self.folder)
        while channel is None and self._proc.poll() is None and not (self.folder / PROGRESS).exists():
            time.sleep(0.05)  # the worker is still loading its job; it opens its offer before its fit starts
            channel = connect(self.folder)
        if channel is None:
            return None
        start = time.perf_counter()
        steps: int | None = 0
        try:
            steps = serve(channel, lambda: self._show(progress, 0.2))
            if steps is None:
                return None
        except PartnerGone:
            pass  # the worker finished or died: result() tells which
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the worker goes on alone (a component's sys.exit too)
            log(f"{self.kind}: the main process stopped assisting its worker ({type(exc).__name__}: {exc}); "
                "the worker finishes alone, with the same result")
        finally:
            channel.close()
        return {"steps": steps, "start_s": start - self.started, "wall_s": time.perf_counter() - start}

    def result(self, progress: Callable[[int, str], Any] | None = None) -> WorkerResult:
        """Wait for the fit (showing its progress when ``progress`` is given) and return it."""
        try:
            while self._proc.poll() is None:
                self._show(progress)
                time.sleep(0.2)
            self._show(progress)  # the last steps
            try:
                message = pickle.loads((self.folder / RESULT).read_bytes())
            except (OSError, EOFError, pickle.UnpicklingError):
                raise AvoodError(
                    f"{self.kind} '{self.name}': its worker process exited with code {self._proc.returncode} before "
                    "finishing (killed, or out of memory?); rerun with jobs = 1 to fit it in the main process"
                ) from None
        finally:
            if self._tracker is not None:
                self._tracker.close()
            self.stop()
        if message[0] == "ok":
            return message[1]
        _, module, qualname, text, trace = message  # the same AvoodError class, else one line
        try:
            cls = getattr(importlib.import_module(module), qualname)
            error = cls(text) if isinstance(cls, type) and issubclass(cls, AvoodError) else None
        except Exception:  # noqa: BLE001 - not rebuilt: the generic error below
            error = None
        if error is not None:
            raise error
        if qualname == "KeyboardInterrupt":
            raise KeyboardInterrupt()
        what = f"{self.kind} '{self.name}' failed in its worker process"
        if os.environ.get("AVOOD_DEBUG"):
            raise AvoodError(f"{what}:\n{trace}")
        last = trace.strip().splitlines()[-1] if trace.strip() else f"{qualname}: {text}"
        raise AvoodError(f"{what}: {last} (AVOOD_DEBUG=1 shows its traceback)")

    def stop(self) -> None:
        """Make sure the process is gone (terminated if still running) and its folder removed."""
        if self._proc.poll() is None:
            self._proc.terminate()  # the worker removes its folder and exits (see exit_with_parent)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        shutil.rmtree(self.folder, ignore_errors=True)


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


if __name__ == "__main__":  # run by Worker; the module import keeps pickled names as avood_core.pipeline.worker.*
    from avood_core.pipeline.worker import _worker_main as _main

    sys.exit(_main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
