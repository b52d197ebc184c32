"""``avood data synth``: write a complete synthetic benchmark tree in the download's exact format.

Features come from :mod:`avood_core.data.latent` (paper Table 3 accuracies unless ``seen_acc`` /
``zsl_acc``); a class's clips follow its name, so a clip listed in several csv files has the same
features everywhere. The tree is built in a hidden temp folder and renamed into place.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avood_core.data.cache import sorted_rows, write_w2v
from avood_core.data.h5io import write_class_h5
from avood_core.data.layout import FEATURE_DIMS, SPLITS, STAGES, dataset_info, folder_name, read_class_split
from avood_core.data.latent import Calibration, ClassRoles, LatentGenerator, LatentParams, calibrate, name_key
from avood_core.data.loader import read_h5
from avood_core.data.plan import TreePlan, plan_from_splits, plan_generated
from avood_core.errors import DataError
from avood_core.limits import MAX_DATA_SCALE, MAX_FEATURE_DIM, SEED_MAX, SEED_MIN
from avood_core.util.paths import check_output_dir
from avood_core.util.threads import torch_threads


@dataclass
class SynthReport:
    """What :func:`write_synthetic_tree` wrote."""

    path: Path
    dataset: str
    features: str
    split: str
    clips: dict[str, int]
    classes: dict[str, int]
    audio_dim: int
    video_dim: int
    text_dim: int
    caches: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join([f"wrote {self.path} ({self.features} audio {self.audio_dim} / video {self.video_dim}, text "
                          f"{self.text_dim}; {self.split}; caches {'yes' if self.caches else 'no'}) in "
                          f"{self.seconds:.1f} s",
                          *[f"  {s:<20} {self.classes[s]:>4} classes {self.clips[s]:>7} clips" for s in STAGES],
                          *[f"  note: {n}" for n in self.notes]])


def _write_class_split(root: Path, plan: TreePlan) -> None:
    cs, info = root / "class-split", plan.info
    names = {"all_class.txt": plan.all_classes,
             **{f"{split}/{stage}.txt": plan.txt[split][stage] for split in SPLITS.values() for stage in STAGES}}
    for split in SPLITS.values():
        (cs / split).mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            _write_csv(cs / split / f"{stage}.csv", info.csv_columns, plan.rows[split][stage])
    for name, lines in names.items():
        if f"class-split/{name}" not in plan.copy_from:
            (cs / name).write_text("".join(n + "\n" for n in lines), encoding="utf-8")
    if f"class-split/{info.w2v_csv}" not in plan.copy_from:
        _write_csv(cs / info.w2v_csv, info.w2v_columns, plan.w2v_rows)
    for rel_path, src in plan.copy_from.items():  # the real split's own files, byte for byte
        shutil.copyfile(src, root / rel_path)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_caches(root: Path, plan: TreePlan, method: str, split: str) -> None:
    """The reference's four caches of the tree just written, read back from its h5 files."""
    cs = read_class_split(root, plan.info, split)
    parts, _ = read_h5(cs, root / "features" / method)
    text, targets = sorted_rows(plan.vectors, plan.w2v_names, cs.class_names)
    out = root / "_features_processed" / method
    out.mkdir(parents=True, exist_ok=True)
    for cache, rows in parts.items():
        entry = {m: {"data": torch.from_numpy(getattr(rows, m)), "target": torch.from_numpy(rows.labels),
                     "url": rows.urls} for m in ("audio", "video")}
        entry["text"] = {"data": torch.from_numpy(text), "target": torch.from_numpy(targets)}
        torch.save(entry, out / f"{cache}{split}.pkl")


