"""``avood bench``: the full pipeline on benchmark-sized synthetic trees, timed and measured per stage.

For each dataset the benchmark writes (once; later runs reuse it) a tree with
:func:`avood_core.data.write_synthetic_tree` at that dataset's size (the real class splits and
word2vec vectors when the shared ``avgzsl`` folder exists, generated ones otherwise), builds the
run config from the dataset's paper preset (SPEC §4; epochs unchanged unless ``epochs_scale``),
and fits the pipeline exactly as ``avood run`` does: stage 2 only (fit on ``train_val``, report
on ``test``) by default, or stage 1 then stage 2 (``stages="both"``).

Per stage (load, generator, synthesize, seen, unseen, detector, evaluation) it records wall time,
CPU time (all threads), optimizer steps and training rows (from the components' ``steps`` /
``samples`` counters), steps/s, samples/s and peak RSS during the stage (Linux: the kernel's
high-water mark, reset before each stage through ``/proc/self/clear_refs``; elsewhere the
process peak so far), plus the load average. With ``epochs_scale < 1`` each trained stage is
also extrapolated linearly to the full epochs by the exact factor of steps it ran.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from avood_core.errors import AvoodError

DATASETS = ("ucf", "activitynet", "vggsound")
FIT_STAGES = ("generator", "seen", "unseen", "detector")
STAGES = ("load", "generator", "synthesize", "seen", "unseen", "detector", "evaluation")
COLUMNS = ("wall_s", "cpu_s", "steps", "steps_per_s", "samples", "samples_per_s", "peak_rss_mb",
           "epochs_factor", "full_wall_s", "full_cpu_s", "load_avg")
SHARED_SPLITS = Path(__file__).resolve().parents[1].parent / "shared" / "avgzsl"

# SPEC §4, used only when the installed avood has no presets (avood_core/presets/<ds>.toml).
FALLBACK_PRESETS: dict[str, dict[str, Any]] = {
    "ucf": {"syn_num": 50, "unseen": {"batch_size": 112, "lr": 2.4e-3, "r_enc": 0.5, "r_proj": 0.4, "r_dec": 0.4, "bn_momentum": 0.1},
            "seen": {"batch_size": 32, "lr": 6e-4}, "detector": {"batch_size": 16, "lr": 9e-4}},
    "activitynet": {"syn_num": 1000, "unseen": {"batch_size": 256, "lr": 5e-4, "r_enc": 0.2, "r_proj": 0.3, "r_dec": 0.2, "bn_momentum": 0.99},
                    "seen": {"batch_size": 128, "lr": 8e-3}, "detector": {"batch_size": 64, "lr": 5e-3}},
    "vggsound": {"syn_num": 50, "unseen": {"batch_size": 256, "lr": 5e-4, "r_enc": 0.3, "r_proj": 0.1, "r_dec": 0.2, "bn_momentum": 0.1},
                 "seen": {"batch_size": 1024, "lr": 8e-3}, "detector": {"batch_size": 6900, "lr": 1e-3}},
}


@dataclass
class BenchOptions:
    """What to benchmark; see :func:`run_bench`."""

    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    out: Path = Path("bench")
    epochs_scale: float = 1.0
    device: str = "cpu"
    data_scale: float = 1.0
    seed: int = 0  # the runs' seed
    tree_seed: int = 0  # the trees' seed (names, counts, features)
    stages: str = "2"  # "2": stage 2 only; "both": stage 1 (fit + select) then stage 2
    threads: int | None = None
    precision: str | None = None  # sets <kind>.precision on every component that has it
    overrides: list[str] = field(default_factory=list)
    splits_dir: Path | None = None  # None: the shared avgzsl folder when present, else generated
    generated: bool = False  # force generated splits even when the shared folder exists
    profile: bool = False  # torch.profiler around every stage: <out>/profile/<dataset>-<stage>.txt
    audio_dim: int | None = None
    video_dim: int | None = None
    class_counts: tuple[int, int, int] | None = None  # generated trees only (tiny test trees)


# -- measurement ----------------------------------------------------------------------------------

def _read_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


class Meter:
    """Times stages: wall, CPU (all threads), peak RSS during the stage, load average."""

    def __init__(self, profile_dir: Path | None = None, prefix: str = "") -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.hwm_reset = _reset_hwm()
        # clear_refs also resets what getrusage's ru_maxrss reports, so per-stage peaks are all there is.
        self.rss_method = ("per stage: VmHWM after a /proc/self/clear_refs reset" if self.hwm_reset
                           else "ru_maxrss: the process peak so far, not reset per stage")
        self.profile_dir, self.prefix = profile_dir, prefix
        self.profiles: dict[str, list[dict[str, Any]]] = {}

    def measure(self, name: str, fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> Any:
        reset = _reset_hwm()
        load0 = os.getloadavg()[0]
        prof = self._profiler()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if prof is None:
            result = fn()
        else:
            with prof:
                result = fn()
        sync()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if prof is not None:
            self._save_profile(name, prof, wall)
        hwm = _read_hwm_kb() if reset else None
        self.rows[name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_mb": hwm / 1024 if hwm is not None else _maxrss_mb(),
            "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        }
        return result

    def _profiler(self):
        if self.profile_dir is None:
            return None
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        import torch

        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        return profile(activities=activities)

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


def _wrap(obj: Any, method: str, meter: Meter, name: str, sync: Callable[[], None]) -> None:
    """Shadow ``obj.method`` with a measured call (instance attribute; the class is untouched)."""
    original = getattr(obj, method)

    def measured(*args: Any, **kwargs: Any) -> Any:
        return meter.measure(name, lambda: original(*args, **kwargs), sync)

    setattr(obj, method, measured)


# -- machine and config ---------------------------------------------------------------------------

def machine_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "memory_gb": _mem_total_gb(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "device": device,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "git": _git_state(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_state() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _has_presets() -> bool:
    try:
        from avood_core.presets import preset_names
    except ImportError:
        return False
    return set(DATASETS) <= set(preset_names())


def bench_config(dataset: str, tree_root: Path, opts: BenchOptions):
    """The resolved run config: the dataset's paper preset, the tree, then the user's overrides."""
    from avood_core.config import build_config, resolve

    sets = ["data.source=benchmark", f"data.path={json.dumps(str(tree_root))}", f"data.dataset={json.dumps(dataset)}",
            f"data.stage1={'true' if opts.stages == 'both' else 'false'}", f"device={json.dumps(opts.device)}",
            f"seed={opts.seed}", "profile=\"paper\""]
    if _has_presets():
        config = build_config(overrides=sets + list(opts.overrides), preset=dataset)
        source = f"preset '{dataset}'"
    else:
        spec = FALLBACK_PRESETS[dataset]
        base = {"syn_num": spec["syn_num"], **{k: {"name": n, "params": dict(spec.get(k, {}))} for k, n in
                                                 (("unseen", "cross_attention"), ("seen", "mlp"), ("detector", "entropy"))}}
        config = build_config(overrides=sets + list(opts.overrides), base=base)
        source = "SPEC §4 values built into avood_core/bench.py (no presets installed)"
    config = resolve(config)
    if opts.precision is not None:
        update = {}
        for kind in FIT_STAGES:
            spec = config.component(kind)
            if "precision" in spec.params:
                update[kind] = spec.model_copy(update={"params": {**spec.params, "precision": opts.precision}})
        config = resolve(config.model_copy(update=update))
    return config, source


def scale_epochs(config, factor: float):
    """Scale each component's training length by ``factor``; returns (config, exact factor per kind).

    A component with ``epochs`` and ``batches_per_epoch`` keeps ``round(epochs * f)`` epochs
    (at least 1) and takes the batches per epoch that bring the total closest to ``f`` times
    the full total; one with ``epochs`` alone scales its epochs (at least 1). The exact factor
    (steps run / full steps) is what extrapolation divides by.
    """
    from avood_core.config import resolve

    factors: dict[str, float] = {}
    if factor == 1.0:
        return config, {k: 1.0 for k in FIT_STAGES}
    update = {}
    for kind in FIT_STAGES:
        spec = config.component(kind)
        params = dict(spec.params)
        if "epochs" not in params:
            factors[kind] = 1.0
            continue
        epochs = int(params["epochs"])
        new_epochs = max(1, round(epochs * factor))
        if "batches_per_epoch" in params:
            bpe = int(params["batches_per_epoch"])
            new_bpe = max(1, round(epochs * bpe * factor / new_epochs))
            params["batches_per_epoch"] = new_bpe
            factors[kind] = new_epochs * new_bpe / (epochs * bpe)
        else:
            factors[kind] = new_epochs / epochs
        params["epochs"] = new_epochs
        update[kind] = spec.model_copy(update={"params": params})
    return resolve(config.model_copy(update=update)), factors


# -- trees ----------------------------------------------------------------------------------------

def tree_for(dataset: str, opts: BenchOptions, log: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """A tree for ``dataset`` under ``opts.out/trees``, written once and reused (keyed by its settings)."""
    from avood_core.data import dataset_info, write_synthetic_tree

    splits = None if opts.generated else (opts.splits_dir or (SHARED_SPLITS if SHARED_SPLITS.is_dir() else None))
    if splits is not None and not (Path(splits) / dataset_info(dataset).folder).is_dir():
        splits = None
    dims = f"-a{opts.audio_dim}" if opts.audio_dim else ""
    dims += f"-v{opts.video_dim}" if opts.video_dim else ""
    counts = "-c" + "x".join(map(str, opts.class_counts)) if opts.class_counts else ""
    tag = f"{dataset}-x{opts.data_scale:g}-seed{opts.tree_seed}-{'real' if splits else 'generated'}{dims}{counts}"
    root = Path(opts.out) / "trees" / tag
    folder = root / dataset_info(dataset).folder
    info = {"tree": str(root), "splits": str(splits) if splits else "generated", "data_scale": opts.data_scale}
    if folder.is_dir():
        info["reused"] = True
        log(f"bench: reusing tree {folder}")
        return root, info
    log(f"bench: writing {dataset} tree at scale {opts.data_scale:g} ({info['splits']} splits) to {root}")
    start = time.perf_counter()
    report = write_synthetic_tree(root, dataset, scale=opts.data_scale, seed=opts.tree_seed, splits_dir=splits,
                                  audio_dim=opts.audio_dim, video_dim=opts.video_dim,
                                  class_counts=None if splits else opts.class_counts)
    info.update(reused=False, write_s=round(time.perf_counter() - start, 2))
    log(report.summary())
    return root, info


# -- one dataset ----------------------------------------------------------------------------------

def _fit_measured(pipeline, task, meter: Meter, device, seed: int, sync: Callable[[], None]) -> None:
    for kind in FIT_STAGES:
        _wrap(pipeline.components[kind], "fit", meter, kind, sync)
    _wrap(pipeline.generator, "generate", meter, "synthesize", sync)
    pipeline.fit(task, device=device, seed=seed, progress=None)
    for kind in FIT_STAGES:  # drop the wrappers (instance attributes)
        vars(pipeline.components[kind]).pop("fit", None)
    vars(pipeline.generator).pop("generate", None)


def _stage_rows(meter: Meter, pipeline, factors: dict[str, float]) -> dict[str, dict[str, Any]]:
    rows = {}
    for name in STAGES:
        if name not in meter.rows:
            continue
        row = dict(meter.rows[name])
        comp = pipeline.components.get(name) if name in FIT_STAGES else None
        steps = getattr(comp, "steps", None) if comp is not None else None
        samples = getattr(comp, "samples", None) if comp is not None else None
        row["steps"] = steps
        row["samples"] = samples
        row["steps_per_s"] = steps / row["wall_s"] if steps and row["wall_s"] > 0 else None
        row["samples_per_s"] = samples / row["wall_s"] if samples and row["wall_s"] > 0 else None
        f = factors.get(name, 1.0)
        row["epochs_factor"] = f
        row["full_wall_s"] = row["wall_s"] / f
        row["full_cpu_s"] = row["cpu_s"] / f
        rows[name] = row
    return rows


def bench_dataset(dataset: str, opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write or reuse the tree, fit the pipeline stage by stage under the meter, return the record."""
    import torch

    from avood_core.run import apply_selections, build_pipeline, build_tasks
    from avood_core.training import resolve_device

    root, tree = tree_for(dataset, opts, log)
    config, source = bench_config(dataset, root, opts)
    config, factors = scale_epochs(config, opts.epochs_scale)
    device = resolve_device(config.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    record: dict[str, Any] = {"dataset": dataset, "tree": tree, "config_source": source, "epochs_scale": opts.epochs_scale,
                              "stages_run": "stage 1 + stage 2" if opts.stages == "both" else "stage 2 only",
                              "epochs_factor": factors}
    profile_dir = Path(opts.out) / "profile" if opts.profile else None
    meter = Meter(profile_dir, f"{dataset}-")
    started = time.perf_counter()
    stage1, task = meter.measure("load", lambda: build_tasks(config))
    record["task"] = task.summary()
    protocol: dict[str, Any] = {}
    if stage1 is not None:
        log(f"bench {dataset}: stage 1 (fit on training, select on val)")
        meter1 = Meter(profile_dir, f"{dataset}-stage1-")
        pipe1 = build_pipeline(config)
        _fit_measured(pipe1, stage1, meter1, device, config.seed, sync)
        metrics1 = meter1.measure("evaluation", lambda: pipe1.evaluate(stage1.test), sync)
        config, selected = apply_selections(config, pipe1)
        protocol["stage1"] = {"stages": _stage_rows(meter1, pipe1, factors), "selected": selected,
                              "metrics_on_val": _headline(metrics1)}
    log(f"bench {dataset}: stage 2 (fit on train_val, report on test)")
    pipeline = build_pipeline(config)
    _fit_measured(pipeline, task, meter, device, config.seed, sync)
    metrics = meter.measure("evaluation", lambda: pipeline.evaluate(task.test), sync)
    total = time.perf_counter() - started
    rows = _stage_rows(meter, pipeline, factors)
    stage_total = sum(r["wall_s"] for r in rows.values())
    full_total = sum(r["full_wall_s"] for r in rows.values())
    full_cpu = sum(r["full_cpu_s"] for r in rows.values())
    if "stage1" in protocol:
        s1 = protocol["stage1"]["stages"]
        stage_total += sum(r["wall_s"] for r in s1.values())
        full_total += sum(r["full_wall_s"] for r in s1.values())
        full_cpu += sum(r["full_cpu_s"] for r in s1.values())
    record.update({
        "stages": rows,
        **({"protocol": protocol} if protocol else {}),
        "total_wall_s": total,
        "total_cpu_s": sum(r["cpu_s"] for r in rows.values())
        + sum(r["cpu_s"] for r in protocol.get("stage1", {}).get("stages", {}).values()),
        "full_epochs_total_wall_s": full_total + (total - stage_total),
        "full_epochs_total_cpu_s": full_cpu,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows.values()),
        "rss_method": meter.rss_method,
        **({"profile_top_ops": meter.profiles} if meter.profiles else {}),
        "metrics": _headline(metrics),
        "params": {k: {"name": config.component(k).name, **config.component(k).params} for k in FIT_STAGES},
        "syn_num": config.syn_num,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
    })
    return record


