"""Load the AVCA benchmark as the two tasks of the stage-1/stage-2 protocol (:data:`PROTOCOL`).

Rows are ordered by class id, stage folder and file order, so an h5 tree and its pkl caches give
identical tasks; like the reference, a split keeps only its stage's classes (``info["dropped_rows"]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avood_core.data.cache import placed, read_cache, read_w2v, sorted_rows
from avood_core.data.check import cache_disagreement
from avood_core.data.h5io import Rows, read_stage, scan_stage
from avood_core.data.layout import (
    CACHE_STAGES, CACHED_STAGES, ClassSplit, dataset_info, folder_name, os_error_line, read_class_split, read_w2v_names,
    rel, resolve_dataset_dir,
)
from avood_core.errors import DataError
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.util.threads import torch_threads

# stage -> (train cache, test cache, seen txt, unseen txt, test-seen txt)
PROTOCOL = {
    1: ("training", "val", "stage_1_train", "stage_1_val_unseen", "stage_1_val_seen"),
    2: ("train_val", "test", "stage_2_train", "stage_2_test_unseen", "stage_2_test_seen"),
}


@dataclass
class BenchmarkTasks:
    """Stage-1 (selection) and stage-2 (report) tasks; ``urls[f"stage{n}.{train|test}"]`` names each row's clip."""

    stage1: AVGZSLTask
    stage2: AVGZSLTask
    info: dict
    urls: dict[str, np.ndarray] = field(default_factory=dict)


def _check_protocol(cs: ClassSplit) -> None:
    for stage, (_, _, seen_txt, unseen_txt, test_seen_txt) in PROTOCOL.items():
        seen, unseen = set(cs.stage_classes[seen_txt]), set(cs.stage_classes[unseen_txt])
        both = seen & unseen
        if both:
            raise DataError(f"class '{cs.class_names[min(both)]}' is in both {rel(cs.stage_txt(seen_txt), cs.ds_dir)} and "
                            f"{rel(cs.stage_txt(unseen_txt), cs.ds_dir)}; a class is either seen or unseen")
        extra = set(cs.stage_classes[test_seen_txt]) - seen
        if extra:
            raise DataError(f"{rel(cs.stage_txt(test_seen_txt), cs.ds_dir)} lists '{cs.class_names[min(extra)]}', "
                            f"which is not in {rel(cs.stage_txt(seen_txt), cs.ds_dir)}; test-seen classes must be "
                            f"training classes")
        if not seen or not unseen:
            raise DataError(f"stage {stage} has no seen or no unseen classes; check class-split/{cs.split}")


def read_h5(cs: ClassSplit, feat_dir: Path) -> tuple[dict[str, Rows], dict]:
    """Rows per cache name read from the per-class h5 folders (each folder read once)."""
    scans = {s: scan_stage(feat_dir, s, cs.stage_classes[s], cs.class_names, cs.ds_dir, cs.stage_txt(s), read_data=True)
             for s in CACHED_STAGES}
    problems = [p for s in CACHED_STAGES for p in scans[s].problems]
    if problems:
        more = f" ({len(problems) - 1} more problem(s): run `avood data check`)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    ref, *others = [scans[s] for s in CACHED_STAGES if scans[s].dims is not None] or [None]
    odd = next((scan for scan in others if scan.dims != ref.dims), None)
    if odd:
        raise DataError(f"'{rel(odd.files[0].paths['audio'], cs.ds_dir)}' and its stage have audio/video dims {odd.dims} "
                        f"but {ref.stage} has {ref.dims}; re-extract the odd stage folder")
    data = {s: read_stage(scans[s], cs.ds_dir) for s in CACHED_STAGES}
    parts = {cache: Rows.concat([data[s] for s in names]) for cache, names in CACHE_STAGES.items()}
    return parts, {"ignored_files": sorted({f"{s}/{u}.h5" for s in CACHED_STAGES for u in scans[s].unknown})}


def _cache_path(ds_dir: Path, method: str, split: str, cache: str) -> Path:
    return ds_dir / "_features_processed" / method / f"{cache}{split}.pkl"


