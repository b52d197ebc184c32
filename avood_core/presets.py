"""Per-dataset presets: the paper's hyperparameters (§4.2, the reference configs) as TOML shipped in the package.

``avood_core/presets/<name>.toml`` holds ``description`` (shown by ``avood presets``), ``[config]``
(run-config fields) and ``[params.<kind>.<plugin>]`` (params of ``<plugin>`` whenever it fills the
``<kind>`` slot). A preset is the lowest layer of a config (:func:`avood_core.config.build_config`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from avood_core.errors import ConfigError
from avood_core.registry import KINDS


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def _folder():
    return resources.files("avood_core") / "presets"


def preset_names() -> list[str]:
    """The shipped presets, sorted."""
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name fails with one line listing the valid ones."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'; valid presets: {', '.join(names) or '(none installed)'} "
                          f"(or 'none': no preset)")
    where = f"preset '{name}'"
    try:
        data = tomllib.loads((_folder() / f"{name}.toml").read_text(encoding="utf-8"))
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
