"""Reading feature files for ``avood predict`` and writing its predictions."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from avood_core.errors import DataError, one_line
from avood_core.util.io import atomic_write_text


_KINDS = {"c": "complex numbers", "b": "booleans", "U": "strings", "S": "bytes", "O": "Python objects",
          "M": "dates", "m": "time spans", "V": "raw records"}


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``audio`` and ``video`` arrays from an .npz (no pickles) or .h5 file."""
    if not path.is_file():
        raise DataError(f"'{path}' not found; pass an .npz or .h5 file with 'audio' and 'video' arrays")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            if not zipfile.is_zipfile(path):
                raise DataError(f"'{path}' is not an .npz (zip) archive; write it with numpy.savez")
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in ("audio", "video") if k in f.files}
        elif suffix in (".h5", ".hdf5"):
            import h5py

            from avood_core.data.h5io import unstored

            with h5py.File(path, "r") as f:
                for k in ("audio", "video"):
                    if k in f and not isinstance(f[k], h5py.Dataset):
                        raise DataError(f"'{path}': '{k}' is a group, not a dataset; store audio (N, Da) and video (N, Dv)")
                    if k in f and unstored(f[k]):
                        raise DataError(f"'{path}': {k}: {unstored(f[k])}; write the whole array")
                arrays = {k: f[k][()] for k in ("audio", "video") if k in f}
        else:
            raise DataError(f"'{path}': unsupported file type '{path.suffix}'; use .npz or .h5")
    except DataError:
        raise
    except Exception as exc:
        if "pickle" in str(exc):
            raise DataError(f"'{path}' holds object (pickled) arrays, which avood never loads; store float arrays") from None
        raise DataError(f"'{path}' cannot be read ({one_line(exc)}); write it with numpy.savez or h5py") from None
    missing = [k for k in ("audio", "video") if k not in arrays]
    if missing:
        raise DataError(f"'{path}' has no {' or '.join(repr(m) for m in missing)} array; store audio (N, Da) and video (N, Dv)")
    for key in ("audio", "video"):
        kind = np.asarray(arrays[key]).dtype
        if kind.kind not in "iuf":  # complex would lose its imaginary part; bool, str, object are no features
            raise DataError(f"'{path}': array '{key}' has dtype {kind} ({_KINDS.get(kind.kind, 'not numeric')}); "
                            f"store real-valued float features")
    audio, video = (np.asarray(arrays[k], dtype=np.float32) for k in ("audio", "video"))  # numeric: checked above
    if audio.ndim != 2 or video.ndim != 2 or len(audio) != len(video):
        raise DataError(f"'{path}': audio {audio.shape} and video {video.shape} must be 2-D with the same number of rows")
    return audio, video


def check_output(output: Path | None) -> None:
    """Fail before any work on a folder, a suffix other than .csv/.json, or a file a run folder owns."""
    if output is None:
        return
    from avood_core.run.folder import check_output_path

    check_output_path(output, "--output")
    if output.suffix.lower() not in (".csv", ".json"):
        raise DataError(f"--output '{output}': unsupported file type '{output.suffix}'; use .csv or .json")


def write_predictions(pipeline, pred, output: Path | None) -> str | None:
    """Rows of (index, class id, class name, gate score, branch) as csv/json; returns csv text when no file."""
    check_output(output)
    names = pipeline.class_names
    rows = [
        {"index": i, "class_id": int(c), "class_name": names[int(c)] if 0 <= int(c) < len(names) else "",
         "gate_score": float(s), "branch": "seen" if r else "unseen"}
        for i, (c, s, r) in enumerate(zip(pred.labels.tolist(), pred.score.tolist(), pred.routed_seen.tolist()))
    ]
    if output is not None and output.suffix.lower() == ".json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["index", "class_id", "class_name", "gate_score", "branch"])
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if output is None:
        return text
    try:
        atomic_write_text(output, text)  # a temp file beside it, then os.replace: never half a file
    except OSError as exc:
        raise DataError(f"--output '{output}' cannot be written ({exc.strerror or exc}); "
                        f"name a file in a writable folder") from None
    return None
