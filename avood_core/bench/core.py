"""``avood bench``: the full pipeline on benchmark-sized synthetic trees, timed and measured per stage; with
``epochs_scale < 1`` each trained stage extrapolated to full epochs (docs/performance.md)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from avood_core.bench.meter import STAGES, Meter, idle_cores, machine_info, main_rows, precision_of
from avood_core.bench.report import render_markdown
from avood_core.util.threads import torch_threads, usable_cores
from avood_core.errors import AvoodError, one_line
from avood_core.stages import BY_KIND, FIT_ORDER

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
    breakdown_steps: int = 10  # steps of one stage profiled after the timed run (avood_core.bench.breakdown); 0: none
    breakdown_stage: str | None = None  # the stage profiled; None: the trained stage with the longest wall
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
        from avood_core.registry import get_registry

        update = {}
        for kind in FIT_ORDER:
            spec = config.component(kind)
            field_ = get_registry().component_class(kind, spec.name).Params.model_fields.get("precision")
            # "auto" only where the plugin's precision takes it (the generator and cross_attention)
            if "precision" in spec.params and (opts.precision != "auto" or "auto" in str(field_ and field_.annotation)):
                update[kind] = spec.model_copy(update={"params": {**spec.params, "precision": opts.precision}})
        config = resolve(config.model_copy(update=update))
    return config, source


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


def _fit_measured(config, task, meter: Meter, device, factors: dict[str, float], jobs: int = 1) -> dict[str, Any]:
    """Fit and evaluate one stage's pipeline under ``meter`` (worker-fitted kinds get the worker's own figures):
    ``{"pipeline", "metrics", "rows", "fit_wall_s", "idle"}``."""
    from avood_core.run.fitting import build_pipeline

    pipeline = build_pipeline(config)
    offload = meter.skip = frozenset(pipeline.worker_kinds(jobs))
    start, cpu0 = time.perf_counter(), time.process_time()
    pipeline.fit(task, device=device, seed=config.seed, progress=None, jobs=jobs,
                 callbacks=[meter], every_n_steps=0)
    fit_wall, fit_cpu = time.perf_counter() - start, time.process_time() - cpu0
    for kind in offload:
        info = pipeline.worker_info.get(kind)
        if info is None:  # could not be sent to a worker: fitted here, timed by the pipeline only
            meter.rows[kind] = {"wall_s": pipeline.timings.get(kind, 0.0), "cpu_s": None, "peak_rss_mb": None,
                                "load_avg": None}
            continue
        # "assist": the main process computed half of the worker's later steps (avood_core.train.strategy)
        meter.rows[kind] = {"wall_s": info["wall_s"], "cpu_s": info["cpu_s"], "peak_rss_mb": info["peak_rss_mb"],
                            "load_avg": None, "process": f"worker, {info['threads']} thread(s)",
                            "worker_overhead_s": round(info["end_s"] - info["start_s"] - info["wall_s"], 3),
                            "worker_end_s": info["end_s"], **({"assist": info["assist"]} if "assist" in info else {})}
    metrics = meter.measure("evaluation", lambda: pipeline.evaluate(task.test).metrics)
    rows = _stage_rows(meter, pipeline, factors)
    return {"pipeline": pipeline, "metrics": metrics, "rows": rows, "fit_wall_s": fit_wall,
            "idle": idle_cores(rows, fit_wall, fit_cpu, usable_cores())}


def _stage_rows(meter: Meter, pipeline, factors: dict[str, float]) -> dict[str, dict[str, Any]]:
    rows = {}
    for name in (n for n in STAGES if n in meter.rows):
        row, f = meter.rows[name], factors.get(name, 1.0)
        comp = pipeline.components.get(name) if name in FIT_ORDER else None
        stats = comp.stats if comp is not None else None  # steps, samples None: a component that does not train
        steps, samples = (stats.steps or None, stats.samples or None) if stats is not None else (None, None)
        rate = lambda n: n / row["wall_s"] if n and row["wall_s"] > 0 else None  # noqa: E731
        # precision: of the training matmuls (inference is fp32)
        rows[name] = {**row, "steps": steps, "samples": samples, "steps_per_s": rate(steps),
                      "samples_per_s": rate(samples), "precision": precision_of(comp) if comp is not None else None,
                      "epochs_factor": f, "full_wall_s": row["wall_s"] / f,
                      "full_cpu_s": row["cpu_s"] / f if row["cpu_s"] is not None else None}
    for row in rows.values():
        if row.get("assist") and row["epochs_factor"] != 1.0:
            row["full_wall_s"] = assisted_full_wall(row, rows)
    return rows


# Full-epoch figures of a scaled run: a stage's full wall is its measured wall over its exact epochs factor
# (steps run / full steps), except an assisted worker stage (:func:`assisted_full_wall`).


def scale_epochs(config, factor: float):
    """Scale each component's epochs (at least 1) by ``factor``, and its ``batches_per_epoch`` to bring the
    total steps closest to ``factor`` times; return (config, exact factor = steps run / full steps, per kind)."""
    from avood_core.config import resolve

    factors, update = {k: 1.0 for k in FIT_ORDER}, {}
    if factor == 1.0:
        return config, factors
    for kind in FIT_ORDER:
        spec = config.component(kind)
        params = dict(spec.params)
        if "epochs" not in params:
            continue
        epochs, bpe = int(params["epochs"]), int(params.get("batches_per_epoch", 1))
        params["epochs"] = max(1, round(epochs * factor))
        if "batches_per_epoch" in params:
            params["batches_per_epoch"] = max(1, round(epochs * bpe * factor / params["epochs"]))
        factors[kind] = params["epochs"] * params.get("batches_per_epoch", 1) / (epochs * bpe)
        update[kind] = spec.model_copy(update={"params": params})
    return resolve(config.model_copy(update=update)), factors


def span(rows: dict[str, dict[str, Any]], fit_wall: float) -> tuple[float, float]:
    """(measured, full-epochs) wall of load + fit + evaluation; the fit's full wall is the longest of the main
    process's chain and each worker's path (start offset and overhead + its extrapolated fit)."""
    outer = [r for n, r in rows.items() if n in ("load", "evaluation")]
    workers = [r for r in rows.values() if "worker_end_s" in r]
    main = main_rows(rows)
    full_fit = max([sum(r["full_wall_s"] for r in main)]
                   + [r["worker_end_s"] - r["wall_s"] + r["full_wall_s"] for r in workers])
    measured = sum(r["wall_s"] for r in outer) + fit_wall
    return measured, sum(r["full_wall_s"] for r in outer) + full_fit


def assisted_full_wall(row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> float:
    """Full-epochs wall of an assisted worker stage (jobs = 2, avood_core.train.strategy): its solo rate until the
    main process's full chain ends, then the assisted rate (dividing by the factor would keep the scaled run's share
    of assisted steps)."""
    a, f, steps = row["assist"], row["epochs_factor"], row["steps"]
    solo_steps, solo_s = (steps or 0) - a["steps"], row["wall_s"] - a["wall_s"]
    if solo_steps <= 0 or solo_s <= 0 or a["steps"] <= 0 or a["wall_s"] <= 0:
        return row["full_wall_s"]  # no rate to extrapolate one of the phases from
    main = main_rows(rows)
    fit_start = row["worker_end_s"] - row["wall_s"]
    join = sum(r["full_wall_s"] for r in main) + a["start_s"] - sum(r["wall_s"] for r in main) - fit_start
    solo_rate, pair_rate, total = solo_steps / solo_s, a["steps"] / a["wall_s"], steps / f
    if total <= solo_rate * join:
        return total / solo_rate
    join = max(join, 0.0)
    return join + (total - solo_rate * join) / pair_rate


def bench_dataset(dataset: str, opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write or reuse the tree, fit the pipeline stage by stage under the meter, return the record."""
    import torch

    from avood_core.run.fitting import apply_selections, build_tasks
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
    meter = Meter(profile_dir, f"{dataset}-", sync)
    started = time.perf_counter()
    stage1, task = meter.measure("load", lambda: build_tasks(config))
    record["task"] = task.summary()
    parts = []  # (stage rows, fit wall) of each protocol stage
    if stage1 is not None:
        log(f"bench {dataset}: stage 1 (fit on training, select on val)")
        one = _fit_measured(config, stage1, Meter(profile_dir, f"{dataset}-stage1-", sync), device, factors, opts.jobs)
        config, selected = apply_selections(config, one["pipeline"])
        record["protocol"] = {"stage1": {"stages": one["rows"], "selected": selected,
                                         "metrics_on_val": _headline(one["metrics"]), "fit_wall_s": one["fit_wall_s"],
                                         "idle": one["idle"]}}
        parts.append((one["rows"], one["fit_wall_s"]))
    log(f"bench {dataset}: stage 2 (fit on train_val, report on test)")
    two = _fit_measured(config, task, meter, device, factors, opts.jobs)
    total = time.perf_counter() - started
    rows = two["rows"]
    if opts.breakdown_steps:
        record["step_breakdown"] = _breakdown(config, task, two, opts, device, log)
    parts.append((rows, two["fit_wall_s"]))
    measured, full = (sum(x) for x in zip(*(span(r, w) for r, w in parts)))
    record.update({
        "stages": rows, "jobs": opts.jobs, "fit_wall_s": two["fit_wall_s"], "idle": two["idle"],
        "precision": {k: rows[k].get("precision") for k in FIT_ORDER if k in rows},
        "total_wall_s": total,
        "total_cpu_s": sum(r["cpu_s"] or 0.0 for part, _ in parts for r in part.values()),
        "full_epochs_total_wall_s": full + (total - measured),
        "full_epochs_total_cpu_s": sum(r["full_cpu_s"] or 0.0 for part, _ in parts for r in part.values()),
        "peak_rss_mb": max(r["peak_rss_mb"] or 0.0 for r in rows.values() if "worker_end_s" not in r),
        "peak_rss_workers_mb": sum(r["peak_rss_mb"] or 0.0 for r in rows.values() if "worker_end_s" in r),
        "rss_method": meter.rss_method,
        **({"profile_top_ops": meter.profiles} if meter.profiles else {}),
        "metrics": _headline(two["metrics"]),
        "params": {k: {"name": config.component(k).name, **config.component(k).params} for k in FIT_ORDER},
        "syn_num": config.syn_num, "load_avg_end": [round(x, 2) for x in os.getloadavg()],
    })
    return record


