"""Names, paths and class-split files of the AVCA benchmark tree (``avgzsl_benchmark_datasets/<DS>/``).

A class id is the index in the case-sensitive ``sorted(all_class.txt)``, names matched lower-case
(UCF's split files say ``HandStandPushups`` where ``all_class.txt`` says ``HandstandPushups``).
"""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from avood_core.errors import DataError

STAGES = ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen", "stage_2_train", "stage_2_test_seen",
          "stage_2_test_unseen")

# The reference's four caches and the stage folders each is read from, in order.
CACHE_STAGES: dict[str, tuple[str, ...]] = {
    "training": ("stage_1_train",),
    "val": ("stage_1_val_seen", "stage_1_val_unseen"),
    "train_val": ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"),
    "test": ("stage_2_test_seen", "stage_2_test_unseen"),
}
CACHED_STAGES = tuple(sorted({s for names in CACHE_STAGES.values() for s in names}))  # the folders the caches read

FEATURES = {"main": "main_features", "cls": "cls_features"}
SPLITS = {"main": "main_split", "cls": "cls_split"}
# Feature widths of the download, used only when *writing* a tree (a loader reads dims from the data).
FEATURE_DIMS = {"main_features": (512, 512), "cls_features": (128, 4096)}


@dataclass(frozen=True)
class DatasetInfo:
    """One benchmark dataset: its CLI name, folder, file-name keys and shape (AVCA-GZSL benchmark download, paper §4.1)."""

    key: str
    folder: str
    w2v_key: str
    w2v_csv: str
    csv_columns: tuple[str, ...]
    w2v_columns: tuple[str, ...]
    # main_split class counts: s1 train / s1 val unseen / s2 seen / s2 test unseen
    class_counts: tuple[int, int, int, int]
    # clips per stage folder (stage_2_train is the union of the three stage-1 folders)
    samples: dict = field(default_factory=dict)

    @property
    def w2v_file(self) -> str:
        return f"word_embeddings_{self.w2v_key}_normed.npy"


