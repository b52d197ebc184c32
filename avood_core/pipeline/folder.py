"""A fitted pipeline's run folder: ``pipeline.json`` + ``task.safetensors`` beside ``components/<kind>``.

The two files hold what the components share, are written last (they mark the folder finished), and
``pipeline.json`` (strict schema, format :data:`FORMAT`) records every file's sha256, checked on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from avood_core.errors import CheckpointError
from avood_core.pipeline.store import CONFIG, WEIGHTS, check_class_ids, check_finite, file_sha256, load_component, read_config
from avood_core.util.io import atomic_write, atomic_write_json
from avood_core.util.json_read import describe, field, read_json

FORMAT = 2
META, TASK = "pipeline.json", "task.safetensors"
TENSORS = ("text", "seen_classes", "unseen_classes")
"""The pipeline's attributes in ``task.safetensors``."""
FIELDS = ("syn_num", "names", "class_names", "dims")
"""The pipeline's attributes in ``pipeline.json``."""


class _Meta(BaseModel):
    """The fields of ``pipeline.json``; nothing else is allowed."""

    model_config = ConfigDict(extra="forbid")
    avood_format: StrictInt
    syn_num: StrictInt = Field(ge=0)
    names: dict[str, StrictStr]
    class_names: list[StrictStr]
    dims: dict[str, Annotated[StrictInt, Field(ge=1)]]
    text_dim: StrictInt = Field(ge=1)
    fit_hashes: dict[str, Optional[StrictStr]]
    files: dict[str, StrictStr]


def manifest_names(kinds) -> list[str]:
    """The files of a run folder that ``pipeline.json``'s manifest covers (relative paths)."""
    return [TASK, *(f"components/{kind}/{name}" for kind in kinds for name in (CONFIG, WEIGHTS))]


