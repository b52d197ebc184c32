"""``avood data check``: a benchmark tree checked, one table per dataset and split; problems are
collected, never raised (:attr:`TreeReport.ok`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avood_core.data.cache import read_cache, read_w2v
from avood_core.data.h5io import StageScan, scan_stage
from avood_core.data.layout import (
    CACHE_STAGES, DATASETS, FEATURES, SPLITS, STAGES, DatasetInfo, dataset_info, read_all_classes,
    os_error_line, read_csv_rows, read_lines, read_w2v_names, rel,
)
from avood_core.errors import DataError


@dataclass
class StageRow:
    stage: str
    classes: int
    csv_rows: int | None = None
    h5_classes: str = "-"
    samples: int | None = None
    audio_dim: int | None = None
    video_dim: int | None = None
    text: str = "-"
    nonfinite: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CacheRow:
    name: str
    samples: int | None = None
    classes: int | None = None
    audio_dim: int | None = None
    video_dim: int | None = None
    status: str = "ok"
    problems: list[str] = field(default_factory=list)


@dataclass
class Section:
    dataset: str
    split: str
    features: str | None
    stages: list[StageRow] = field(default_factory=list)
    caches: list[CacheRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # structural: found before the stage rows
    consistency: list[str] = field(default_factory=list)  # across stages: found after them
    notes: list[str] = field(default_factory=list)

    def all_problems(self) -> list[str]:
        """Root causes first: structure, then stage folders, then cross-stage checks, then caches."""
        return (self.problems + [p for r in self.stages for p in r.problems] + self.consistency
                + [p for c in self.caches for p in c.problems])


@dataclass
class TreeReport:
    root: Path
    sections: list[Section]

    @property
    def problems(self) -> list[str]:
        return [p for s in self.sections for p in s.all_problems()]

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        out = []
        for s in self.sections:
            feat = f"features/{s.features} (h5)" if s.features else "no h5 features"
            out.append(f"{s.dataset} - {s.split}, {feat}")
            head = ("STAGE", "CLASSES", "CSV ROWS", "H5 FILES", "CLIPS", "AUDIO", "VIDEO", "TEXT", "NaN/inf", "STATUS")
            out += _table(head, [(r.stage, r.classes, r.csv_rows, r.h5_classes, r.samples, r.audio_dim, r.video_dim,
                                  r.text, r.nonfinite, f"{len(r.problems)} problem(s)" if r.problems else "ok")
                                 for r in s.stages])
            if s.caches:
                out += _table(("CACHE", "CLIPS", "CLASSES", "AUDIO", "VIDEO", "STATUS"),
                              [(c.name, c.samples, c.classes, c.audio_dim, c.video_dim, c.status) for c in s.caches])
            out += [f"  note: {n}" for n in s.notes + [n for r in s.stages for n in r.notes]]
            out += [f"  problem: {p}" for p in s.all_problems()]
            out.append("")
        n = len(self.problems)
        out.append(f"OK: {self.root} is complete and consistent" if not n else f"{n} problem(s) found in {self.root}")
        return "\n".join(out)


def _table(head: tuple, rows: list[tuple]) -> list[str]:
    """Aligned columns: the first and the last left-aligned, the others right-aligned; None shows as '-'."""
    cells = [["-" if v is None else str(v) for v in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    align = [str.ljust] + [str.rjust] * (len(head) - 2) + [str.ljust]
    return ["  " + "  ".join(a(v, w) for a, v, w in zip(align, r, widths)).rstrip() for r in cells]


def _digest(arr: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(arr, dtype=np.float32).tobytes(), digest_size=12).hexdigest()


def _deep(scan: StageScan, row: StageRow, ds_dir: Path) -> dict[int, tuple[str, str]]:
    """Read every file once: count NaN/inf rows; per class, digests of the audio and video data."""
    digests, bad_total = {}, 0
    for f in scan.files:
        arrays, f.data = f.data, None  # read by the scan; released once digested
        bad = int((~(np.isfinite(arrays["audio"]).all(1) & np.isfinite(arrays["video"]).all(1))).sum())
        if bad and f.listed:
            bad_total += bad
            row.problems.append(f"'{rel(f.paths['audio'], ds_dir)}' (or its video file) holds {bad} row(s) with NaN/inf; "
                                f"re-extract them or load with nonfinite='skip'")
        digests[f.class_id] = (_digest(arrays["audio"]), _digest(arrays["video"]))
    row.nonfinite = bad_total
    return digests


def _check_stage(ds_dir: Path, split: str, stage: str, names: list[str], index: dict[str, int], feat_dir: Path | None,
                 vectors: dict | None, w2v: dict[str, str], deep: bool) -> tuple[StageRow, StageScan | None, dict]:
    """One table row of a stage folder, its scan (None without features) and its data digests."""
    txt = ds_dir / "class-split" / split / f"{stage}.txt"
    try:
        listed_names = read_lines(txt, ds_dir)
    except DataError as exc:
        return StageRow(stage, 0, problems=[str(exc)]), None, {}
    listed = [index[n.lower()] for n in listed_names if n.lower() in index]
    row = StageRow(stage, len(listed_names), problems=[f"'{rel(txt, ds_dir)}' lists '{n}', which is not in "
                                                       f"all_class.txt; fix the name"
                                                       for n in listed_names if n.lower() not in index])
    csv_path = ds_dir / "class-split" / split / f"{stage}.csv"
    csv_counts: Counter | None = None
    if csv_path.is_file():
        try:
            rows = read_csv_rows(csv_path, ds_dir, ("filename", "label"))
            row.csv_rows = len(rows)
            csv_counts = Counter(r["label"].strip().lower() for r in rows)
        except DataError as exc:
            row.problems.append(str(exc))
    else:
        row.notes.append(f"{rel(csv_path, ds_dir)} is absent (metadata only: clip counts not cross-checked)")
    if vectors is not None:
        lacking = [c for c in listed if w2v.get(names[c].lower()) not in vectors]
        row.text = f"{len(listed) - len(lacking)}/{len(listed)}"
        row.problems += [f"class '{names[c]}' ({stage}) has no word embedding; add it or fix the w2v name csv"
                         for c in lacking]
    if feat_dir is None:
        return row, None, {}
    scan = scan_stage(feat_dir, stage, listed, names, ds_dir, txt, read_data=deep)
    row.problems += scan.problems
    found = [f for f in scan.files if f.listed]
    row.h5_classes = f"{len(found)}/{len(listed)}"
    row.samples = sum(f.rows for f in found)
    row.audio_dim, row.video_dim = scan.dims or (None, None)
    for f in found if csv_counts is not None else []:
        want = csv_counts.get(names[f.class_id].lower(), 0)
        if want != f.rows:
            row.problems.append(f"'{rel(f.paths['audio'], ds_dir)}' holds {f.rows} clips but {rel(csv_path, ds_dir)} "
                                f"lists {want}; re-download the file")
    return row, scan, _deep(scan, row, ds_dir) if deep else {}


def _check_union(section: Section, scans: dict[str, StageScan | None], names: list[str]) -> None:
    """stage_2_train's clips per class must be those of the three stage-1 folders (true of the download)."""
    if any(scans.get(s) is None for s in ("stage_2_train", *CACHE_STAGES["train_val"])):
        return
    union: dict[int, list[str]] = {}
    for s in CACHE_STAGES["train_val"]:
        for f in scans[s].files:
            union.setdefault(f.class_id, []).extend(f.urls.tolist())
    have = {f.class_id: sorted(f.urls.tolist()) for f in scans["stage_2_train"].files}
    for c in sorted(set(union) | set(have)):
        if sorted(union.get(c, [])) != have.get(c, []):
            section.consistency.append(f"features/{section.features}/*/stage_2_train/{names[c]}.h5 is not the union "
                                       f"of the stage-1 folders ({len(have.get(c, []))} vs {len(union.get(c, []))} "
                                       f"clips); re-download stage_2_train")
            return


