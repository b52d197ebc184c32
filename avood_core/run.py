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
from avood_core.io import atomic_write_json, atomic_write_text
from avood_core.registry import KINDS, Registry, get_registry


@dataclass
class RunResult:
    run_dir: Path
    results: dict


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder ``root/<UTC time>-<label>``; never reuses an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        candidate = root / (f"{stamp}-{label}" + (f"-{i}" if i else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise AvoodError(f"could not create a fresh run folder under '{root}'; clean it up")


def build_tasks(config: RunConfig) -> tuple[object | None, object]:
    """``(stage-1 task or None, reported task)`` for ``config.data``.

    The embedded synthetic task is one stage (its ``val`` is a held-out part of the training
    clips). A benchmark tree gives the protocol's two stages: stage 1 fits on ``training``
    and selects on ``val``; stage 2 refits on ``train_val`` and reports on ``test``.
    """
    data = config.data
    if data.source == "synthetic":
        from avood_core.ucf_task import make_ucf_task

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
    from avood_core.checkpoint import config_hash

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


def reuse_fitted(run_dir: Path, pipeline, hashes: dict[str, str], registry, echo) -> set[str]:
    """Load the components of ``run_dir`` whose saved hash matches; report every mismatch."""
    from avood_core.checkpoint import load_component, read_config
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
        reused.add(kind)
        echo(f"resume: reusing fitted {kind} '{saved['name']}' (config hash {hashes[kind]})")
    return reused


def fit_stage(config: RunConfig, task, stage_dir: Path, registry: Registry, device, quiet: bool,
              echo: Callable[[str], None], resume: bool, stage: str = ""):
    """Fit (or reuse) the four components on ``task``, saving each into ``stage_dir`` as it is fitted."""
    from avood_core.checkpoint import save_component
    from avood_core.progress import progress_factory

    pipeline = build_pipeline(config, registry)
    hashes = fit_hashes(config, pipeline, stage)
    reused = reuse_fitted(stage_dir, pipeline, hashes, registry, echo) if resume else set()
    providers = {k: registry.entry(k, config.component(k).name).provider for k in KINDS}

    def save(kind: str) -> None:
        save_component(pipeline.components[kind], stage_dir / "components" / kind,
                       config.component(kind).name, providers[kind], hashes[kind])

    pipeline.fit(task, device=device, seed=config.seed, progress=progress_factory(quiet),
                 log=(lambda m: None) if quiet else echo, skip=frozenset(reused), on_fitted=save,
                 jobs=config.jobs)
    pipeline.save_meta(stage_dir, hashes)
    return pipeline, sorted(reused)


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


def execute(
    config: RunConfig,
    registry: Registry | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    resume: Path | None = None,
    report: bool = True,
    tsne_cap: int = 1000,
    run_dir: Path | None = None,
) -> RunResult:
    """Resolve, fit, evaluate; write config, components, outputs and results into a run folder.

    ``report`` also writes ``report.md``/``report.html`` with figures (t-SNE on at most
    ``tsne_cap`` test clips; 0 skips it). ``run_dir`` forces the folder (must not exist yet).

    On a benchmark tree, stage 1 (fit on ``training``, select on ``val``) runs first in
    ``<run>/stage1``; its selections fix the stage-2 params; stage 2 refits on ``train_val``
    and reports on ``test``. With ``resume`` the run continues in that folder: components
    whose saved fit hash matches are reused, the others are refitted (and reported).
    """
    from avood_core.training import resolve_device, run_threads

    registry = registry or get_registry()
    config = resolve(config, registry)
    with run_threads():
        device = resolve_device(config.device)
        started = time.perf_counter()
        stage1_task, task = build_tasks(config)
        if resume is not None:
            run_dir = Path(resume)
            if not run_dir.is_dir():
                raise AvoodError(f"--resume '{run_dir}' is not a folder; pass a run folder written by 'avood run'")
        elif run_dir is not None:
            run_dir.mkdir(parents=True)
        else:
            label = f"{config.generator.name}-{config.detector.name}-{config.seen.name}-{config.unseen.name}-s{config.seed}"
            run_dir = new_run_dir(Path(config.output_dir), label)
        atomic_write_text(run_dir / "config.toml", to_toml(config.model_dump(mode="json")))
        protocol: dict = {}
        if stage1_task is not None:
            echo("stage 1: fit on 'training', select on 'val'")
            pipe1, reused1 = fit_stage(config, stage1_task, run_dir / "stage1", registry, device, quiet, echo,
                                       resume is not None, "stage1")
            config, selected = apply_selections(config, pipe1)
            protocol["stage1"] = {"fit": "training (stage_1_train)", "select": "val (stage_1_val_seen + stage_1_val_unseen)",
                                  "metrics_on_val": pipe1.evaluate(stage1_task.test), "selected": selected,
                                  "reused_components": reused1}
            atomic_write_text(run_dir / "config.stage2.toml", to_toml(config.model_dump(mode="json")))
            echo("stage 2: refit on 'train_val', report on 'test'")
            protocol["stage2"] = {"fit": "train_val (stage_2_train)", "report": "test (stage_2_test_seen + stage_2_test_unseen)"}
            protocol["load_info"] = stage1_task.meta.get("load_info")
        pipeline, reused = fit_stage(config, task, run_dir, registry, device, quiet, echo, resume is not None,
                                     "stage2" if stage1_task is not None else "")
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
            "metrics": scores,
            "timings_s": {**pipeline.timings, "total": time.perf_counter() - started},
            "jobs": config.jobs,
            "workers": pipeline.worker_info,
        }
        save_outputs(run_dir / "predictions.npz", pipeline.last_outputs)
        atomic_write_json(run_dir / "results.json", results)
        if report:
            from avood_core.report import save_tsne, write_report

            if tsne_cap > 0:
                save_tsne(run_dir, task.test.x, pipeline.last_outputs, cap=tsne_cap, seed=config.seed)
            write_report(run_dir)
        return RunResult(run_dir, results)


def execute_seeds(config: RunConfig, seeds: list[int], registry: Registry | None = None, quiet: bool = False,
                  echo: Callable[[str], None] = print, report: bool = True, tsne_cap: int = 1000) -> RunResult:
    """One run per seed in ``<parent>/seed-<n>/``; the parent holds mean ± std over seeds.

    The parent's ``results.json`` is the first seed's plus a ``"seeds"`` section
    (:func:`avood_core.report.seeds_section`); its figures show the first seed.
    """
    import shutil

    from avood_core.report import seeds_section, write_report

    if len(set(seeds)) != len(seeds) or not seeds:
        raise AvoodError(f"--seeds {seeds}: give distinct integers, e.g. --seeds 0,1,2")
    config = resolve(config, registry)
    label = f"{config.generator.name}-{config.detector.name}-{config.seen.name}-{config.unseen.name}-seeds{'-'.join(map(str, seeds))}"
    parent = new_run_dir(Path(config.output_dir), label)
    runs = []
    for seed in seeds:
        echo(f"seed {seed}")
        runs.append(execute(config.model_copy(update={"seed": seed}), registry, quiet, echo, report=report,
                            tsne_cap=tsne_cap if seed == seeds[0] else 0, run_dir=parent / f"seed-{seed}"))
    per_seed = [{"seed": s, "metrics": r.results["metrics"], "timings_s": r.results["timings_s"],
                 "run_dir": r.run_dir.name} for s, r in zip(seeds, runs)]
    first = runs[0].run_dir
    for name in ("config.toml", "predictions.npz", "tsne.npz"):
        if (first / name).exists():
            shutil.copyfile(first / name, parent / name)
    results = {**runs[0].results, "seeds": seeds_section(per_seed)}
    atomic_write_json(parent / "results.json", results)
    if report:
        write_report(parent)
    return RunResult(parent, results)


def save_outputs(path: Path, outputs: dict) -> None:
    """Per-sample test outputs (numpy arrays, no pickles) for reports and threshold sweeps."""
    import numpy as np

    from avood_core.io import atomic_write

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
