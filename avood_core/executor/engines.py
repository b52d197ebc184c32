"""Where jobs run: this process, a local process pool, or Ray (imported only by :class:`RayEngine`).
A job is a module-level ``fn(payload, echo) -> dict`` and a JSON-able ``payload`` (``run_dir``, ``hash``,
``threads``), never a fitted object, so data and output must sit at the same path on every node. An
engine has ``submit``, ``wait``, ``result`` (a failed job is a result with ``status = "failed"``) and ``close``."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from avood_core.errors import AvoodError, one_line
from avood_core.util.io import atomic_write_json, open_nofollow
from avood_core.util.json_read import read_json
from avood_core.util.threads import torch_threads

TRIAL_FILE = "trial.json"
RAY_HINT = "pip install 'avood[ray]'"
RAY_INIT_TIMEOUT_S = 120.0  # the longest wait for ray.init to join or start a cluster


def run_trial(fn: Callable[[dict, Callable[[str], None]], dict], payload: dict) -> dict:
    """``fn(payload, echo)`` in this process with ``payload["threads"]`` torch threads, recorded in
    ``<run_dir>/trial.json`` (a retry finds its earlier attempt), its output in ``log.txt``; never
    raises for the job's own error."""
    started = time.time()
    run_dir = Path(payload["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / TRIAL_FILE
    attempt = 1
    with contextlib.suppress(AvoodError, AttributeError, ValueError, TypeError):
        previous = read_json(marker) if marker.is_file() else {}
        attempt = int(previous.get("attempt", 0)) + 1 if previous.get("status") == "running" else 1
    info = {"status": "running", "hash": payload["hash"], "pid": os.getpid(), "host": socket.gethostname(),
            "attempt": attempt, "started": started}
    atomic_write_json(marker, info)
    threads = payload.get("threads")
    env_before = os.environ.get("OMP_NUM_THREADS")
    # what the job writes on stderr (warnings too) is its log
    with open_nofollow(run_dir / "log.txt", "a") as log, contextlib.redirect_stderr(log):
        try:
            import torch

            if threads:
                os.environ["OMP_NUM_THREADS"] = str(threads)  # run_threads() then keeps torch at this count
            with torch_threads(threads):
                info.update(fn(payload, lambda m: print(m, file=log, flush=True)))
                info.update(status="done", threads=torch.get_num_threads())
        except BaseException as exc:  # noqa: BLE001 - a failed job is a result, not a crash of the caller
            if isinstance(exc, KeyboardInterrupt):
                raise
            print(traceback.format_exc(), file=log, flush=True)
            info.update(status="failed", error=one_line(exc, 300))
        finally:
            if threads and env_before is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            elif threads:
                os.environ["OMP_NUM_THREADS"] = env_before
    info["finished"] = time.time()
    info["wall_s"] = info["finished"] - started
    atomic_write_json(marker, info)
    return info


def _pool_init(parent: int) -> None:
    """A pool worker exits as soon as its parent is gone (even SIGKILLed), as the ``jobs = 2`` worker does."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads in the worker (see avood_core/cli/commands.py)
    from avood_core.pipeline.worker import exit_with_parent  # loads torch

    exit_with_parent(parent, lambda *_: os._exit(3), fd=multiprocessing.parent_process().sentinel)


class LocalEngine:
    """A pool of ``max_parallel`` worker processes on this machine (spawned: no forked torch state);
    a worker exits when this process dies (:func:`_pool_init`), so no trial outlives a killed sweep."""

    def __init__(self, max_parallel: int) -> None:
        self.max_parallel = max_parallel
        self._pool = self._new_pool()

    def _new_pool(self):
        return ProcessPoolExecutor(self.max_parallel, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_pool_init, initargs=(os.getpid(),))

    def submit(self, fn: Callable, payload: dict):
        return self._pool.submit(run_trial, fn, payload)

    def wait(self, handles: list, timeout: float) -> list:
        return list(wait(handles, timeout=timeout, return_when=FIRST_COMPLETED).done)

    def result(self, handle) -> dict:
        try:
            return handle.result()
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return {"status": "failed", "error": "its worker process died (killed, or out of memory?); rerun the sweep to retry it"}

    def close(self, abort: bool = False) -> None:
        if abort:  # e.g. Ctrl-C: the workers would otherwise finish their trials first
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not abort, cancel_futures=True)


class InlineEngine(LocalEngine):
    """Trials one after another in this process (``max_parallel = 1`` on the local engine): each handle is
    a finished future."""

    def __init__(self) -> None:
        pass

    def submit(self, fn: Callable, payload: dict):
        future: Future = Future()
        future.set_result(run_trial(fn, payload))
        return future

    def close(self, abort: bool = False) -> None:
        pass


def _last_ray_start() -> str | None:
    """The address the last ``ray start`` on this machine recorded (Ray's own lookup), when a
    cluster still answers there (a killed one leaves its record behind)."""
    try:
        from ray._private.services import find_bootstrap_address

        address = find_bootstrap_address(None)
    except Exception:  # noqa: BLE001 - a private helper of Ray: without it, only $RAY_ADDRESS is looked at
        return None
    if not address:
        return None
    host, _, port = str(address).rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except (OSError, ValueError):
        return None
    return str(address)


def _bounded(call: Callable[[], Any], seconds: float, what: str) -> Any:
    """``call()``, interrupted after ``seconds`` (SIGALRM: the main thread of a POSIX process only)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        return call()

    def expire(*_: object) -> None:
        raise TimeoutError(f"{what} took longer than {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class RayEngine:
    """Trials as Ray tasks on the cluster at ``address``, else the one this machine is part of, else a
    local instance; ``num_cpus`` (also its torch threads) and ``num_gpus`` per trial, ``retries`` reruns
    of a task whose worker dies, the connection bounded by ``init_timeout`` seconds."""

    def __init__(self, address: str | None, num_cpus: int, num_gpus: float, retries: int,
                 local_cpus: int | None = None, echo: Callable[[str], None] = lambda m: None,
                 init_timeout: float = RAY_INIT_TIMEOUT_S) -> None:
        try:
            import ray
        except ImportError:
            raise AvoodError(f"--engine ray needs Ray, which is not installed; {RAY_HINT}") from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            self._init(address, local_cpus, echo, init_timeout)
        self._task = ray.remote(run_trial).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=retries)

    def _init(self, address: str | None, local_cpus: int | None, echo: Callable[[str], None], timeout: float) -> None:
        target = address or os.environ.get("RAY_ADDRESS") or _last_ray_start()  # the cluster joined by default
        join = bool(target) and target != "local"
        if join:  # an existing cluster has its own resources: passing num_cpus is an error
            where = "" if address else " ($RAY_ADDRESS)" if os.environ.get("RAY_ADDRESS") else " (the last 'ray start' here)"
            echo(f"ray: joining the Ray cluster at {target}{where}")
            # no --address: Ray's own lookup finds the same cluster (and, for the last 'ray start' here, its auth token)
            kwargs: dict[str, Any] = {"address": address}
        else:
            kwargs = {"address": "local", "num_cpus": local_cpus or os.cpu_count() or 1}
            echo(f"ray: starting a local Ray instance with {kwargs['num_cpus']} CPUs")
        try:
            _bounded(lambda: self.ray.init(**kwargs, include_dashboard=False, log_to_driver=False), timeout, "ray.init")
        except BaseException as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, a timeout: one line each
            if isinstance(exc, KeyboardInterrupt):
                raise
            with contextlib.suppress(Exception):
                self.ray.shutdown()  # what a half-finished start left running
            if join:
                fix = ("check that it is up ('ray status') or pass --address local to start a local instance"
                       if not address else "start it with 'ray start --head' or drop --address to start a local instance")
                raise AvoodError(f"cannot join the Ray cluster at '{target}' ({one_line(exc, 300)}); {fix}") from None
            raise AvoodError(f"cannot start a local Ray instance ({one_line(exc, 300)}); check 'ray start --head' on this "
                             "machine, or use --engine local") from None

    def slots(self, num_cpus: int) -> int:
        """Trials the cluster can run at once with ``num_cpus`` each."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1) // num_cpus))

    def submit(self, fn: Callable, payload: dict):
        return self._task.remote(fn, payload)

    def wait(self, handles: list, timeout: float) -> list:
        ready, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        return ready

    def result(self, handle) -> dict:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return {"status": "failed", "error": f"Ray: {type(exc).__name__}: {first[:300]}"}

    def close(self, abort: bool = False) -> None:
        if self.owned:
            self.ray.shutdown()  # also stops the trials still running on the instance it started


def make_engine(name: str, max_parallel: int, threads: int, num_gpus: float = 0, address: str | None = None,
                retries: int = 1, echo: Callable[[str], None] = lambda m: None) -> Any:
    """The engine ``name``: ``local`` (inline when ``max_parallel`` is 1) or ``ray`` (``echo``: which cluster)."""
    if name == "ray":
        return RayEngine(address, threads, num_gpus, retries, local_cpus=max_parallel * threads, echo=echo)
    if name != "local":
        raise AvoodError(f"unknown engine '{name}'; use local or ray")
    return InlineEngine() if max_parallel == 1 else LocalEngine(max_parallel)
