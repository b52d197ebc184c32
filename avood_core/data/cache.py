"""The download's pickled files read without executing pickled code: the feature caches and the word2vec dict.

A ``torch.save`` zip loads with ``weights_only=True`` (numpy's reconstructors allowed), a plain pickle
through :class:`_RestrictedUnpickler` (torch's tensor rebuilders, ``OrderedDict``, ``_codecs.encode``,
numpy's reconstructors); any other global is refused. Text rows are placed by name; the reference's
positional lookup (defect 1, docs/defects.md) is :func:`placed` by row number.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from avood_core.data.layout import os_error_line, rel
from avood_core.errors import DataError


try:  # numpy 2; numpy 1 names the same modules numpy.core
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:
    from numpy.core import multiarray as _multiarray, numeric as _numeric


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only tensors, dicts and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch.storage", "_load_from_bytes"):
            lambda b: torch.load(io.BytesIO(b), weights_only=True, map_location="cpu"),
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): codecs.encode,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        **{(f"numpy.{core}.multiarray", "_reconstruct"): _multiarray._reconstruct for core in ("_core", "core")},
        **{(f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer for core in ("_core", "core")},
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[module, name]
        if module == "numpy.dtypes" and name.endswith("DType"):  # dtype classes only
            return getattr(np.dtypes, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def read_cache(path: Path, shown: str | None = None) -> dict:
    """Load one cache file safely and check its layout."""
    shown = shown or str(path)
    try:
        if not path.is_file():
            raise DataError(f"'{shown}' is missing; rebuild the caches or load with source='h5'")
        with path.open("rb"):  # the OS's reason (permission, symlink loop) first: is_zipfile hides it
            pass
    except OSError as exc:
        fix = "fix its permissions (chmod), or delete it and load with source='h5'"
        raise DataError(os_error_line(exc, fix, shown)) from None
    try:
        if zipfile.is_zipfile(path):
            # the numpy globals a torch.save'd cache of string/float arrays needs, and nothing else
            dtypes = [type(np.dtype(dt)) for dt in ("S1", "U1", "O", "f4", "f8", "i8")]
            with torch.serialization.safe_globals([np.ndarray, np.dtype, _multiarray._reconstruct, *dtypes]):
                obj = torch.load(path, weights_only=True, map_location="cpu")
        else:
            with path.open("rb") as fh:
                obj = _RestrictedUnpickler(fh).load()
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"'{shown}' cannot be read safely ({first}); delete it and rebuild it from the h5 tree") from None
    _check_layout(obj, shown)
    return obj


def _urls(value, shown: str, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        if not all(isinstance(u, (str, bytes)) for u in arr.ravel()):
            raise DataError(f"'{shown}': {where} holds non-string entries; rebuild the cache")
    elif arr.dtype.kind not in "SU":
        raise DataError(f"'{shown}': {where} is not an array of strings; rebuild the cache")
    return np.array([u.decode("utf-8", "replace") if isinstance(u, bytes) else str(u) for u in arr.ravel()], dtype=str)


def _check_layout(obj, shown: str) -> None:
    def bad(why: str) -> DataError:
        return DataError(f"'{shown}' is not an AVCA feature cache ({why}); delete it and rebuild it")

    if not isinstance(obj, dict) or not {"audio", "video", "text"} <= set(obj):
        raise bad("expected keys audio, video, text")
    for mod in ("audio", "video", "text"):
        part = obj[mod]
        if not isinstance(part, dict) or "data" not in part or "target" not in part:
            raise bad(f"{mod} lacks data/target")
        data = torch.as_tensor(part["data"])
        target = torch.as_tensor(part["target"])
        if data.ndim != 2 or not data.is_floating_point() or target.ndim != 1 or len(target) != len(data):
            raise bad(f"{mod}: data {tuple(data.shape)}, target {tuple(target.shape)}")
        if data.shape[1] < 1:
            raise bad(f"{mod}: data has 0 feature columns, shape {tuple(data.shape)}")
        if target.is_floating_point():
            raise bad(f"{mod} target is not integer")
        part["data"], part["target"] = data.float(), target.long()
        if mod != "text":
            if "url" not in part:
                raise bad(f"{mod} lacks url")
            part["url"] = _urls(part["url"], shown, f"{mod}.url")
            if len(part["url"]) != len(data):
                raise bad(f"{mod}: {len(data)} rows but {len(part['url'])} urls")
    a, v = obj["audio"], obj["video"]
    if not torch.equal(a["target"], v["target"]) or not np.array_equal(a["url"], v["url"]):
        raise DataError(f"'{shown}': audio and video rows differ (targets or urls); delete it and rebuild it")


def read_w2v(path: Path, ds_dir: Path) -> dict[str, np.ndarray]:
    """The ``{manual name: vector}`` dict of a word-embedding .npy file, read safely (module docstring)."""
    shown = rel(path, ds_dir)
    if not path.is_file():
        raise DataError(f"'{shown}' is missing; copy the word embeddings of the download there")
    fmt = np.lib.format
    try:
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            pickled = dtype.kind == "O" and shape == ()
            obj = _RestrictedUnpickler(fh, encoding="latin1").load() if pickled else None
    except OSError as exc:
        fix = "fix its permissions (chmod) or the link, or re-download it"
        raise DataError(os_error_line(exc, fix, shown)) from None
    except Exception as exc:  # a malformed or hostile file: one line, no traceback
        raise DataError(f"'{shown}' cannot be read safely ({type(exc).__name__}: {exc}); re-download it") from None
    if not pickled:
        raise DataError(f"'{shown}' holds a {dtype} array of shape {shape}, not a pickled dict; re-download it")
    value = obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    if not isinstance(value, dict) or not value:
        raise DataError(f"'{shown}' does not hold a non-empty dict of word vectors; re-download it")
    out: dict[str, np.ndarray] = {}
    for key, vec in value.items():
        arr = np.asarray(vec) if isinstance(vec, np.ndarray) else None
        if not isinstance(key, str) or arr is None or arr.ndim != 1 or arr.dtype.kind != "f":
            raise DataError(f"'{shown}': entry {key!r} is not a str -> 1-D float array; re-download the file")
        width = len(next(iter(out.values()), arr))  # the first vector's
        if len(arr) != width or not np.isfinite(arr).all():
            raise DataError(f"'{shown}': vector {key!r} has length {len(arr)} (others {width}) or NaN/inf; re-download it")
        out[key] = arr.astype(np.float32)
    return out


def write_w2v(path: Path, vectors: dict[str, np.ndarray]) -> None:
    """Write ``vectors`` in the download's format (an ``np.save``'d pickled dict)."""
    arr = np.empty((), dtype=object)
    arr[()] = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
    with path.open("wb") as fh:
        np.save(fh, arr, allow_pickle=True)


def sorted_rows(vectors: dict[str, np.ndarray], w2v_names: dict[str, str], class_names: list[str]):
    """The reference cache's text part: rows in ``sorted(keys)`` order and their class ids (-1: no class)."""
    by_manual = {manual: name for name, manual in w2v_names.items()}
    index = {n.lower(): i for i, n in enumerate(class_names)}
    keys = sorted(vectors)
    data = np.stack([vectors[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
    targets = np.array([index.get(by_manual.get(k, "\0"), -1) for k in keys], dtype=np.int64)
    return data, targets


def placed(data: np.ndarray, targets: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, T) matrix with row ``targets[i]`` = ``data[i]``, and a mask of the classes that got one; with
    ``targets = arange(len(data))`` the reference's lookup (class ``c`` gets row ``c`` of the sorted-key matrix)."""
    text = np.zeros((n_classes, data.shape[1]), dtype=np.float32)
    have = np.zeros(n_classes, dtype=bool)
    ok = (targets >= 0) & (targets < n_classes)
    text[targets[ok]] = data[ok]
    have[targets[ok]] = True
    return text, have
