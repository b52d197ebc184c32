"""Run a config: build the task, fit the pipeline, evaluate, write a fresh run folder; a list of
runs (``--seeds``, a sweep's trials) goes through the executor (:mod:`avood_core.executor`)."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from avood_core import __version__
from avood_core.config import RunConfig, resolve, to_toml, validate_config
from avood_core.errors import AvoodError
from avood_core.eval.stats import bootstrap_intervals
from avood_core.registry import get_registry
from avood_core.run.fitting import FitOptions, apply_selections, build_tasks, fit_stage, stage1_decision
from avood_core.run.files import read_results
from avood_core.run.folder import OUTPUT_OPTION, new_run_dir, run_label, save_outputs
from avood_core.util.io import atomic_write, atomic_write_json, atomic_write_text
from avood_core.util.paths import check_output_dir, contained


@dataclass
class RunResult:
    run_dir: Path
    results: dict


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out and recorded (the config says what it computes)."""

    report: bool = True  # also report.md/report.html with figures (t-SNE on at most tsne_cap test clips; 0: none)
    tsne_cap: int = 1000
    quiet: bool = False  # no progress bars or per-component log lines
    echo: Callable[[str], None] = print
    resume: Path | None = None  # continue in that folder: components whose fit hash matches are reused
    allow_changes: bool = False  # with resume and a changed config: a fresh folder with the matching components
    run_dir: Path | None = None  # write into this folder (a sweep trial's); it must not hold a run yet
    shared: Path | None = None  # components also taken from and published to it (a sweep's, fitting.publish)
    recipe: dict | None = None  # how the config was built (Recipe.as_dict), kept in results.json
    on_run_dir: Callable[[Path], None] = field(default=lambda path: None, compare=False)  # the folder is locked


def execute(config: RunConfig, options: RunOptions = RunOptions()) -> RunResult:
    """Resolve, fit, evaluate; write config, components, outputs and results into a locked run folder.
    On a benchmark tree stage 1 (fit on ``training``, select on ``val``) runs in ``<run>/stage1`` and
    fixes the stage-2 params; stage 2 refits on ``train_val`` and reports on ``test`` (paper §4.1)."""
    import contextlib

    from avood_core.run.folder import WRITES, check_resume, lock
    from avood_core.run.tracking import make_loggers, run_session
    from avood_core.train.loops import resolve_device, run_threads

    registry = get_registry()
    echo, quiet, run_dir = options.echo, options.quiet, options.run_dir
    config = resolve(config, registry)
    loggers = make_loggers(config.logging, registry, echo)  # a missing extra or store fails here, before any work
    if options.resume is None and run_dir is None:
        check_output_dir(config.output_dir, OUTPUT_OPTION)  # before the data is read and anything trains
    with contextlib.ExitStack() as held, run_threads():
        source = None
        if options.resume is not None:
            source = Path(options.resume)
            if not source.is_dir():
                raise AvoodError(f"--resume '{source}' is not a folder; pass a run folder written by 'avood run'")
            held.enter_context(lock(source, "run --resume"))
            diffs = check_resume(source, config, registry, options.allow_changes)
            run_dir = None if diffs else source
        device = resolve_device(config.device)
        started = time.perf_counter()
        stage1_task, task = build_tasks(config)
        if run_dir is None:
            run_dir = new_run_dir(Path(config.output_dir), run_label(config))
        elif run_dir != source:  # a forced folder: new, or one a sweep trial made for its trial.json / log.txt
            if (run_dir / "config.toml").exists():
                raise AvoodError(f"'{run_dir}' already holds a run; continue it with --resume '{run_dir}'")
            run_dir.mkdir(parents=True, exist_ok=True)
        if run_dir != source:
            held.enter_context(lock(run_dir, "run"))
        for rel in WRITES:  # a resumed or forced folder's links stay unfollowed
            contained(run_dir, rel, "the run's files")
        options.on_run_dir(run_dir)
        if source is not None and run_dir != source:
            echo(f"resume: the config differs from '{source}' ({diffs}); --allow-changes: "
                 f"writing the new run folder '{run_dir}' and leaving '{source}' as it is")
        if run_dir != source:  # a resume in place keeps its config.toml (equal but for output_dir and jobs)
            atomic_write_text(run_dir / "config.toml", to_toml(config.model_dump(mode="json")))
        end_session = held.enter_context(run_session(loggers, run_dir, config.model_dump(mode="json")))
        protocol: dict = {}
        fit_opts = FitOptions(registry, device, echo, quiet, loggers, options.shared)
        run_stage1, why = stage1_decision(config, stage1_task is not None, registry)
        if config.data.source == "benchmark":
            echo(why)
            protocol["stage1"] = {"ran": run_stage1, "reason": why}
        if run_stage1:
            echo("stage 1: fit on 'training', select on 'val'")
            pipe1, reused1 = fit_stage(config, stage1_task, run_dir / "stage1", fit_opts,
                                       None if source is None else source / "stage1", "stage1")
            config, selected = apply_selections(config, pipe1)
            protocol["stage1"].update({"fit": "training (stage_1_train)",
                                       "select": "val (stage_1_val_seen + stage_1_val_unseen)",
                                       "metrics_on_val": pipe1.evaluate(stage1_task.test).metrics, "selected": selected,
                                       "reused_components": reused1})
            atomic_write_text(run_dir / "config.stage2.toml", to_toml(config.model_dump(mode="json")))
            echo("stage 2: refit on 'train_val', report on 'test'")
        if stage1_task is not None:
            protocol["stage2"] = {"fit": "train_val (stage_2_train)", "report": "test (stage_2_test_seen + stage_2_test_unseen)"}
            protocol["load_info"] = stage1_task.meta.get("load_info")
        pipeline, reused = fit_stage(config, task, run_dir, fit_opts, source, "stage2" if stage1_task is not None else "")
        evaluation = pipeline.evaluate(task.test)
        boot_start = time.perf_counter()
        metrics_ci = bootstrap_intervals(evaluation.outputs, config.seed)
        boot_seconds = time.perf_counter() - boot_start
        results = {
            "avood_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "components": pipeline.names, "seed": config.seed,
            **({"recipe": options.recipe} if options.recipe is not None else {}),
            "device": str(device), "python": platform.python_version(), "task": task.summary(),
            "splits": {"fit": "train", "select": "val" if task.val is not None else None, "report": "test"},
            **({"protocol": protocol} if protocol else {}),
            "reused_components": reused,
            **({"resumed_from": str(source)} if source is not None and source != run_dir else {}),
            "metrics": evaluation.metrics, "metrics_ci": metrics_ci,
            "timings_s": {**pipeline.timings, "bootstrap": boot_seconds, "total": time.perf_counter() - started},
            "jobs": config.jobs, "workers": pipeline.worker_info,
        }
        save_outputs(run_dir / "predictions.npz", evaluation.outputs)
        atomic_write_json(run_dir / "results.json", results)
        if options.report:
            from avood_core.eval.report import save_tsne, write_report

            if options.tsne_cap > 0:
                save_tsne(run_dir, task.test.x, evaluation.outputs, cap=options.tsne_cap, seed=config.seed)
            write_report(run_dir)
        end_session(results)
        return RunResult(run_dir, results)


