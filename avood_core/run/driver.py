"""Run a resolved config: build the task, fit the pipeline, evaluate, write a fresh run folder."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from avood_core import __version__
from avood_core.config import RunConfig, resolve, to_toml
from avood_core.errors import AvoodError, ConfigError
from avood_core.util.io import atomic_write, atomic_write_json, atomic_write_text
from avood_core.limits import SEED_MAX, SEED_MIN
from avood_core.util.paths import check_output_dir
from avood_core.registry import KINDS, Registry, get_registry


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


def build_tasks(config: RunConfig) -> tuple[object | None, object]:
    """``(stage-1 task or None, reported task)`` for ``config.data``.

    The embedded synthetic task is one stage (its ``val`` is a held-out part of the training
    clips). A benchmark tree gives the protocol's two stages: stage 1 fits on ``training``
    and selects on ``val``; stage 2 refits on ``train_val`` and reports on ``test``.
    """
    data = config.data
    if data.source == "synthetic":
        from avood_core.data.embedded import make_ucf_task

        seed = config.seed if data.task_seed is None else data.task_seed
        return None, make_ucf_task(seed, data.scale, data.seen_acc, data.zsl_acc)
    from avood_core.data import load_benchmark

    if data.path is None or data.dataset is None:
        raise AvoodError("data.source = 'benchmark' needs data.path and data.dataset (e.g. --data PATH --dataset ucf)")
    tasks = load_benchmark(data.path, data.dataset, features=data.features, split=data.split, source=data.format,
                           nonfinite=data.nonfinite, compat_positional_text=data.compat_positional_text)
    stage1 = tasks.stage1
    stage1.val = stage1.test  # the protocol's selection split: stage-1 val (seen + unseen val classes)
    stage1.meta["load_info"] = tasks.info
    return (stage1 if data.stage1 else None), tasks.stage2


def build_task(config: RunConfig):
    """The task whose test split a run reports on."""
    return build_tasks(config)[1]


def build_pipeline(config: RunConfig, registry: Registry | None = None):
    """Instantiate the four components of a resolved config."""
    from avood_core.pipeline import Pipeline

    registry = registry or get_registry()
    parts = {kind: registry.component_class(kind, config.component(kind).name)(config.component(kind).params) for kind in KINDS}
    return Pipeline(**parts, syn_num=config.syn_num, names={k: config.component(k).name for k in KINDS})


def fit_hashes(config: RunConfig, pipeline, stage: str = "") -> dict[str, str]:
    """Per-component hash of everything its fit depends on (for ``--resume``).

    A component's hash covers the data, the stage, the seed, its own name and params, the
    generator's hash when it trains on synthetic features, and the hashes of the components
    it declares in ``depends_on`` (detectors that use the fitted classifiers).
    """
    from avood_core.pipeline.store import config_hash

    base = {"data": config.data.model_dump(mode="json"), "seed": config.seed, "syn_num": config.syn_num}
    if stage:
        base["stage"] = stage
    spec = {k: config.component(k).model_dump(mode="json") for k in KINDS}
    hashes = {"generator": config_hash({**base, "generator": spec["generator"]})}
    for kind in ("seen", "unseen", "detector"):
        comp = pipeline.components[kind]
        deps = {"generator": hashes["generator"]} if kind == "detector" or comp.uses_synthetic else {}
        deps.update({d: hashes[d] for d in getattr(comp, "depends_on", ())})
        hashes[kind] = config_hash({**base, kind: spec[kind], "deps": deps})
    return hashes


def reuse_fitted(run_dir: Path, pipeline, hashes: dict[str, str], registry, echo, into: Path | None = None) -> set[str]:
    """Load the components of ``run_dir`` whose saved hash matches; report every mismatch.

    ``into``: another run folder (``--resume --allow-changes``) that receives a copy of each
    reused component; ``run_dir`` is only read then.
    """
    from avood_core.pipeline.store import copy_component, load_component, read_config
    from avood_core.errors import CheckpointError

    reused = set()
    for kind in KINDS:
        folder = run_dir / "components" / kind
        if not folder.exists():
            echo(f"resume: {kind} was not saved yet; fitting it")
            continue
        try:
            saved = read_config(folder)
        except CheckpointError as exc:
            echo(f"resume: {kind}: {exc}; refitting")
            continue
        if saved.get("fit_hash") != hashes[kind]:
            echo(f"resume: {kind} '{saved.get('name')}' was fitted with another config "
                 f"(hash {saved.get('fit_hash')} != {hashes[kind]}); refitting, not reusing it")
            continue
        try:
            setattr(pipeline, kind, load_component(folder, registry, kind=kind))
        except CheckpointError as exc:
            echo(f"resume: {kind}: {exc}; refitting")
            continue
        if into is not None:
            copy_component(folder, into / "components" / kind)
        reused.add(kind)
        echo(f"resume: reusing fitted {kind} '{saved['name']}' (config hash {hashes[kind]})")
    return reused


def fit_stage(config: RunConfig, task, stage_dir: Path, registry: Registry, device, quiet: bool,
              echo: Callable[[str], None], resume: Path | None, stage: str = "", loggers: list | None = None,
              shared: Path | None = None):
    """Fit (or reuse) the four components on ``task``, saving each into ``stage_dir`` as it is fitted.

    ``resume``: the stage folder whose matching components are reused (``stage_dir`` itself, or
    the stage folder of the run a ``--resume --allow-changes`` started from). Each fitted
    component's curves go to ``stage_dir/metrics/<kind>.jsonl`` and to ``loggers``. ``shared``: a
    folder of components shared with other runs (avood_core.run.cache).
    """
    from avood_core.run import cache as component_cache
    from avood_core.callbacks import CallbackList, MetricsWriter
    from avood_core.pipeline.store import save_component
    from avood_core.util.progress import progress_factory

    pipeline = build_pipeline(config, registry)
    hashes = fit_hashes(config, pipeline, stage)
    reused = set() if resume is None else reuse_fitted(resume, pipeline, hashes, registry, echo,
                                                        into=None if resume == stage_dir else stage_dir)
    if shared is not None:
        reused |= component_cache.reuse_shared(shared, stage_dir, pipeline, hashes, registry, echo, reused)
    providers = {k: registry.entry(k, config.component(k).name).provider for k in KINDS}

    def save(kind: str) -> None:
        folder = save_component(pipeline.components[kind], stage_dir / "components" / kind,
                                config.component(kind).name, providers[kind], hashes[kind])
        if shared is not None:
            component_cache.publish(folder, shared, kind, hashes[kind])

    callbacks = CallbackList([MetricsWriter(stage_dir / "metrics", stage), *(loggers or [])],
                             every_n_steps=config.logging.every_n_steps)
    pipeline.fit(task, device=device, seed=config.seed, progress=progress_factory(quiet),
                 log=(lambda m: None) if quiet else echo, skip=frozenset(reused), on_fitted=save,
                 jobs=config.jobs, callbacks=callbacks, stage_name=stage)
    pipeline.save_meta(stage_dir, hashes)
    return pipeline, sorted(reused)


def stage1_decision(config: RunConfig, stage1_task, registry: Registry) -> tuple[bool, str]:
    """Whether stage 1 of the benchmark protocol runs for ``config``, and why (one line).

    Stage 1 exists only to select params on the val split for stage 2; it runs only when some
    component's :meth:`~avood_core.protocols.Component.selects_on_val` is True. Otherwise its
    fit would change nothing in stage 2, and skipping it halves the run.
    """
    if stage1_task is None:
        if config.data.source == "benchmark":
            return False, "stage 1 off (data.stage1 = false): stage 2 fits with the configured params"
        return False, "one stage: the embedded task has no stage-1/stage-2 protocol"
    pipeline = build_pipeline(config, registry)
    selecting = [f"{kind} '{config.component(kind).name}'" for kind, comp in pipeline.components.items()
                 if comp.selects_on_val()]
    if selecting:
        return True, f"stage 1 runs: {', '.join(selecting)} select(s) params on the val split for stage 2"
    return False, ("stage 1 skipped: no component selects anything on the val split (selects_on_val() is False "
                   "for all four), so it could not change stage 2")


def apply_selections(config: RunConfig, pipeline) -> tuple[RunConfig, dict]:
    """Stage-2 config: each component's params updated with what it selected on stage-1 val.

    The updated params are validated with the component's own model: a selection its params
    reject is a :class:`ConfigError` naming the component, the value and the fix.
    """
    from pydantic import ValidationError

    from avood_core.config import format_validation_error

    selected = {k: dict(c.selected_params()) for k, c in pipeline.components.items()}
    selected = {k: v for k, v in selected.items() if v}
    update = {}
    for kind, values in selected.items():
        spec = config.component(kind)
        try:
            params = type(pipeline.components[kind]).Params.model_validate({**spec.params, **values})
        except ValidationError as exc:
            raise ConfigError(
                f"{kind} '{spec.name}' selected {values} on the stage-1 val split, which its params reject "
                f"({format_validation_error(exc, f'{kind}.params')}); its selected_params() must return valid params"
            ) from None
        update[kind] = spec.model_copy(update={"params": params.model_dump(mode="json")})
    return config.model_copy(update=update), selected


def run_label(config: RunConfig) -> str:
    return f"{config.generator.name}-{config.detector.name}-{config.seen.name}-{config.unseen.name}-s{config.seed}"


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
    """
    import contextlib

    from avood_core.run.folder import check_resume, describe_differences, lock
    from avood_core.run.tracking import RunSession, make_loggers
    from avood_core.train.loops import resolve_device, run_threads

    registry = registry or get_registry()
    config = resolve(config, registry)
    loggers = make_loggers(config.logging, registry)  # a missing extra fails here, before any work
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
        on_run_dir(run_dir)
        if source is not None and run_dir != source:
            echo(f"resume: the config differs from '{source}' ({describe_differences(diffs)}); --allow-changes: "
                 f"writing the new run folder '{run_dir}' and leaving '{source}' as it is")
        if run_dir != source:  # a resume in place keeps its config.toml (equal but for output_dir and jobs)
            atomic_write_text(run_dir / "config.toml", to_toml(config.model_dump(mode="json")))
        session = held.enter_context(RunSession(loggers))
        session.start(run_dir, config.model_dump(mode="json"))
        protocol: dict = {}
        run_stage1, why = stage1_decision(config, stage1_task, registry)
        if config.data.source == "benchmark":
            echo(why)
            protocol["stage1"] = {"ran": run_stage1, "reason": why}
        if run_stage1:
            echo("stage 1: fit on 'training', select on 'val'")
            pipe1, reused1 = fit_stage(config, stage1_task, run_dir / "stage1", registry, device, quiet, echo,
                                       None if source is None else source / "stage1", "stage1", loggers, shared)
            config, selected = apply_selections(config, pipe1)
            protocol["stage1"].update({"fit": "training (stage_1_train)",
                                       "select": "val (stage_1_val_seen + stage_1_val_unseen)",
                                       "metrics_on_val": pipe1.evaluate(stage1_task.test), "selected": selected,
                                       "reused_components": reused1})
            atomic_write_text(run_dir / "config.stage2.toml", to_toml(config.model_dump(mode="json")))
            echo("stage 2: refit on 'train_val', report on 'test'")
        if stage1_task is not None:
            protocol["stage2"] = {"fit": "train_val (stage_2_train)", "report": "test (stage_2_test_seen + stage_2_test_unseen)"}
            protocol["load_info"] = stage1_task.meta.get("load_info")
        pipeline, reused = fit_stage(config, task, run_dir, registry, device, quiet, echo, source,
                                     "stage2" if stage1_task is not None else "", loggers, shared)
        scores = pipeline.evaluate(task.test)
        results = {
            "avood_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "components": pipeline.names,
            "seed": config.seed,
            "device": str(device),
            "python": platform.python_version(),
            "task": task.summary(),
            "splits": {"fit": "train", "select": "val" if task.val is not None else None, "report": "test"},
            **({"protocol": protocol} if protocol else {}),
            "reused_components": reused,
            **({"resumed_from": str(source)} if source is not None and source != run_dir else {}),
            "metrics": scores,
            "timings_s": {**pipeline.timings, "total": time.perf_counter() - started},
            "jobs": config.jobs,
            "workers": pipeline.worker_info,
        }
        save_outputs(run_dir / "predictions.npz", pipeline.last_outputs)
        atomic_write_json(run_dir / "results.json", results)
        if report:
            from avood_core.eval.report import save_tsne, write_report

            if tsne_cap > 0:
                save_tsne(run_dir, task.test.x, pipeline.last_outputs, cap=tsne_cap, seed=config.seed)
            write_report(run_dir)
        session.end(results)
        return RunResult(run_dir, results)