def _per_class(plan: TreePlan, split: str) -> tuple[dict[int, dict[str, tuple[str, list[str]]]], ClassRoles]:
    """Class id -> stage -> (label as written, clip files), and the calibration's roles: stage 2 fixes them (its
    train classes are seen, its test-unseen classes unseen)."""
    index = {n.lower(): i for i, n in enumerate(plan.class_names)}
    per_class: dict[int, dict[str, tuple[str, list[str]]]] = {}
    for stage in STAGES:
        for r in plan.rows[split][stage]:
            cid = index.get(r["label"].strip().lower())
            if cid is None:
                raise DataError(f"csv row '{r['filename']}' of {split}/{stage} names unknown class '{r['label']}'; fix the split csv")
            per_class.setdefault(cid, {}).setdefault(stage, (r["label"], []))[1].append(r["filename"])
    train, test_seen, test_unseen = (Counter(index[r["label"].strip().lower()] for r in plan.rows[split][stage])
                                     for stage in ("stage_2_train", "stage_2_test_seen", "stage_2_test_unseen"))
    seen, unseen = sorted(train), sorted(test_unseen)
    return per_class, ClassRoles(torch.tensor(seen), torch.tensor(unseen), torch.tensor([train[c] for c in seen]),
                                 torch.tensor([max(1, test_seen[c]) for c in seen]),
                                 torch.tensor([test_unseen[c] for c in unseen]))


def _write_features(root: Path, plan: TreePlan, dataset: str, method: str, split: str, dims: tuple[int, int], seed: int,
                    latent_dim: int, seen_acc: float | None, zsl_acc: float | None, probe: bool) -> Calibration:
    """Write ``features/<method>/{audio,video}/<stage>/<Class>.h5``; return the solved calibration."""
    g = torch.Generator().manual_seed(seed)
    manual, width = plan.w2v_names, len(next(iter(plan.vectors.values())))
    # a class's word vector by name, random if absent
    vectors = [plan.vectors.get(manual.get(name.lower(), "\0")) for name in plan.class_names]
    text = torch.stack([torch.as_tensor(np.asarray(v), dtype=torch.float32) if v is not None
                        else torch.randn(width, generator=g) for v in vectors])
    per_class, roles = _per_class(plan, split)
    keys = [name_key(seed, n) for n in plan.class_names]
    gen = LatentGenerator(text, dims, LatentParams(latent_dim=latent_dim), seed, keys)
    cal = calibrate(gen, text, roles, dataset, seen_acc, zsl_acc, seed=seed + 1, probe=probe)
    feat = root / "features" / method
    for stage in STAGES:
        for m in ("audio", "video"):
            (feat / m / stage).mkdir(parents=True, exist_ok=True)
    for cid in sorted(per_class):
        clips = list(dict.fromkeys(f for _, files in per_class[cid].values() for f in files))
        row_of = {f: i for i, f in enumerate(clips)}
        gc = torch.Generator().manual_seed(name_key(seed, plan.class_names[cid]) ^ 0x5A5A)
        audio, video = (x.numpy() for x in gen.sample(torch.full((len(clips),), cid, dtype=torch.long), gc))
        for stage, (label, files) in per_class[cid].items():
            idx = np.array([row_of[f] for f in files])
            write_class_h5(feat / "audio" / stage / f"{label}.h5", audio[idx], files)
            write_class_h5(feat / "video" / stage / f"{label}.h5", video[idx], files)
    return cal


def _calibration_note(cal: Calibration) -> str:
    """One line for the synth report: targets, probe targets and accuracies, the solved parameters."""
    how = (f"probe targets {cal.probe_targets[0]:.2f} / {cal.probe_targets[1]:.2f} from the measured transfer "
           f"({', '.join(cal.mapped)})" if cal.mapped else "probe targets = targets (no measured transfer)")
    return (f"calibrated to seen {cal.seen_target:.2f} / ZSL {cal.zsl_target:.2f} %: {how}; probes reached "
            f"{cal.seen_probe:.2f} / {cal.zsl_probe:.2f} at noise {cal.params.noise:.3f}, residual {cal.params.residual:.3f} "
            "(avood_core.data.latent)")


