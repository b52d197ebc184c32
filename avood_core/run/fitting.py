"""One stage of a run (paper §4.1: stage 1 fits on ``training`` and selects on ``val``, stage 2
refits on ``train_val`` and reports on ``test``): tasks, fit hashes, fitting or reusing, selections."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from avood_core.config import RunConfig
from avood_core.errors import AvoodError, ConfigError
from avood_core.registry import Registry, get_registry
from avood_core.stages import BY_KIND, FIT_ORDER, KINDS, SYNTHETIC_FROM

if TYPE_CHECKING:
    import torch

    from avood_core.pipeline import Pipeline
    from avood_core.task import AVGZSLTask


def has_stage1(config: RunConfig) -> bool:
    """Whether the run has a stage-1 task (:func:`build_tasks`): a benchmark tree with ``data.stage1``."""
    return config.data.source == "benchmark" and config.data.stage1


def build_tasks(config: RunConfig) -> tuple["AVGZSLTask | None", "AVGZSLTask"]:
    """``(stage 1 or None, the task the run reports on)``: the embedded task (``val`` held out of its training
    clips) alone, or a benchmark tree's two stages (stage 1's ``val`` is its test split, the stage-1 val
    split of the protocol; the loader's report in its ``meta["load_info"]``)."""
    data = config.data
    if data.source == "synthetic":
        from avood_core.data.latent import make_ucf_task

        seed = config.seed if data.task_seed is None else data.task_seed
        return None, make_ucf_task(seed, data.scale, data.seen_acc, data.zsl_acc)
    from avood_core.data import load_benchmark

    if data.path is None or data.dataset is None:
        raise AvoodError("data.source = 'benchmark' needs data.path and data.dataset (e.g. --data PATH --dataset ucf)")
    tasks = load_benchmark(data.path, data.dataset, features=data.features, split=data.split, source=data.format,
                           nonfinite=data.nonfinite, compat_positional_text=data.compat_positional_text)
    stage1 = copy.copy(tasks.stage1)
    stage1.val = stage1.test  # the protocol's selection split: stage-1 val (seen + unseen val classes)
    stage1.meta = {**stage1.meta, "load_info": tasks.info}
    return stage1 if has_stage1(config) else None, tasks.stage2


def build_task(config: RunConfig) -> "AVGZSLTask":
    """The task whose test split a run reports on."""
    return build_tasks(config)[1]


def build_pipeline(config: RunConfig, registry: Registry | None = None) -> "Pipeline":
    """Instantiate the four components of a resolved config."""
    from avood_core.pipeline import Pipeline

    registry = registry or get_registry()
    parts = {kind: registry.component_class(kind, config.component(kind).name)(config.component(kind).params) for kind in KINDS}
    return Pipeline(**parts, syn_num=config.syn_num, names={k: config.component(k).name for k in KINDS})


def fit_hashes(config: RunConfig, pipeline: "Pipeline", stage: str = "") -> dict[str, str]:
    """Per-component hash of all its fit depends on (data, stage, seed, name, params, and the hashes of
    the generator when it trains on synthetic features and of its ``depends_on``), in fitting order."""
    from avood_core.pipeline.store import config_hash

    base = {"data": config.data.model_dump(mode="json"), "seed": config.seed, "syn_num": config.syn_num}
    if stage:
        base["stage"] = stage
    hashes: dict[str, str] = {}
    for kind in FIT_ORDER:
        comp = pipeline.components[kind]
        payload = {**base, kind: config.component(kind).model_dump(mode="json")}
        if BY_KIND[kind].after:  # the first stage depends on nothing fitted: its payload has no "deps" key
            deps = {SYNTHETIC_FROM: hashes[SYNTHETIC_FROM]} if BY_KIND[kind].uses_synthetic or comp.uses_synthetic else {}
            payload["deps"] = {**deps, **{d: hashes[d] for d in getattr(comp, "depends_on", ())}}
        hashes[kind] = config_hash(payload)
    return hashes


def _load(pipeline: "Pipeline", kind: str, folder: Path, registry: Registry, echo: Callable[[str], None],
          why: str, into: Path | None) -> bool:
    """Load ``folder``'s checkpoint as ``pipeline``'s ``kind`` and copy it into ``into``; a bad one is a line."""
    from avood_core.errors import CheckpointError
    from avood_core.pipeline.store import copy_component, load_component

    try:
        setattr(pipeline, kind, load_component(folder, registry, kind=kind))
    except CheckpointError as exc:
        echo(f"{why}: {kind}: {exc}; {'refitting' if why == 'resume' else 'fitting it'}")
        return False
    if into is not None:
        copy_component(folder, into / "components" / kind)
    return True


def reuse_fitted(run_dir: Path, pipeline: "Pipeline", hashes: dict[str, str], registry: Registry,
                 echo: Callable[[str], None], into: Path | None = None) -> set[str]:
    """Load the components of ``run_dir`` whose saved hash matches; report every mismatch.
    ``into`` (``--allow-changes``): a run folder that receives a copy of each reused component."""
    from avood_core.errors import CheckpointError
    from avood_core.pipeline.store import read_config

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
        elif _load(pipeline, kind, folder, registry, echo, "resume", into):
            reused.add(kind)
            echo(f"resume: reusing fitted {kind} '{saved['name']}' (config hash {hashes[kind]})")
    return reused


