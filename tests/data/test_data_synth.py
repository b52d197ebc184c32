"""The writer: generated trees shaped like each dataset, determinism, atomic replacement."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch

from avood_core.data import DATASETS, load_benchmark, write_synthetic_tree
from avood_core.data import synth as synth_mod
from avood_core.errors import DataError


@pytest.mark.parametrize("ds", ["ucf", "activitynet", "vggsound"])
def test_generated_tree_has_the_dataset_shape(tmp_path, ds):
    report = write_synthetic_tree(tmp_path, ds, scale=0.01, audio_dim=3, video_dim=4, caches=False)
    n1, nvu, ns2, ntu = DATASETS[ds].class_counts
    assert report.classes["stage_1_train"] == n1 and report.classes["stage_2_test_unseen"] == ntu
    b = load_benchmark(tmp_path, ds)
    assert (len(b.stage1.seen_classes), len(b.stage1.unseen_classes)) == (n1, nvu)
    assert (len(b.stage2.seen_classes), len(b.stage2.unseen_classes)) == (ns2, ntu)
    assert b.stage1.n_classes == ns2 + ntu
    assert len(b.stage2.train) == report.clips["stage_2_train"] == sum(report.clips[s] for s in (
        "stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"))
    folder = tmp_path / DATASETS[ds].folder
    header = (folder / "class-split/main_split/stage_2_test_seen.csv").read_text().splitlines()[0]
    assert header == ",".join(DATASETS[ds].csv_columns)
    w2v_header = (folder / "class-split" / DATASETS[ds].w2v_csv).read_text().splitlines()[0]
    assert w2v_header == ",".join(DATASETS[ds].w2v_columns)
    with open(folder / "class-split/main_split/stage_1_train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = b.stage1.class_names
    assert all(names[int(r["label_code"])] == r["label"] for r in rows)  # label_code = index in sorted(all_class)
    # generated text differs between positional and by-name lookup, as the real one does
    assert b.info["text"]["positional_differs"]


def test_full_generated_ucf_matches_spec_counts(tmp_path):
    write_synthetic_tree(tmp_path, "ucf", audio_dim=2, video_dim=2, caches=False)
    b = load_benchmark(tmp_path, "ucf")
    seen1 = int(torch.isin(b.stage1.test.labels, b.stage1.seen_classes).sum())
    seen2 = int(torch.isin(b.stage2.test.labels, b.stage2.seen_classes).sum())
    assert (len(b.stage1.train), seen1, len(b.stage1.test) - seen1) == (3174, 353, 1467)
    assert (len(b.stage2.train), seen2, len(b.stage2.test) - seen2) == (4994, 555, 1267)


def test_h5_format_and_default_dims(tmp_path):
    write_synthetic_tree(tmp_path, "ucf", scale=0.01, features="cls", class_counts=(3, 2, 2), caches=False)
    files = sorted((tmp_path / "UCF/features/cls_features/video/stage_1_train").glob("*.h5"))
    with h5py.File(files[0], "r") as fh:
        assert fh["data"].dtype == np.float32 and fh["data"].shape[1] == 4096
        assert isinstance(fh["video_urls"][0], bytes)
    b = load_benchmark(tmp_path, "ucf", features="cls", split="cls")
    assert (b.stage1.train.audio_dim, b.stage1.train.video_dim) == (128, 4096)


def test_same_seed_same_tree_and_shared_clips_have_one_feature(tmp_path):
    kw = dict(scale=0.05, audio_dim=5, video_dim=4, class_counts=(4, 2, 2), caches=False)
    write_synthetic_tree(tmp_path / "a", "activitynet", seed=7, **kw)
    write_synthetic_tree(tmp_path / "b", "activitynet", seed=7, **kw)
    write_synthetic_tree(tmp_path / "c", "activitynet", seed=8, **kw)
    a, b, c = (load_benchmark(tmp_path / x, "activitynet") for x in "abc")
    assert torch.equal(a.stage2.train.audio, b.stage2.train.audio) and a.stage1.class_names == b.stage1.class_names
    assert a.stage1.class_names != c.stage1.class_names
    # stage_2_train repeats the stage-1 clips with the very same features
    s1 = dict(zip(a.urls["stage1.train"], a.stage1.train.audio.numpy()))
    s2 = dict(zip(a.urls["stage2.train"], a.stage2.train.audio.numpy()))
    assert all(np.array_equal(s1[u], s2[u]) for u in s1)


def test_features_are_learnable(tmp_path):
    """Class structure is there (as in the embedded task): nearest class mean beats chance by far."""
    write_synthetic_tree(tmp_path, "ucf", audio_dim=128, video_dim=128, class_counts=(10, 3, 3), caches=False)
    t = load_benchmark(tmp_path, "ucf").stage2
    means = torch.stack([t.train.x[t.train.labels == c].mean(0) for c in t.seen_classes])
    test = t.test.where(t.seen_classes)
    pred = t.seen_classes[torch.cdist(test.x, means).argmin(1)]
    assert (pred == test.labels).float().mean() > 0.3  # chance: 1/13; seeds 0-4 give 0.45-0.60


def test_existing_tree_is_refused_or_replaced_atomically(tmp_path, monkeypatch):
    kw = dict(scale=0.05, audio_dim=2, video_dim=2, class_counts=(3, 2, 2), caches=False)
    write_synthetic_tree(tmp_path, "ucf", seed=1, **kw)
    before = load_benchmark(tmp_path, "ucf").stage1.class_names
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        write_synthetic_tree(tmp_path, "ucf", seed=2, **kw)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_mod, "_write_features", boom)  # the features step (calibrated generator)
    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic_tree(tmp_path, "ucf", seed=2, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["UCF"]  # no partial folder left behind
    assert load_benchmark(tmp_path, "ucf").stage1.class_names == before
    monkeypatch.undo()
    write_synthetic_tree(tmp_path, "ucf", seed=2, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["UCF"]
    assert load_benchmark(tmp_path, "ucf").stage1.class_names != before


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        write_synthetic_tree(tmp_path, "kinetics")
    with pytest.raises(DataError, match="--data-scale 0: must be above 0"):
        write_synthetic_tree(tmp_path, "ucf", scale=0)
    with pytest.raises(DataError, match="class-split.*is missing"):
        write_synthetic_tree(tmp_path, "ucf", splits_dir=tmp_path / "nothing")
