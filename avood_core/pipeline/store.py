"""Component checkpoints: ``<dir>/config.json`` (kind, plugin, distribution + version, params, learned
scalars, fit hash, the weights' sha256) + ``<dir>/model.safetensors``, never unpickled.

Saving swaps a finished temp folder in with two renames (a cut swap is repaired on the next load).
Loading verifies both checksums, the JSON types, the learned scalars by the rules of saving and the
tensors: finite, with the names, dtypes and shapes the component's ``state_tensors`` declares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from avood_core.errors import CheckpointError, NotFittedError, PluginError, one_line
from avood_core.pipeline import boundary
from avood_core.protocols import Component
from avood_core.registry import Registry, get_registry
from avood_core.util.io import writing
from avood_core.util.json_read import describe, field, read_json

FORMAT = 2
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def config_hash(payload: Any, length: int = 16) -> str:
    """The sha256 (its first ``length`` hex digits) of a JSON-able payload as canonical JSON."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def seal(config: dict) -> dict:
    """``config`` with ``config_sha256`` set: the sha256 of every other field, canonical JSON."""
    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return {**body, "config_sha256": config_hash(body, 64)}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_component(component: Component, directory: str | Path, name: str, provider: Any = None, fit_hash: str | None = None) -> Path:
    """Write ``component`` (fitted) into ``directory`` atomically; refuses NaN/inf weights and NaN scalars."""
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in boundary.state_tensors(component).items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{component.kind} '{name}': weights {bad[:3]} hold NaN/inf; not saved to '{directory}'; "
                              f"lower the learning rate or change the seed and refit")
    scalars = boundary.state_scalars(component)  # NumPy scalars as Python numbers; non-JSON values refused
    bad = _nan_paths(scalars)
    if bad:
        raise CheckpointError(f"{component.kind} '{name}': learned value(s) {bad[:3]} are NaN; not saved to "
                              f"'{directory}'; check the component's training data and params and refit")
    config = {"avood_format": FORMAT, "kind": component.kind, "name": name,
              "class": f"{type(component).__module__}:{type(component).__qualname__}",
              "distribution": getattr(provider, "dist", None), "version": getattr(provider, "version", None),
              "params": component.params.model_dump(mode="json"), "state": scalars, "fit_hash": fit_hash}

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS))
        config["weights_sha256"] = file_sha256(tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(seal(config), indent=2) + "\n")

    return _write_folder(directory, fill)