DATASETS: dict[str, DatasetInfo] = {
    "ucf": DatasetInfo(
        "ucf", "UCF", "ucf", "ucf_w2v_class_names.csv",
        ("filename", "label", "label_code"), ("original", "manual"), (30, 12, 42, 9),
        {"stage_1_train": 3174, "stage_1_val_seen": 353, "stage_1_val_unseen": 1467,
         "stage_2_test_seen": 555, "stage_2_test_unseen": 1267},
    ),
    "activitynet": DatasetInfo(
        "activitynet", "ActivityNet", "activity", "activitynet_w2v_class_names.csv",
        ("filename", "label_code", "label"), ("original", "manual"), (99, 51, 150, 50),
        {"stage_1_train": 9204, "stage_1_val_seen": 1023, "stage_1_val_unseen": 4307,
         "stage_2_test_seen": 1615, "stage_2_test_unseen": 4199},
    ),
    # VGGSound: the stage-1 val/test counts are those of the split csv files; stage_1_train is
    # 9 x val_seen (the train:val-seen ratio of UCF and ActivityNet), which gives the ~93.7k clips of the AVCA-GZSL VGGSound split.
    "vggsound": DatasetInfo(
        "vggsound", "VGGSound", "vggsound", "vggsound_w2v_class_names.csv",
        ("youtube_id", "start_seconds", "label", "split", "filename", "label_code", "category"),
        ("original", "manual", "category"), (138, 69, 207, 69),
        {"stage_1_train": 70353, "stage_1_val_seen": 7817, "stage_1_val_unseen": 3102,
         "stage_2_test_seen": 9032, "stage_2_test_unseen": 3450},
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Look a dataset up by CLI name (``ucf``) or folder name (``UCF``), case-insensitively."""
    key = str(name).strip().lower()
    for info in DATASETS.values():
        if key in (info.key, info.folder.lower()):
            return info
    raise DataError(f"unknown dataset '{name}'; use one of {', '.join(DATASETS)}")


def folder_name(value: str, what: str) -> str:
    """The folder of ``what`` ("features" or "split") ``value``: ``main``, ``cls`` or the folder's own name."""
    table = FEATURES if what == "features" else SPLITS
    key = str(value).strip().lower().removesuffix(f"_{what}")
    if key not in table:
        raise DataError(f"unknown {what} '{value}'; use main or cls")
    return table[key]


def resolve_dataset_dir(root: str | Path, info: DatasetInfo) -> Path:
    """``root/<DS>`` of a benchmark root, or ``root`` itself when it is the dataset folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"benchmark folder '{root}' {what}; pass the avgzsl_benchmark_datasets folder")
    if (root / info.folder).is_dir():
        return root / info.folder
    if root.name.lower() == info.folder.lower() and (root / "class-split").is_dir():
        return root
    raise DataError(f"'{root / info.folder}' is missing; download the {info.folder} benchmark into '{root}' "
                    f"or write a synthetic one with `avood data synth {root} --like {info.key}`")


def rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (for one-line messages), or the full path."""
    try:
        return str(path.relative_to(base.parent))
    except ValueError:
        return str(path)


def os_error_line(exc: OSError, fix: str, shown: str | Path | None = None) -> str:
    """One line for an OS error on the file ``shown`` (default: the one it names): the reason (strerror, no errno
    noise) and ``fix``."""
    shown = shown if shown is not None else exc.filename if exc.filename is not None else "a file"
    return f"'{shown}' cannot be read ({exc.strerror or type(exc).__name__}); {fix}"


@contextmanager
def reading(path: Path, base: Path):
    """An OS, decoding or csv error while reading the class-split file ``path`` as one DataError line."""
    shown = rel(path, base)
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"'{shown}' is not UTF-8 text (byte {exc.start}); restore the file from the download") from None
    except csv.Error as exc:
        raise DataError(f"'{shown}' is not a valid csv file ({exc}); restore the file from the download") from None
    except OSError as exc:
        fix = "fix its permissions (chmod) or restore it from the download"
        raise DataError(os_error_line(exc, fix, shown)) from None


def _read_text(path: Path, base: Path, newline: str | None = None) -> str:
    with reading(path, base):
        if not path.is_file():
            raise DataError(f"'{rel(path, base)}' is missing; restore the class-split folder of the download")
        with path.open(encoding="utf-8", newline=newline) as fh:
            return fh.read()


def read_lines(path: Path, base: Path) -> list[str]:
    """The non-empty, stripped lines of a text file."""
    return [line.strip() for line in _read_text(path, base).splitlines() if line.strip()]


INTEGER_COLUMNS = ("label_code",)  # csv columns holding integers wherever they appear


def read_csv_rows(path: Path, base: Path, required: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Rows of a csv file: ``required`` columns in the header, full rows, :data:`INTEGER_COLUMNS` integers."""
    text = _read_text(path, base, newline="")
    with reading(path, base):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"'{rel(path, base)}' lacks column(s) {', '.join(missing)} (header: {reader.fieldnames}); "
                            f"restore the file from the download")
        rows = []
        for row in reader:
            short = [c for c in reader.fieldnames or [] if row.get(c) is None]
            if short:
                raise DataError(f"'{rel(path, base)}' line {reader.line_num}: the row has no {', '.join(short)} field "
                                f"({sum(v is not None for v in row.values())} of {len(reader.fieldnames or [])} fields); "
                                f"restore the file from the download")
            for column in INTEGER_COLUMNS:
                value = row.get(column)
                if value is not None and not value.strip().lstrip("-").isdigit():
                    raise DataError(f"'{rel(path, base)}' line {reader.line_num}: {column} {value!r} is not an integer; "
                                    f"restore the file from the download")
            rows.append(row)
    return rows


@dataclass
class ClassSplit:
    """The class structure of one dataset folder and one split (main_split or cls_split)."""

    ds_dir: Path
    info: DatasetInfo
    split: str  # main_split / cls_split
    class_names: list[str]  # sorted(all_class.txt), case-sensitive: index = class id
    stage_classes: dict[str, list[int]]  # stage -> sorted class ids of its txt file

    def stage_txt(self, stage: str) -> Path:
        return self.ds_dir / "class-split" / self.split / f"{stage}.txt"


def read_all_classes(ds_dir: Path) -> list[str]:
    """``sorted(all_class.txt)`` (case-sensitive); fails on names equal up to case."""
    path = ds_dir / "class-split" / "all_class.txt"
    names = sorted(read_lines(path, ds_dir))
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen:
            raise DataError(f"'{rel(path, ds_dir)}' lists '{seen[n.lower()]}' and '{n}', equal up to case; keep one")
        seen[n.lower()] = n
    if not names:
        raise DataError(f"'{rel(path, ds_dir)}' is empty; restore it from the download")
    return names


def read_class_split(ds_dir: Path, info: DatasetInfo, split: str) -> ClassSplit:
    """All classes and the class ids of every stage txt file of ``split``."""
    names = read_all_classes(ds_dir)
    index = {n.lower(): i for i, n in enumerate(names)}
    stage_classes: dict[str, list[int]] = {}
    for stage in STAGES:
        path = ds_dir / "class-split" / split / f"{stage}.txt"
        ids = []
        for n in read_lines(path, ds_dir):
            if n.lower() not in index:
                raise DataError(f"'{rel(path, ds_dir)}' lists class '{n}', which is not in class-split/all_class.txt; "
                                f"fix the name or add the class")
            ids.append(index[n.lower()])
        if len(set(ids)) != len(ids):
            raise DataError(f"'{rel(path, ds_dir)}' lists a class twice; remove the duplicate")
        stage_classes[stage] = sorted(ids)
    return ClassSplit(ds_dir, info, split, names, stage_classes)


def read_w2v_names(ds_dir: Path, info: DatasetInfo) -> dict[str, str]:
    """``original.lower() -> manual`` from ``class-split/<ds>_w2v_class_names.csv``."""
    path = ds_dir / "class-split" / info.w2v_csv
    rows = read_csv_rows(path, ds_dir, ("original", "manual"))
    return {r["original"].strip().lower(): r["manual"].strip() for r in rows}