def cache_disagreement(names: list[str], labels: np.ndarray, urls: np.ndarray, dims: tuple[int, int],
                       scans: list[StageScan], audio=None, video=None, digests: dict | None = None) -> str | None:
    """Why a cache's rows differ from its stage folders' h5 files (classes, clips in order, dims, and with
    ``digests`` the feature values), or None."""
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(names):
        return f"target {int(labels[(labels < 0) | (labels >= len(names))][0])} outside 0..{len(names) - 1}"
    h5_dims = {scan.dims for scan in scans if scan.dims}
    if h5_dims - {dims}:
        return f"audio/video dims {dims}, the h5 tree's {sorted(h5_dims)[0]}"
    order = np.argsort(labels, kind="stable")
    labels, urls = labels[order], urls[order]
    starts = np.searchsorted(labels, np.arange(len(names) + 1))
    expected: dict[int, list] = {}
    for scan in scans:
        for f in scan.files:
            expected.setdefault(f.class_id, []).append((scan.stage, f))
    for c in sorted(set(expected) | set(np.unique(labels).tolist())):
        lo, hi = starts[c], starts[c + 1]
        parts = expected.get(c, [])
        n_h5 = sum(f.rows for _, f in parts)
        if hi - lo != n_h5:
            return f"class '{names[c]}': {hi - lo} rows in the cache, {n_h5} in the h5 tree"
        if not np.array_equal(urls[lo:hi], np.concatenate([f.urls for _, f in parts])):
            return f"class '{names[c]}': other clips than the h5 tree"
        for stage, f in parts:
            d = (digests or {}).get(stage, {}).get(c)
            rows = order[lo:lo + f.rows]
            if d and (d[0] != _digest(audio[rows]) or d[1] != _digest(video[rows])):
                return f"class '{names[c]}': other feature values than {stage}"
            lo += f.rows
    return None


