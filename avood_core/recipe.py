"""The recipe of a run config: which preset it is built on and why, its profile, every override.

On benchmark data (``data.source = "benchmark"``) ``--dataset D`` means D's preset and with it
the paper's profile (paper §4.2) unless the user says otherwise: ``--preset NAME``, ``--preset
none``, or a config file. A preset of another dataset and the quick profile on benchmark data are
allowed but warned about. ``avood run`` prints :meth:`Recipe.line` first on stderr and keeps
:meth:`Recipe.as_dict` in ``results.json``; :func:`avood_core.config.assemble_config` is
:func:`assemble_recipe` without the recipe.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avood_core.config import (
    DEFAULT_COMPONENTS, RunConfig, _deep_merge, apply_override, apply_value, load_toml, set_component,
)
from avood_core.registry import KINDS


NO_PRESET = "none"  # --preset none: no preset, not even the default one of benchmark data


@dataclass(frozen=True)
class Recipe:
    """How a run config was built: its preset (and why), its profile, every override on top, and
    the warnings a reader of the results needs (a preset of another dataset, the quick profile on
    benchmark data). ``avood run`` prints :meth:`line` first on stderr and stores :meth:`as_dict`
    in ``results.json``."""

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
    """:func:`avood_core.config.assemble_config`'s dict (same arguments) and the :class:`Recipe` that describes it."""
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
            apply_value(data, key, value)
        return data

    def empty() -> dict[str, Any]:
        return {k: {"name": DEFAULT_COMPONENTS[k], "params": {}} for k in KINDS}

    data = layered(empty())
    chosen, why = _chosen_preset(preset, config_file is not None, bool(base), _data_section(data))
    preset_dataset = None
    if chosen is not None:
        from avood_core.presets import load_preset

        picked = load_preset(chosen)
        preset_dataset = (picked.config.get("data") or {}).get("dataset")
        data = layered(_deep_merge(empty(), copy.deepcopy({**picked.config, "params": picked.params})))
    section = _data_section(data)
    benchmark, dataset = section.get("source") == "benchmark", section.get("dataset")
    profile = str(data.get("profile", RunConfig.model_fields["profile"].default))
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
    from avood_core.presets import preset_names

    if dataset not in preset_names():
        return None, f"no preset named '{dataset}'"
    return dataset, f"the default of --dataset {dataset} on benchmark data"
