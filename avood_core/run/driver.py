"""Run a resolved config: build the task, fit the pipeline, evaluate, write a fresh run folder."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from avood_core import __version__
from avood_core.config import RunConfig, resolve, to_toml
from avood_core.errors import AvoodError
from avood_core.eval.bootstrap import bootstrap_intervals
from avood_core.util.io import atomic_write, atomic_write_json, atomic_write_text
from avood_core.util.json_read import read_json
from avood_core.limits import SEED_MAX, SEED_MIN
from avood_core.util.paths import check_output_dir, contained_tree
from avood_core.registry import KINDS, Registry, get_registry
from avood_core.run.fitting import (  # noqa: F401  (also imported from here by ablate, bench, sweep, tests)
    FitOptions, RunTasks, apply_selections, build_pipeline, build_task, build_tasks, fit_hashes, fit_stage,
    reuse_fitted, stage1_decision,
)


OUTPUT_OPTION = "-o/--output-dir"  # where a run's config.output_dir comes from on the command line


@dataclass
class RunResult:
    run_dir: Path
    results: dict


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder ``root/<UTC time>-<label>``; never reuses an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    check_output_dir(root, OUTPUT_OPTION)
    for i in range(1000):
        candidate = root / (f"{stamp}-{label}" + (f"-{i}" if i else ""))
        try:
            root.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise AvoodError(f"{OUTPUT_OPTION} '{root}': cannot create '{candidate}' ({exc.strerror or exc}); "
                             f"pass a writable folder") from None
    raise AvoodError(f"could not create a fresh run folder under '{root}'; clean it up")


def run_label(config: RunConfig) -> str:
    """``<generator>-<detector>-<seen>-<unseen>-s<seed>``: the run folder's label."""
    return "-".join([*(config.component(kind).name for kind in KINDS), f"s{config.seed}"])


def execute(
    config: RunConfig,
    registry: Registry | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    resume: Path | None = None,
    report: bool = True,
    tsne_cap: int = 1000,
    run_dir: Path | None = None,
    allow_changes: bool = False,
    on_run_dir: Callable[[Path], None] = lambda path: None,
    shared: Path | None = None,
    recipe: dict | None = None,
) -> RunResult:
    """Resolve, fit, evaluate; write config, components, outputs and results into a run folder.

    ``report`` also writes ``report.md``/``report.html`` with figures (t-SNE on at most
    ``tsne_cap`` test clips; 0 skips it). ``run_dir`` forces the folder (must not exist yet).
    ``on_run_dir(folder)`` is called once the folder is known (the CLI names it on Ctrl-C).

    On a benchmark tree, stage 1 (fit on ``training``, select on ``val``) runs first in
    ``<run>/stage1``; its selections fix the stage-2 params; stage 2 refits on ``train_val``
    and reports on ``test``. With ``resume`` the run continues in that folder: components
    whose saved fit hash matches are reused, the others are refitted (and reported). A config
    that differs from the folder's ``config.toml`` is refused unless ``allow_changes``, which
    writes a fresh run folder instead and copies the matching components into it. Each folder
    written (and the resumed one) is locked for the whole time (:func:`avood_core.run.folder.lock`).
    ``shared``: components are also taken from and published to that folder (sweeps).
    ``recipe``: how the config was built (:meth:`avood_core.recipe.Recipe.as_dict`), kept in ``results.json``.
    """
    import contextlib

    from avood_core.run.folder import WRITES, check_resume, describe_differences, lock
    from avood_core.run.tracking import RunSession, make_loggers
    from avood_core.train.loops import resolve_device, run_threads

    registry = registry or get_registry()
    config = resolve(config, registry)
    loggers = make_loggers(config.logging, registry, echo)  # a missing extra or store fails here, before any work
    if resume is None and run_dir is None:
        check_output_dir(config.output_dir, OUTPUT_OPTION)  # before the data is read and anything trains
    with contextlib.ExitStack() as held, run_threads():
        source = None
        if resume is not None:
            source = Path(resume)
            if not source.is_dir():
                raise AvoodError(f"--resume '{source}' is not a folder; pass a run folder written by 'avood run'")
            held.enter_context(lock(source, "run --resume"))
            diffs = check_resume(source, config, registry, allow_changes)
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
        contained_tree(run_dir, WRITES, "the run's files")  # a resumed or forced folder's links stay unfollowed
        on_run_dir(run_dir)
        if source is not None and run_dir != source:
            echo(f"resume: the config differs from '{source}' ({describe_differences(diffs)}); --allow-changes: "
                 f"writing the new run folder '{run_dir}' and leaving '{source}' as it is")
        if run_dir != source:  # a resume in place keeps its config.toml (equal but for output_dir and jobs)
            atomic_write_text(run_dir / "config.toml", to_toml(config.model_dump(mode="json")))
        session = held.enter_context(RunSession(loggers))
        session.start(run_dir, config.model_dump(mode="json"))
        protocol: dict = {}
        fit_opts = FitOptions(registry, device, echo, quiet, loggers, shared)
        run_stage1, why = stage1_decision(config, stage1_task, registry)
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
            "avood_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "components": pipeline.names,
            "seed": config.seed,
            **({"recipe": recipe} if recipe is not None else {}),
            "device": str(device),
            "python": platform.python_version(),
            "task": task.summary(),
            "splits": {"fit": "train", "select": "val" if task.val is not None else None, "report": "test"},
            **({"protocol": protocol} if protocol else {}),
            "reused_components": reused,
            **({"resumed_from": str(source)} if source is not None and source != run_dir else {}),
            "metrics": evaluation.metrics,
            "metrics_ci": metrics_ci,
            "timings_s": {**pipeline.timings, "bootstrap": boot_seconds, "total": time.perf_counter() - started},
            "jobs": config.jobs,
            "workers": pipeline.worker_info,
        }
        save_outputs(run_dir / "predictions.npz", evaluation.outputs)
        atomic_write_json(run_dir / "results.json", results)
        if report:
            from avood_core.eval.report import save_tsne, write_report

            if tsne_cap > 0:
                save_tsne(run_dir, task.test.x, evaluation.outputs, cap=tsne_cap, seed=config.seed)
            write_report(run_dir)
        session.end(results)
        return RunResult(run_dir, results)