def save_meta(run_dir: Path, kinds: list[str], tensors: dict[str, Any], fields: dict[str, Any],
              fit_hashes: dict | None = None) -> None:
    """Write ``task.safetensors`` (:data:`TENSORS`) and ``pipeline.json`` (:data:`FIELDS`, fit hashes, checksums)."""
    tensors = {k: v.cpu().contiguous() for k, v in tensors.items()}
    atomic_write(run_dir / TASK, lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_json(run_dir / META, {
        "avood_format": FORMAT, **fields, "text_dim": int(tensors["text"].shape[1]),
        "fit_hashes": {k: (fit_hashes or {}).get(k) for k in kinds},
        "files": {rel: file_sha256(run_dir / rel) for rel in manifest_names(kinds)},
    })


def read_meta(run_dir: Path, kinds: list[str]) -> dict[str, Any]:
    """``pipeline.json`` of ``run_dir``: its format version, then every field by the strict schema."""
    path = run_dir / META
    fix = f"rerun 'avood run' (or 'avood run --resume {run_dir}') to rewrite it"
    meta = read_json(path, error=CheckpointError, fix=fix)
    version = field(meta, "avood_format", int, f"'{path}'", error=CheckpointError,
                    fix=f"this avood reads format {FORMAT}; {fix}")
    if version != FORMAT:
        raise CheckpointError(f"'{path}': field 'avood_format' is {version}, but this avood reads format {FORMAT} "
                              f"only; open it with the avood version that wrote it, or {fix}")
    try:
        _Meta.model_validate(meta)
    except ValidationError as exc:
        raise CheckpointError(f"'{path}': {describe(exc)}; {fix}") from None
    missing = [rel for rel in manifest_names(kinds) if rel not in meta["files"]]
    if missing:
        raise CheckpointError(f"'{path}': the checksum manifest 'files' lacks '{missing[0]}'; {fix}")
    return meta


def verify(run_dir: Path, meta: dict[str, Any], rel: str) -> None:
    """``run_dir / rel`` must hold the bytes ``pipeline.json``'s manifest recorded for it."""
    path = run_dir / rel
    try:
        same = file_sha256(path) == meta["files"][rel]
    except OSError as exc:
        raise CheckpointError(f"'{path}' cannot be read ({exc.strerror}); rerun 'avood run'") from None
    if not same:
        raise CheckpointError(
            f"'{path}' was changed after the run was saved (its sha256 differs from the one '{run_dir / META}' "
            f"records); restore it, or rerun 'avood run --resume {run_dir}' to refit and rewrite it")


def load(run_dir: Path, kinds: list[str], registry=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(components by kind, shared state by attribute)`` of a finished run folder, every file checked."""
    meta_path, task_path = run_dir / META, run_dir / TASK
    for path in (meta_path, task_path):
        if not path.is_file():
            raise CheckpointError(f"'{path}' not found; '{run_dir}' is not a finished avood run folder")
    meta = read_meta(run_dir, kinds)
    verify(run_dir, meta, TASK)
    try:
        tensors = load_file(str(task_path))
    except (SafetensorError, OSError, ValueError) as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"'{task_path}' cannot be read ({detail}); rerun 'avood run'") from None
    check_task(run_dir, tensors, meta)
    state = {**{key: meta[key] for key in FIELDS}, **{key: tensors[key] for key in TENSORS}}
    seen_c, unseen_c, class_names = state["seen_classes"], state["unseen_classes"], state["class_names"]
    parts = {kind: load_component(run_dir / "components" / kind, registry, kind=kind) for kind in kinds}
    expected = meta["fit_hashes"]
    for kind in parts:
        config = read_config(run_dir / "components" / kind)
        check_class_ids(config["state"], len(class_names), set(seen_c.tolist()), set(unseen_c.tolist()),
                        run_dir / "components" / kind / CONFIG)
        saved = config.get("fit_hash")
        if expected.get(kind) is not None and saved != expected[kind]:
            raise CheckpointError(f"'{run_dir}': {kind} was refitted (fit hash {saved}) after this pipeline was saved "
                                  f"(fit hash {expected[kind]}), likely by an interrupted --resume; finish it with "
                                  f"'avood run --resume {run_dir}'")
    for rel in manifest_names(kinds):
        verify(run_dir, meta, rel)
    return parts, state


def check_task(run_dir: Path, tensors: dict, meta: dict) -> None:
    """``task.safetensors`` as saving wrote it and agreeing with ``pipeline.json``: ``text`` finite float32
    (one row per class name, ``text_dim`` columns); the seen and unseen classes non-empty, distinct
    int64 ids of its rows (AV-GZSL, paper Sec. 3: a test set of seen and unseen classes)."""
    path, fix = run_dir / TASK, "the file was edited or corrupted; rerun 'avood run'"
    if set(tensors) != set(TENSORS):
        raise CheckpointError(f"'{path}' holds tensors {sorted(tensors)}, not {sorted(TENSORS)}; {fix}")
    text, n, text_dim = tensors["text"], len(meta["class_names"]), meta["text_dim"]
    if text.dtype != torch.float32 or text.ndim != 2:
        raise CheckpointError(f"'{path}': text must be float32 (classes, {text_dim}) (got {text.dtype} "
                              f"{tuple(text.shape)}); {fix}")
    if text.shape[1] != text_dim:
        raise CheckpointError(f"'{path}': text has {text.shape[1]} columns but pipeline.json's text_dim is {text_dim}; {fix}")
    if text.shape[0] != n:
        raise CheckpointError(f"'{run_dir}': pipeline.json class_names must be {text.shape[0]} strings, one per text "
                              f"row of task.safetensors; {fix}")
    check_finite({"text": text}, path, fix)
    ids: list[int] = []
    for key in ("seen_classes", "unseen_classes"):
        if tensors[key].dtype != torch.int64 or tensors[key].ndim != 1:
            raise CheckpointError(f"'{path}': {key} must be 1-D int64 class ids (got {tensors[key].dtype} "
                                  f"{tuple(tensors[key].shape)}); {fix}")
        if len(tensors[key]) == 0:
            raise CheckpointError(f"'{path}': {key} is empty, so the task has no {key.split('_')[0]} classes; {fix}")
        ids += tensors[key].tolist()
    if len(set(ids)) != len(ids) or any(not 0 <= i < n for i in ids):
        raise CheckpointError(f"'{path}': seen/unseen classes must be distinct class ids in [0, {n}); {fix}")
