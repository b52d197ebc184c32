"""Shared fixtures: a tiny synthetic task, a finished tiny run of the real plugins, a registry isolated per test."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see avood_core/cli/commands.py

import pytest

from avood_core.registry import set_registry


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test models are tiny: intra-op threads only add waits (an order of magnitude on a busy CPU)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Each test starts from the entry-point registry; in-test registrations do not leak."""
    set_registry(None)
    yield
    set_registry(None)


@pytest.fixture(scope="session")
def tiny_task():
    """A small UCF-shaped synthetic task (lower dims and counts) for fast end-to-end tests."""
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task

    spec = SyntheticSpec(
        n_seen=8, n_unseen=4, audio_dim=24, video_dim=20, text_dim=16, latent_dim=8,
        train_samples=480, test_seen_samples=120, test_unseen_samples=160,
    )
    return make_synthetic_task(seed=0, spec=spec)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished tiny run of the real plugins (tiny_runs.py) per test module: (run_dir, results)."""
    from tiny_runs import tiny_run

    result = tiny_run(tmp_path_factory.mktemp("runs"))
    return result.run_dir, result.results


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished run's folder, free to break."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run[0], dst)
    return dst


@pytest.fixture
def torch_threads():
    """``torch_threads(n)`` sets torch's intra-op threads for the test; the count before comes back after it."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