def _check_caches(section, ds_dir, method, split, names, scans, digests) -> None:
    folder = ds_dir / "_features_processed" / method
    paths = {c: folder / f"{c}{split}.pkl" for c in CACHE_STAGES}
    present = [c for c, p in paths.items() if p.is_file()]
    if not present:
        section.notes.append(f"no caches in {rel(folder, ds_dir)} (optional: loading from h5 does not need them)")
        return
    for cache, path in paths.items():
        shown = rel(path, ds_dir)
        row = CacheRow(path.name)
        section.caches.append(row)
        if cache not in present:
            row.status, row.problems = "missing", [f"'{shown}' is missing while other caches exist; delete them all or "
                                                   f"rebuild them"]
            continue
        try:
            obj = read_cache(path, shown)
        except DataError as exc:
            row.status, row.problems = "unreadable", [str(exc)]
            continue
        a, v = obj["audio"], obj["video"]
        labels = a["target"].numpy()
        row.samples, row.classes = len(labels), len(np.unique(labels))
        row.audio_dim, row.video_dim = a["data"].shape[1], v["data"].shape[1]
        if not all(scans.get(s) for s in CACHE_STAGES[cache]):
            row.status = "not compared (no h5)"
            continue
        problem = cache_disagreement(names, labels, a["url"], (row.audio_dim, row.video_dim),
                                     [scans[s] for s in CACHE_STAGES[cache]], a["data"].numpy(), v["data"].numpy(), digests)
        row.status = "DISAGREES with h5" if problem else "ok (matches h5)"
        if problem:
            row.problems.append(f"'{shown}' disagrees with the h5 tree ({problem}); delete the cache to rebuild it")


