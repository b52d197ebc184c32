"""``jobs = 2``: the unseen classifier fits in a worker process; same results, errors come back as one line."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from avood_core.errors import AvoodError, DataError
from avood_core.pipeline import Pipeline
from tiny_runs import KINDS, tiny_run, weights
from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator, RidgeUnseen


class FailingUnseen(RidgeUnseen):
    """Raises in fit: an AvoodError subclass, another exception, or the process dies."""

    def fit(self, train, text, ctx):
        mode = os.environ.get("AVOOD_TEST_FAIL", "data")
        if mode == "data":
            raise DataError("unseen ridge: the training split has no clip of class 7")
        if mode == "exit":
            os._exit(9)
        raise ZeroDivisionError("boom")


class LoggingUnseen(RidgeUnseen):
    def fit(self, train, text, ctx):
        ctx.log(f"fitted in pid {os.getpid()}")
        self.pid = os.getpid()
        return super().fit(train, text, ctx)


def _pipeline(unseen) -> Pipeline:
    return Pipeline(generator=RidgeGenerator(), detector=CentroidDetector(), seen=CentroidSeen(), unseen=unseen, syn_num=5)


def test_tiny_run_with_jobs_2_is_bit_identical_to_jobs_1(tmp_path, monkeypatch):
    """Each stage seeds itself: the real plugins fitted across two processes give the same weights and predictions
    (at the same threads per process: OMP_NUM_THREADS=1 keeps the run from taking every core)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = tiny_run(tmp_path / "one", "jobs=1")
        two = tiny_run(tmp_path / "two", "jobs=2")
    finally:
        torch.set_num_threads(before)
    for kind in KINDS:
        a, b = weights(one.run_dir, kind), weights(two.run_dir, kind)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), kind
    pa, pb = np.load(one.run_dir / "predictions.npz"), np.load(two.run_dir / "predictions.npz")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)
    assert one.results["metrics"]["HM"] == two.results["metrics"]["HM"]
    assert two.results["workers"]["unseen"]["threads"] == 1 and two.results["jobs"] == 2
    assert one.results["workers"] == {}


def test_worker_logs_come_back_and_the_fit_ran_elsewhere(tiny_task):
    lines, unseen = [], LoggingUnseen()
    pipe = _pipeline(unseen).fit(tiny_task, seed=0, log=lines.append, jobs=2)
    assert pipe.unseen is unseen and unseen.fitted and unseen.pid != os.getpid()  # fitted in place
    assert f"fitted in pid {pipe.unseen.pid}" in lines
    assert any("worker process" in line for line in lines)
    info = pipe.worker_info["unseen"]
    assert info["wall_s"] > 0 and info["end_s"] >= info["start_s"] and info["peak_rss_mb"] > 0
    assert pipe.predict(tiny_task.test).labels.shape == (len(tiny_task.test),)


def test_three_jobs_also_offload_the_seen_classifier(tiny_task):
    pipe = _pipeline(RidgeUnseen()).fit(tiny_task, seed=0, jobs=3)
    assert set(pipe.worker_info) == {"unseen", "seen"}
    seq = _pipeline(RidgeUnseen()).fit(tiny_task, seed=0, jobs=1)
    assert torch.equal(pipe.predict(tiny_task.test).labels, seq.predict(tiny_task.test).labels)


def test_worker_error_keeps_its_class_and_message(tiny_task, monkeypatch):
    monkeypatch.setenv("AVOOD_TEST_FAIL", "data")
    with pytest.raises(DataError, match="no clip of class 7"):
        _pipeline(FailingUnseen()).fit(tiny_task, seed=0, jobs=2)


def test_other_worker_exceptions_become_one_line(tiny_task, monkeypatch):
    monkeypatch.setenv("AVOOD_TEST_FAIL", "other")
    with pytest.raises(AvoodError) as err:
        _pipeline(FailingUnseen()).fit(tiny_task, seed=0, jobs=2)
    text = str(err.value)
    assert "\n" not in text and "unseen 'FailingUnseen'" in text and "ZeroDivisionError: boom" in text