def shared_component(shared: Path, kind: str, fit_hash: str) -> Path:
    """Where a sweep's ``shared`` folder holds the component ``kind`` fitted with ``fit_hash``."""
    return Path(shared) / f"{kind}-{fit_hash}"


def publish(folder: Path, shared: Path, kind: str, fit_hash: str) -> None:
    """Copy a saved component folder into a sweep's ``shared`` folder as ``<kind>-<fit hash>``, published
    with one rename (a reader sees all or nothing; first writer wins; a failure only costs a refit elsewhere)."""
    import shutil
    import tempfile

    target = shared_component(shared, kind, fit_hash)
    if target.exists():
        return
    try:
        Path(shared).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=shared))
        shutil.copytree(folder, tmp / "c")
        try:
            (tmp / "c").rename(target)
        except OSError:  # another trial published it first
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass


@dataclass
class FitOptions:
    """How :func:`fit_stage` fits: the same for both stages of one run."""

    registry: Registry
    device: "torch.device"
    echo: Callable[[str], None] = print
    quiet: bool = False
    loggers: list[Any] = field(default_factory=list)
    """Experiment loggers fed each component's curves (avood_core.run.tracking)."""
    shared: Path | None = None
    """A folder of components shared with other runs (a sweep's, :func:`publish`)."""


def fit_stage(config: RunConfig, task: "AVGZSLTask", stage_dir: Path, opts: FitOptions, resume: Path | None = None,
              stage: str = "") -> tuple["Pipeline", list[str]]:
    """Fit (or reuse, from ``resume``) the four components on ``task``, each saved into ``stage_dir`` as
    it is fitted, curves to ``metrics/<kind>.jsonl`` and the loggers; the pipeline and the kinds reused."""
    from avood_core.callbacks import MetricsWriter
    from avood_core.pipeline.store import save_component
    from avood_core.util.progress import progress_factory

    registry, echo, shared = opts.registry, opts.echo, opts.shared
    pipeline = build_pipeline(config, registry)
    hashes = fit_hashes(config, pipeline, stage)
    reused = set() if resume is None else reuse_fitted(resume, pipeline, hashes, registry, echo,
                                                        into=None if resume == stage_dir else stage_dir)
    for kind in KINDS if shared is not None else ():  # a sweep's components fitted by another trial
        source = shared_component(shared, kind, hashes[kind])
        if kind not in reused and source.is_dir() and _load(pipeline, kind, source, registry, echo, "shared",
                                                            stage_dir):
            reused.add(kind)
            echo(f"shared: reusing {kind} fitted by another trial (config hash {hashes[kind]})")
    providers = {k: registry.entry(k, config.component(k).name).provider for k in KINDS}

    def save(kind: str) -> None:
        folder = save_component(pipeline.components[kind], stage_dir / "components" / kind,
                                config.component(kind).name, providers[kind], hashes[kind])
        if shared is not None:
            publish(folder, shared, kind, hashes[kind])

    pipeline.fit(task, device=opts.device, seed=config.seed, progress=progress_factory(opts.quiet),
                 log=(lambda m: None) if opts.quiet else echo, skip=frozenset(reused), on_fitted=save,
                 jobs=config.jobs, callbacks=[MetricsWriter(stage_dir / "metrics", stage), *opts.loggers],
                 every_n_steps=config.logging.every_n_steps, stage_name=stage)
    pipeline.save_meta(stage_dir, hashes)
    return pipeline, sorted(reused)


def stage1_decision(config: RunConfig, has_stage1: bool, registry: Registry) -> tuple[bool, str]:
    """Whether stage 1 runs for ``config`` and why (one line): only when the run has a stage-1 task
    (``has_stage1``: :func:`has_stage1`, or whether the caller holds one) and a component selects params on val
    (:meth:`~avood_core.protocols.Component.selects_on_val`), its only purpose."""
    if not has_stage1:
        if config.data.source == "benchmark":
            return False, "stage 1 off (data.stage1 = false): stage 2 fits with the configured params"
        return False, "one stage: the embedded task has no stage-1/stage-2 protocol"
    from avood_core.pipeline.boundary import selects_on_val

    specs = {kind: config.component(kind) for kind in KINDS}
    selecting = [f"{kind} '{spec.name}'" for kind, spec in specs.items()
                 if selects_on_val(registry.component_class(kind, spec.name)(spec.params))]
    if selecting:
        return True, f"stage 1 runs: {', '.join(selecting)} select(s) params on the val split for stage 2"
    return False, ("stage 1 skipped: no component selects anything on the val split (selects_on_val() is False "
                   "for all four), so it could not change stage 2")


def apply_selections(config: RunConfig, pipeline: "Pipeline") -> tuple[RunConfig, dict]:
    """Stage-2 config: each component's params updated with its stage-1 val selections, validated."""
    from pydantic import ValidationError

    from avood_core.strict import format_validation_error
    from avood_core.pipeline.boundary import selected_params

    selected = {k: selected_params(c) for k, c in pipeline.components.items()}
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
