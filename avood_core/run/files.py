"""Reading a run folder's ``results.json``, ``predictions.npz`` and ``tsne.npz`` for ``avood report``,
checked before anything is written (never unpickled); a bad file is one line naming it and the fix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from pydantic import (BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, create_model,
                      field_validator)

from avood_core.errors import CheckpointError, one_line
from avood_core.util.json_read import describe, read_json

Number = Union[StrictInt, StrictFloat]
Num = Optional[Number]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _table(name: str, base: type[BaseModel] = _Open, **fields: Any) -> type[BaseModel]:
    """A table of results.json: the named fields checked, any other key kept."""
    return create_model(name, __base__=base, **fields)


_GZSL = _table("_GZSL", **dict.fromkeys(("S", "U", "HM"), (Num, None)))
_Routing = _table("_Routing", **dict.fromkeys(  # counts; their mean over seeds is a float
    ("seen_to_seen", "seen_to_unseen", "unseen_to_seen", "unseen_to_unseen"), (Number, ...)))
_Gate = _table("_Gate", **dict.fromkeys(("AUROC", "TPR", "FPR", "threshold"), (Num, None)),
               fpr_at_tpr60=(Num, Field(None, alias="FPR@TPR60")), routing=(Optional[_Routing], None))
_Metrics = _table("_Metrics", _GZSL, ZSL=(Num, None), seen_classifier_acc=(Num, None), gate=(Optional[_Gate], None),
                  baseline_no_gate=(Optional[_GZSL], None))
_Seeds = _table("_Seeds", seeds=(Optional[list[Any]], None), per_seed=(Optional[list[dict[str, Any]]], None),
                mean=(Optional[_Metrics], None), std=(Optional[_Metrics], None), std_ddof=(Optional[StrictInt], None))


class _Results(_Open):
    components: Optional[dict[str, str]] = None
    metrics: Optional[_Metrics] = None
    seeds: Optional[_Seeds] = None
    task: Optional[dict[str, Any]] = None
    splits: Optional[dict[str, Any]] = None
    timings_s: Optional[dict[str, Number]] = None

    @field_validator("task")
    @classmethod
    def _splits(cls, task: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        for split in ("train", "val", "test"):
            if split in (task or {}) and not isinstance(task[split], (dict, type(None))):
                raise ValueError(f"task.{split} must be a table of samples and classes, or null")
        return task


def _fix(run_dir: Path) -> str:
    return f"rewrite it with 'avood run --resume {run_dir}' (it reuses the saved components)"


def read_results(run_dir: Path) -> dict:
    """``results.json`` of ``run_dir``, checked for the fields and types the report reads."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise CheckpointError(f"'{path}' not found; pass a run folder written by 'avood run'")
    results = read_json(path, error=CheckpointError, fix=_fix(run_dir))
    try:
        _Results.model_validate(results)
    except ValidationError as exc:
        raise CheckpointError(f"'{path}': {describe(exc)}; {_fix(run_dir)}") from None
    return results


def _load_npz(path: Path, run_dir: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, EOFError, zlib.error, OSError: a truncated or foreign file
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            raise CheckpointError(f"'{path}' holds object (pickled) arrays, which avood never loads; {_fix(run_dir)}") from None
        raise CheckpointError(f"'{path}' cannot be read ({one_line(exc)}); {_fix(run_dir)}") from None


INT_KEYS = ("labels", "pred", "seen_pred", "unseen_pred", "seen_classes", "unseen_classes")


def read_predictions(run_dir: Path) -> dict[str, np.ndarray] | None:
    """``predictions.npz`` (the arrays of ``Pipeline.outputs``), checked, or None when absent."""
    path = run_dir / "predictions.npz"
    out = _load_npz(path, run_dir)
    if out is None:
        return None

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"'{path}': {what}; {_fix(run_dir)}")

    missing = [k for k in (*INT_KEYS, "score", "threshold") if k not in out]
    if missing:
        raise bad(f"array(s) {', '.join(missing)} missing")
    for key in INT_KEYS:
        if out[key].dtype.kind not in "iu" or out[key].ndim != 1:
            raise bad(f"'{key}' must be a 1-D integer array (got {out[key].dtype} {out[key].shape})")
    per_sample = [k for k in ("labels", "pred", "seen_pred", "unseen_pred", "score", "baseline_pred", "routed_seen") if k in out]
    n = len(out["labels"])
    if n == 0 or any(out[k].ndim != 1 or len(out[k]) != n for k in per_sample):
        raise bad(f"{', '.join(per_sample)} must be 1-D with one entry per test sample ({n})")
    if out["score"].dtype.kind not in "fiu":
        raise bad(f"'score' must be numeric (got {out['score'].dtype})")
    nonfinite = int((~np.isfinite(out["score"].astype(np.float64))).sum())
    if nonfinite:
        raise bad(f"'score' holds {nonfinite} NaN/inf value(s), so no metric recomputed from it can be trusted")
    threshold = out["threshold"]
    if threshold.size != 1 or threshold.dtype.kind not in "fiu" or not math.isfinite(float(threshold.reshape(()))):
        raise bad(f"'threshold' must be one finite number (got {threshold.reshape(-1)[:3].tolist()})")
    return out


def read_tsne(run_dir: Path, n_test: int | None) -> dict[str, np.ndarray] | None:
    """``tsne.npz``, or None when absent; ``n_test``: the test-set size its indices must fit."""
    path = run_dir / "tsne.npz"
    z = _load_npz(path, run_dir)
    if z is None:
        return None
    need = ("coords", "indices") if n_test is not None else ("coords", "indices", "is_seen", "correct")
    missing = [k for k in need if k not in z]
    coords, idx = z.get("coords"), z.get("indices")
    problem = None
    if missing:
        problem = f"array(s) {', '.join(missing)} missing"
    elif coords.ndim != 2 or coords.shape[1] != 2 or coords.dtype.kind != "f" or not np.isfinite(coords).all():
        problem = f"'coords' must be finite (n, 2) floats (got {coords.dtype} {coords.shape})"
    elif idx.ndim != 1 or len(idx) != len(coords) or idx.dtype.kind not in "iu":
        problem = f"'indices' must be {len(coords)} integers, one per row of 'coords'"
    elif n_test is not None and len(idx) and (idx.min() < 0 or idx.max() >= n_test):
        problem = f"'indices' must lie in [0, {n_test}) (the test samples of predictions.npz)"
    elif any(k in z and z[k].shape != (len(idx),) for k in ("is_seen", "correct", "baseline_correct")):
        problem = "'is_seen', 'correct' and 'baseline_correct' must hold one entry per row of 'coords'"
    elif "seconds" in z and (z["seconds"].size != 1 or z["seconds"].dtype.kind not in "fiu"):
        problem = "'seconds' must be one number"
    if problem:
        raise CheckpointError(f"'{path}': {problem}; delete it (the report then omits the t-SNE figure) "
                              f"or {_fix(run_dir)}")
    return z