def execute_seeds(config: RunConfig, seeds: list[int], registry: Registry | None = None, quiet: bool = False,
                  echo: Callable[[str], None] = print, report: bool = True, tsne_cap: int = 1000,
                  on_run_dir: Callable[[Path], None] = lambda path: None, engine: str = "local",
                  max_parallel: int = 1, address: str | None = None, recipe: dict | None = None) -> RunResult:
    """One run per seed in ``<parent>/seed-<n>/``; the parent holds mean ± std over seeds.

    The seeds run as the jobs of a sweep (avood_core.sweep.core): one after another in this process
    by default, or ``max_parallel`` at once on a local process pool or on Ray (``engine``). The
    parent's ``results.json`` is the first seed's plus a ``"seeds"`` section
    (:func:`avood_core.eval.report.seeds_section`) and ``recipe``; its figures show the first seed.
    """
    import shutil

    from avood_core.eval.report import seeds_section, write_report
    from avood_core.run.folder import lock
    from avood_core.sweep.core import run_jobs, seed_jobs

    if len(set(seeds)) != len(seeds) or not seeds:
        raise AvoodError(f"--seeds {seeds}: give distinct integers, e.g. --seeds 0,1,2")
    bad = [s for s in seeds if not SEED_MIN <= s <= SEED_MAX]
    if bad:
        raise AvoodError(f"--seeds: {bad[0]} is not a 64-bit integer ({SEED_MIN}..{SEED_MAX}); pick smaller seeds")
    config = resolve(config, registry)
    label = run_label(config)[: -len(f"s{config.seed}")] + f"seeds{'-'.join(map(str, seeds))}"
    parent = new_run_dir(Path(config.output_dir), label)
    with lock(parent, "run --seeds"):
        on_run_dir(parent)
        done = run_jobs(seed_jobs(config, seeds, parent, None, report, tsne_cap), engine, max_parallel, address,
                        quiet, echo)
        failed = [(s, done[f"seed-{s}"]) for s in seeds if done[f"seed-{s}"].get("status") != "done"]
        if failed:
            seed, info = failed[0]
            raise AvoodError(f"seed {seed} failed: {info.get('error')} (log: {parent / f'seed-{seed}' / 'log.txt'})")
        runs = [RunResult(parent / f"seed-{s}", load_results(parent / f"seed-{s}")) for s in seeds]
        per_seed = [{"seed": s, "metrics": r.results["metrics"], "timings_s": r.results["timings_s"],
                     "run_dir": r.run_dir.name} for s, r in zip(seeds, runs)]
        first = runs[0].run_dir
        for name in ("config.toml", "predictions.npz", "tsne.npz"):
            if (first / name).exists():
                atomic_write(parent / name, lambda tmp, src=first / name: shutil.copyfile(src, tmp))
        results = {**runs[0].results, **({"recipe": recipe} if recipe is not None else {}),
                   "seeds": seeds_section(per_seed)}
        atomic_write_json(parent / "results.json", results)
        if report:
            write_report(parent)
    return RunResult(parent, results)


