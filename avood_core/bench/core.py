"""``avood bench``: the full pipeline on benchmark-sized synthetic trees, timed and measured per stage.

Per stage: wall and CPU time, steps, rows, rates, peak RSS and load average; with ``epochs_scale < 1``
each trained stage is extrapolated to full epochs (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from avood_core.bench.extrapolate import assisted_full_wall, scale_epochs, span
from avood_core.bench.meter import STAGES, Meter, StageMeter, idle_cores, machine_info, precision_of, usable_cores
from avood_core.bench.report import render_markdown
from avood_core.errors import AvoodError
from avood_core.stages import FIT_ORDER

DATASETS = ("ucf", "activitynet", "vggsound")
SPLITS_ENV = "AVOOD_SPLITS"  # a folder with the real <DS>/class-split and w2v/ (no source checkout assumed)


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
    threads: int | None = None  # torch threads of the process (split between processes with jobs > 1)
    jobs: int = 1  # processes fitting components side by side (Pipeline.fit(jobs=...))
    precision: str | None = None  # sets <kind>.precision on every component that has it ("auto": where accepted)
    overrides: list[str] = field(default_factory=list)
    splits_dir: Path | None = None  # None: $AVOOD_SPLITS when set, else generated
    generated: bool = False  # force generated splits even when a splits folder is given
    profile: bool = False  # torch.profiler around every stage: <out>/profile/<dataset>-<stage>.txt
    audio_dim: int | None = None
    video_dim: int | None = None
    class_counts: tuple[int, int, int] | None = None  # generated trees only (tiny test trees)


def bench_config(dataset: str, tree_root: Path, opts: BenchOptions):
    """The resolved run config: the dataset's paper preset, the tree, then the user's overrides."""
    from avood_core.config import build_config, resolve

    sets = ["data.source=benchmark", f"data.path={json.dumps(str(tree_root))}", f"data.dataset={json.dumps(dataset)}",
            f"data.stage1={'true' if opts.stages == 'both' else 'false'}", f"device={json.dumps(opts.device)}",
            f"seed={opts.seed}", "profile=\"paper\""]
    config = resolve(build_config(overrides=sets + list(opts.overrides), preset=dataset))
    source = f"preset '{dataset}'"
    if opts.precision is not None:
        update = {}
        for kind in FIT_ORDER:
            spec = config.component(kind)
            if "precision" in spec.params and _accepts(kind, spec.name, opts.precision):
                update[kind] = spec.model_copy(update={"params": {**spec.params, "precision": opts.precision}})
        config = resolve(config.model_copy(update=update))
    return config, source


def _accepts(kind: str, name: str, precision: str) -> bool:
    """Whether plugin ``kind``/``name`` takes ``precision`` ("auto" only the generator and cross_attention do)."""
    if precision != "auto":
        return True
    from avood_core.registry import get_registry

    field_ = get_registry().component_class(kind, name).Params.model_fields.get("precision")
    return field_ is not None and "auto" in str(field_.annotation)


def tree_for(dataset: str, opts: BenchOptions, log: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """A tree for ``dataset`` under ``opts.out/trees``, written once and reused (keyed by its settings)."""
    from avood_core.data import dataset_info, write_synthetic_tree

    splits = None if opts.generated else (opts.splits_dir or os.environ.get(SPLITS_ENV) or None)
    if splits is not None and not (Path(splits) / dataset_info(dataset).folder).is_dir():
        raise AvoodError(f"splits folder '{splits}' has no {dataset_info(dataset).folder}/ (from "
                         f"{'--splits' if opts.splits_dir else SPLITS_ENV}); pass a folder holding <DS>/class-split "
                         "and w2v/, or --generated")
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


def _fit_measured(pipeline, task, meter: Meter, device, seed: int, sync: Callable[[], None],
                  jobs: int = 1) -> tuple[float, float]:
    """Fit under the meter (:class:`StageMeter`; worker-fitted kinds get the worker's own figures);
    return the fit's wall s and the main process's CPU s."""
    offload = pipeline.worker_kinds(jobs)
    start, cpu0 = time.perf_counter(), time.process_time()
    pipeline.fit(task, device=device, seed=seed, progress=None, jobs=jobs,
                 callbacks=[StageMeter(meter, sync, skip=offload)], every_n_steps=0)
    fit_wall, fit_cpu = time.perf_counter() - start, time.process_time() - cpu0
    for kind in offload:
        info = pipeline.worker_info.get(kind)
        if info is None:  # could not be sent to a worker: fitted here, timed by the pipeline only
            meter.rows[kind] = {"wall_s": pipeline.timings.get(kind, 0.0), "cpu_s": None, "peak_rss_mb": None,
                                "load_avg": None}
            continue
        meter.rows[kind] = {"wall_s": info["wall_s"], "cpu_s": info["cpu_s"], "peak_rss_mb": info["peak_rss_mb"],
                            "load_avg": None, "process": f"worker, {info['threads']} thread(s)",
                            "worker_overhead_s": round(info["end_s"] - info["start_s"] - info["wall_s"], 3),
                            "worker_end_s": info["end_s"]}
        if "assist" in info:  # the main process computed half of the worker's later steps (avood_core.train.strategy)
            meter.rows[kind]["assist"] = info["assist"]
    return fit_wall, fit_cpu


def _stage_rows(meter: Meter, pipeline, factors: dict[str, float]) -> dict[str, dict[str, Any]]:
    rows = {}
    for name in STAGES:
        if name not in meter.rows:
            continue
        row = dict(meter.rows[name])
        comp = pipeline.components.get(name) if name in FIT_ORDER else None
        steps = (comp.stats.steps or None) if comp is not None else None  # None: a component that does not train
        samples = (comp.stats.samples or None) if comp is not None else None
        row["steps"] = steps
        row["precision"] = precision_of(comp) if comp is not None else None  # training matmuls; inference is fp32
        row["samples"] = samples
        row["steps_per_s"] = steps / row["wall_s"] if steps and row["wall_s"] > 0 else None
        row["samples_per_s"] = samples / row["wall_s"] if samples and row["wall_s"] > 0 else None
        f = factors.get(name, 1.0)
        row["epochs_factor"] = f
        row["full_wall_s"] = row["wall_s"] / f
        row["full_cpu_s"] = row["cpu_s"] / f if row["cpu_s"] is not None else None
        rows[name] = row
    for row in rows.values():
        if row.get("assist") and row["epochs_factor"] != 1.0:
            row["full_wall_s"] = assisted_full_wall(row, rows)
    return rows


def bench_dataset(dataset: str, opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write or reuse the tree, fit the pipeline stage by stage under the meter, return the record."""
    import torch

    from avood_core.run.fitting import apply_selections, build_pipeline, build_tasks
    from avood_core.train.loops import resolve_device

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
        fit1, cpu1 = _fit_measured(pipe1, stage1, meter1, device, config.seed, sync, opts.jobs)
        metrics1 = meter1.measure("evaluation", lambda: pipe1.evaluate(stage1.test).metrics, sync)
        config, selected = apply_selections(config, pipe1)
        rows1 = _stage_rows(meter1, pipe1, factors)
        protocol["stage1"] = {"stages": rows1, "selected": selected, "metrics_on_val": _headline(metrics1),
                              "fit_wall_s": fit1, "idle": idle_cores(rows1, fit1, cpu1, usable_cores())}
    log(f"bench {dataset}: stage 2 (fit on train_val, report on test)")
    pipeline = build_pipeline(config)
    fit_wall, fit_cpu = _fit_measured(pipeline, task, meter, device, config.seed, sync, opts.jobs)
    metrics = meter.measure("evaluation", lambda: pipeline.evaluate(task.test).metrics, sync)
    total = time.perf_counter() - started
    rows = _stage_rows(meter, pipeline, factors)
    stage_total, full_total = span(rows, fit_wall)
    full_cpu = sum(r["full_cpu_s"] or 0.0 for r in rows.values())
    cpu_total = sum(r["cpu_s"] or 0.0 for r in rows.values())
    if "stage1" in protocol:
        s1 = protocol["stage1"]["stages"]
        measured1, full1 = span(s1, protocol["stage1"]["fit_wall_s"])
        stage_total += measured1
        full_total += full1
        full_cpu += sum(r["full_cpu_s"] or 0.0 for r in s1.values())
        cpu_total += sum(r["cpu_s"] or 0.0 for r in s1.values())
    record.update({
        "stages": rows,
        **({"protocol": protocol} if protocol else {}),
        "jobs": opts.jobs,
        "fit_wall_s": fit_wall,
        "idle": idle_cores(rows, fit_wall, fit_cpu, usable_cores()),
        "precision": {k: rows[k].get("precision") for k in FIT_ORDER if k in rows},
        "total_wall_s": total,
        "total_cpu_s": cpu_total,
        "full_epochs_total_wall_s": full_total + (total - stage_total),
        "full_epochs_total_cpu_s": full_cpu,
        "peak_rss_mb": max(r["peak_rss_mb"] or 0.0 for r in rows.values() if "worker_end_s" not in r),
        "peak_rss_workers_mb": sum(r["peak_rss_mb"] or 0.0 for r in rows.values() if "worker_end_s" in r),
        "rss_method": meter.rss_method,
        **({"profile_top_ops": meter.profiles} if meter.profiles else {}),
        "metrics": _headline(metrics),
        "params": {k: {"name": config.component(k).name, **config.component(k).params} for k in FIT_ORDER},
        "syn_num": config.syn_num,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
    })
    return record


def _headline(m: dict) -> dict[str, float]:
    return {"S": m["S"], "U": m["U"], "HM": m["HM"], "ZSL": m["ZSL"], "AUROC": m["gate"]["AUROC"]}


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Benchmark every dataset of ``opts``; write ``bench.json`` and ``bench.md`` into ``opts.out``."""
    import torch

    from avood_core.train.loops import set_threads

    bad = [d for d in opts.datasets if d not in DATASETS]
    if bad or not opts.datasets:
        raise AvoodError(f"--dataset: unknown {bad or 'empty list'}; use some of {', '.join(DATASETS)}")
    if not opts.epochs_scale > 0:
        raise AvoodError(f"--epochs-scale must be positive, got {opts.epochs_scale}")
    if opts.stages not in ("2", "both"):
        raise AvoodError(f"--stages '{opts.stages}': use 2 (stage 2 only) or both")
    from avood_core.util.paths import check_output_dir

    check_output_dir(opts.out, "-o/--output-dir")  # before any tree is written or anything trains
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
    from avood_core.util.io import atomic_write_json, atomic_write_text

    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", render_markdown(result))

