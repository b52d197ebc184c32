"""Measurement for ``avood bench``: per-stage wall / CPU time, peak RSS, profiles; the machine record."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from avood_core.callbacks import Callback
from avood_core.util.threads import usable_cores
from avood_core.stages import FIT_STEPS

STAGES = ("load", *FIT_STEPS, "evaluation")


def _proc_field(path: str, key: str) -> str | None:
    """The value after ``key:`` in a ``/proc`` file (None where there is none, e.g. not Linux)."""
    with contextlib.suppress(OSError), open(path) as fh:
        return next((line.split(":", 1)[1].strip() for line in fh if line.startswith(key)), None)
    return None


def _reset_hwm() -> bool:
    """Reset the process's ``VmHWM`` (Linux); False where that is not possible."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        return fh.write("5") == 1
    return False


def _maxrss_mb() -> float | None:
    """``ru_maxrss`` in MB: the process peak so far (None where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def peak_rss_mb() -> float | None:
    """This program's peak RSS in MB: ``VmHWM`` on Linux (since the last reset or exec), else ``ru_maxrss``
    (which in a fork + exec worker also counts the parent's memory at the fork)."""
    hwm = _proc_field("/proc/self/status", "VmHWM:")
    return round(int(hwm.split()[0]) / 1024, 1) if hwm else _maxrss_mb()


class Meter(Callback):
    """Times stages: wall, CPU (all threads), peak RSS during the stage, load average; as a callback, each stage
    fitted in this process and the synthesis (not the kinds in ``skip``, fitted in worker processes: their rows
    come from the workers' own figures). ``sync()`` waits for a GPU's queued work before a stage ends."""

    def __init__(self, profile_dir: Path | None = None, prefix: str = "",
                 sync: Callable[[], None] = lambda: None) -> None:
        self.sync, self.skip = sync, frozenset()
        self.rows: dict[str, dict[str, Any]] = {}
        # clear_refs also resets what getrusage's ru_maxrss reports, so per-stage peaks are all there is.
        self.rss_method = ("per stage: VmHWM after a /proc/self/clear_refs reset" if _reset_hwm()
                           else "ru_maxrss: the process peak so far, not reset per stage")
        self.profile_dir, self.prefix = profile_dir, prefix
        self.profiles: dict[str, list[dict[str, Any]]] = {}
        self._open: tuple[Any, ...] = ("", False, 0.0, None, 0.0, 0.0)  # the stage being measured (start)

    def measure(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` measured as stage ``name``."""
        self.start(name)
        result = fn()
        self.stop(name)
        return result

    def start(self, name: str) -> None:
        """Start measuring stage ``name`` (one stage at a time; :meth:`stop` ends it)."""
        reset = _reset_hwm()
        load0 = os.getloadavg()[0]
        prof = None
        if self.profile_dir is not None:
            import torch
            from torch.profiler import ProfilerActivity, profile

            cuda = [ProfilerActivity.CUDA] if torch.cuda.is_available() else []
            prof = profile(activities=[ProfilerActivity.CPU, *cuda])
            prof.start()
        self._open = (name, reset, load0, prof, time.process_time(), time.perf_counter())

    def stop(self, name: str) -> None:
        """End stage ``name`` after ``sync()`` and record its row."""
        self.sync()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        opened, reset, load0, prof, cpu0, wall0 = self._open
        if opened != name:
            raise RuntimeError(f"bench meter: stage '{name}' ended while '{opened}' was measured")
        wall, cpu = wall1 - wall0, cpu1 - cpu0
        if prof is not None:
            prof.stop()
            self._save_profile(name, prof, wall)
        self.rows[name] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb() if reset else _maxrss_mb(),
                           "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)]}

    def _save_profile(self, name: str, prof, wall: float) -> None:
        """Top ops by self CPU time: a text table in ``profile_dir`` and the top 12 in the record."""
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) or 1.0
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
        self.profiles[name] = [
            {"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
             "self_cpu_pct": round(100 * e.self_cpu_time_total / total, 1), "calls": e.count}
            for e in top[:12]
        ]
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        path = self.profile_dir / f"{self.prefix}{name}.txt"
        path.write_text(f"# stage {name}: wall {wall:.2f} s under the profiler (profiling inflates times)\n"
                        + events.table(sort_by="self_cpu_time_total", row_limit=30) + "\n")

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        if kind not in self.skip:
            self.start(kind)

    def on_stage_end(self, kind: str, info: Mapping[str, Any]) -> None:
        if kind not in self.skip:
            self.stop(kind)

    def on_synthesis_start(self, info: Mapping[str, Any]) -> None:
        self.start("synthesize")

    def on_synthesis_end(self, info: Mapping[str, Any]) -> None:
        self.stop("synthesize")


def main_rows(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The stages the main process fitted itself, in sequence (not load, evaluation or a worker's)."""
    return [r for n, r in rows.items() if n not in ("load", "evaluation") and "worker_end_s" not in r]


def idle_cores(rows: dict[str, dict[str, Any]], fit_wall: float, main_cpu: float, cores: int) -> dict[str, Any]:
    """Idle core-seconds of the fit: ``cores x fit wall -`` the main process's CPU over the fit and each worker's
    own fit CPU (other programs' use counts as idle); ``main_wait_s``: the main process had no stage to run."""
    worker_cpu = sum(r["cpu_s"] or 0.0 for r in rows.values() if "worker_end_s" in r)
    main_stages = sum(r["wall_s"] for r in main_rows(rows))
    busy = main_cpu + worker_cpu
    return {"cores": cores, "fit_wall_s": round(fit_wall, 3), "cpu_s": round(busy, 3),
            "idle_core_s": round(max(0.0, cores * fit_wall - busy), 3),
            "idle_share": round(max(0.0, 1 - busy / (cores * fit_wall)), 4) if fit_wall > 0 else None,
            "main_wait_s": round(max(0.0, fit_wall - main_stages), 3),
            "method": "cores x fit wall - (main process CPU over the fit + workers' fit CPU)"}


def precision_of(comp: Any) -> str | None:
    """The precision a fitted component used: ``precision_used`` (auto resolved) or its ``precision`` param."""
    for obj in (comp, getattr(comp, "model", None)):  # the seen cross_attention wrapper holds a model
        if used := getattr(obj, "precision_used", None):
            return used
    return getattr(getattr(comp, "params", None), "precision", None)


def machine_info(device: str) -> dict[str, Any]:
    """The machine of a bench record; ``isa``: the CPU's matmul ISA flags (``None`` = unknown, from
    ``/proc/cpuinfo`` or torch's probes), torch's kernel level (``get_cpu_capability()``) and native bf16."""
    import torch

    from avood_core import __version__
    from avood_core.train.precision import ISA_FLAGS, cpu_flags, native_bf16, torch_cpu_capability

    flags = cpu_flags()
    have = (lambda *names: any(n in flags for n in names) if flags is not None else None)  # type: ignore[operator]
    mem = _proc_field("/proc/meminfo", "MemTotal:")
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cpu_count": os.cpu_count(), "cpus_usable": usable_cores(),
        "cpu_flags": [f for f in ISA_FLAGS if f in (flags or set())],
        "isa": {"avx2": have("avx2"), "avx512": have("avx512f"), "avx512_bf16": have("avx512_bf16"),
                "amx": have("amx_bf16", "amx_tile"), "flags_source": None if flags is None else (
                    "/proc/cpuinfo" if Path("/proc/cpuinfo").is_file() else "torch cpuinfo probes"),
                "torch_capability": torch_cpu_capability(),
                "native_bf16_cpu": native_bf16("cpu", flags) if flags is not None else None,
                **({"native_bf16_cuda": native_bf16(device)} if device.startswith("cuda") else {})},
        "memory_gb": round(int(mem.split()[0]) / 1024**2, 1) if mem else None,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "mkldnn": bool(torch.backends.mkldnn.is_available()), "device": device,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()], "avood": __version__, "git": _git_state(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info.update(cuda_device=torch.cuda.get_device_name(0), cuda_version=torch.version.cuda)
    return info


def _git_state() -> str | None:
    """The source checkout's commit (``+dirty`` with changes); ``None`` for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    if not ((root / ".git").exists() and (root / "pyproject.toml").is_file() and (root / "avood_core").is_dir()):
        return None  # an installed package: site-packages is no checkout (and may sit inside someone else's)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