def write_synthetic_tree(out: str | Path, like: str, *, scale: float = 1.0, seed: int = 0,
                         splits_dir: str | Path | None = None, features: str = "main", audio_dim: int | None = None,
                         video_dim: int | None = None, caches: bool = True, overwrite: bool = False,
                         latent_dim: int = 64, class_counts: tuple[int, int, int] | None = None,
                         seen_acc: float | None = None, zsl_acc: float | None = None,
                         probe: bool = False) -> SynthReport:
    """Write ``<out>/<DS>/`` shaped like dataset ``like`` (options: docs/cli.md, ``avood data synth``).

    ``splits_dir``: the real class lists, clip counts and word2vec (:mod:`avood_core.data.plan`), else generated.
    """
    started = time.perf_counter()
    info = dataset_info(like)
    method = folder_name(features, "features")
    split = SPLITS[method.removesuffix("_features")]
    if not 0 < scale <= MAX_DATA_SCALE:
        raise DataError(f"--data-scale {scale}: must be above 0 and at most {MAX_DATA_SCALE:g}; pass e.g. --data-scale 0.1")
    if not SEED_MIN <= seed <= SEED_MAX:
        raise DataError(f"--data-seed {seed}: must be a 64-bit integer ({SEED_MIN}..{SEED_MAX})")
    for name, value, default in zip(("audio", "video"), (audio_dim, video_dim), FEATURE_DIMS[method]):
        if value is not None and not 1 <= value <= MAX_FEATURE_DIM:
            raise DataError(f"--{name}-dim {value}: a feature width must be 1..{MAX_FEATURE_DIM} (every clip needs {name}); "
                            f"pass a positive width or drop the option ({default} for {method})")
    dims = tuple(d if v is None else int(v) for v, d in zip((audio_dim, video_dim), FEATURE_DIMS[method]))
    out = check_output_dir(out, "OUT")
    target = out / info.folder
    if target.exists() and not overwrite:
        raise DataError(f"'{target}' already exists; remove it, pick another folder or pass --overwrite")
    if splits_dir is not None and class_counts is not None:
        raise DataError("class_counts applies to generated trees only; drop it or drop splits_dir")
    rng = random.Random(seed)
    plan = (plan_from_splits(Path(splits_dir).expanduser(), info, scale, rng) if splits_dir is not None
            else plan_generated(info, scale, rng, 300, latent_dim, seed, class_counts))
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{info.folder}.partial-", dir=out))
    except OSError as exc:
        raise DataError(f"OUT '{out}': cannot create a folder there ({exc.strerror or exc}); pass a writable folder") from None
    try:
        _write_class_split(tmp, plan)
        with torch_threads(1):  # many small torch calls: a thread pool only adds hand-off stalls
            cal = _write_features(tmp, plan, info.key, method, split, dims, seed, latent_dim, seen_acc, zsl_acc, probe)
        text_dir = tmp / "features" / method / "text"
        text_dir.mkdir(parents=True, exist_ok=True)
        write_w2v(text_dir / info.w2v_file, plan.vectors)
        if caches:
            _write_caches(tmp, plan, method, split)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{info.folder}.old-", dir=out))
            target.rename(old / info.folder)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        where = exc.filename or out  # disk full, permissions changed while writing: no partial tree, one line
        raise DataError(f"writing the tree under '{out}' failed at '{where}' ({exc.strerror or exc}); "
                        f"free space or fix permissions, then run `avood data synth` again") from None
    return SynthReport(path=target, dataset=info.key, features=method, split=split,
                       clips={s: len(plan.rows[split][s]) for s in STAGES},
                       classes={s: len(plan.txt[split][s]) for s in STAGES}, audio_dim=dims[0], video_dim=dims[1],
                       text_dim=len(next(iter(plan.vectors.values()))), caches=caches,
                       seconds=time.perf_counter() - started, notes=[*plan.notes, _calibration_note(cal)])
