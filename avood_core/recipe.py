"""A run config's dict, layer by layer (TOML, ``--set``, typed values), and its recipe: the preset and
why, the profile, every override (``--dataset D`` on benchmark data: D's preset, paper profile, §4.2).

Presets are the paper's hyperparameters (§4.2, the reference configs) shipped as
``avood_core/presets/<name>.toml``: ``description`` (shown by ``avood presets``), ``[config]`` (run-config
fields) and ``[params.<kind>.<plugin>]`` (params of ``<plugin>`` whenever it fills the ``<kind>`` slot);
a preset is the lowest layer of a config."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from avood_core.errors import ConfigError
from avood_core.registry import DEFAULT_PROFILE
from avood_core.stages import KINDS, STAGES


NO_PRESET = "none"  # --preset none: no preset, not even the default one of benchmark data
DEFAULT_COMPONENTS = {s.kind: s.default for s in STAGES}
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Recipe:
    """How a run config was built: its preset (and why), profile, overrides and warnings."""

    preset: str | None
    chosen_by: str
    profile: str
    overrides: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        preset = f"preset {self.preset}" if self.preset else "no preset"
        return (f"recipe: {preset} ({self.chosen_by}), profile {self.profile}, "
                f"overrides: {'; '.join(self.overrides) if self.overrides else 'none'}")

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "chosen_by": self.chosen_by, "profile": self.profile,
                "overrides": list(self.overrides), "warnings": list(self.warnings)}


def assemble_recipe(config_file: str | Path | None = None, components: dict[str, str | None] | None = None,
                    overrides: list[str] | None = None, base: dict[str, Any] | None = None, preset: str | None = None,
                    values: dict[str, Any] | None = None) -> tuple[dict[str, Any], Recipe]:
    """The merged, not yet validated config dict and the :class:`Recipe` that describes it: preset < ``base`` <
    TOML file < ``--<kind>`` choices (``components``) < ``--set`` texts (``overrides``) < typed ``values``, field
    by field. ``preset``: a name, ``"none"``, or ``None`` (on benchmark data with a dataset and no file or
    ``base``: its preset, §4.2)."""
    def layered(start: dict[str, Any]) -> dict[str, Any]:
        data = _deep_merge(start, base or {})
        if config_file is not None:
            data = _deep_merge(data, load_toml(config_file))
        for kind, name in (components or {}).items():
            if name:
                set_component(data, kind, name)
        for assignment in overrides or []:
            apply_override(data, assignment)
        for key, value in (values or {}).items():
            _put(data, key, value)
        return data

    def empty() -> dict[str, Any]:
        return {k: {"name": DEFAULT_COMPONENTS[k], "params": {}} for k in KINDS}

    data = layered(empty())
    chosen, why = _chosen_preset(preset, config_file is not None, bool(base), _data_section(data))
    preset_dataset = None
    if chosen is not None:
        picked = load_preset(chosen)
        preset_dataset = (picked.config.get("data") or {}).get("dataset")
        data = layered(_deep_merge(empty(), copy.deepcopy({**picked.config, "params": picked.params})))
    section = _data_section(data)
    benchmark, dataset = section.get("source") == "benchmark", section.get("dataset")
    profile = str(data.get("profile", DEFAULT_PROFILE))
    warnings = []
    if benchmark and preset_dataset is not None and isinstance(dataset, str) and preset_dataset != dataset:
        warnings.append(f"preset '{chosen}' holds {preset_dataset}'s hyperparameters (paper §4.2) but the data is "
                        f"{dataset}; use --preset {dataset} for its own, or keep this deliberately")
    if benchmark and profile == "quick":
        warnings.append("the quick profile on benchmark data trains each plugin's reduced budget (fewer epochs), not "
                        "the paper's recipe; use --profile paper for numbers comparable to the paper")
    shown = [f"config file {config_file}"] if config_file is not None else []
    shown += [f"--{kind} {name}" for kind, name in (components or {}).items() if name]
    shown += [f"--set {a}" for a in overrides or []]
    skip = {"data.source", "data.path"} | ({"data.dataset"} if dataset == preset_dataset else set())
    shown += [f"{k}={json.dumps(v, default=str)}" for k, v in (values or {}).items() if k not in skip]
    return data, Recipe(chosen, why, profile, tuple(shown), tuple(warnings))


def _data_section(data: dict[str, Any]) -> dict[str, Any]:
    section = data.get("data")
    return section if isinstance(section, dict) else {}


def _chosen_preset(preset: str | None, has_file: bool, has_base: bool, section: dict[str, Any]) -> tuple[str | None, str]:
    """The preset a config is built on and why: the one named; none for ``"none"``, a config file or
    a ``base``; else on benchmark data the ``--dataset``'s own (paper §4.2's recipe)."""
    benchmark, dataset = section.get("source") == "benchmark", section.get("dataset")
    if preset == NO_PRESET:
        return None, "--preset none"
    if preset is not None:
        return preset, "--preset"
    if has_file or has_base:
        return None, "a config file" if has_file else "a base config"
    if not benchmark:
        return None, "the embedded task's default"
    if not isinstance(dataset, str):
        return None, "no --dataset"
    if dataset not in preset_names():
        return None, f"no preset named '{dataset}'"
    return dataset, f"the default of --dataset {dataset} on benchmark data"


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"config file '{path}' not found; pass an existing TOML file")
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc.strerror or exc}); fix its permissions") from None


def parse_value(text: str, assignment: str | None = None) -> Any:
    """A CLI value as one TOML value (``0.001``, ``true``, ``[1, 2]``, ``"x"``), else the raw string;
    several TOML values or a multi-line bare string is a :class:`ConfigError` quoting ``assignment``."""
    shown = _shown_set(assignment if assignment is not None else text)
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        if "\n" in text or "\r" in text:
            raise ConfigError(f"--set {shown}: the value spans several lines; give one value per --set") from None
        return text
    if set(doc) != {"v"}:
        raise ConfigError(f"--set {shown}: holds more than one value ({', '.join(k for k in doc if k != 'v')} too); "
                          f"give one KEY=VALUE per --set, e.g. --set seed=1 --set device=cuda")
    return doc["v"]


def _shown_set(assignment: str) -> str:
    """``assignment`` quoted on one line (newlines escaped)."""
    return "'" + assignment.replace("\n", "\\n").replace("\r", "\\r") + "'"


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key.path=value`` (``<kind>.<param>`` is short for ``<kind>.params.<param>``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {_shown_set(assignment)}: expected KEY=VALUE, e.g. --set detector.lr=0.001")
    _put(data, key.strip(), parse_value(raw.strip(), assignment), assignment)


def _put(data: dict[str, Any], key: str, value: Any, assignment: str | None = None) -> None:
    """Set ``value`` at the dotted ``key`` of ``data``, as ``--set key=<value>`` would (a typed value is not
    written as TOML and parsed back); errors quote ``assignment`` (default: that ``--set``)."""

    def shown() -> str:
        return _shown_set(assignment if assignment is not None else f"{key}={json.dumps(value, default=str)}")

    path = key.split(".")
    if not all(_KEY_PART.fullmatch(p) for p in path):
        raise ConfigError(f"--set {shown()}: '{_shown_set(key)[1:-1]}' is not a dotted key of letters, digits, _ "
                          f"and -; give one KEY=VALUE per --set, e.g. --set detector.lr=0.001")
    if path[0] in KINDS and len(path) >= 2 and path[1] not in ("name", "params"):
        path = [path[0], "params", *path[1:]]
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {shown()}: '{part}' is a value, not a table")
        node = child
    node[path[-1]] = value


def set_component(data: dict[str, Any], kind: str, name: str) -> None:
    """Choose the plugin for a slot; its params reset unless the name is unchanged."""
    current = data.get(kind)
    if not (isinstance(current, dict) and current.get("name") == name):
        data[kind] = {"name": name, "params": {}}


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``b`` over ``a``; a component table naming another plugin replaces the old one whole."""
    out = dict(a)
    for key, value in b.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            switched = key in KINDS and "name" in value and value["name"] != old.get("name")
            out[key] = {"params": {}, **value} if switched else _deep_merge(old, value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


PRESETS = resources.files("avood_core") / "presets"


def preset_names() -> list[str]:
    """The shipped presets, sorted."""
    found = PRESETS.iterdir() if PRESETS.is_dir() else ()
    return sorted(p.name[: -len(".toml")] for p in found if p.name.endswith(".toml"))


def load_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name fails with one line listing the valid ones."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'; valid presets: {', '.join(names) or '(none installed)'} "
                          f"(or 'none': no preset)")
    where = f"preset '{name}'"
    try:
        data = tomllib.loads((PRESETS / f"{name}.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}; reinstall avood") from None
    unknown = sorted(set(data) - {"description", "config", "params"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level keys {unknown}; use description, [config], [params.<kind>.<plugin>]")
    return Preset(name, str(data.get("description", "")), dict(data.get("config", {})),
                  check_plugin_params(data.get("params", {}), where))


def check_plugin_params(params: Any, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Validate the shape of a ``params`` table: ``{kind: {plugin name: {param: value}}}``."""
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: 'params' must be a table of kinds ({', '.join(KINDS)})")
    for kind, by_name in params.items():
        if kind not in KINDS:
            raise ConfigError(f"{where}: params.{kind}: unknown kind; use one of {', '.join(KINDS)}")
        if not isinstance(by_name, dict) or not all(isinstance(v, dict) for v in by_name.values()):
            raise ConfigError(f"{where}: params.{kind} must hold one table per plugin name, e.g. [params.{kind}.NAME]")
    return params


def list_presets() -> list[Preset]:
    return [load_preset(n) for n in preset_names()]
