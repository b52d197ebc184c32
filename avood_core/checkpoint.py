"""Component checkpoints: ``config.json`` + ``model.safetensors``, written atomically, never unpickled.

Layout of one component folder::

    <dir>/config.json        kind, plugin name, distribution + version, params, learned scalars,
                             the config hash used by ``--resume`` and the weights' sha256
    <dir>/model.safetensors  every tensor of the component

Saving builds both files in a hidden temp folder and swaps it in with two renames, so an
interruption leaves either the previous checkpoint or the new one (a swap cut between its
two renames is repaired on the next load). Loading verifies the weights' checksum.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from avood_core.errors import CheckpointError, PluginError
from avood_core.protocols import Component
from avood_core.registry import Registry, get_registry

FORMAT = 1
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def config_hash(payload: Any) -> str:
    """A stable short hash of a JSON-able payload (params, seed, data, upstream hashes)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_component(component: Component, directory: str | Path, name: str, provider: Any = None, fit_hash: str | None = None) -> Path:
    """Write ``component`` (fitted) into ``directory`` atomically; refuses NaN/inf weights and NaN scalars."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in component.state_tensors().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{component.kind} '{name}': weights {bad[:3]} hold NaN/inf; not saved to '{directory}'; "
            f"lower the learning rate or change the seed and refit"
        )
    scalars = component.state_scalars()
    bad_scalars = _nan_paths(scalars)
    if bad_scalars:
        raise CheckpointError(
            f"{component.kind} '{name}': learned value(s) {bad_scalars[:3]} are NaN; not saved to '{directory}'; "
            f"check the component's training data and params and refit"
        )
    config = {
        "avood_format": FORMAT,
        "kind": component.kind,
        "name": name,
        "class": f"{type(component).__module__}:{type(component).__qualname__}",
        "distribution": getattr(provider, "dist", None),
        "version": getattr(provider, "version", None),
        "params": component.params.model_dump(mode="json"),
        "state": scalars,
        "fit_hash": fit_hash,
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        config["weights_sha256"] = _sha256(tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        for f in (tmp / WEIGHTS, tmp / CONFIG):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _swap_in(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _nan_paths(value: Any, path: str = "") -> list[str]:
    """Paths of the NaN floats inside a JSON-able value (state scalars; ±inf may be a deliberate threshold)."""
    if isinstance(value, float):
        return [path or "value"] if math.isnan(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nan_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _nan_paths(v, f"{path}[{i}]")]
    return []


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _swap_in(new: Path, target: Path) -> None:
    backup = target.with_name(f".{target.name}.old")
    if not target.exists() and backup.exists():
        os.rename(backup, target)  # repair an earlier swap cut between its renames before dropping anything
    if backup.exists():
        shutil.rmtree(backup)
    if target.exists():
        os.rename(target, backup)
    os.rename(new, target)
    _fsync_dir(target.parent)  # make the renames durable before the old copy goes
    shutil.rmtree(backup, ignore_errors=True)


def read_config(directory: str | Path) -> dict:
    """The ``config.json`` of a component folder (repairing an interrupted swap first)."""
    directory = Path(directory)
    backup = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and backup.exists():
        os.rename(backup, directory)  # a save was cut between its two renames
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"'{path}' not found; the component was never saved there (refit it)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"'{path}' is not valid JSON ({exc}); refit the component") from None
    if not isinstance(config, dict) or config.get("avood_format") != FORMAT or "name" not in config:
        raise CheckpointError(f"'{path}' is not an avood component config (format {FORMAT}); refit the component")
    return config


def load_component(directory: str | Path, registry: Registry | None = None, kind: str | None = None) -> Component:
    """Rebuild a fitted component from its folder via the registry (no pickle involved).

    ``kind``: the slot it must fill (``generator``, ``detector``, ``seen``, ``unseen``), if known.
    """
    from pydantic import ValidationError
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_config(directory)
    missing = [k for k in ("kind", "params", "state") if k not in config]
    if missing:
        raise CheckpointError(f"'{directory / CONFIG}' lacks {', '.join(missing)}; it is not a complete avood component config, refit the component")
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(
            f"'{directory / CONFIG}' holds a {config['kind']} '{config['name']}' but this folder is the {kind} slot; "
            f"the run folder was edited by hand, refit the component"
        )
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"'{weights}' not found; the checkpoint is incomplete, refit the component")
    if _sha256(weights) != config.get("weights_sha256"):
        raise CheckpointError(f"'{weights}' does not match its config.json checksum (corrupted or truncated); refit the component")
    registry = registry or get_registry()
    kind, name = config["kind"], config["name"]
    try:
        cls = registry.component_class(kind, name)
    except PluginError as exc:
        dist = config.get("distribution") or "its plugin package"
        raise CheckpointError(
            f"'{directory / CONFIG}' needs {kind} '{name}' from {dist} {config.get('version') or ''}".rstrip()
            + f", which is not installed ({exc}); install it to load this checkpoint"
        ) from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{weights}' cannot be read ({exc}); refit the component") from None
    try:
        component = cls(config["params"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(
            f"'{directory / CONFIG}': params of {kind} '{name}' no longer validate ({where}: {first['msg']}); "
            f"the installed plugin's params changed or the file was edited, refit the component"
        ) from None
    try:
        component.load_state(config["state"], tensors)
    except (KeyError, RuntimeError, ValueError, TypeError, AssertionError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"'{weights}' does not fit {kind} '{name}' ({type(exc).__name__}: {detail}); refit the component") from None
    component.fitted = True
    return component
