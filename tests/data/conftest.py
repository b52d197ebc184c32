"""Fixtures of the benchmark-data tests: the shared real class splits, and small written trees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Small feature widths keep full-size trees fast; the loader reads dims from the data.
DIMS = {"audio_dim": 6, "video_dim": 10}


def _shared_dir() -> Path | None:
    env = os.environ.get("AVOOD_SHARED")
    path = Path(env) if env else REPO.parent / "shared" / "avgzsl"
    return path if (path / "UCF" / "class-split").is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real AV-GZSL class splits and word2vec (../shared/avgzsl, or $AVOOD_SHARED)."""
    path = _shared_dir()
    if path is None:
        pytest.skip("the real AV-GZSL metadata is absent: set AVOOD_SHARED or provide ../shared/avgzsl")
    return path


@pytest.fixture(scope="session")
def real_trees(shared, tmp_path_factory):
    """Trees written from the real splits: UCF at full scale, ActivityNet and VGGSound at 5 % (no VGGSound caches)."""
    from avood_core.data import write_synthetic_tree

    root = tmp_path_factory.mktemp("real")
    scales = {"ucf": 1.0, "activitynet": 0.05, "vggsound": 0.05}
    reports = {
        ds: write_synthetic_tree(root, ds, scale=s, splits_dir=shared, seed=1, caches=ds != "vggsound", **DIMS)
        for ds, s in scales.items()
    }
    return root, reports


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> Path:
    """A tiny generated UCF-shaped tree (11 classes; no shared files needed), with caches."""
    from avood_core.data import write_synthetic_tree

    root = tmp_path_factory.mktemp("template")
    write_synthetic_tree(root, "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    return root


@pytest.fixture
def tree(_template, tmp_path) -> Path:
    """A fresh copy of the small tree, free to break."""
    dst = tmp_path / "bench"
    shutil.copytree(_template, dst)
    return dst
