"""Caches and word-embedding files are read without running pickled code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from avood_core.data.cache import read_cache, read_w2v
from avood_core.errors import DataError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _cache(n=5, c=3):
    return {
        "audio": {"data": torch.randn(n, 4), "target": torch.arange(n) % c, "url": np.array([f"v{i}".encode() for i in range(n)])},
        "video": {"data": torch.randn(n, 6), "target": torch.arange(n) % c, "url": np.array([f"v{i}".encode() for i in range(n)])},
        "text": {"data": torch.randn(c, 300), "target": torch.arange(c)},
    }


def test_reference_style_plain_pickle_reads(tmp_path):
    """The reference writes its caches with pickle.dump: those read through the restricted unpickler."""
    ref = _cache()
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"training{proto}.pkl"
        with path.open("wb") as fh:
            pickle.dump(ref, fh, proto)
        got = read_cache(path)
        assert torch.equal(got["audio"]["data"], ref["audio"]["data"])
        assert got["video"]["url"].tolist() == [f"v{i}" for i in range(5)]


def test_torch_save_cache_reads(tmp_path):
    ref = _cache()
    torch.save(ref, tmp_path / "c.pkl")
    got = read_cache(tmp_path / "c.pkl")
    assert torch.equal(got["text"]["data"], ref["text"]["data"])


def test_malicious_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    bad = _cache()
    bad["audio"]["extra"] = _Evil()
    with path.open("wb") as fh:
        pickle.dump(bad, fh)
    with pytest.raises(DataError, match="cannot be read safely .*refusing global (posix|os).system"):
        read_cache(path)


def test_malicious_torch_save_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"audio": _Evil()}, path)
    with pytest.raises(DataError, match="cannot be read safely"):
        read_cache(path)


def test_object_url_arrays_must_hold_strings(tmp_path):
    bad = _cache()
    bad["audio"]["url"] = np.array([1, 2, 3, 4, 5], dtype=object)
    with (tmp_path / "c.pkl").open("wb") as fh:
        pickle.dump(bad, fh)
    with pytest.raises(DataError, match="non-string"):
        read_cache(tmp_path / "c.pkl")


def test_wrong_layout_is_refused(tmp_path):
    torch.save({"audio": {"data": torch.randn(3, 2)}}, tmp_path / "c.pkl")
    with pytest.raises(DataError, match="not an AVCA feature cache"):
        read_cache(tmp_path / "c.pkl")


def test_w2v_npy_reads_without_allow_pickle_and_refuses_code(tmp_path):
    good = np.empty((), dtype=object)
    good[()] = {"Apply Eye Makeup": np.ones(300, np.float32)}
    np.save(tmp_path / "good.npy", good, allow_pickle=True)
    assert read_w2v(tmp_path / "good.npy", tmp_path)["Apply Eye Makeup"].shape == (300,)
    evil = np.empty((), dtype=object)
    evil[()] = {"x": _Evil()}
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    with pytest.raises(DataError, match="cannot be read safely"):
        read_w2v(tmp_path / "evil.npy", tmp_path)
    wrong = np.empty((), dtype=object)
    wrong[()] = {"x": "not a vector"}
    np.save(tmp_path / "wrong.npy", wrong, allow_pickle=True)
    with pytest.raises(DataError, match="not a str -> 1-D float array"):
        read_w2v(tmp_path / "wrong.npy", tmp_path)
    np.save(tmp_path / "plain.npy", np.zeros((3, 300), np.float32))
    with pytest.raises(DataError, match="not a pickled dict"):
        read_w2v(tmp_path / "plain.npy", tmp_path)


def test_real_word_embeddings_read_safely(shared):
    vectors = read_w2v(shared / "w2v" / "word_embeddings_vggsound_normed.npy", shared)
    assert len(vectors) == 309
    assert all(v.shape == (300,) and abs(float(np.linalg.norm(v)) - 1) < 1e-3 for v in vectors.values())


def test_a_tree_with_reference_pickled_caches_loads_like_its_h5(tree):
    """Caches as the reference writes them (plain pickle.dump, bytes urls) give the h5 tree's tasks."""
    from avood_core.data import load_benchmark

    for path in (tree / "UCF/_features_processed/main_features").glob("*.pkl"):
        cache = read_cache(path)
        for m in ("audio", "video"):
            cache[m]["url"] = np.array([u.encode() for u in cache[m]["url"]])
        with path.open("wb") as fh:
            pickle.dump(cache, fh, pickle.HIGHEST_PROTOCOL)
    a, b = load_benchmark(tree, "ucf", source="h5"), load_benchmark(tree, "ucf", source="pkl")
    for stage in ("stage1", "stage2"):
        for split in ("train", "test"):
            x, y = getattr(getattr(a, stage), split), getattr(getattr(b, stage), split)
            assert torch.equal(x.audio, y.audio) and torch.equal(x.video, y.video) and torch.equal(x.labels, y.labels)
    assert b.info["cache_check"].startswith("matches")
    # with a broken h5 tree the caches still load; the comparison is reported as skipped
    next((tree / "UCF/features/main_features/audio/stage_1_train").glob("*.h5")).unlink()
    c = load_benchmark(tree, "ucf", source="pkl")
    assert c.info["cache_check"].startswith("not compared: the h5 tree has problems")