def _read_pkl(cs: ClassSplit, method: str) -> tuple[dict[str, Rows], tuple]:
    parts, text = {}, None
    for cache in CACHE_STAGES:
        path = _cache_path(cs.ds_dir, method, cs.split, cache)
        shown = rel(path, cs.ds_dir)
        obj = read_cache(path, shown)
        a, v = obj["audio"], obj["video"]
        labels = a["target"].numpy()
        bad = (labels < 0) | (labels >= len(cs.class_names))
        if bad.any():
            raise DataError(f"'{shown}' holds target {int(labels[bad][0])}, outside 0..{len(cs.class_names) - 1}; rebuild it")
        parts[cache] = Rows(a["data"].numpy(), v["data"].numpy(), labels, a["url"],
                            np.zeros(len(labels), dtype=np.int32), [shown], shown)
        text = text or (obj["text"]["data"].numpy(), obj["text"]["target"].numpy(), shown)
    dims = {c: (p.audio.shape[1], p.video.shape[1]) for c, p in parts.items()}
    if len(set(dims.values())) > 1:
        odd = next(c for c in parts if dims[c] != dims["training"])
        raise DataError(f"'{parts[odd].where}' has dims {dims[odd]} but the training cache has {dims['training']}; "
                        f"rebuild the caches")
    return parts, text


def _verify_cache_against_h5(cs: ClassSplit, parts: dict[str, Rows], feat_dir: Path) -> str:
    """Compare the caches' rows and dims with the h5 tree's metadata (no feature reads); raise on disagreement."""
    scans = {s: scan_stage(feat_dir, s, cs.stage_classes[s], cs.class_names, cs.ds_dir, cs.stage_txt(s)) for s in CACHED_STAGES}
    broken = [p for s in CACHED_STAGES for p in scans[s].problems]
    if broken:
        return f"not compared: the h5 tree has problems ({broken[0]})"
    for cache, names in CACHE_STAGES.items():
        p = parts[cache]
        problem = cache_disagreement(cs.class_names, p.labels, p.urls, (p.audio.shape[1], p.video.shape[1]),
                                     [scans[s] for s in names])
        if problem:
            raise DataError(f"'{p.where}' disagrees with the h5 tree ({problem}); delete the cache to rebuild it, or "
                            f"load with source='h5'")
    return "matches the h5 tree (classes, clips, dims)"


def _select(rows: Rows, keep: list[int], required: dict[int, str], nonfinite: str, names: list[str]) -> tuple[Rows, int, int]:
    """Rows of classes ``keep``, NaN/inf handled, sorted by class id; (rows, dropped, skipped)."""
    mask = np.isin(rows.labels, np.asarray(keep, dtype=np.int64))
    dropped = int((~mask).sum())
    finite_audio = np.isfinite(rows.audio).all(axis=1)
    finite = finite_audio & np.isfinite(rows.video).all(axis=1)
    bad = mask & ~finite
    skipped = int(bad.sum())
    if skipped and nonfinite == "fail":
        first = int(np.flatnonzero(bad)[0])
        same_file = int((bad & (rows.origin == rows.origin[first])).sum())
        origin = rows.origins[rows.origin[first]]
        if finite_audio[first]:  # the video row is the bad one: name the video file (h5 origins are audio paths)
            origin = origin.replace("/audio/", "/video/")
        raise DataError(f"'{origin}' holds {same_file} row(s) with NaN/inf (class '{names[rows.labels[first]]}'); "
                        f"re-extract them or load with nonfinite='skip'")
    mask &= finite
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(rows.labels[idx], kind="stable")]
    out = rows if len(idx) == len(rows.labels) and np.array_equal(idx, np.arange(len(idx))) else rows.take(idx)
    present = set(np.unique(out.labels).tolist())
    for cid, listed_in in required.items():
        if cid not in present:
            why = " after skipping NaN/inf rows" if skipped else ""
            raise DataError(f"class '{names[cid]}' (listed in {listed_in}) has no clips in '{rows.where}'{why}; "
                            f"restore its features or remove it from the split")
    return out, dropped, skipped


