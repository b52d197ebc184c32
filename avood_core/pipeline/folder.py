"""A fitted pipeline's run folder: ``pipeline.json`` + ``task.safetensors`` beside ``components/<kind>``.

Each component folder is a checkpoint of :mod:`avood_core.pipeline.store`; the two files here
hold what the four share (class embeddings, class sets, names, dims, fit hashes) and are written
last, so they mark the folder finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avood_core.errors import CheckpointError
from avood_core.pipeline.store import check_class_ids, check_task_meta, load_component, read_config
from avood_core.stages import KINDS

if TYPE_CHECKING:
    from avood_core.pipeline.core import Pipeline


def save_pipeline_meta(pipe: "Pipeline", run_dir: Path, fit_hashes: dict | None = None) -> None:
    """Write ``task.safetensors`` and ``pipeline.json`` (with the fit hash of each component)."""
    from safetensors.torch import save_file

    from avood_core.util.io import atomic_write, atomic_write_json

    tensors = {"text": pipe.text.cpu().contiguous(), "seen_classes": pipe.seen_classes.cpu().contiguous(),
               "unseen_classes": pipe.unseen_classes.cpu().contiguous()}
    atomic_write(run_dir / "task.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_json(run_dir / "pipeline.json", {
        "avood_format": 1, "syn_num": pipe.syn_num, "names": pipe.names,
        "class_names": pipe.class_names, "dims": pipe.dims,
        "fit_hashes": {k: (fit_hashes or {}).get(k) for k in pipe.components},
    })


def load_pipeline_parts(run_dir: Path, registry=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(components by kind, shared state)`` of a finished run folder, every file checked."""
    from safetensors.torch import load_file

    meta_path, task_path = run_dir / "pipeline.json", run_dir / "task.safetensors"
    for path in (meta_path, task_path):
        if not path.is_file():
            raise CheckpointError(f"'{path}' not found; '{run_dir}' is not a finished avood run folder")
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(task_path))
        state = {key: meta[key] for key in ("syn_num", "names", "class_names", "dims")}
        state.update({key: tensors[key] for key in ("text", "seen_classes", "unseen_classes")})
    except Exception as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise CheckpointError(f"'{run_dir}': cannot read pipeline metadata ({detail}); rerun 'avood run'") from None
    seen_c, unseen_c, class_names = state["seen_classes"], state["unseen_classes"], state["class_names"]
    check_task_meta(run_dir, state["text"], seen_c, unseen_c, class_names, state["dims"])
    parts = {kind: load_component(run_dir / "components" / kind, registry, kind=kind) for kind in KINDS}
    expected = meta.get("fit_hashes") or {}
    for kind in parts:
        config = read_config(run_dir / "components" / kind)
        check_class_ids(config["state"], len(class_names), set(seen_c.tolist()), set(unseen_c.tolist()),
                        run_dir / "components" / kind / "config.json")
        saved = config.get("fit_hash")
        if expected.get(kind) is not None and saved != expected[kind]:
            raise CheckpointError(
                f"'{run_dir}': {kind} was refitted (fit hash {saved}) after this pipeline was saved "
                f"(fit hash {expected[kind]}), likely by an interrupted --resume; finish it with 'avood run --resume {run_dir}'"
            )
    return parts, state