def _breakdown(config, task, fit: dict[str, Any], opts: BenchOptions, device, log: Callable[[str], None]) -> dict:
    """:func:`avood_core.bench.breakdown.step_breakdown` of a fresh component of the longest trained stage (or
    ``opts.breakdown_stage``), at the thread count that stage trained at; after the timed run, so it times nothing."""
    import torch

    from avood_core.bench.breakdown import step_breakdown
    from avood_core.protocols import FitContext
    from avood_core.run.fitting import build_pipeline
    from avood_core.train.loops import derive_seed, seed_everything

    rows, pipeline = fit["rows"], fit["pipeline"]
    trained = [k for k in FIT_ORDER if k in rows and rows[k]["steps"]]
    kind = opts.breakdown_stage or max(trained, key=lambda k: rows[k]["wall_s"], default=None)
    if kind is None:
        return {"skipped": "no stage trained"}
    offload = pipeline.worker_kinds(opts.jobs)
    threads = max(1, torch.get_num_threads() // opts.jobs) if offload else torch.get_num_threads()
    comp = build_pipeline(config).components[kind]
    data = {"train": task.train, "text": task.text, "synthetic": pipeline.synthetic}
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=device, seed=config.seed, val=task.val, synthetic=pipeline.synthetic,
                     fitted=dict(pipeline.components))
    log(f"bench: profiling {opts.breakdown_steps} steps of {kind} at {threads} thread(s) (not timed)")
    seed_everything(derive_seed(config.seed, kind))
    try:
        with torch_threads(threads):
            summary = step_breakdown(comp, BY_KIND[kind].fit_args(data), ctx, opts.breakdown_steps)
    except (AvoodError, RuntimeError) as exc:  # the timed record is complete: keep it, say why there is no breakdown
        summary = {"skipped": f"profiling {kind} failed: {one_line(exc)}"}
    return {"stage": kind, "component": config.component(kind).name, "threads": threads,
            "precision": precision_of(comp), "steps_per_s_timed": rows[kind].get("steps_per_s"), **summary}