def save_outputs(path: Path, outputs: dict) -> None:
    """Per-sample test outputs (numpy arrays, no pickles) for reports and threshold sweeps."""
    import numpy as np

    from avood_core.util.io import atomic_write

    arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


def format_summary(results: dict) -> str:
    """The headline numbers as a short plain-text table: one run with its 95 % bootstrap intervals
    (``HM 30.31 [27.9, 32.6]``), several seeds as mean ± std [95 % t interval of the mean] (n)."""
    from avood_core.eval.bootstrap import format_metric
    from avood_core.eval.report import seed_stats
    from avood_core.eval.stats import format_interval

    if "seeds" in results:
        sec = results["seeds"]
        head = "\n".join(f"  {name:11s}{format_interval(seed_stats(sec, k))}"
                         for name, k in (("S", "S"), ("U", "U"), ("HM", "HM"), ("ZSL", "ZSL"), ("gate AUROC", "gate.AUROC"))
                         if seed_stats(sec, k)["mean"] is not None)
        base = sec["mean"]["baseline_no_gate"]
        what = "mean ± std [95 % t interval of the mean] (n seeds)" if len(sec["seeds"]) > 1 else "one seed (n = 1)"
        return (f"over seeds {sec['seeds']}: {what}\n{head}\n"
                f"unseen clf alone, no gate (mean): S {base['S']:.2f}  U {base['U']:.2f}  HM {base['HM']:.2f}")
    m = results["metrics"]
    ci = results.get("metrics_ci") or {}
    b = m["baseline_no_gate"]
    g = m["gate"]
    cell = lambda value, key=None: format_metric(value, ci.get(key) if key else None)  # noqa: E731
    rows = [
        ("AV-OOD (gated)", *(cell(m[k], k) for k in ("S", "U", "HM"))),
        ("unseen clf alone, no gate", *(cell(b[k]) for k in ("S", "U", "HM"))),
    ]
    width = max(8, *(len(c) + 2 for r in rows for c in r[1:]))
    out = [f"{'':28s}" + "".join(f"{k:>{width}s}" for k in ("S", "U", "HM"))]
    out += [f"{name:28s}" + "".join(f"{c:>{width}s}" for c in cells) for name, *cells in rows]
    out.append(f"ZSL {cell(m['ZSL'], 'ZSL')}   seen clf acc {m['seen_classifier_acc']:.2f}   "
               f"gate AUROC {cell(g['AUROC'], 'AUROC')}  TPR {g['TPR']:.2f}  FPR {g['FPR']:.2f}  "
               f"threshold {g['threshold']:.4g}")
    if ci:
        out.append(f"[ ]: {100 * ci['level']:.0f} % {ci['method']}, {ci['resamples']} resamples, seed {ci['seed']}")
    return "\n".join(out)


def load_results(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise AvoodError(f"'{path}' not found; pass a run folder written by 'avood run'")
    return read_json(path, fix=f"rerun that seed: avood run --resume {path.parent}")
