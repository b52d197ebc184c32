"""A folder of fitted components shared by a sweep's trials, keyed by kind and fit hash
(:func:`avood_core.run.fitting.fit_hashes`): the ablation's :class:`~avood_core.eval.ablate.FitCache`
on disk. Entries are checkpoint folders published with one rename (a reader sees all or nothing)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from avood_core.errors import CheckpointError
from avood_core.registry import KINDS


def entry(shared: Path, kind: str, fit_hash: str) -> Path:
    return Path(shared) / f"{kind}-{fit_hash}"


def reuse_shared(shared: Path, stage_dir: Path, pipeline, hashes: dict[str, str], registry,
                 echo: Callable[[str], None], skip: set[str]) -> set[str]:
    """Load into ``pipeline`` the components found in ``shared`` (kinds in ``skip`` excepted); copy each into ``stage_dir``."""
    from avood_core.pipeline.store import copy_component, load_component

    reused = set()
    for kind in KINDS:
        source = entry(shared, kind, hashes[kind])
        if kind in skip or not source.is_dir():
            continue
        try:
            component = load_component(source, registry, kind=kind)
        except CheckpointError as exc:
            echo(f"shared: {kind}: {exc}; fitting it")
            continue
        copy_component(source, stage_dir / "components" / kind)
        setattr(pipeline, kind, component)
        reused.add(kind)
        echo(f"shared: reusing {kind} fitted by another trial (config hash {hashes[kind]})")
    return reused


def publish(folder: Path, shared: Path, kind: str, fit_hash: str) -> None:
    """Copy a saved component folder into ``shared`` (first writer wins; a failure only costs a refit elsewhere)."""
    target = entry(shared, kind, fit_hash)
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
