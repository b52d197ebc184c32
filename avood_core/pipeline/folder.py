"""A fitted pipeline's run folder: ``pipeline.json`` + ``task.safetensors`` beside ``components/<kind>``.

Each component folder is a checkpoint of :mod:`avood_core.pipeline.store`; the two files here
hold what the four share (class embeddings, class sets, names, dims, fit hashes) and are written
last, so they mark the folder finished. ``pipeline.json`` also holds the run's checksum manifest
(``files``: the sha256 of ``task.safetensors`` and of every component file), so a file changed
after the run was saved is refused on load with one line naming it. ``pipeline.json`` is read
with a strict schema: its format version must be :data:`FORMAT`, unknown keys and wrong types
are refused, each with one line naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from avood_core.errors import CheckpointError
from avood_core.pipeline.store import (CONFIG, WEIGHTS, check_class_ids, check_task_meta, check_task_tensors,
                                       file_sha256, load_component, read_config)
from avood_core.stages import KINDS
from avood_core.util.json_read import describe, field, read_json

if TYPE_CHECKING:
    from avood_core.pipeline.core import Pipeline

FORMAT = 2
META, TASK = "pipeline.json", "task.safetensors"


class _Meta(BaseModel):
    """The fields of ``pipeline.json``; nothing else is allowed."""

    model_config = ConfigDict(extra="forbid")
    avood_format: StrictInt
    syn_num: StrictInt = Field(ge=0)
    names: dict[str, StrictStr]
    class_names: list[StrictStr]
    dims: dict[str, StrictInt]
    text_dim: StrictInt = Field(ge=1)
    fit_hashes: dict[str, Optional[StrictStr]]
    files: dict[str, StrictStr]


def manifest_names(kinds) -> list[str]:
    """The files of a run folder that ``pipeline.json``'s manifest covers (relative paths)."""
    return [TASK, *(f"components/{kind}/{name}" for kind in kinds for name in (CONFIG, WEIGHTS))]


def save_pipeline_meta(pipe: "Pipeline", run_dir: Path, fit_hashes: dict | None = None) -> None:
    """Write ``task.safetensors`` and ``pipeline.json`` (fit hashes and the checksum manifest)."""
    from safetensors.torch import save_file

    from avood_core.util.io import atomic_write, atomic_write_json

    tensors = {"text": pipe.text.cpu().contiguous(), "seen_classes": pipe.seen_classes.cpu().contiguous(),
               "unseen_classes": pipe.unseen_classes.cpu().contiguous()}
    atomic_write(run_dir / TASK, lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_json(run_dir / META, {
        "avood_format": FORMAT, "syn_num": pipe.syn_num, "names": pipe.names,
        "class_names": pipe.class_names, "dims": pipe.dims, "text_dim": int(pipe.text.shape[1]),
        "fit_hashes": {k: (fit_hashes or {}).get(k) for k in pipe.components},
        "files": {rel: file_sha256(run_dir / rel) for rel in manifest_names(pipe.components)},
    })


def read_meta(run_dir: Path) -> dict[str, Any]:
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
    missing = [rel for rel in manifest_names(KINDS) if rel not in meta["files"]]
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


def load_pipeline_parts(run_dir: Path, registry=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(components by kind, shared state)`` of a finished run folder, every file checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta_path, task_path = run_dir / META, run_dir / TASK
    for path in (meta_path, task_path):
        if not path.is_file():
            raise CheckpointError(f"'{path}' not found; '{run_dir}' is not a finished avood run folder")
    meta = read_meta(run_dir)
    verify(run_dir, meta, TASK)
    try:
        tensors = load_file(str(task_path))
    except (SafetensorError, OSError, ValueError) as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"'{task_path}' cannot be read ({detail}); rerun 'avood run'") from None
    check_task_tensors(task_path, tensors, meta["text_dim"])
    state = {key: meta[key] for key in ("syn_num", "names", "class_names", "dims")}
    state.update({key: tensors[key] for key in ("text", "seen_classes", "unseen_classes")})
    seen_c, unseen_c, class_names = state["seen_classes"], state["unseen_classes"], state["class_names"]
    check_task_meta(run_dir, state["text"], seen_c, unseen_c, class_names, state["dims"])
    parts = {kind: load_component(run_dir / "components" / kind, registry, kind=kind) for kind in KINDS}
    expected = meta["fit_hashes"]
    for kind in parts:
        config = read_config(run_dir / "components" / kind)
        check_class_ids(config["state"], len(class_names), set(seen_c.tolist()), set(unseen_c.tolist()),
                        run_dir / "components" / kind / CONFIG)
        saved = config.get("fit_hash")
        if expected.get(kind) is not None and saved != expected[kind]:
            raise CheckpointError(
                f"'{run_dir}': {kind} was refitted (fit hash {saved}) after this pipeline was saved "
                f"(fit hash {expected[kind]}), likely by an interrupted --resume; finish it with 'avood run --resume {run_dir}'"
            )
    for rel in manifest_names(KINDS):
        verify(run_dir, meta, rel)
    return parts, state
