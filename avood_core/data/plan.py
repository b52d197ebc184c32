"""What a synthetic benchmark tree holds: class names, split files and one csv row per clip.

:func:`plan_from_splits` keeps the real class lists, word2vec and the first ``max(1, round(n_c * scale))``
rows per class of each real csv; :func:`plan_generated` shapes them like the dataset. ``stage_2_train``
is always the union of the three stage-1 csv files (true of the real files).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avood_core.data.cache import read_w2v
from avood_core.data.layout import CACHE_STAGES, STAGES, SPLITS, DatasetInfo, read_csv_rows, read_lines
from avood_core.errors import DataError

TRAIN_TO_VAL_SEEN = 9
_YOUTUBE_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass
class TreePlan:
    info: DatasetInfo
    all_classes: list[str]  # all_class.txt, file order
    w2v_rows: list[dict[str, str]]  # original, manual (, category)
    vectors: dict[str, np.ndarray]  # manual name -> vector
    txt: dict[str, dict[str, list[str]]]  # split -> stage -> class names
    rows: dict[str, dict[str, list[dict[str, str]]]]  # split -> stage -> csv rows
    copy_from: dict[str, Path] = field(default_factory=dict)  # tree-relative file -> real file to copy
    notes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        """Classes by id: the case-sensitive ``sorted(all_class.txt)``."""
        return sorted(self.all_classes)

    @property
    def w2v_names(self) -> dict[str, str]:
        """``original.lower() -> manual`` of the w2v name csv."""
        return {r["original"].strip().lower(): r["manual"].strip() for r in self.w2v_rows}


class _RowMaker:
    """Fresh csv rows in a dataset's column layout (unique filenames per tree)."""

    def __init__(self, info: DatasetInfo, rng: random.Random, all_classes: list[str], w2v_rows: list[dict[str, str]]):
        self.info, self.rng, self.per_class = info, rng, Counter()
        self.index = {n.lower(): i for i, n in enumerate(sorted(all_classes))}
        self.category = {r["original"].lower(): r.get("category", "misc") for r in w2v_rows}

    def __call__(self, label: str, stage: str) -> dict[str, str]:
        k = self.per_class[label]
        self.per_class[label] += 1
        code = str(self.index[label.lower()])
        if self.info.key == "ucf":
            return {"filename": f"v_{label}_g{k // 7 + 1:02d}_c{k % 7 + 1:02d}", "label": label, "label_code": code}
        yid = "".join(self.rng.choice(_YOUTUBE_ID_CHARS) for _ in range(11))
        if self.info.key == "activitynet":
            return {"filename": f"{yid}_{k % 9}", "label_code": code, "label": label}
        start = self.rng.randrange(0, 600)
        return {
            "youtube_id": yid, "start_seconds": str(start), "label": label,
            "split": "test" if "unseen" in stage or "test" in stage else "train",
            "filename": f"{yid}_{start:06d}", "label_code": code, "category": self.category.get(label.lower(), "misc"),
        }


def _first_per_class(rows: list[dict[str, str]], scale: float) -> list[dict[str, str]]:
    keep = {c: max(1, round(n * scale)) for c, n in Counter(r["label"] for r in rows).items()}
    rank = defaultdict(itertools.count)  # next(rank[label]): how many rows of that label came before
    return [r for r in rows if next(rank[r["label"]]) < keep[r["label"]]]


def _union_stage1(rows: dict[str, list[dict[str, str]]]) -> list[dict[str, str]]:
    union: dict[str, dict[str, str]] = {}
    for r in (r for stage in CACHE_STAGES["train_val"] for r in rows[stage]):  # the three stage-1 folders
        union.setdefault(r["filename"], r)
    return list(union.values())


def _find_w2v(splits_dir: Path, info: DatasetInfo) -> Path:
    candidates = [splits_dir / "w2v" / info.w2v_file, splits_dir.parent / "w2v" / info.w2v_file,
                  *sorted((splits_dir / info.folder / "features").glob(f"*/text/{info.w2v_file}")),
                  *sorted((splits_dir / "features").glob(f"*/text/{info.w2v_file}"))]
    found = next((c for c in candidates if c.is_file()), None)
    if found:
        return found
    raise DataError(f"no {info.w2v_file} under '{splits_dir}' (w2v/ or <DS>/features/*/text/); pass the shared avgzsl folder")


def plan_from_splits(splits_dir: Path, info: DatasetInfo, scale: float, rng: random.Random) -> TreePlan:
    ds_dir = splits_dir / info.folder if (splits_dir / info.folder).is_dir() else splits_dir
    cs_dir = ds_dir / "class-split"
    if not cs_dir.is_dir():
        raise DataError(f"'{cs_dir}' is missing; pass a folder holding {info.folder}/class-split (e.g. /work/shared/avgzsl)")
    all_classes = read_lines(cs_dir / "all_class.txt", ds_dir)
    w2v_rows = read_csv_rows(cs_dir / info.w2v_csv, ds_dir, ("original", "manual"))
    vectors = read_w2v(_find_w2v(splits_dir, info), ds_dir)
    copy_from = {f"class-split/{name}": cs_dir / name for name in ("all_class.txt", info.w2v_csv)}
    make = _RowMaker(info, rng, all_classes, w2v_rows)
    txt, rows, notes = {}, {}, []
    for split in SPLITS.values():
        txt[split], rows[split] = {}, {}
        for stage in STAGES:
            txt[split][stage] = read_lines(cs_dir / split / f"{stage}.txt", ds_dir)
            copy_from[f"class-split/{split}/{stage}.txt"] = cs_dir / split / f"{stage}.txt"
            path = cs_dir / split / f"{stage}.csv"
            if stage == "stage_2_train":
                continue
            if path.is_file():
                rows[split][stage] = _first_per_class(read_csv_rows(path, ds_dir, ("filename", "label")), scale)
                continue
            classes = txt[split][stage]
            mean = max(1, round(info.samples.get(stage, 100 * len(classes)) / max(1, len(classes))))
            val_seen = Counter()
            if stage == "stage_1_train" and (cs_dir / split / "stage_1_val_seen.csv").is_file():
                val_seen = Counter(r["label"].lower() for r in read_csv_rows(cs_dir / split / "stage_1_val_seen.csv", ds_dir))
            out = [make(name, stage) for name in classes
                   for _ in range(max(1, round((TRAIN_TO_VAL_SEEN * val_seen[name.lower()] or mean) * scale)))]
            rows[split][stage] = out
            notes.append(f"{split}/{stage}.csv is missing in {splits_dir}: generated {len(out)} rows (fallback counts)")
        rows[split]["stage_2_train"] = _union_stage1(rows[split])
    return TreePlan(info, all_classes, w2v_rows, vectors, txt, rows, copy_from, notes)