def _text_matrix(cs: ClassSplit, source: str, feat_dir: Path, pkl_text, used: set[int], compat: bool) -> tuple[np.ndarray, dict]:
    n = len(cs.class_names)
    if source == "h5":
        path = feat_dir / "text" / cs.info.w2v_file
        vectors, names = read_w2v(path, cs.ds_dir), read_w2v_names(cs.ds_dir, cs.info)
        data, _ = sorted_rows(vectors, names, cs.class_names)
        keys = [names.get(c.lower()) for c in cs.class_names]
        have = np.array([key in vectors for key in keys])
        by_name = np.stack([vectors.get(key, np.zeros(data.shape[1], np.float32)) for key in keys])
        shown = rel(path, cs.ds_dir)
    else:
        data, targets, shown = pkl_text
        if not np.isfinite(data).all():
            raise DataError(f"'{shown}': the text embeddings hold NaN/inf; rebuild the cache")
        by_name, have = placed(data, targets, n)
    lacking = [c for c in sorted(used) if not have[c]]
    if lacking and source == "h5":
        c = lacking[0]
        how = f"w2v name '{keys[c]}'" if keys[c] else f"no row in class-split/{cs.info.w2v_csv}"
        raise DataError(f"class '{cs.class_names[c]}' has no word embedding in '{shown}' ({how}); add the vector "
                        f"or fix class-split/{cs.info.w2v_csv}")
    if lacking:
        raise DataError(f"class '{cs.class_names[lacking[0]]}' has no text row (no text.target {lacking[0]}) in "
                        f"'{shown}'; rebuild the cache")
    positional, pos_have = placed(data, np.arange(len(data)), n)
    differs = [cs.class_names[c] for c in sorted(used) if not np.array_equal(positional[c], by_name[c])]
    info = {"file": shown, "placement": "positional (compat)" if compat else "by_name", "positional_differs": differs}
    missing = [c for c in sorted(used) if not pos_have[c]]
    if compat and missing:
        raise DataError(f"'{shown}' has {len(data)} text rows, too few for the positional lookup of class id "
                        f"{missing[0]}; load with compat_positional_text=False")
    return (positional if compat else by_name), info


def load_benchmark(root: str | Path, dataset: str, features: str = "main", split: str = "main", source: str = "auto",
                   nonfinite: str = "fail", compat_positional_text: bool = False) -> BenchmarkTasks:
    """Load ``<root>/<DS>/`` (or a dataset folder) as the stage-1 and stage-2 tasks (docs/config-reference.md, ``data.*``).

    ``compat_positional_text``: the reference's text lookup by class id (defect 1, docs/defects.md).
    """
    try:
        return _load(root, dataset, features, split, source, nonfinite, compat_positional_text)
    except OSError as exc:  # what the per-file checks did not name (e.g. a folder without search permission)
        raise DataError(os_error_line(exc, "fix its permissions (chmod) or restore it from the download")) from None


