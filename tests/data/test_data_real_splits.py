"""Trees written from the real AVCA class splits and word2vec load with the right classes and clips."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch

from avood_core.data import DATASETS, load_benchmark

SPEC_CLASSES = {"ucf": (30, 12, 42, 9), "activitynet": (99, 51, 150, 50), "vggsound": (138, 69, 207, 69)}


def _csv_counts(path) -> Counter:
    with open(path, newline="", encoding="utf-8") as fh:
        return Counter(r["label"].lower() for r in csv.DictReader(fh))


def _class_index(ds_dir):
    names = sorted(line.strip() for line in (ds_dir / "class-split" / "all_class.txt").read_text().splitlines() if line.strip())
    return names, {n.lower(): i for i, n in enumerate(names)}


def _per_class(samples) -> Counter:
    labels, counts = np.unique(samples.labels.numpy(), return_counts=True)
    return Counter(dict(zip(labels.tolist(), counts.tolist())))


@pytest.mark.parametrize("ds", ["ucf", "activitynet", "vggsound"])
def test_class_and_clip_counts_match_the_split_files(real_trees, shared, ds):
    root, reports = real_trees
    b = load_benchmark(root, ds)
    n1, nvu, ns2, ntu = SPEC_CLASSES[ds]
    assert (len(b.stage1.seen_classes), len(b.stage1.unseen_classes)) == (n1, nvu)
    assert (len(b.stage2.seen_classes), len(b.stage2.unseen_classes)) == (ns2, ntu)
    ds_dir = root / DATASETS[ds].folder
    names, index = _class_index(ds_dir)
    assert b.stage1.class_names == names and b.stage1.n_classes == len(names)
    written = {s: _csv_counts(ds_dir / "class-split" / "main_split" / f"{s}.csv") for s in (
        "stage_1_train", "stage_1_val_seen", "stage_1_val_unseen", "stage_2_train", "stage_2_test_seen", "stage_2_test_unseen")}
    by_id = lambda *stages: Counter({index[k]: v for s in stages for k, v in written[s].items()})  # noqa: E731
    assert _per_class(b.stage1.train) == by_id("stage_1_train")
    assert _per_class(b.stage1.test) == by_id("stage_1_val_seen", "stage_1_val_unseen")
    assert _per_class(b.stage2.train) == by_id("stage_2_train")
    assert _per_class(b.stage2.test) == by_id("stage_2_test_seen", "stage_2_test_unseen")
    # the written csv rows are the real ones, scaled per class (at least one clip per class)
    scale = {"ucf": 1.0, "activitynet": 0.05, "vggsound": 0.05}[ds]
    real = shared / DATASETS[ds].folder / "class-split" / "main_split"
    for stage in ("stage_1_val_seen", "stage_1_val_unseen", "stage_2_test_seen", "stage_2_test_unseen"):
        want = {k: max(1, round(v * scale)) for k, v in _csv_counts(real / f"{stage}.csv").items()}
        assert dict(written[stage]) == want, stage
    assert b.stage1.meta == {**b.stage1.meta, "dataset": ds, "features": "main_features", "split": "main_split", "stage": 1}
    assert b.stage2.meta["stage"] == 2 and b.info["source"] == "h5"
    assert b.info["purposes"]["stage2"]["train"]["stage_folders"] == ["stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"]
    assert b.stage1.text.shape == (len(names), 300)
    assert len(b.urls["stage1.train"]) == len(b.stage1.train)


def test_ucf_full_scale_matches_spec(real_trees):
    root, _ = real_trees
    b = load_benchmark(root, "ucf")
    s1_test_seen = int(torch.isin(b.stage1.test.labels, b.stage1.seen_classes).sum())
    s2_test_seen = int(torch.isin(b.stage2.test.labels, b.stage2.seen_classes).sum())
    assert len(b.stage1.train) == 3174
    assert (s1_test_seen, len(b.stage1.test) - s1_test_seen) == (353, 1467)
    assert len(b.stage2.train) == 4994
    assert (s2_test_seen, len(b.stage2.test) - s2_test_seen) == (555, 1267)
    assert (b.stage1.train.audio_dim, b.stage1.train.video_dim) == (6, 10)


def test_vggsound_missing_csv_uses_the_documented_fallback(real_trees, shared):
    root, reports = real_trees
    assert not (shared / "VGGSound" / "class-split" / "main_split" / "stage_1_train.csv").exists()
    assert any("stage_1_train.csv is missing" in n for n in reports["vggsound"].notes)
    ds_dir = root / "VGGSound" / "class-split" / "main_split"
    train, val_seen = _csv_counts(ds_dir / "stage_1_train.csv"), _csv_counts(shared / "VGGSound" / "class-split" / "main_split" / "stage_1_val_seen.csv")
    assert set(train) == set(val_seen) and len(train) == 138
    assert all(train[c] == max(1, round(9 * val_seen[c] * 0.05)) for c in train)
    assert (ds_dir / "stage_1_train.csv").read_text().splitlines()[0] == ",".join(DATASETS["vggsound"].csv_columns)


@pytest.mark.parametrize("ds", ["ucf", "activitynet", "vggsound"])
def test_written_csv_and_name_files_match_the_real_format(real_trees, shared, ds):
    root, _ = real_trees
    folder = DATASETS[ds].folder
    for split in ("main_split", "cls_split"):
        for real_csv in sorted((shared / folder / "class-split" / split).glob("*.csv")):
            mine = root / folder / "class-split" / split / real_csv.name
            assert mine.read_text().splitlines()[0] == real_csv.read_text().splitlines()[0]
        for txt in (shared / folder / "class-split" / split).glob("*.txt"):
            assert (root / folder / "class-split" / split / txt.name).read_bytes() == txt.read_bytes()
    w2v = root / folder / "features" / "main_features" / "text" / DATASETS[ds].w2v_file
    assert w2v.is_file()


def test_h5_and_pkl_give_identical_tasks(real_trees):
    root, _ = real_trees
    for ds in ("ucf", "activitynet"):
        a, b = load_benchmark(root, ds, source="h5"), load_benchmark(root, ds, source="pkl")
        assert b.info["source"] == "pkl" and b.info["cache_check"].startswith("matches the h5 tree")
        for stage in ("stage1", "stage2"):
            x, y = getattr(a, stage), getattr(b, stage)
            for split in ("train", "test"):
                for f in ("audio", "video", "labels"):
                    assert torch.equal(getattr(getattr(x, split), f), getattr(getattr(y, split), f)), (ds, stage, split, f)
                assert np.array_equal(a.urls[f"{stage}.{split}"], b.urls[f"{stage}.{split}"])
            assert torch.equal(x.text, y.text)
            assert torch.equal(x.seen_classes, y.seen_classes) and torch.equal(x.unseen_classes, y.unseen_classes)


def test_compat_switch_changes_exactly_the_classes_whose_rows_differ(real_trees, shared):
    root, _ = real_trees
    # the expectation, from the raw shared files (trusted, so a plain np.load is fine here)
    vectors = np.load(shared / "w2v" / "word_embeddings_ucf_normed.npy", allow_pickle=True).item()
    with open(shared / "UCF" / "class-split" / "ucf_w2v_class_names.csv", newline="") as fh:
        manual = {r["original"].lower(): r["manual"] for r in csv.DictReader(fh)}
    names, _ = _class_index(root / "UCF")
    keys = sorted(vectors)
    expected = {c for c, n in enumerate(names) if not np.array_equal(vectors[keys[c]], vectors[manual[n.lower()]])}
    for source in ("h5", "pkl"):
        right = load_benchmark(root, "ucf", source=source)
        compat = load_benchmark(root, "ucf", source=source, compat_positional_text=True)
        for c, n in enumerate(names):  # by name: each class its own vector
            assert np.array_equal(right.stage2.text[c].numpy(), vectors[manual[n.lower()]])
        for stage in ("stage1", "stage2"):
            r, p = getattr(right, stage).text, getattr(compat, stage).text
            changed = {c for c in range(len(names)) if not torch.equal(r[c], p[c])}
            assert changed == expected
        seen, unseen = set(right.stage2.seen_classes.tolist()), set(right.stage2.unseen_classes.tolist())
        assert (len(expected & seen), len(expected & unseen)) == (31, 5)  # defect 1 (docs/defects.md)
        # everything but the text is untouched
        assert torch.equal(right.stage2.train.audio, compat.stage2.train.audio)
        used = seen | unseen | set(right.stage1.seen_classes.tolist()) | set(right.stage1.unseen_classes.tolist())
        assert set(right.info["text"]["positional_differs"]) == {names[c] for c in expected & used}
        assert compat.stage2.meta["compat_positional_text"] is True


def test_cls_split_keeps_only_its_txt_classes(shared, tmp_path):
    """cls_split's stage_2_test_unseen.txt lists 6 of the 9 classes its csv (and h5 folder) holds."""
    from avood_core.data import write_synthetic_tree

    write_synthetic_tree(tmp_path, "ucf", scale=0.05, splits_dir=shared, features="cls", audio_dim=4, video_dim=7, caches=False)
    b = load_benchmark(tmp_path, "ucf", features="cls", split="cls")
    assert len(b.stage2.unseen_classes) == 6
    assert b.info["dropped_rows"]["stage2.test"] > 0
    assert set(b.stage2.test.labels.tolist()) == set(b.stage2.all_classes.tolist())
    assert (b.stage2.train.audio_dim, b.stage2.train.video_dim) == (4, 7)