def _headline(m: dict) -> dict[str, float]:
    return {"S": m["S"], "U": m["U"], "HM": m["HM"], "ZSL": m["ZSL"], "AUROC": m["gate"]["AUROC"]}


# -- the whole benchmark --------------------------------------------------------------------------

def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Benchmark every dataset of ``opts``; write ``bench.json`` and ``bench.md`` into ``opts.out``."""
    import torch

    from avood_core.training import set_threads

    bad = [d for d in opts.datasets if d not in DATASETS]
    if bad or not opts.datasets:
        raise AvoodError(f"--datasets: unknown {bad or 'empty list'}; use a comma-separated subset of {','.join(DATASETS)}")
    if not opts.epochs_scale > 0:
        raise AvoodError(f"--epochs-scale must be positive, got {opts.epochs_scale}")
    if opts.stages not in ("2", "both"):
        raise AvoodError(f"--stages '{opts.stages}': use 2 (stage 2 only) or both")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # effective only if torch has not started OpenMP yet
    threads_before = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    else:
        set_threads()
    try:
        return _run_all(opts, log)
    finally:
        torch.set_num_threads(threads_before)


def _run_all(opts: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "avood_bench": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv and "avood" in Path(sys.argv[0]).name else None,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "machine": machine_info(opts.device),
        "datasets": {},
    }
    for dataset in opts.datasets:
        result["datasets"][dataset] = bench_dataset(dataset, opts, log)
        _write(out, result)  # partial results survive a later failure
    result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    _write(out, result)
    return result


def _write(out: Path, result: dict[str, Any]) -> None:
    from avood_core.io import atomic_write_json, atomic_write_text

    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", render_markdown(result))


# -- markdown -------------------------------------------------------------------------------------

def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "/".join(_fmt(x, 2) for x in v)
    if isinstance(v, float):
        if v >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


HEADERS = {"wall_s": "wall s", "cpu_s": "CPU s", "steps": "steps", "steps_per_s": "steps/s", "samples": "samples",
           "samples_per_s": "samples/s", "peak_rss_mb": "peak RSS MB", "epochs_factor": "epochs factor",
           "full_wall_s": "full-epochs wall s (extrap.)", "full_cpu_s": "full-epochs CPU s (extrap.)", "load_avg": "load avg (start/end)"}


def stage_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| stage | " + " | ".join(HEADERS[c] for c in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name in STAGES:
        if name in rows:
            r = rows[name]
            cells = [_fmt(r.get(c), 3 if c == "epochs_factor" else 1) for c in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# avood bench", "",
             f"Machine: {m['cpu']}, {m['cpus_usable']} usable cores ({', '.join(m['cpu_flags']) or 'no AVX flags read'}), "
             f"{m['memory_gb']} GB; torch {m['torch']} with {m['torch_threads']} threads; device {m['device']}"
             + (f" ({m['cuda_device']})" if m.get("cuda_device") else "") + f"; git {m['git']}.",
             f"Load average (1/5/15 min) at start: {_fmt(m['load_avg_start'])}"
             + (f"; at end: {_fmt(m['load_avg_end'])}" if m.get("load_avg_end") else "") + ".",
             f"Created {result['created']}; options: epochs scale {result['options']['epochs_scale']}, "
             f"stages {result['options']['stages']}, data scale {result['options']['data_scale']}, "
             f"precision {result['options']['precision'] or 'as configured'}.", ""]
    for ds, rec in result["datasets"].items():
        t = rec["task"]
        lines += [f"## {ds}", "",
                  f"{rec['stages_run']}; config: {rec['config_source']}; tree {rec['tree']['tree']} "
                  f"({rec['tree']['splits']} splits); train {(t.get('train') or {}).get('samples')}, "
                  f"test {(t.get('test') or {}).get('samples')} clips; "
                  f"syn_num {rec['syn_num']}.", ""]
        if "protocol" in rec:
            lines += ["Stage 1 (fit on training, select on val):", ""]
            lines += stage_table(rec["protocol"]["stage1"]["stages"])
            lines += ["", "Stage 2 (fit on train_val, report on test):", ""]
        lines += stage_table(rec["stages"])
        mt = rec["metrics"]
        lines += ["",
                  f"Total wall {_fmt(rec['total_wall_s'])} s, CPU {_fmt(rec['total_cpu_s'])} s; full epochs (extrapolated where "
                  f"scaled) {_fmt(rec['full_epochs_total_wall_s'])} s = {rec['full_epochs_total_wall_s'] / 60:.1f} min "
                  f"(CPU {rec['full_epochs_total_cpu_s'] / 60:.1f} min); "
                  f"peak RSS {_fmt(rec['peak_rss_mb'])} MB (the largest stage peak; {rec['rss_method']}).",
                  f"Test metrics: S {mt['S']:.2f}, U {mt['U']:.2f}, HM {mt['HM']:.2f}, ZSL {mt['ZSL']:.2f}, gate AUROC {mt['AUROC']:.2f}.",
                  ""]
        if rec.get("profile_top_ops"):
            lines += ["Profile (torch.profiler, share of each stage's self CPU time; top 6 ops):", ""]
            for stage, ops in rec["profile_top_ops"].items():
                lines.append(f"- {stage}: " + ", ".join(f"{o['op']} {o['self_cpu_pct']}%" for o in ops[:6]))
            lines.append("")
    return "\n".join(lines)
