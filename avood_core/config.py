"""Typed run configuration (pydantic v2) and its two-stage validation: :func:`assemble_config`
(the layers) -> :func:`finalize_config` (stage 1) -> :func:`resolve` (stage 2: each plugin's
``Params``, every default visible); docs/architecture.md "Plugins, configuration, run folders"."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from avood_core.errors import ConfigError
from avood_core.registry import DEFAULT_PROFILE, KINDS, Registry, get_registry, validated_params
from avood_core.limits import MAX_DATA_SCALE, SEED_MAX, SEED_MIN, bounded
from avood_core.recipe import DEFAULT_COMPONENTS, assemble_recipe, check_plugin_params, set_component
from avood_core.run.tracking import LoggingConfig, resolve_logging
from avood_core.strict import check_values, format_validation_error


class ComponentSpec(BaseModel):
    """Which plugin fills a slot, and its params (validated by the plugin's Params model)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DataConfig(BaseModel):
    """Where the task comes from: the embedded synthetic task or a benchmark tree."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["synthetic", "benchmark"] = Field("synthetic", description=(
        "'synthetic': the embedded UCF-shaped task; 'benchmark': an AVCA-format tree at `path`."))
    path: Path | None = Field(None, description="Root of an avgzsl_benchmark_datasets tree (source = benchmark).")
    dataset: Literal["ucf", "activitynet", "vggsound"] | None = Field(None, description="Benchmark dataset.")
    features: Literal["main", "cls"] = Field("main", description="main: SeLaVi 512/512; cls: VGGish 128 / C3D 4096.")
    split: Literal["main", "cls"] = Field("main", description="Class split: main_split or cls_split.")
    format: Literal["auto", "h5", "pkl"] = Field("auto", description=(
        "Read the per-class h5 tree, the _features_processed pkl caches (read safely), or auto (h5 first)."))
    nonfinite: Literal["fail", "skip"] = Field("fail", description="NaN/inf feature rows: fail, or skip them (counted).")
    compat_positional_text: bool = Field(False, description=(
        "Reference defect 1 (docs/defects.md): look text rows up by class id instead of by name (default: by name)."))
    stage1: bool = Field(True, description="Benchmark: run stage 1 (fit on training, select on val) before stage 2.")
    scale: float = Field(1.0, gt=0, le=MAX_DATA_SCALE, description=(
        f"Synthetic task: multiplier on UCF's sample counts. At most {MAX_DATA_SCALE:g} (~1 GB of features)."))
    task_seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX, description="Synthetic task seed; None = the run seed.")
    seen_acc: float | None = Field(None, gt=0, lt=100, description=(
        "Synthetic task: the seen MLP's accuracy in % at full epochs to calibrate to (None = UCF's SC_acc 96.12, "
        "paper Table 3)."))
    zsl_acc: float | None = Field(None, gt=0, lt=100, description=(
        "Synthetic task: the embedding model's ZSL accuracy in % at full epochs to calibrate to (None = UCF's UC_acc "
        "28.21, paper Table 3)."))


class RunConfig(BaseModel):
    """One run: the four components, data, seed, device and output folder."""

    model_config = ConfigDict(extra="forbid")
    profile: Literal["quick", "paper"] = Field(DEFAULT_PROFILE, description=(
        "quick: each plugin's reduced epochs (demos, tests); "
        "paper: the plugins' defaults, i.e. the paper's full budgets."))
    generator: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["generator"]))
    detector: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["detector"]))
    seen: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["seen"]))
    unseen: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["unseen"]))
    syn_num: int = bounded("syn_num", 50, "Synthetic samples per unseen class (UCF/VGGSound 50, ActivityNet 1000).")
    data: DataConfig = Field(default_factory=DataConfig)
    seed: int = Field(0, ge=SEED_MIN, le=SEED_MAX, description="Fixes every random source of the run (a 64-bit integer).")
    device: str = Field("auto", description="cpu, cuda, cuda:N or auto (cuda when available).")
    jobs: int = Field(1, ge=1, le=3, description=(
        "Processes that fit components side by side: 2 trains the unseen classifier in a worker process "
        "beside the generator, seen classifier and detector (3 also the seen classifier); each process gets "
        "torch threads // jobs; once the main process has fitted its own stages it computes half of each of the "
        "unseen classifier's remaining steps (AVOOD_ASSIST=0: it waits). Same results as jobs = 1 at that thread "
        "count (docs/performance.md)."))
    output_dir: Path = Field(Path("runs"), description="Each run writes a fresh sub-folder here.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description=(
        "Experiment loggers and how often they hear step metrics."))

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value in ("cpu", "cuda", "auto") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be cpu, cuda, cuda:N or auto")

    def component(self, kind: str) -> ComponentSpec:
        return getattr(self, kind)


def validate_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Stage 1: the run config's own fields."""
    check_values(RunConfig, data, "", source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, model=RunConfig)}") from None


def resolve(config: RunConfig, registry: Registry | None = None) -> RunConfig:
    """Stage 2: validate each component's params with its plugin's model; fill every default."""
    registry = registry or get_registry()
    update = {}
    for kind in KINDS:
        spec = config.component(kind)
        cls = registry.component_class(kind, spec.name)
        check_values(cls.Params, spec.params, f"{kind}.params.", f"config ({kind} '{spec.name}')")
        params = validated_params(cls, kind, spec.name, config.profile, spec.params, "config: ")
        update[kind] = ComponentSpec(name=spec.name, params=params.model_dump(mode="json"))
    update["logging"] = resolve_logging(config.logging, registry)
    return config.model_copy(update=update)


def build_config(config_file: str | Path | None = None, *layers: Any, **named: Any) -> RunConfig:
    """The validated run config of :func:`assemble_config`'s layers (same arguments), by :func:`finalize_config`."""
    data = assemble_config(config_file, *layers, **named)
    return finalize_config(data, source=str(config_file) if config_file else "config")


def assemble_config(*layers: Any, **named: Any) -> dict[str, Any]:
    """The merged, not yet validated config dict of :func:`~avood_core.recipe.assemble_recipe` (same arguments)."""
    return assemble_recipe(*layers, **named)[0]


def finalize_config(data: dict[str, Any], swap: dict[str, str] | None = None, source: str = "config") -> RunConfig:
    """Validate an assembled dict: ``swap`` puts other plugins in some slots (their slot params
    reset, as with ``--<kind> NAME``), then plugin-keyed ``params`` fill each slot's params."""
    data = copy.deepcopy(data)
    for kind, name in (swap or {}).items():
        set_component(data, kind, name)
    by_plugin = check_plugin_params(data.pop("params", {}), source)
    for kind in KINDS:
        spec = data.get(kind)
        extra = by_plugin.get(kind, {}).get(spec.get("name")) if isinstance(spec, dict) else None
        if extra and isinstance(spec.get("params") or {}, dict):  # a slot's own params win
            spec["params"] = {**extra, **(spec.get("params") or {})}
    return validate_config(data, source)


def to_toml(data: dict[str, Any]) -> str:
    """A resolved config as TOML (``tomli_w``); a ``None`` is left out (TOML has no null; it reads
    back as the field's default, ``None`` for every optional field)."""
    import tomli_w

    def prune(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): prune(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [prune(v) for v in value if v is not None]
        if isinstance(value, Path):
            return str(value)
        return value

    return tomli_w.dumps(prune(data))
