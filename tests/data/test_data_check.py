"""check_tree: one readable table per split; problems collected, not raised."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from avood_core.data import check_tree
from avood_core.errors import DataError


def test_complete_tree_is_ok(tree):
    report = check_tree(tree)
    text = report.render()
    assert report.ok, text
    assert "UCF - main_split, features/main_features (h5)" in text
    assert "STAGE" in text and "CLIPS" in text and "TEXT" in text and "H5 FILES" in text
    assert "ok (matches h5)" in text
    assert text.splitlines()[-1].startswith("OK:")
    row = next(line for line in text.splitlines() if line.strip().startswith("stage_1_train"))
    assert " 6/6 " in row  # h5 files found for the 6 listed classes, and 6/6 text coverage


def test_problems_are_listed_per_split(tree):
    feat = tree / "UCF/features/main_features"
    missing = sorted((feat / "audio/stage_1_val_seen").glob("*.h5"))[0]
    missing.unlink()
    nan = sorted((feat / "video/stage_2_test_unseen").glob("*.h5"))[0]
    with h5py.File(nan, "r+") as fh:
        fh["data"][0, 0] = np.inf
    report = check_tree(tree, "ucf")
    text = report.render()
    assert not report.ok
    assert any(f"stage_1_val_seen/{missing.name}' is missing" in p for p in report.problems)
    assert any("NaN/inf" in p and nan.name in p for p in report.problems)
    assert "problem(s) found" in text.splitlines()[-1]
    row = next(line for line in text.splitlines() if line.strip().startswith("stage_1_val_seen"))
    assert "5/6" in row and "problem(s)" in row


def test_h5_rows_that_disagree_with_the_csv(tree):
    csv_path = tree / "UCF/class-split/main_split/stage_1_train.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-1]) + "\n")  # one clip fewer in the csv
    report = check_tree(tree)
    assert any("stage_1_train.csv lists" in p for p in report.problems)


def test_stage_2_train_must_be_the_union(tree):
    victim = sorted((tree / "UCF/features/main_features/audio/stage_2_train").glob("*.h5"))[0]
    for m in ("audio", "video"):
        (tree / "UCF/features/main_features" / m / "stage_2_train" / victim.name).unlink()
    report = check_tree(tree)
    assert any("not the union of the stage-1 folders" in p for p in report.problems)


def test_quick_mode_and_missing_features(tree):
    shutil.rmtree(tree / "UCF/_features_processed")
    report = check_tree(tree, deep=False)
    assert report.ok
    assert "no caches" in report.render()
    shutil.rmtree(tree / "UCF/features")
    report = check_tree(tree)
    assert any("no features in" in p for p in report.problems)


def test_no_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        check_tree(tmp_path / "nope")
    with pytest.raises(DataError, match="no UCF, ActivityNet or VGGSound folder"):
        check_tree(tmp_path)


def test_real_tree_checks_clean(real_trees):
    root, _ = real_trees
    report = check_tree(root, "vggsound", deep=False)
    assert report.ok, report.render()