def test_a_dying_worker_is_reported_with_its_exit_code(tiny_task, monkeypatch):
    monkeypatch.setenv("AVOOD_TEST_FAIL", "exit")
    with pytest.raises(AvoodError, match="exited with code 9"):
        _pipeline(FailingUnseen()).fit(tiny_task, seed=0, jobs=2)


def test_a_component_that_cannot_be_pickled_fits_here(tiny_task):
    unseen = RidgeUnseen()
    unseen.hook = lambda: None  # not picklable
    lines = []
    pipe = _pipeline(unseen).fit(tiny_task, seed=0, log=lines.append, jobs=2)
    assert pipe.unseen is unseen and unseen.fitted and "unseen" not in pipe.worker_info
    assert any("cannot be sent to a worker process" in line for line in lines)


def test_jobs_is_validated():
    from avood_core.config import build_config
    from avood_core.errors import ConfigError

    with pytest.raises(ConfigError, match="jobs"):
        build_config(overrides=["jobs=0"])


def test_avsamples_travel_as_arrays_and_come_back_equal():
    """The worker's job pickles AVSamples through NumPy (protocol 5 writes them without a copy)."""
    import io
    import pickle

    from avood_core.task import AVSamples

    x = torch.randn(7, 9)
    samples = AVSamples.from_x(x, torch.arange(7), audio_dim=4)  # non-contiguous column slices
    buf = io.BytesIO()
    pickle.dump(samples, buf, protocol=5)
    back = pickle.loads(buf.getvalue())
    assert torch.equal(back.audio, samples.audio) and torch.equal(back.video, samples.video)
    assert torch.equal(back.labels, samples.labels) and back.labels.dtype == torch.long
    back.audio += 1  # writable, and not shared with the original
    assert not torch.equal(back.audio, samples.audio)


class SeenAfterUnseen(CentroidSeen):
    """A seen classifier that declares it needs the fitted unseen classifier."""

    depends_on = ("unseen",)

    def fit(self, train, ctx):
        assert ctx.fitted["unseen"].fitted, "the unseen classifier must be fitted first"
        self.saw_unseen = True
        return super().fit(train, ctx)


def test_a_component_waiting_for_a_worker_is_fitted_after_it(tiny_task):
    """jobs=3 offloads unseen and seen; seen depends on unseen, so it starts only once unseen is back."""
    pipe = Pipeline(generator=RidgeGenerator(), detector=CentroidDetector(), seen=SeenAfterUnseen(),
                    unseen=RidgeUnseen(), syn_num=5).fit(tiny_task, seed=0, jobs=3)
    assert pipe.seen.fitted and pipe.seen.saw_unseen and pipe.unseen.fitted
    assert "unseen" in pipe.worker_info  # seen was not ready at launch time and was fitted here


def test_no_worker_process_can_start_so_it_fits_here(tiny_task, monkeypatch):
    import subprocess

    def refuse(*args, **kwargs):
        raise OSError("no interpreter")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    lines = []
    pipe = _pipeline(RidgeUnseen()).fit(tiny_task, seed=0, log=lines.append, jobs=2)
    assert pipe.unseen.fitted and "unseen" not in pipe.worker_info
    assert any("cannot be sent to a worker process (no interpreter)" in line for line in lines)


def test_avood_debug_shows_the_workers_traceback(tiny_task, monkeypatch):
    monkeypatch.setenv("AVOOD_TEST_FAIL", "other")
    monkeypatch.setenv("AVOOD_DEBUG", "1")
    with pytest.raises(AvoodError, match=r"(?s)Traceback.*in fit.*ZeroDivisionError: boom"):
        _pipeline(FailingUnseen()).fit(tiny_task, seed=0, jobs=2)