def execute_seeds(config: RunConfig, seeds: list[int], options: RunOptions = RunOptions(), engine: str = "local",
                  max_parallel: int = 1, address: str | None = None) -> RunResult:
    """One run per seed in ``<parent>/seed-<n>/`` by the executor; the parent's ``results.json`` is the
    first seed's plus a ``"seeds"`` section, its figures the first seed's."""
    import shutil

    from avood_core.eval.report import seeds_section, write_report
    from avood_core.executor.jobs import Job, check_seeds, run_seeds
    from avood_core.pipeline.store import config_hash
    from avood_core.run.folder import lock

    check_seeds(seeds)
    config = resolve(config)
    label = run_label(config)[: -len(f"s{config.seed}")] + f"seeds{'-'.join(map(str, seeds))}"
    parent = new_run_dir(Path(config.output_dir), label)
    with lock(parent, "run --seeds"):
        options.on_run_dir(parent)

        def job(seed: int) -> Job:
            cfg = config.model_copy(update={"seed": seed}).model_dump(mode="json")
            payload = trial_payload(cfg, parent / f"seed-{seed}", config_hash(cfg), None, None, options.report,
                                    options.tsne_cap if seed == seeds[0] else 0)
            return Job(f"seed-{seed}", run_payload, payload, label=f"seed {seed}")

        run_seeds(parent, seeds, job, engine, max_parallel, address, options.quiet, options.echo)
        runs = [RunResult(parent / f"seed-{s}", read_results(parent / f"seed-{s}")) for s in seeds]
        per_seed = [{"seed": s, "metrics": r.results["metrics"], "timings_s": r.results["timings_s"],
                     "run_dir": r.run_dir.name} for s, r in zip(seeds, runs)]
        first = runs[0].run_dir
        for name in ("config.toml", "predictions.npz", "tsne.npz"):
            if (first / name).exists():
                atomic_write(parent / name, lambda tmp, src=first / name: shutil.copyfile(src, tmp))
        results = {**runs[0].results, **({"recipe": options.recipe} if options.recipe is not None else {}),
                   "seeds": seeds_section(per_seed)}
        atomic_write_json(parent / "results.json", results)
        if options.report:
            write_report(parent)
    return RunResult(parent, results)


def trial_payload(config_json: dict, run_dir: Path, trial_hash: str, threads: int | None,
                  shared: Path | None = None, report: bool = False, tsne_cap: int = 0) -> dict:
    """What a worker gets for one run of a list (JSON-able; never a fitted object)."""
    return {"config": config_json, "run_dir": str(run_dir), "hash": trial_hash, "threads": threads,
            "shared": None if shared is None else str(shared), "report": report, "tsne_cap": tsne_cap}


def run_payload(payload: dict, echo: Callable[[str], None]) -> dict:
    """The executor's job for one run of a list: :func:`execute`, resumed when an earlier attempt began it."""
    from avood_core.run.tracking import trial_context

    run_dir = Path(payload["run_dir"])
    config = validate_config(payload["config"], f"trial {run_dir.name}")
    again = (run_dir / "config.toml").is_file()
    options = RunOptions(report=payload.get("report", False), tsne_cap=payload.get("tsne_cap", 0), echo=echo,
                         resume=run_dir if again else None, run_dir=None if again else run_dir,
                         shared=Path(payload["shared"]) if payload.get("shared") else None)
    with trial_context(payload.get("tracking")):  # the sweep's loggers' context (e.g. MLflow's parent run)
        res = execute(config, options).results
    stage1 = res.get("protocol", {}).get("stage1", {}).get("reused_components")
    return {"metrics": res["metrics"], "reused": {"stage2" if stage1 is not None else "run": res["reused_components"],
                                                  **({"stage1": stage1} if stage1 is not None else {})}}
