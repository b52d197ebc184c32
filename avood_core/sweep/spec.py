"""A sweep spec (TOML, docs/scaling.md): a base config, axes, seeds and an engine, expanded into
trials, each a :class:`~avood_core.config.RunConfig` built as ``avood run`` builds one."""

from __future__ import annotations

import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from avood_core.config import RunConfig, assemble_config, finalize_config, resolve
from avood_core.errors import AvoodError, ConfigError
from avood_core.limits import MAX_TRIALS
from avood_core.registry import KINDS, Registry, get_registry
from avood_core.strict import check_values, format_validation_error
from avood_core.util.paths import check_name


def tied_keys(axis: str) -> list[str]:
    """The keys an axis sets: ``'K1+K2'`` ties several, each set to the axis value."""
    return [part.strip() for part in axis.split("+")]


class Resources(BaseModel):
    """What one trial gets: torch threads / Ray CPUs, and Ray GPUs."""

    model_config = ConfigDict(extra="forbid")
    num_cpus: int | None = Field(None, ge=1, description="Torch threads (and Ray CPUs) per trial; "
                                 "none: local = cores // max_parallel, ray = 1.")
    num_gpus: float = Field(0, ge=0, description="Ray GPUs per trial (the trial's device is then 'auto').")


class SweepSpec(BaseModel):
    """The validated spec; CLI flags override its engine fields."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="Names the default sweep folder sweeps/<name>.")
    config: Path | None = Field(None, description="Base run-config TOML (relative to the spec file).")
    preset: str | None = Field(None, description="Base preset (see 'avood presets').")
    set: list[str] = Field(default_factory=list, description="Base KEY=VALUE overrides, as --set.")
    values: dict[str, Any] = Field(default_factory=dict, description="Base overrides as typed values by dotted "
                                   "key, applied after 'set' (the flags --profile, --data, --dataset).")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds of every config.")
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="KEY = [values]; every combination is a "
                                       "config; 'K1+K2' ties keys (each value sets them all).")
    engine: Literal["local", "ray"] = "local"
    max_parallel: int | None = Field(None, ge=1, description="Trials at once.")
    address: str | None = Field(None, description="Ray: 'auto', ray://host:10001 or 'local' "
                                "(none: this machine's cluster, $RAY_ADDRESS or the last 'ray start', else a local instance).")
    resources: Resources = Field(default_factory=Resources)
    retries: int = Field(1, ge=0, description="Ray: reruns of a trial whose worker died.")
    output: Path | None = Field(None, description="Sweep folder (default sweeps/<name or spec file stem>).")
    report: bool = Field(True, description="Each trial writes report.md/report.html (figures).")
    tsne_cap: int = Field(0, ge=0, description="t-SNE on at most this many test clips per trial (0: none).")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        try:
            return None if name is None else check_name(name, "the name")
        except AvoodError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("values", "axes")
    @classmethod
    def _per_trial(cls, table: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The sweep sets each trial's seed (from ``seeds``) and folder (under the sweep folder) itself."""
        keys = (part for k in table for part in (tied_keys(k) if info.field_name == "axes" else [k]))
        for key in keys:  # each key of a tied axis 'K1+K2' as well
            if key in ("seed", "seeds"):
                raise ValueError(f"'{key}' cannot be set in [{info.field_name}]: each trial's seed comes from the "
                                 f"top-level 'seeds = [0, 1, 2]' (or --seeds)")
            if key == "output_dir":
                raise ValueError(f"'output_dir' cannot be set in [{info.field_name}]: trials are written under the "
                                 f"sweep folder; set 'output' (or --output-dir)")
        return table

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds

    @field_validator("axes")
    @classmethod
    def _axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        parts = [part for key in axes for part in tied_keys(key)]
        if not all(parts):
            raise ValueError(f"an axis key has an empty part: {list(axes)}; tie keys as 'a.b+c.d'")
        if len(set(parts)) != len(parts):
            raise ValueError(f"a key is set by two axes: {list(axes)}; give each key to one axis")
        for key, values in axes.items():
            if not values:
                raise ValueError(f"axis '{key}' has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"axis '{key}' repeats a value")
        return axes


@dataclass
class Trial:
    """One run of the sweep: a resolved config, its folder name and the hash of everything it fits."""

    id: str
    label: str
    axes: dict[str, Any]
    seed: int
    config: RunConfig
    hash: str


def load_spec(path: Path | None, data: dict[str, Any] | None = None) -> SweepSpec:
    """The spec of a TOML file (``None``: an empty spec) updated by ``data`` (the CLI flags given)."""
    raw: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"sweep spec '{path}' not found; pass an existing TOML file")
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    added = ("axes", "values", "resources")  # tables the flags add to (and the 'set' list)
    merged = {**raw, **{k: v for k, v in (data or {}).items() if k not in (*added, "set")}}
    for key in added:
        merged[key] = {**raw.get(key, {}), **(data or {}).get(key, {})}
    merged["set"] = [*raw.get("set", []), *(data or {}).get("set", [])]
    check_values(SweepSpec, merged, "", str(path or "sweep"))
    try:
        spec = SweepSpec.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{path or 'sweep'}: {format_validation_error(exc, model=SweepSpec)}") from None
    if spec.config is not None and path is not None and not spec.config.is_absolute():
        spec = spec.model_copy(update={"config": Path(path).parent / spec.config})
    return spec


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