def _check_dataset(ds_dir: Path, info: DatasetInfo, deep: bool) -> list[Section]:
    try:
        names = read_all_classes(ds_dir)
    except DataError as exc:
        return [Section(info.folder, "-", None, problems=[str(exc)])]
    index = {n.lower(): i for i, n in enumerate(names)}
    w2v, w2v_problems = {}, []
    try:
        w2v = read_w2v_names(ds_dir, info)
    except DataError as exc:
        w2v_problems = [str(exc)]
    sections, any_features = [], False
    for key, split in SPLITS.items():
        method = FEATURES[key]
        feat_dir = ds_dir / "features" / method
        has_h5 = (feat_dir / "audio").is_dir() or (feat_dir / "video").is_dir()
        has_cache = (ds_dir / "_features_processed" / method).is_dir()
        any_features |= has_h5 or has_cache
        section = Section(info.folder, split, method if has_h5 else None, problems=list(w2v_problems))
        if not (ds_dir / "class-split" / split).is_dir():
            # Optional: a run reads only the split of data.split (main by default; load_benchmark).
            unchecked = f"; features/{method} not checked" if has_h5 or has_cache else ""
            section.notes.append(f"{rel(ds_dir / 'class-split' / split, ds_dir)} is absent (optional: only runs with "
                                 f"data.split = '{key}' read it){unchecked}")
            sections.append(section)
            continue
        vectors = None
        if has_h5:
            try:
                vectors = read_w2v(feat_dir / "text" / info.w2v_file, ds_dir)
            except DataError as exc:
                section.problems.append(str(exc))
        elif not has_cache:
            section.notes.append(f"no features/{method} and no cached {method} (not downloaded)")
        scans, digests = {}, {}
        for stage in STAGES:
            row, scans[stage], digests[stage] = _check_stage(ds_dir, split, stage, names, index,
                                                             feat_dir if has_h5 else None, vectors, w2v, deep)
            section.stages.append(row)
        dims = Counter((r.audio_dim, r.video_dim) for r in section.stages if r.audio_dim is not None)
        if len(dims) > 1:
            want = dims.most_common(1)[0][0]
            odd = next(r for r in section.stages if r.audio_dim is not None and (r.audio_dim, r.video_dim) != want)
            section.consistency.append(f"features/{method}/*/{odd.stage} has audio/video dims "
                                       f"{(odd.audio_dim, odd.video_dim)} but the other stages have {want}; "
                                       f"re-extract that stage folder")
        _check_union(section, scans, names)
        if has_h5 or has_cache:
            _check_caches(section, ds_dir, method, split, names, scans, digests)
        sections.append(section)
    if not any(s.stages for s in sections):
        sections[0].problems.append(f"'{rel(ds_dir / 'class-split', ds_dir)}' holds neither "
                                    f"{' nor '.join(SPLITS.values())}; restore the class-split folder of the download")
    if not any_features:
        sections[0].problems.append(f"no features in '{rel(ds_dir / 'features', ds_dir)}' nor "
                                    f"'{rel(ds_dir / '_features_processed', ds_dir)}'; download them (or write a "
                                    f"synthetic tree with `avood data synth`)")
    return sections


def check_tree(root: str | Path, dataset: str | None = None, deep: bool = True) -> TreeReport:
    """Validate ``root`` (benchmark root or dataset folder); raises :class:`DataError` only if it holds no dataset."""
    root = Path(root).expanduser()
    infos = [dataset_info(dataset)] if dataset else list(DATASETS.values())
    found = []
    try:
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DataError(f"'{root}' {what}; pass the avgzsl_benchmark_datasets folder")
        for info in infos:
            if (root / info.folder).is_dir():
                found.append((root / info.folder, info))
            elif root.name.lower() == info.folder.lower():
                found.append((root, info))
    except OSError as exc:
        raise DataError(os_error_line(exc, "fix its permissions (chmod) or pass another folder")) from None
    if not found:
        wanted = infos[0].folder if dataset else "UCF, ActivityNet or VGGSound"
        raise DataError(f"no {wanted} folder in '{root}'; pass the avgzsl_benchmark_datasets folder")
    sections = []
    for ds_dir, info in found:
        try:
            sections += _check_dataset(ds_dir, info, deep)
        except OSError as exc:  # what the per-file checks did not name: one problem, never a traceback
            line = os_error_line(exc, "fix its permissions (chmod) or restore it from the download")
            sections.append(Section(info.folder, "-", None, problems=[line]))
    return TreeReport(root, sections)
