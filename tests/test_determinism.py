"""Same seed, same machine, same numbers: training with two threads, misaligned inputs, whole runs.

Two same-seed runs at two threads gave different unseen classifiers: the CPU backward of
``x[idx]`` (``index_put_`` with accumulate) adds with racing threads; AVCANet gathers with
``index_select`` now. MKL's Conditional Numerical Reproducibility (``MKL_CBWR``, set by ``import
avood_core``) is checked too (docs/performance.md, "Reproducibility"). These tests fit at two
intra-op threads and compare bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avood_core.protocols import FitContext
from avood_core.task import AVSamples
from avood_core.train.loops import seed_everything
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier
from tiny_runs import KINDS, tiny_run, weights

REPO = Path(__file__).resolve().parents[1]
# Small, but with the UCF preset's batch (112 + 112 rows) and projector width (512): at two threads the
# accumulation of W_proj[0]'s gradient over the batch's class rows is where runs used to differ.
TINY_UNSEEN = dict(epochs=1, batches_per_epoch=3, batch_size=112, embed_dim=30, heads=3, enc_hidden=40,
                   proj_hidden=512, joint_dim=8, ff_dim=12)


@pytest.fixture
def two_threads(torch_threads):
    torch_threads(2)


def _fit(task, train: AVSamples) -> CrossAttentionClassifier:
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=3)
    seed_everything(3)
    return CrossAttentionClassifier(**TINY_UNSEEN).fit(train, task.text, ctx)


def _same_weights(a: CrossAttentionClassifier, b: CrossAttentionClassifier) -> None:
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different


def _misaligned(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``x``'s values in a buffer that starts ``offset`` floats past a 64-byte boundary."""
    buf = torch.empty(x.numel() + 16)
    assert buf.data_ptr() % 64 == 0
    view = buf[offset:offset + x.numel()].view_as(x)
    view.copy_(x)
    assert view.data_ptr() % 64 == 4 * offset
    return view


def test_unseen_classifier_twice_with_two_threads_is_bit_identical(tiny_task, two_threads):
    first, second = _fit(tiny_task, tiny_task.train), _fit(tiny_task, tiny_task.train)
    _same_weights(first, second)
    assert first.stats.history == second.stats.history
    test = tiny_task.test
    assert torch.equal(first.distances(test, tiny_task.unseen_classes, tiny_task.text),
                       second.distances(test, tiny_task.unseen_classes, tiny_task.text))


def test_misaligned_input_buffers_give_the_same_weights_and_distances(tiny_task, two_threads):
    train, test = tiny_task.train, tiny_task.test
    shifted = AVSamples(_misaligned(train.audio, 3), _misaligned(train.video, 5), train.labels)
    aligned, moved = _fit(tiny_task, train), _fit(tiny_task, shifted)
    _same_weights(aligned, moved)
    # inference reads the caller's buffers directly: the first Linear gets the misaligned pointer
    test_shifted = AVSamples(_misaligned(test.audio, 1), _misaligned(test.video, 7), test.labels)
    for candidates in (tiny_task.unseen_classes, torch.cat([tiny_task.seen_classes, tiny_task.unseen_classes])):
        assert torch.equal(aligned.distances(test, candidates, tiny_task.text),
                           aligned.distances(test_shifted, candidates, tiny_task.text))


@pytest.mark.parametrize("jobs", [1, 2])
def test_two_default_runs_with_one_seed_are_identical(tmp_path, monkeypatch, jobs):
    """Two tiny runs, two threads in all (``jobs = 2``: one per process): same metrics, weights, predictions."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = (tiny_run(tmp_path / name, f"jobs={jobs}", "seed=3") for name in ("a", "b"))
    finally:
        torch.set_num_threads(before)
    assert a.results["metrics"] == b.results["metrics"]
    for kind in KINDS:
        wa, wb = weights(a.run_dir, kind), weights(b.run_dir, kind)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), kind
    with np.load(a.run_dir / "predictions.npz") as pa, np.load(b.run_dir / "predictions.npz") as pb:
        assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)
    if jobs == 2:
        assert a.results["workers"]["unseen"]["threads"] == 1


def _cnr_modes(code: str, env_cbwr: str | None) -> set[str]:
    """The ``CNR:`` field of every MKL call that ``code`` makes (``MKL_VERBOSE=1``)."""
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env.update({"MKL_VERBOSE": "1", "PYTHONPATH": str(REPO)})
    if env_cbwr is not None:
        env["MKL_CBWR"] = env_cbwr
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    modes = {word for line in (out.stdout + out.stderr).splitlines() if "GEMM" in line
             for word in line.split() if word.startswith("CNR:")}
    assert modes, "no MKL gemm was logged"
    return modes


MATMUL = "import torch; torch.nn.functional.linear(torch.randn(64, 300), torch.randn(200, 300))"


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="this torch build has no MKL")
def test_importing_avood_core_turns_on_mkl_cnr_unless_the_user_set_it():
    assert _cnr_modes(MATMUL, None) == {"CNR:OFF"}  # torch alone: MKL's default
    assert _cnr_modes("import avood_core; " + MATMUL, None) == {"CNR:AUTO"}
    assert _cnr_modes("import avood_core; " + MATMUL, "") == {"CNR:OFF"}  # the user's choice wins (empty: off)
    assert _cnr_modes("import avood_core; " + MATMUL, "AUTO,STRICT") == {"CNR:AUTO,STRICT"}


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="this torch build has no MKL")
def test_every_gemm_of_a_jobs_2_run_and_its_worker_runs_with_cnr(tmp_path):
    code = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from tiny_runs import tiny_run; "
            f"r = tiny_run(Path({str(tmp_path)!r}), 'jobs=2'); assert r.results['workers']['unseen']")
    assert _cnr_modes(code, None) == {"CNR:AUTO"}
