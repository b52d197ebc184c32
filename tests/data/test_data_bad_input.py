"""Every malformed tree fails with one DataError line that names the file and the fix."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from avood_core.data import check_tree, load_benchmark
from avood_core.data.cache import read_cache, read_w2v, write_w2v
from avood_core.errors import DataError

FEAT = "UCF/features/main_features"


def _fails(tree, *fragments, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        load_benchmark(tree, "ucf", **kwargs)
    msg = str(err.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def _class_file(tree, stage="stage_1_train", modality="audio", index=0):
    return sorted((tree / FEAT / modality / stage).glob("*.h5"))[index]


def _rewrite(path, data, urls=None):
    with h5py.File(path, "r") as fh:
        urls = fh["video_urls"][()] if urls is None else urls
    with h5py.File(path, "w") as fh:
        fh.create_dataset("data", data=data)
        fh.create_dataset("video_urls", dtype=h5py.string_dtype(), data=list(urls))


def test_the_intact_tree_loads(tree):
    b = load_benchmark(tree, "ucf")
    assert len(b.stage1.train) > 0 and b.info["nonfinite_skipped"]["stage1.train"] == 0


def test_missing_root_and_dataset_folder(tree, tmp_path):
    _fails(tmp_path / "nowhere", "nowhere", "does not exist")
    with pytest.raises(DataError, match="ActivityNet.*is missing.*avood data synth"):
        load_benchmark(tree, "activitynet")
    with pytest.raises(DataError, match="unknown dataset 'kinetics'"):
        load_benchmark(tree, "kinetics")


@pytest.mark.parametrize(
    "victim, fragment",
    [
        ("UCF/class-split/all_class.txt", "UCF/class-split/all_class.txt' is missing"),
        ("UCF/class-split/main_split/stage_1_val_unseen.txt", "stage_1_val_unseen.txt' is missing"),
        (f"{FEAT}/video/stage_2_test_seen", "video/stage_2_test_seen' is missing"),
        (f"{FEAT}/text/word_embeddings_ucf_normed.npy", "word_embeddings_ucf_normed.npy' is missing"),
        ("UCF/class-split/ucf_w2v_class_names.csv", "ucf_w2v_class_names.csv' is missing"),
    ],
)
def test_missing_file_or_folder(tree, victim, fragment):
    path = tree / victim
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    _fails(tree, fragment)


def test_no_features_at_all(tree):
    shutil.rmtree(tree / "UCF/features")
    shutil.rmtree(tree / "UCF/_features_processed")
    _fails(tree, "no features in 'UCF/features/main_features'", "avood data synth")


def test_class_in_split_file_without_h5(tree):
    victim = _class_file(tree, "stage_1_val_unseen")
    victim.unlink()
    _fails(tree, f"audio/stage_1_val_unseen/{victim.name}' is missing", "listed in UCF/class-split/main_split/stage_1_val_unseen.txt")


def test_dim_mismatch_between_classes(tree):
    victim = _class_file(tree, "stage_2_test_seen", "video", 2)
    with h5py.File(victim, "r") as fh:
        n, d = fh["data"].shape
    _rewrite(victim, np.zeros((n, d + 3), np.float32))
    _fails(tree, victim.name, f"has {d + 3} video columns but the other classes have {d}", "re-extract")


def test_nan_rows_fail_or_are_skipped(tree):
    victim = _class_file(tree, "stage_1_train", "video", 1)
    with h5py.File(victim, "r+") as fh:
        fh["data"][0, 0] = np.nan
        if len(fh["data"]) > 1:
            fh["data"][-1, 1] = np.inf
        bad = min(2, len(fh["data"]))
    _fails(tree, f"stage_1_train/{victim.name}", f"{bad} row(s) with NaN/inf", "nonfinite='skip'")
    clean_rows = 0
    with h5py.File(victim, "r") as fh:
        clean_rows = len(fh["data"]) - bad
    if clean_rows == 0:  # the whole class is NaN: skipping empties it
        _fails(tree, "has no clips", "after skipping NaN/inf rows", nonfinite="skip")
        return
    b = load_benchmark(tree, "ucf", nonfinite="skip")
    assert b.info["nonfinite_skipped"] == {"stage1.train": bad, "stage1.test": 0, "stage2.train": bad, "stage2.test": 0}
    assert torch.isfinite(b.stage2.train.video).all()


def test_nan_rows_of_a_single_clip_class_empty_it_when_skipped(tree):
    victim = _class_file(tree, "stage_1_val_seen", "audio", 0)
    with h5py.File(victim, "r") as fh:
        n, d = fh["data"].shape
    _rewrite(victim, np.full((n, d), np.nan, np.float32))
    _fails(tree, "has no clips", "after skipping NaN/inf rows", "restore its features", nonfinite="skip")


def test_empty_class(tree):
    victim = _class_file(tree, "stage_2_test_unseen", "audio", 0)
    with h5py.File(victim, "r") as fh:
        d = fh["data"].shape[1]
    for m in ("audio", "video"):
        _rewrite(tree / FEAT / m / "stage_2_test_unseen" / victim.name, np.zeros((0, d), np.float32), [])
    _fails(tree, victim.name, "holds no clips (empty class)")


def test_class_without_text_embedding(tree):
    npy = tree / FEAT / "text" / "word_embeddings_ucf_normed.npy"
    vectors = read_w2v(npy, tree / "UCF")
    stage1 = load_benchmark(tree, "ucf").stage1
    cid = int(stage1.unseen_classes[0])
    name = stage1.class_names[cid]
    csv_rows = (tree / "UCF/class-split/ucf_w2v_class_names.csv").read_text().splitlines()
    manual = next(r.split(",", 1)[1] for r in csv_rows[1:] if r.split(",", 1)[0].lower() == name.lower())
    del vectors[manual]
    write_w2v(npy, vectors)
    _fails(tree, f"class '{name}' has no word embedding", "word_embeddings_ucf_normed.npy", f"w2v name '{manual}'")


def test_class_missing_from_the_w2v_name_csv(tree):
    path = tree / "UCF/class-split/ucf_w2v_class_names.csv"
    lines = path.read_text().splitlines()
    stage2 = load_benchmark(tree, "ucf").stage2
    name = stage2.class_names[int(stage2.seen_classes[0])]
    path.write_text("\n".join(l for l in lines if l.split(",", 1)[0].lower() != name.lower()) + "\n")
    _fails(tree, f"class '{name}' has no word embedding", "no row in class-split/ucf_w2v_class_names.csv")


def test_pkl_cache_that_disagrees_with_the_h5_tree(tree):
    path = tree / "UCF/_features_processed/main_features/testmain_split.pkl"
    cache = read_cache(path)
    keep = cache["audio"]["target"] != cache["audio"]["target"][0]
    for m in ("audio", "video"):
        cache[m] = {"data": cache[m]["data"][keep], "target": cache[m]["target"][keep], "url": cache[m]["url"][keep.numpy()]}
    torch.save(cache, path)
    msg = _fails(tree, "testmain_split.pkl' disagrees with the h5 tree", "rows in the cache", "delete the cache", source="pkl")
    assert "UCF/_features_processed/main_features/testmain_split.pkl" in msg
    report = check_tree(tree)
    assert not report.ok and any("testmain_split.pkl' disagrees" in p for p in report.problems)
    # the h5 tree itself still loads
    assert load_benchmark(tree, "ucf").info["source"] == "h5"


def test_pkl_cache_with_other_feature_values_is_caught_by_the_checker(tree):
    path = tree / "UCF/_features_processed/main_features/trainingmain_split.pkl"
    cache = read_cache(path)
    cache["video"]["data"][0, 0] += 1.0
    torch.save(cache, path)
    report = check_tree(tree)
    assert any("trainingmain_split.pkl' disagrees" in p and "other feature values" in p for p in report.problems)


def test_split_file_naming_an_unknown_class(tree):
    path = tree / "UCF/class-split/main_split/stage_2_test_unseen.txt"
    path.write_text(path.read_text() + "NoSuchClass\n")
    _fails(tree, "stage_2_test_unseen.txt' lists class 'NoSuchClass'", "all_class.txt")


def test_bad_options(tree):
    _fails(tree, "unknown source 'zip'", source="zip")
    _fails(tree, "unknown nonfinite 'drop'", nonfinite="drop")
    _fails(tree, "unknown features 'c3d'", features="c3d")
