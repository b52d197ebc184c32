"""Per-class h5 files ``features/<method>/{audio,video}/<stage>/<ClassName>.h5``: ``data`` (n, D) float and
``video_urls`` (n,) strings. :func:`scan_stage` opens each file once (shape, urls and, with ``read_data``,
the data) and collects one-line problems; :func:`read_stage` copies the class blocks into one array."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from avood_core.data.layout import os_error_line, rel

MODALITIES = ("audio", "video")


@dataclass
class ClassFile:
    """One class's pair of h5 files in a stage folder (metadata only)."""

    class_id: int
    paths: dict[str, Path]
    rows: int
    dims: dict[str, int]
    urls: np.ndarray
    listed: bool
    data: dict[str, np.ndarray] | None = None  # filled by scan_stage(read_data=True)


@dataclass
class StageScan:
    stage: str
    files: list[ClassFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # h5 files that name no class of all_class.txt

    @property
    def dims(self) -> tuple[int, int] | None:
        good = [(f.dims["audio"], f.dims["video"]) for f in self.files]
        return Counter(good).most_common(1)[0][0] if good else None


@dataclass
class Rows:
    """Clips with, per row, an index into ``origins`` (the file it came from)."""

    audio: np.ndarray
    video: np.ndarray
    labels: np.ndarray
    urls: np.ndarray
    origin: np.ndarray
    origins: list[str]
    where: str  # the folder(s) or cache file, for messages

    def take(self, idx: np.ndarray) -> "Rows":
        return Rows(self.audio[idx], self.video[idx], self.labels[idx], self.urls[idx], self.origin[idx], self.origins,
                    self.where)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        """``parts`` one after the other (one part: itself, not a copy)."""
        if len(parts) == 1:
            return parts[0]
        offsets = [sum(len(q.origins) for q in parts[:i]) for i in range(len(parts))]
        return Rows(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("audio", "video", "labels", "urls")),
                    np.concatenate([p.origin + offset for p, offset in zip(parts, offsets)]),
                    [o for p in parts for o in p.origins], " + ".join(p.where for p in parts))


def _read_urls(ds) -> np.ndarray:
    raw = ds[()]
    if raw.dtype.kind == "U":
        return raw
    try:  # vectorised ASCII decode (the download's urls are YouTube ids / file stems)
        return (raw if raw.dtype.kind == "S" else np.array(raw.tolist(), dtype="S")).astype("U")
    except (UnicodeDecodeError, UnicodeEncodeError, TypeError, ValueError):
        return np.array([u.decode("utf-8", "replace") if isinstance(u, bytes) else str(u) for u in raw], dtype=str)


DEFLATE_MAX_RATIO = 1032  # the most a deflate stream can shrink its input (zlib's technical notes)