def execute_seeds(config: RunConfig, seeds: list[int], registry: Registry | None = None, quiet: bool = False,
                  echo: Callable[[str], None] = print, report: bool = True, tsne_cap: int = 1000,
                  on_run_dir: Callable[[Path], None] = lambda path: None, engine: str = "local",
                  max_parallel: int = 1, address: str | None = None) -> RunResult:
    """One run per seed in ``<parent>/seed-<n>/``; the parent holds mean ± std over seeds.

    The seeds run as the jobs of a sweep (avood_core.sweep.core): one after another in this process
    by default, or ``max_parallel`` at once on a local process pool or on Ray (``engine``). The
    parent's ``results.json`` is the first seed's plus a ``"seeds"`` section
    (:func:`avood_core.eval.report.seeds_section`); its figures show the first seed.
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
        results = {**runs[0].results, "seeds": seeds_section(per_seed)}
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
    """The headline numbers as a short plain-text table (mean ± std over seeds when present)."""
    if "seeds" in results:
        mean, std = results["seeds"]["mean"], results["seeds"]["std"]
        keys = ("S", "U", "HM", "ZSL")
        head = "  ".join(f"{k} {mean[k]:.2f} ± {std[k]:.2f}" for k in keys)
        base = mean["baseline_no_gate"]
        return (f"mean ± std over seeds {results['seeds']['seeds']}: {head}\n"
                f"unseen clf alone, no gate: S {base['S']:.2f}  U {base['U']:.2f}  HM {base['HM']:.2f}")
    m = results["metrics"]
    b = m["baseline_no_gate"]
    g = m["gate"]
    rows = [
        ("AV-OOD (gated)", m["S"], m["U"], m["HM"]),
        ("unseen clf alone, no gate", b["S"], b["U"], b["HM"]),
    ]
    out = [f"{'':28s}{'S':>8s}{'U':>8s}{'HM':>8s}"]
    out += [f"{name:28s}{s:8.2f}{u:8.2f}{hm:8.2f}" for name, s, u, hm in rows]
    out.append(f"ZSL {m['ZSL']:.2f}   seen clf acc {m['seen_classifier_acc']:.2f}   "
               f"gate AUROC {g['AUROC']:.2f}  TPR {g['TPR']:.2f}  FPR {g['FPR']:.2f}  threshold {g['threshold']:.4g}")
    return "\n".join(out)


def load_results(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise AvoodError(f"'{path}' not found; pass a run folder written by 'avood run'")
    return json.loads(path.read_text())