def _load(root, dataset, features, split, source, nonfinite, compat_positional_text) -> BenchmarkTasks:
    started = time.perf_counter()
    for name, value, allowed in (("source", source, ("auto", "h5", "pkl")), ("nonfinite", nonfinite, ("fail", "skip"))):
        if value not in allowed:
            raise DataError(f"unknown {name} '{value}'; use {', '.join(allowed[:-1])} or {allowed[-1]}")
    ds = dataset_info(dataset)
    method, split_name = folder_name(features, "features"), folder_name(split, "split")
    ds_dir = resolve_dataset_dir(root, ds)
    cs = read_class_split(ds_dir, ds, split_name)
    _check_protocol(cs)
    feat_dir = ds_dir / "features" / method
    has_h5 = (feat_dir / "audio").is_dir() or (feat_dir / "video").is_dir()
    has_pkl = all(_cache_path(ds_dir, method, split_name, c).is_file() for c in CACHE_STAGES)
    if source == "auto":
        if not (has_h5 or has_pkl):
            raise DataError(f"no features in '{rel(feat_dir, ds_dir)}' nor caches in "
                            f"'{rel(ds_dir / '_features_processed' / method, ds_dir)}'; download the {method} of "
                            f"{ds.folder} or write a synthetic tree with `avood data synth`")
        source = "h5" if has_h5 else "pkl"
    if source == "h5":
        if not has_h5:
            raise DataError(f"'{rel(feat_dir / 'audio', ds_dir)}' is missing; download the features or load with source='pkl'")
        parts, extra = read_h5(cs, feat_dir)
        pkl_text = None
    else:
        parts, pkl_text = _read_pkl(cs, method)
        extra = {"ignored_files": [],
                 "cache_check": _verify_cache_against_h5(cs, parts, feat_dir) if has_h5 else "no h5 tree"}

    used = {c for _, _, seen_txt, unseen_txt, _ in PROTOCOL.values()
            for c in cs.stage_classes[seen_txt] + cs.stage_classes[unseen_txt]}
    text, text_info = _text_matrix(cs, source, feat_dir, pkl_text, used, compat_positional_text)

    tasks, urls, dropped, skipped = {}, {}, {}, {}
    for stage, (train_cache, test_cache, seen_txt, unseen_txt, test_seen_txt) in PROTOCOL.items():
        seen, unseen = cs.stage_classes[seen_txt], cs.stage_classes[unseen_txt]
        listed = lambda txt: {c: rel(cs.stage_txt(txt), ds_dir) for c in cs.stage_classes[txt]}  # noqa: E731
        splits = {}
        for purpose, cache, keep, required in (
            ("train", train_cache, seen, listed(seen_txt)),
            ("test", test_cache, seen + unseen, {**listed(test_seen_txt), **listed(unseen_txt)}),
        ):
            rows, n_drop, n_skip = _select(parts[cache], keep, required, nonfinite, cs.class_names)
            key = f"stage{stage}.{purpose}"
            splits[purpose] = AVSamples(*(torch.from_numpy(getattr(rows, k)) for k in ("audio", "video", "labels")))
            urls[key], dropped[key], skipped[key] = rows.urls, n_drop, n_skip
        with torch_threads(1):  # the task's validation scans every feature
            tasks[stage] = AVGZSLTask(train=splits["train"], test=splits["test"], text=torch.tensor(text),
                                      seen_classes=torch.tensor(seen), unseen_classes=torch.tensor(unseen),
                                      class_names=list(cs.class_names),
                                      name=f"{ds.key}-{method}-{split_name}-stage{stage}",
                                      meta={"dataset": ds.key, "features": method, "split": split_name, "stage": stage,
                                            "source": source, "root": str(ds_dir),
                                            "compat_positional_text": compat_positional_text})
    info = {
        "dataset": ds.key, "folder": str(ds_dir), "features": method, "split": split_name, "source": source,
        "n_classes": len(cs.class_names), "audio_dim": tasks[1].train.audio_dim, "video_dim": tasks[1].train.video_dim,
        "text_dim": int(text.shape[1]),
        "purposes": {f"stage{stage}": {"train": {"cache": tr, "stage_folders": list(CACHE_STAGES[tr])},
                                       "test": {"cache": te, "stage_folders": list(CACHE_STAGES[te])},
                                       "seen_classes_from": f"class-split/{split_name}/{seen_txt}.txt",
                                       "unseen_classes_from": f"class-split/{split_name}/{unseen_txt}.txt"}
                     for stage, (tr, te, seen_txt, unseen_txt, _) in PROTOCOL.items()},
        "files": ([rel(feat_dir / m / s, ds_dir) for m in ("audio", "video") for s in CACHED_STAGES] if source == "h5"
                  else [rel(_cache_path(ds_dir, method, split_name, c), ds_dir) for c in CACHE_STAGES]),
        "dropped_rows": dropped, "nonfinite_skipped": skipped, **extra, "text": text_info,
        "load_seconds": round(time.perf_counter() - started, 3),
    }
    return BenchmarkTasks(tasks[1], tasks[2], info, urls)