def unstored(data: "h5py.Dataset") -> str | None:
    """Why ``data`` cannot hold the values its shape declares (written partly or never), else None: checked
    before reading, so a header declaring (10^9, 6) is refused instead of allocating 24 GB."""
    need = int(data.size) * data.dtype.itemsize
    stored = data.id.get_storage_size()
    floor = need if data.compression is None else -(-need // DEFLATE_MAX_RATIO)
    if stored >= floor:
        return None
    return (f"data declares {data.shape} ({need:,} bytes of {data.dtype}) but the file stores {stored:,} bytes "
            f"of it (written partly or never)")


def _meta(path: Path, ds_dir: Path, read_data: bool) -> tuple[int, int, np.ndarray, np.ndarray | None] | str:
    """(rows, dim, urls, data or None) of one file, or a one-line problem."""
    shown = rel(path, ds_dir)
    try:
        with open(path, "rb"):  # the OS's own reason (permission, symlink loop) before h5py's wrapped one
            pass
    except OSError as exc:
        return os_error_line(exc, "fix its permissions (chmod) or the link, or re-download it", shown)
    try:
        with h5py.File(path, "r") as fh:
            if "data" not in fh or "video_urls" not in fh:
                return f"'{shown}' lacks the 'data' or 'video_urls' dataset; re-download this file"
            kinds = [name for name in ("data", "video_urls") if not isinstance(fh[name], h5py.Dataset)]
            if kinds:
                return f"'{shown}': '{kinds[0]}' is a group, not a dataset; re-download this file"
            data = fh["data"]
            if data.ndim != 2 or data.dtype.kind not in "fiu":
                return f"'{shown}': data is {data.dtype} {data.shape}, not a 2-D float array; re-download this file"
            lost = unstored(data)
            if lost:
                return f"'{shown}': {lost}; re-download this file"
            urls = _read_urls(fh["video_urls"])
            rows, dim = data.shape
            if dim < 1:
                return f"'{shown}': data has {dim} feature columns (shape {data.shape}); re-extract this file"
            values = data[()] if read_data and rows else None
    except OSError as exc:
        return f"'{shown}' is not a readable h5 file ({str(exc).splitlines()[0]}); re-download it"
    if len(urls) != rows:
        return f"'{shown}' has {rows} rows but {len(urls)} video_urls; re-download this file"
    if rows == 0:
        return f"'{shown}' holds no clips (empty class); restore the file or remove the class from the split"
    return rows, dim, urls, values


def _h5_index(folder: Path) -> dict[str, Path]:
    """``{lower(stem): path}`` of the ``*.h5`` files in ``folder`` (an entry whose type cannot be read is kept,
    so reading it names the problem: a symlink loop, an unreadable target)."""
    index = {}
    with os.scandir(folder) as it:
        for entry in (e for e in it if e.name.endswith(".h5")):
            with contextlib.suppress(OSError):
                if not entry.is_file():
                    continue
            index[entry.name[:-3].lower()] = Path(entry.path)
    return index


def scan_stage(feat_dir: Path, stage: str, listed: list[int], class_names: list[str], ds_dir: Path, split_txt: Path,
               read_data: bool = False) -> StageScan:
    """Metadata of every class file of a stage folder: ``listed`` classes must have both files; other known
    classes' files are read too (``listed=False``; the reference's caches hold them), unknown ones named."""
    scan = StageScan(stage)
    folders = {m: feat_dir / m / stage for m in MODALITIES}
    indexes: dict[str, dict[str, Path]] = {}  # modality -> lower(stem) -> path of the *.h5 files
    for m, folder in folders.items():
        try:  # a folder that cannot be looked at counts as present, so listing it reports why
            if not folder.is_dir():
                scan.problems.append(f"'{rel(folder, ds_dir)}' is missing; download the features or load with "
                                     f"source='pkl'")
                return scan
            indexes[m] = _h5_index(folder)
        except OSError as exc:
            fix = "fix its permissions (chmod) or re-download it"
            scan.problems.append(os_error_line(exc, fix, rel(folder, ds_dir)))
            return scan
    by_lower = {n.lower(): i for i, n in enumerate(class_names)}
    stems = list(dict.fromkeys(stem for m in MODALITIES for stem in indexes[m]))
    scan.unknown = [stem for stem in stems if stem not in by_lower]
    listed_set = set(listed)
    for cid in sorted(listed_set | {by_lower[stem] for stem in stems if stem in by_lower}):
        name = class_names[cid]
        paths = {m: indexes[m].get(name.lower()) for m in MODALITIES}
        missing = [m for m in MODALITIES if paths[m] is None]
        if missing:
            m = missing[0]
            where = f"listed in {rel(split_txt, ds_dir)}" if cid in listed_set else "its other modality exists"
            scan.problems.append(f"'{rel(folders[m] / (name + '.h5'), ds_dir)}' is missing (class '{name}', {where}); "
                                 f"restore the file or remove the class from the split")
            continue
        metas = {m: _meta(paths[m], ds_dir, read_data) for m in MODALITIES}
        bad = [v for v in metas.values() if isinstance(v, str)]
        if bad:
            scan.problems.append(bad[0])
            continue
        (na, da, ua, xa), (nv, dv, uv, xv) = metas["audio"], metas["video"]
        if na != nv or not np.array_equal(ua, uv):
            scan.problems.append(f"'{rel(paths['video'], ds_dir)}' does not match its audio file ({nv} vs {na} rows "
                                 f"or other video_urls); re-download both files of class '{name}'")
            continue
        scan.files.append(ClassFile(cid, paths, na, {"audio": da, "video": dv}, ua,
                                    cid in listed_set, {"audio": xa, "video": xv} if read_data else None))
    dims = scan.dims or ()
    for f in scan.files:
        for m, want in zip(MODALITIES, dims):
            if f.dims[m] != want:
                scan.problems.append(f"'{rel(f.paths[m], ds_dir)}' has {f.dims[m]} {m} columns but the other classes "
                                     f"have {want}; re-extract this file")
    return scan


def read_stage(scan: StageScan, ds_dir: Path) -> Rows:
    """Every class block of a clean scan (read with its data), rows grouped by class id, as float32; the scan's data
    is released. A row's origin is its class's audio file."""
    audio, video = (np.concatenate([f.data[m] for f in scan.files] or [np.empty((0, dim))], dtype=np.float32,
                                   casting="unsafe") for m, dim in zip(MODALITIES, scan.dims or (0, 0)))
    for f in scan.files:
        f.data = None
    rows = [f.rows for f in scan.files]
    labels = np.repeat(np.array([f.class_id for f in scan.files], dtype=np.int64), rows)
    urls = np.concatenate([f.urls for f in scan.files]) if scan.files else np.empty(0, dtype=str)
    where = (rel(scan.files[0].paths["audio"].parent, ds_dir).replace("/audio/", "/{audio,video}/") if scan.files
             else rel(ds_dir / "features" / "<method>", ds_dir))
    origin = np.repeat(np.arange(len(rows), dtype=np.int32), rows)
    return Rows(audio, video, labels, urls, origin, [rel(f.paths["audio"], ds_dir) for f in scan.files], where)


def write_class_h5(path: Path, data: np.ndarray, urls: list[str]) -> None:
    """One class file in the download's format: ``data`` float32 (n, D), ``video_urls`` vlen str."""
    with h5py.File(path, "w") as fh:
        fh.create_dataset("data", data=np.asarray(data, dtype=np.float32))
        fh.create_dataset("video_urls", dtype=h5py.string_dtype(), data=[u.encode("utf-8") for u in urls])
