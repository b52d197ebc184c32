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
from avood_core.errors import AvoodError
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


def build_task(config: RunConfig):
    """The task named by ``config.data`` (the embedded synthetic task for now)."""
    from avood_core.synthetic import SyntheticSpec, make_synthetic_task

    data = config.data
    if data.source == "synthetic":
        seed = config.seed if data.task_seed is None else data.task_seed
        return make_synthetic_task(seed, SyntheticSpec().scaled(data.scale))
    raise AvoodError("data.source = 'benchmark' is not available in this version; use source = 'synthetic'")


def build_pipeline(config: RunConfig, registry: Registry | None = None):
    """Instantiate the four components of a resolved config."""
    from avood_core.pipeline import Pipeline

    registry = registry or get_registry()
    parts = {kind: registry.component_class(kind, config.component(kind).name)(config.component(kind).params) for kind in KINDS}
    return Pipeline(**parts, syn_num=config.syn_num, names={k: config.component(k).name for k in KINDS})


def fit_hashes(config: RunConfig, pipeline) -> dict[str, str]:
    """Per-component hash of everything its fit depends on (for ``--resume``).

    A component's hash covers the data, the seed, its own name and params, the generator's
    hash when it trains on synthetic features, and the hashes of the components it declares
    in ``depends_on`` (detectors that use the fitted classifiers).
    """
    from avood_core.checkpoint import config_hash

    base = {"data": config.data.model_dump(mode="json"), "seed": config.seed, "syn_num": config.syn_num}
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
            setattr(pipeline, kind, load_component(folder, registry))
        except CheckpointError as exc:
            echo(f"resume: {kind}: {exc}; refitting")
            continue
        reused.add(kind)
        echo(f"resume: reusing fitted {kind} '{saved['name']}' (config hash {hashes[kind]})")
    return reused


def execute(
    config: RunConfig,
    registry: Registry | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    resume: Path | None = None,
) -> RunResult:
    """Resolve, fit, evaluate; write config, components, outputs and results into a run folder.

    With ``resume`` the run continues in that folder: components whose saved fit hash
    matches are reused, the others are refitted (and reported).
    """
    from avood_core.progress import progress_factory
    from avood_core.training import resolve_device, set_threads

    registry = registry or get_registry()
    config = resolve(config, registry)
    set_threads()
    device = resolve_device(config.device)
    started = time.perf_counter()
    task = build_task(config)
    pipeline = build_pipeline(config, registry)
    hashes = fit_hashes(config, pipeline)
    log = (lambda m: None) if quiet else echo
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise AvoodError(f"--resume '{run_dir}' is not a folder; pass a run folder written by 'avood run'")
        reused = reuse_fitted(run_dir, pipeline, hashes, registry, echo)
    else:
        label = f"{config.generator.name}-{config.detector.name}-{config.seen.name}-{config.unseen.name}-s{config.seed}"
        run_dir, reused = new_run_dir(Path(config.output_dir), label), set()
    atomic_write_text(run_dir / "config.toml", to_toml(config.model_dump(mode="json")))
    providers = {k: registry.entry(k, config.component(k).name).provider for k in KINDS}

    def save(kind: str) -> None:
        from avood_core.checkpoint import save_component

        save_component(pipeline.components[kind], run_dir / "components" / kind,
                       config.component(kind).name, providers[kind], hashes[kind])

    pipeline.fit(task, device=device, seed=config.seed, progress=progress_factory(quiet), log=log,
                 skip=frozenset(reused), on_fitted=save)
    pipeline.save_meta(run_dir)
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
        "reused_components": sorted(reused),
        "metrics": scores,
        "timings_s": {**pipeline.timings, "total": time.perf_counter() - started},
    }
    save_outputs(run_dir / "predictions.npz", pipeline.last_outputs)
    atomic_write_json(run_dir / "results.json", results)
    return RunResult(run_dir, results)


def save_outputs(path: Path, outputs: dict) -> None:
    """Per-sample test outputs (numpy arrays, no pickles) for reports and threshold sweeps."""
    import numpy as np

    from avood_core.io import atomic_write

    arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


def format_summary(results: dict) -> str:
    """The headline numbers as a short plain-text table."""
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