def _write_folder(directory: Path, fill: Callable[[Path], None]) -> Path:
    """Build a component folder in a hidden temp folder beside ``directory`` (``fill(tmp)``
    writes its two files), fsync them, and swap it in; a failure leaves ``directory`` as it was."""
    with writing(directory, "the component folder"):  # a full disk: one line naming the folder
        directory.parent.mkdir(parents=True, exist_ok=True)
        for stale in directory.parent.glob(f".{directory.name}.tmp-*"):  # left by a save that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            fill(tmp)
            for f in (tmp / WEIGHTS, tmp / CONFIG):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            backup = _repair(directory)  # before dropping anything
            if backup.exists():
                shutil.rmtree(backup)
            if directory.exists():
                os.rename(directory, backup)
            os.rename(tmp, directory)
            with contextlib.suppress(OSError):  # the renames durable before the old copy goes (no dir fds: skip)
                fd = os.open(directory.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            shutil.rmtree(backup, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return directory


def _entries(value: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted path, key, value)`` of every entry inside nested dicts and lists (the learned scalars)."""
    if isinstance(value, dict):
        items = [(f"{path}.{k}" if path else str(k), k, v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{path}[{i}]", None, v) for i, v in enumerate(value)]
    else:
        return []
    return [entry for here, k, v in items for entry in [(here, k, v), *_entries(v, here)]]


def _nan_paths(state: Any) -> list[str]:
    """Paths of the NaN floats inside the learned scalars (±inf may be a deliberate threshold)."""
    return [path for path, _, v in _entries(state) if isinstance(v, float) and math.isnan(v)]


def _repair(directory: Path) -> Path:
    """The backup path of ``directory``, moved back first if a swap was cut between its two renames."""
    backup = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and backup.exists():
        os.rename(backup, directory)
    return backup


TYPED_FIELDS = (("kind", str, True), ("name", str, True), ("params", dict, True), ("state", dict, True),
                ("fit_hash", (str, type(None)), False), ("weights_sha256", str, False))
"""``config.json`` fields read back, their JSON types and whether they are required."""


def read_config(directory: str | Path) -> dict:
    """The ``config.json`` of a component folder (repairing an interrupted swap first)."""
    directory = Path(directory)
    _repair(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"'{path}' not found; the component was never saved there (refit it)")
    config = read_json(path, error=CheckpointError, fix="refit the component, e.g. avood run --resume RUN")
    if config.get("avood_format") != FORMAT or "name" not in config:
        raise CheckpointError(f"'{path}' is not an avood component config (format {FORMAT}); refit the component")
    if seal(config).get("config_sha256") != config.get("config_sha256"):
        raise CheckpointError(f"'{path}' was edited or corrupted after it was saved (its contents do not match the "
                              f"config_sha256 recorded in it); refit the component, e.g. avood run --resume RUN")
    for key, types, required in TYPED_FIELDS:
        field(config, key, types, f"'{path}'", error=CheckpointError, required=required,
              fix="the file was edited or corrupted; refit the component, e.g. avood run --resume RUN")
    return config


def copy_component(source: str | Path, target: str | Path) -> Path:
    """Copy a saved component folder into ``target`` atomically (``--resume --allow-changes``)."""
    source = Path(source)

    def fill(tmp: Path) -> None:
        for name in (CONFIG, WEIGHTS):
            shutil.copyfile(source / name, tmp / name)

    return _write_folder(Path(target), fill)


CLASS_KEYS = ("seen_classes", "unseen_classes", "classes")


def _ints(values: Any, least: int | None = None) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and (least is None or v >= least) for v in values)


_CLASS_IDS = (lambda v: isinstance(v, list) and _ints(v), "must be a list of integer class ids (got {!r:.80})")
_DIMS = (lambda v: isinstance(v, dict) and _ints(v.values(), 1), "must map names to positive integers (got {!r})")
_SCALAR_RULES = {**dict.fromkeys(CLASS_KEYS, _CLASS_IDS), "dims": _DIMS}
"""The learned scalars saving writes under these keys (any nesting): what each must be."""


def check_scalars(config: dict, path: Path) -> None:
    """The learned scalars of a loaded ``config.json`` by the rules of saving: no NaN anywhere, then
    :data:`_SCALAR_RULES` (class ids, dims); a one-line CheckpointError otherwise."""
    bad = _nan_paths(config.get("state"))
    if bad:
        raise CheckpointError(f"'{path}': learned value(s) {bad[:3]} are NaN, which saving never writes; "
                              f"the file was edited or corrupted, refit the component")
    for where, key, value in _entries(config.get("state")):
        ok, must = _SCALAR_RULES.get(key, (None, ""))
        if ok is not None and not ok(value):
            raise CheckpointError(f"'{path}': state.{where} {must.format(value)}; the file was edited or corrupted, "
                                  f"refit the component")


def check_class_ids(state: Any, n_classes: int, seen: set[int], unseen: set[int], path: Path) -> None:
    """Class ids a component saved (``seen_classes``, ``unseen_classes``, ``classes``, any nesting) must
    be classes of the run's task of that kind (a wrong id would index the wrong class name)."""
    allowed = {"seen_classes": seen, "unseen_classes": unseen, "classes": seen | unseen}
    for where, key, ids in _entries(state):
        wrong = [i for i in ids if i not in allowed[key]] if key in allowed else []  # ints: check_scalars ran on load
        if wrong:
            raise CheckpointError(f"'{path}': state.{where} holds class id(s) {wrong[:5]} that are not "
                                  f"{key.replace('_', ' ')} of this run's task ({n_classes} classes); the file was "
                                  f"edited or corrupted, refit the component")


def load_component(directory: str | Path, registry: Registry | None = None, kind: str | None = None) -> Component:
    """Rebuild a fitted component from its folder via the registry (no pickle); ``kind``: the slot it fills."""
    directory = Path(directory)
    config = read_config(directory)
    check_scalars(config, directory / CONFIG)
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(f"'{directory / CONFIG}' holds a {config['kind']} '{config['name']}' but this folder "
                              f"is the {kind} slot; the run folder was edited by hand, refit the component")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"'{weights}' not found; the checkpoint is incomplete, refit the component")
    if file_sha256(weights) != config.get("weights_sha256"):
        raise CheckpointError(f"'{weights}' does not match its config.json checksum (corrupted or truncated); refit the component")
    registry = registry or get_registry()
    kind, name = config["kind"], config["name"]
    try:
        cls = registry.component_class(kind, name)
    except PluginError as exc:
        dist = config.get("distribution") or "its plugin package"
        raise CheckpointError(f"'{directory / CONFIG}' needs {kind} '{name}' from {dist} {config.get('version') or ''}"
                              .rstrip() + f", which is not installed ({exc}); install it to load this checkpoint") from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{weights}' cannot be read ({exc}); refit the component") from None
    try:
        component = cls(config["params"])
    except ValidationError as exc:
        raise CheckpointError(f"'{directory / CONFIG}': params of {kind} '{name}' no longer validate "
                              f"({describe(exc, 1)}); the installed plugin's params changed or the file was edited, "
                              f"refit the component") from None
    check_finite(tensors, weights)
    with boundary.calling(component, "load_state()"):  # anything else it raises: one line naming the plugin
        try:  # the usual ways a file that does not fit shows
            component.load_state(config["state"], tensors)
        except (KeyError, RuntimeError, ValueError, TypeError, NotFittedError) as exc:
            raise CheckpointError(f"'{weights}' does not fit {kind} '{name}' ({one_line(exc, 300)}); "
                                  f"refit the component") from None
    label, declared = f"{kind} '{name}'", boundary.state_tensors(component)
    for key in sorted(set(declared) | set(tensors)):  # names, dtypes, shapes: no silent cast of a changed tensor
        if key not in tensors or key not in declared:
            what = "lacks tensor '{}', which {} does" if key not in tensors else "holds tensor '{}', which {} does not"
            raise CheckpointError(f"'{weights}' {what.format(key, label)} declare; the file was edited or corrupted, "
                                  f"refit the component")
        want, got = declared[key], tensors[key]
        if want.dtype != got.dtype or tuple(want.shape) != tuple(got.shape):
            raise CheckpointError(f"'{weights}': tensor '{key}' is {str(got.dtype).replace('torch.', '')} "
                                  f"{tuple(got.shape)} but {label} declares {str(want.dtype).replace('torch.', '')} "
                                  f"{tuple(want.shape)} (dtype or shape changed); the file was edited or corrupted, "
                                  f"refit the component")
    component.fitted = True
    return component


def check_finite(tensors: dict, path: Path, fix: str = "the file was edited or corrupted, refit the component") -> None:
    """No NaN/inf in a loaded tensor (saving refuses them, so one means the file was changed)."""
    for key, value in tensors.items():
        bad = int((~torch.isfinite(value)).sum()) if value.is_floating_point() else 0
        if bad:
            raise CheckpointError(f"'{path}': tensor '{key}' holds {bad} NaN/inf value(s), which saving never writes; {fix}")

