"""Tests of the AVGZSLNet unseen classifier (Mazumder et al., WACV 2021; paper Table 1 baseline) on a tiny zero-shot task."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from avood_core.errors import AvoodError
from avood_core.protocols import TorchComponent, UnseenClassifier
from avood_core.registry import get_registry
from avood_plugins.unseen.avgzslnet import AVGZSLNetClassifier

from joint_embedding_checks import (
    check_candidates, check_loss_decreases, check_tiny_runs, check_zero_shot, fit, zero_shot_task,
)


@pytest.fixture(scope="module")
def task():
    return zero_shot_task()


# AVCA's embedding dropout 0.8 leaves ~10 of the tiny nets' 48 hidden units per step; 0.2 trains in 6 epochs.
TINY = dict(epochs=6, embed_dropout=0.2)


@pytest.fixture(scope="module")
def fitted(task):
    return fit(AVGZSLNetClassifier, task, **TINY)


def test_protocol_params_registration():
    model = AVGZSLNetClassifier()
    assert isinstance(model, TorchComponent) and isinstance(model, UnseenClassifier) and model.kind == "unseen"
    assert get_registry().component_class("unseen", "avgzslnet") is AVGZSLNetClassifier
    p = model.params  # AVCA-GZSL run_scripts/UCF-GZSL/avgzslnet.sh and src/args.py defaults
    assert (p.lr, p.batch_size, p.epochs, p.batches_per_epoch, p.margin) == (1e-3, 256, 50, 500, 1.0)
    assert (p.hidden, p.text_hidden, p.joint_dim, p.embed_dropout) == (1024, 300, 64, 0.8)
    assert (p.decoder_hidden, p.decoder_dropout, p.decoder_bn, p.normalize_decoder) == (64, 0.5, True, True)
    with pytest.raises(ValidationError):
        AVGZSLNetClassifier(embed_dropout=-0.1)


def test_loss_decreases_and_zero_shot_above_chance(task, fitted):
    check_loss_decreases(fitted, fitted.terms[1:])
    assert [h["epoch"] for h in fitted.stats.history] == list(range(6))
    check_zero_shot([fitted, fit(AVGZSLNetClassifier, task, seed=1, **TINY)], task)


def test_distances_sum_the_audio_and_video_distances(task, fitted):
    check_candidates(fitted, task)
    net, test, text = fitted.net, task["test"], task["text"]
    with torch.no_grad():
        theta = net.F_T(text[task["unseen"]])
        expected = torch.cdist(net.F_A(test.audio), theta) + torch.cdist(net.F_V(test.video), theta)
        decoded = net.decode(net.F_A(test.audio))
    assert torch.allclose(fitted.distances(test, task["unseen"], text), expected, atol=1e-5)
    assert decoded.shape == (len(test), text.shape[1])
    assert torch.allclose(decoded.norm(dim=1), torch.ones(len(test)), atol=1e-5)  # normalize_decoder


def test_reconstruction_terms_are_trained(task):
    """The decoder losses are part of the objective: without normalisation the decoder still learns the text."""
    model = fit(AVGZSLNetClassifier, task, epochs=3, embed_dropout=0.2, normalize_decoder=False)
    assert model.stats.history[-1]["rec"] < model.stats.history[0]["rec"]
    assert not torch.allclose(model.net.decode(model.net.F_T(task["text"][:2])).norm(dim=1), torch.ones(2))


def test_same_seed_same_distances(task, fitted):
    again = fit(AVGZSLNetClassifier, task, **TINY)
    assert torch.equal(again.distances(task["test"], task["unseen"], task["text"]),
                       fitted.distances(task["test"], task["unseen"], task["text"]))


def test_unfitted(task):
    with pytest.raises(AvoodError, match="not fitted"):
        AVGZSLNetClassifier().distances(task["test"], task["unseen"], task["text"])


def test_tiny_runs_behind_the_entropy_gate_and_with_calibrated_stacking(tmp_path):
    check_tiny_runs(tmp_path, "avgzslnet", dict(hidden=32, text_hidden=32, joint_dim=8, batch_size=16, epochs=1,
                                                batches_per_epoch=3))