def _headline(m: dict) -> dict[str, float]:
    return {"S": m["S"], "U": m["U"], "HM": m["HM"], "ZSL": m["ZSL"], "AUROC": m["gate"]["AUROC"]}


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Benchmark every dataset of ``opts``; write ``bench.json`` and ``bench.md`` into ``opts.out``."""
    from avood_core.train.loops import run_threads
    from avood_core.util.io import atomic_write_json, atomic_write_text
    from avood_core.util.paths import check_output_dir

    bad = [d for d in opts.datasets if d not in DATASETS]
    if bad or not opts.datasets:
        raise AvoodError(f"--dataset: unknown {bad or 'empty list'}; use some of {', '.join(DATASETS)}")
    if not opts.epochs_scale > 0:
        raise AvoodError(f"--epochs-scale must be positive, got {opts.epochs_scale}")
    if opts.stages not in ("2", "both"):
        raise AvoodError(f"--stages '{opts.stages}': use 2 (stage 2 only) or both")
    if opts.breakdown_steps < 0:
        raise AvoodError(f"--breakdown-steps must be 0 (no breakdown) or more, got {opts.breakdown_steps}")
    if opts.breakdown_stage is not None and opts.breakdown_stage not in FIT_ORDER:
        raise AvoodError(f"--breakdown-stage '{opts.breakdown_stage}': use one of {', '.join(FIT_ORDER)}")
    check_output_dir(opts.out, "-o/--output-dir")  # before any tree is written or anything trains
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # effective only if torch has not started OpenMP yet
    out = Path(opts.out)

    def write(result: dict[str, Any]) -> None:
        atomic_write_json(out / "bench.json", result)
        atomic_write_text(out / "bench.md", render_markdown(result))

    with torch_threads(opts.threads) if opts.threads else run_threads():  # the caller's count restored afterwards
        out.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {
            "avood_bench": 1, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv) if sys.argv and "avood" in Path(sys.argv[0]).name else None,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
            "machine": machine_info(opts.device), "datasets": {},
        }
        for dataset in opts.datasets:
            result["datasets"][dataset] = bench_dataset(dataset, opts, log)
            write(result)  # partial results survive a later failure
        result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        write(result)
        return result