_VERBS = ["Playing", "Riding", "Throwing", "Cleaning", "Jumping", "Cutting", "Blowing", "Walking", "Making", "Pulling"]
_SYL = ["ba", "ko", "ri", "tu", "me", "sa", "lo", "vi", "da", "ne", "pu", "gi", "ha", "zo", "fe", "mor", "tan", "quil", "sen", "dru"]


def _names(info: DatasetInfo, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` distinct (original, manual) name pairs in the dataset's style."""
    out: dict[str, tuple[str, str]] = {}  # original.lower() -> (original, manual)
    manuals: set[str] = set()
    while len(out) < n:
        noun = "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 3)))
        verb = rng.choice(_VERBS)
        # some w2v names reorder the words (like UCF's "Skijet" -> "Jet Ski"), so sorted w2v names
        # and sorted class names disagree in places, as in the real data
        reorder = rng.random() < 0.3
        if info.key == "ucf":
            original = verb + noun.capitalize()
            manual = f"{noun.capitalize()} {verb}" if reorder else f"{verb} {noun.capitalize()}"
        elif info.key == "activitynet":
            original = verb + noun
            manual = f"{noun.capitalize()} {verb.lower()}" if reorder else f"{verb} {noun}"
        else:
            extra = "".join(rng.choice(_SYL) for _ in range(2))
            manual = f"{verb.lower()} {noun}" if reorder else f"{noun} {verb.lower()}"
            original = f"{noun} {verb.lower()}" + (f", {extra}" if rng.random() < 0.2 else "")
        if original.lower() not in out and manual not in manuals:
            out[original.lower()] = (original, manual)
            manuals.add(manual)
    return list(out.values())


def plan_generated(info: DatasetInfo, scale: float, rng: random.Random, text_dim: int, latent_dim: int, seed: int,
                   class_counts: tuple[int, int, int] | None = None) -> TreePlan:
    """Generated tree; ``class_counts`` = (stage-1 train, stage-1 val unseen, stage-2 test unseen)
    overrides the dataset's class counts (clip totals follow, per class as in the dataset)."""
    import torch

    from avood_core.data.synthetic import make_text_embeddings, split_counts

    n1, nvu, ns2, ntu = info.class_counts
    default = {"stage_1_train": n1, "stage_1_val_seen": n1, "stage_1_val_unseen": nvu, "stage_2_test_seen": ns2,
               "stage_2_test_unseen": ntu}
    if class_counts is not None:
        n1, nvu, ntu = (int(x) for x in class_counts)
        if min(n1, nvu, ntu) < 1:
            raise DataError(f"class counts must be positive, got {class_counts}")
        ns2 = n1 + nvu
    total = ns2 + ntu
    pairs = _names(info, total, rng)
    g = torch.Generator().manual_seed(seed)
    text, _ = make_text_embeddings(total, text_dim, latent_dim, g)
    order = list(range(total))
    rng.shuffle(order)
    test_unseen, val_unseen, train = order[:ntu], order[ntu : ntu + nvu], order[ntu + nvu :]
    name = [p[0] for p in pairs]
    cats = ["animals", "music", "people", "vehicle", "sports", "nature", "home", "tools"]
    w2v_rows = [{"original": o, "manual": m} for o, m in pairs]
    if "category" in info.w2v_columns:
        for r in w2v_rows:
            r["category"] = rng.choice(cats)
    make = _RowMaker(info, rng, name, w2v_rows)
    members = {"stage_1_train": train, "stage_1_val_seen": train, "stage_1_val_unseen": val_unseen,
               "stage_2_train": train + val_unseen, "stage_2_test_seen": train + val_unseen,
               "stage_2_test_unseen": test_unseen}
    txt = {s: sorted(name[i] for i in members[s]) for s in STAGES}
    rows: dict[str, list[dict[str, str]]] = {}
    for stage in default:  # stage_2_train: the union of the stage-1 folders
        classes = txt[stage]
        clips = info.samples[stage] * scale * len(classes) / default[stage]
        counts = split_counts(max(len(classes), round(clips)), len(classes), g).tolist()
        rows[stage] = [make(c, stage) for c, k in zip(classes, counts) for _ in range(k)]
    rows["stage_2_train"] = _union_stage1(rows)
    vectors = {m: text[i].numpy() for i, (_, m) in enumerate(pairs)}
    return TreePlan(info, sorted(name), w2v_rows, vectors, {s: txt for s in SPLITS.values()},
                    {s: rows for s in SPLITS.values()})
