"""Class text embeddings: the word2vec dict of the download and the per-class text matrix.

``word_embeddings_<ds>_normed.npy`` is an ``np.save``'d pickled dict ``{manual name: float32[300]}``;
:func:`read_w2v` parses the .npy header and unpickles it with the restricted unpickler of
:mod:`avood_core.data.cache` (never ``np.load(allow_pickle=True)``), accepting only ``str`` -> 1-D
finite float arrays of one length. Rows are placed *by name* through the w2v name csv; the
reference's lookup by class id into the ``sorted(keys)`` rows (defect 1, docs/defects.md) is
:func:`positional_rows` (``compat_positional_text``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avood_core.data.cache import _RestrictedUnpickler
from avood_core.data.layout import rel
from avood_core.errors import DataError
from avood_core.util.paths import os_error_line


def read_w2v(path: Path, ds_dir: Path) -> dict[str, np.ndarray]:
    """The ``{manual name: vector}`` dict of a word-embedding .npy file (see the module docstring)."""
    shown = rel(path, ds_dir)
    if not path.is_file():
        raise DataError(f"'{shown}' is missing; copy the word embeddings of the download there")
    fmt = np.lib.format
    try:
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            if dtype.kind != "O" or shape != ():
                raise DataError(f"'{shown}' holds a {dtype} array of shape {shape}, not a pickled dict; re-download it")
            obj = _RestrictedUnpickler(fh, encoding="latin1").load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(os_error_line(exc, shown, "fix its permissions (chmod) or the link, or re-download it")) from None
    except Exception as exc:  # a malformed or hostile file: one line, no traceback
        raise DataError(f"'{shown}' cannot be read safely ({type(exc).__name__}: {exc}); re-download it") from None
    value = obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    if not isinstance(value, dict) or not value:
        raise DataError(f"'{shown}' does not hold a non-empty dict of word vectors; re-download it")
    out: dict[str, np.ndarray] = {}
    width = None
    for key, vec in value.items():
        arr = np.asarray(vec) if isinstance(vec, np.ndarray) else None
        if not isinstance(key, str) or arr is None or arr.ndim != 1 or arr.dtype.kind != "f":
            raise DataError(f"'{shown}': entry {key!r} is not a str -> 1-D float array; re-download the file")
        if width is None:
            width = len(arr)
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


def place_by_target(data: np.ndarray, targets: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, T) matrix with row ``targets[i]`` = ``data[i]``, and a mask of the classes that got one."""
    text = np.zeros((n_classes, data.shape[1]), dtype=np.float32)
    have = np.zeros(n_classes, dtype=bool)
    ok = (targets >= 0) & (targets < n_classes)
    text[targets[ok]] = data[ok]
    have[targets[ok]] = True
    return text, have


def positional_rows(data: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's lookup: class ``c`` gets row ``c`` of the sorted-key matrix, whatever it is."""
    text = np.zeros((n_classes, data.shape[1]), dtype=np.float32)
    k = min(n_classes, len(data))
    text[:k] = data[:k]
    have = np.zeros(n_classes, dtype=bool)
    have[:k] = True
    return text, have