def expand(spec: SweepSpec, registry: Registry | None = None, source: str = "sweep") -> list[Trial]:
    """Every (axis combination, seed) as a resolved trial, seed by seed (a sweep stopped part way has every
    config at its first seeds, paired); an axis key ``K1+K2`` sets each of its keys to the axis value. A bad
    value fails naming its axis, a spec of more than :data:`~avood_core.limits.MAX_TRIALS` trials before
    anything is expanded."""
    count = math.prod(len(v) for v in spec.axes.values()) * len(spec.seeds)
    if count > MAX_TRIALS:
        sizes = " x ".join([*(f"{len(v)} {k}" for k, v in spec.axes.items()), f"{len(spec.seeds)} seeds"])
        raise ConfigError(f"{source}: {count:,} trials ({sizes}); a sweep runs at most {MAX_TRIALS:,}: "
                          f"drop axis values or split it into several sweeps")
    from avood_core.pipeline.store import config_hash

    registry = registry or get_registry()
    keys = list(spec.axes)
    trials: list[Trial] = []
    for seed, combo in itertools.product(spec.seeds, itertools.product(*(spec.axes[k] for k in keys))):
        axes = dict(zip(keys, combo))
        label = ", ".join(f"{k}={v}" for k, v in axes.items()) or "base"
        # an axis is a component slot, the preset, the dataset or a typed override by dotted key
        tied = {part: v for k, v in axes.items() for part in tied_keys(k)}
        components = {k: str(v) for k, v in tied.items() if k in KINDS}
        preset = str(tied.get("preset", "")) or spec.preset
        values = {**spec.values, **{"data.dataset" if k == "dataset" else k: v for k, v in tied.items()
                                    if k not in KINDS and k != "preset"}}
        try:
            data = assemble_config(spec.config, components, spec.set, preset=preset, values={**values, "seed": seed})
            config = resolve(finalize_config(data, source=source), registry)
        except AvoodError as exc:  # a bad value (ConfigError) or plugin name (PluginError)
            raise type(exc)(f"{source}: trial '{label}, seed={seed}': {exc}") from None
        payload = config.model_dump(mode="json")
        payload.pop("output_dir", None)
        tid = "_".join([*(f"{_slug(k)}-{_slug(str(v))}" for k, v in axes.items()), f"seed-{seed}"])
        trials.append(Trial(tid, label, axes, seed, config, config_hash(payload)))
    seen: dict[str, Trial] = {}  # one resolved config and seed twice (0.001 and "0.001") would fit it twice
    for t in trials:
        other = seen.setdefault(t.hash, t)
        if other is not t:
            raise ConfigError(f"{source}: trials '{other.label}' and '{t.label}' (seed {t.seed}) resolve to the same "
                              f"config; an axis gives one value twice in two spellings: keep one")
    ids = [t.id for t in trials]
    for t in trials:
        if ids.count(t.id) > 1:
            t.id = f"{t.id}-{t.hash[:8]}"
    return trials


def spec_hash(trials: list[Trial]) -> str:
    """What a sweep folder was made for: its trials and their configs (not the engine)."""
    from avood_core.pipeline.store import config_hash

    return config_hash(sorted((t.id, t.hash) for t in trials))


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``--axis KEY=V1,V2`` or ``--axis 'KEY=[v1, v2]'`` (values read as TOML, else strings)."""
    from avood_core.recipe import parse_value

    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ConfigError(f"--axis '{text}': expected KEY=V1,V2 (e.g. --axis detector=entropy,binary)")
    raw = raw.strip()
    if raw.startswith("["):
        values = parse_value(raw)
        if not isinstance(values, list):
            raise ConfigError(f"--axis '{text}': '{raw}' is not a TOML list")
        return key.strip(), values
    return key.strip(), [parse_value(v.strip()) for v in raw.split(",") if v.strip()]
