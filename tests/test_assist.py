"""``jobs = 2``: the main process computes half of the worker's unseen steps once it is free (avood_core.train.strategy).

The claim under test: the assisted fit gives the same bits as a one-process fit at one thread,
whenever the main process joins, and also when it leaves mid-way.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
from avood_core.pipeline import Pipeline
from avood_core.pipeline.fit import _no_log
from avood_core.pipeline.worker import PREFIX, Job, Worker, clean_stale
from avood_core.protocols import FitContext
from avood_core.train import exchange, strategy
from avood_core.train.exchange import SHM
from avood_core.train.loops import derive_seed, seed_everything
from avood_core.train.precision import keep_mask, keep_scale, skip_words, words_drawn
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier
from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator

SMALL = dict(epochs=2, batches_per_epoch=15, batch_size=40, embed_dim=30, heads=3, enc_hidden=40, proj_hidden=64,
             joint_dim=8, ff_dim=12)


@pytest.fixture(scope="module")
def task():
    spec = SyntheticSpec(n_seen=8, n_unseen=4, audio_dim=24, video_dim=20, text_dim=16, latent_dim=8,
                         train_samples=480, test_seen_samples=60, test_unseen_samples=80)
    return make_synthetic_task(seed=0, spec=spec)


@pytest.fixture
def one_thread(torch_threads):
    torch_threads(1)


def _ctx(task, log=_no_log) -> FitContext:
    return FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                      device=torch.device("cpu"), seed=3, log=log)


def _solo(task, **params) -> CrossAttentionClassifier:
    seed_everything(derive_seed(3, "unseen"))
    return CrossAttentionClassifier(**params).fit(task.train, task.text, _ctx(task))


def _assisted(task, helper: CrossAttentionClassifier, wait_s: float = 0.0, **params):
    """The fit in a worker (one thread), with ``helper.assist`` serving from this process after ``wait_s``."""
    worker = Worker(Job("unseen", CrossAttentionClassifier(**params), (task.train, task.text, _ctx(task)), 3, 1))
    lines: list[str] = []
    try:
        time.sleep(wait_s)
        info = worker.help(lambda channel, tick: helper.assist(channel, task.train, task.text, _ctx(task), tick),
                           None, lines.append)
        res = worker.result()
    finally:
        worker.stop()
    return res, info, lines


def _differing(a: CrossAttentionClassifier, b: CrossAttentionClassifier) -> list[str]:
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_assisted_fit_is_bit_identical_to_one_process(task, one_thread, precision):
    params = {**SMALL, "precision": precision}
    res, info, lines = _assisted(task, CrossAttentionClassifier(**params), **params)
    assert info is not None and info["steps"] >= 25, info  # all but the first step or few were split
    assert any(f"second half of {info['steps']} of 30 steps" in line for line in res.logs), res.logs
    assert _differing(_solo(task, **params), res.component) == []
    assert lines == []


class _WeightCasts(TorchDispatchMode):
    """Counts the bf16 casts of parameters (autocast's weight casts) under it."""

    n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16 \
                and isinstance(args[0], nn.Parameter):
            self.n += 1
        return func(*args, **kwargs)


def test_a_bf16_step_casts_each_weight_once_for_both_halves_with_the_same_bits(task, one_thread, monkeypatch):
    params = {**SMALL, "precision": "bf16", "epochs": 1, "batches_per_epoch": 3}
    with _WeightCasts() as shared:
        once = _solo(task, **params)
    monkeypatch.setattr(strategy, "shared_casts", lambda device, precision: contextlib.nullcontext())
    with _WeightCasts() as fresh:
        twice = _solo(task, **params)  # autocast's cache dropped after each half's forward
    assert fresh.n == 2 * shared.n > 0
    assert _differing(once, twice) == []


def test_joining_late_gives_the_same_bits(task, one_thread):
    params = {**SMALL, "epochs": 6, "batches_per_epoch": 30}
    res, info, _ = _assisted(task, CrossAttentionClassifier(**params), wait_s=1.5, **params)
    assert info is not None and 0 < info["steps"] < 180, info  # joined part-way
    assert _differing(_solo(task, **params), res.component) == []


class LeavingHelper(CrossAttentionClassifier):
    """Stops assisting with an error at its 7th step (a bug on the main process's side): between two
    steps (``tick``), or after the halves have swapped their outputs (in the loss)."""

    where = "tick"

    def assist(self, channel, train, text, ctx, tick=lambda: None):
        self.count = 0
        return super().assist(channel, train, text, ctx, self._tick if self.where == "tick" else tick)

    def _tick(self):
        self.count += 1
        if self.count >= 7:
            raise RuntimeError("helper bug")

    def _losses(self, *args):
        if self.where == "loss":
            self._tick()
        return super()._losses(*args)


@pytest.mark.parametrize("where", ["tick", "loss"])
def test_a_partner_that_leaves_mid_fit_changes_nothing(task, one_thread, where):
    helper = LeavingHelper(**SMALL)
    helper.where = where
    res, info, lines = _assisted(task, helper, **SMALL)
    assert any("stopped assisting its worker (RuntimeError: helper bug)" in line for line in lines), lines
    assert any("training on alone" in line for line in res.logs), res.logs
    assert _differing(_solo(task, **SMALL), res.component) == []


def test_a_partner_with_another_network_is_refused(task, one_thread):
    res, info, _ = _assisted(task, CrossAttentionClassifier(**{**SMALL, "joint_dim": 6}), **SMALL)
    assert info is not None and info["steps"] == 0
    assert any("could not assist" in line and "other parameter shapes" in line for line in res.logs), res.logs
    assert _differing(_solo(task, **SMALL), res.component) == []


def test_a_jobs_2_pipeline_assists_and_matches_jobs_1(task, one_thread):
    """Toy generator / seen / detector end at once: the main process serves most unseen steps."""
    def pipe():
        return Pipeline(generator=RidgeGenerator(), detector=CentroidDetector(), seen=CentroidSeen(),
                        unseen=CrossAttentionClassifier(**SMALL), syn_num=5)

    two = pipe().fit(task, seed=3, jobs=2)
    one = pipe().fit(task, seed=3, jobs=1)
    helped = two.worker_info["unseen"]["assist"]
    assert helped["steps"] > 0 and helped["start_s"] >= 0
    assert _differing(one.unseen, two.unseen) == []
    assert torch.equal(one.predict(task.test).labels, two.predict(task.test).labels)


def test_assist_can_be_switched_off(task, one_thread, monkeypatch):
    monkeypatch.setenv("AVOOD_ASSIST", "0")
    assert not exchange.enabled()
    pipe = Pipeline(generator=RidgeGenerator(), detector=CentroidDetector(), seen=CentroidSeen(),
                    unseen=CrossAttentionClassifier(**SMALL), syn_num=5).fit(task, seed=3, jobs=2)
    assert "assist" not in pipe.worker_info["unseen"]


def test_skipping_a_forwards_words_lands_where_the_forward_left_the_generator():
    torch.manual_seed(5)
    start = torch.get_rng_state()
    before = words_drawn()
    for shape in [(7, 30), (112, 512), (3,)]:  # a forward's masks, of any shapes
        keep_mask(shape, 0.4)
    k, after = words_drawn() - before, torch.get_rng_state()
    assert k == (210 + 3) // 4 + 112 * 512 // 4 + 1
    torch.set_rng_state(start)
    skip_words(k)
    assert torch.equal(torch.get_rng_state(), after)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_dropout_multiplier_is_the_masks_bit_for_bit_from_the_same_words(dtype):
    for p in (0.5, 0.4, 0.1, 1e-6, 1 - 1e-5):  # the last two: thresholds at the ends of the int16 lanes
        torch.manual_seed(7)
        want = keep_mask((37, 41), p).to(dtype).mul_(1 / (1 - p))
        state, before = torch.get_rng_state(), words_drawn()
        torch.manual_seed(7)
        got = keep_scale((37, 41), p, dtype)
        assert got.dtype == dtype and torch.equal(got.view(torch.uint8), want.view(torch.uint8))  # the bytes
        assert torch.equal(torch.get_rng_state(), state) and words_drawn() - before == (37 * 41 + 3) // 4


def test_a_channel_carries_tensors_of_any_dtype_and_an_arena_is_shared(tmp_path):
    offer = exchange.Offer.open(tmp_path)
    assert offer is not None and offer.poll() is None  # nobody has connected: never blocks
    main = exchange.connect(tmp_path)
    worker = offer.poll()
    assert main is not None and worker is not None and not (tmp_path / exchange.SOCKET).exists()
    sent = [torch.randn(3, 4), torch.arange(5), torch.randn(2, 2).bfloat16(), torch.empty(0, 3), torch.tensor(True)]
    main.send("x", {"k": 1}, sent)
    tag, meta, got = worker.recv("x")
    assert (tag, meta) == ("x", {"k": 1})
    assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(sent, got))
    main.send("y")
    with pytest.raises(exchange.PartnerGone, match="expected 'x', got 'y'"):
        worker.recv("x")
    specs = [exchange.spec_of(t) for t in sent[:3]]
    mine = exchange.Arena(tmp_path / "a", specs, create=True)
    theirs = exchange.Arena(tmp_path / "a", specs, create=False)
    mine.tensors[0].copy_(sent[0])
    assert torch.equal(theirs.tensors[0], sent[0])
    main.close()
    with pytest.raises(exchange.PartnerGone, match="closed"):
        worker.recv()
    worker.close()


@pytest.mark.skipif(not os.path.isdir(SHM), reason=f"no {SHM} on this OS")
def test_an_arena_left_by_a_dead_process_is_removed_at_the_next_worker_start():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(SHM) / f"{PREFIX}{dead.pid}-{PREFIX}unseen-test-assist.arena"
    alive = Path(SHM) / f"{PREFIX}{os.getpid()}-{PREFIX}unseen-test-assist.arena"
    left.write_bytes(b"x")
    alive.write_bytes(b"x")
    try:
        removed = clean_stale()
        assert left in removed and not left.exists() and alive.exists()
    finally:
        left.unlink(missing_ok=True)
        alive.unlink(missing_ok=True)
