"""The calibrated latent generator behind the embedded task and ``avood data synth``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from avood_core.errors import DataError
from avood_core.data import latent
from avood_core.data.latent import make_ucf_task, probe_targets, ridge_text_map, transfer_probe, ucf_classes
from avood_core.eval.metrics import mean_class_accuracy
from avood_core.protocols import FitContext
from avood_core.registry import get_registry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "avgzsl"
SCALE = 0.15  # ~750 training clips: a tiny task, still enough clips per class for the probes


def _seen_nearest_mean(task) -> float:
    """Nearest class mean (estimated on train) on the seen test clips, in the full feature space."""
    means = torch.stack([task.train.x[task.train.labels == c].mean(0) for c in task.seen_classes])
    test = task.test.where(task.seen_classes)
    return float((task.seen_classes[torch.cdist(test.x, means).argmin(1)] == test.labels).float().mean())


def _zsl_ridge(task) -> float:
    """Ridge text -> class-mean map fitted on the seen classes, nearest predicted mean on unseen clips."""
    means = torch.stack([task.train.x[task.train.labels == c].mean(0) for c in task.seen_classes])
    center = means.mean(0)
    w = ridge_text_map(task.text[task.seen_classes], means - center)
    pred_means = task.text[task.unseen_classes] @ w + center
    test = task.test.where(task.unseen_classes)
    return float((task.unseen_classes[torch.cdist(test.x, pred_means).argmin(1)] == test.labels).float().mean())


def test_same_seed_same_task_other_seed_other_features():
    a, b, c = make_ucf_task(3, SCALE), make_ucf_task(3, SCALE), make_ucf_task(4, SCALE)
    for part in ("train", "val", "test"):
        x, y = getattr(a, part), getattr(b, part)
        assert torch.equal(x.audio, y.audio) and torch.equal(x.video, y.video) and torch.equal(x.labels, y.labels)
    assert a.meta == b.meta
    assert not torch.equal(a.train.audio[:10], c.train.audio[:10])


def test_class_names_and_word2vec_rows_are_placed_by_name():
    task = make_ucf_task(0, SCALE)
    names, w2v_names, vectors, unseen = ucf_classes()
    assert len(task.class_names) == 51 and task.text.shape == (51, 300)
    assert (len(task.seen_classes), len(task.unseen_classes)) == (42, 9)
    row = {n: i for i, n in enumerate(names)}
    for i, name in enumerate(task.class_names):
        assert torch.equal(task.text[i], torch.from_numpy(vectors[row[name]]))
    assert {task.class_names[i] for i in task.unseen_classes} == {
        "BandMarching", "BlowDryHair", "BrushingTeeth", "CuttingInKitchen", "PlayingFlute", "PlayingSitar",
        "ShavingBeard", "Typing", "WritingOnBoard"}  # UCF main_split stage_2_test_unseen
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent: the shipped rows cannot be compared with the benchmark's w2v file")
    w2v = np.load(SHARED / "w2v" / "word_embeddings_ucf_normed.npy", allow_pickle=True).item()  # the benchmark's own file
    with (SHARED / "UCF" / "class-split" / "ucf_w2v_class_names.csv").open() as fh:
        manual = {r["original"].lower(): r["manual"] for r in csv.DictReader(fh)}
    for i, name in enumerate(task.class_names):
        assert manual[name.lower()] == w2v_names[row[name]]
        assert np.array_equal(task.text[i].numpy(), w2v[manual[name.lower()]])


def test_seen_knob_moves_seen_accuracy():
    low, high = make_ucf_task(0, SCALE, seen_acc=50.0), make_ucf_task(0, SCALE, seen_acc=95.0)
    assert low.meta["noise"] > high.meta["noise"]
    assert _seen_nearest_mean(low) + 0.2 < _seen_nearest_mean(high)


def test_zsl_knob_moves_zsl_accuracy():
    low, high = make_ucf_task(0, SCALE, zsl_acc=20.0), make_ucf_task(0, SCALE, zsl_acc=70.0)
    assert low.meta["residual"] > high.meta["residual"]
    assert _zsl_ridge(low) + 0.15 < _zsl_ridge(high)


def test_targets_default_to_the_published_ones_and_the_probes_hit_their_targets():
    task = make_ucf_task(0, SCALE)
    assert (task.meta["seen_acc_target"], task.meta["zsl_acc_target"]) == (96.12, 28.21)  # paper Table 3, UCF
    seen_t, zsl_t, _ = probe_targets("ucf", 96.12, 28.21)
    assert task.meta["probe_targets"] == [round(seen_t, 2), round(zsl_t, 2)]
    assert abs(task.meta["seen_probe"] - seen_t) < 3 and abs(task.meta["zsl_probe"] - zsl_t) < 3


def test_transfer_curve_interpolates_the_measured_pairs_and_inverts():
    pairs = ((40.0, 22.0), (28.0, 18.0), (52.0, 25.0))  # any order
    assert transfer_probe(pairs, 18.0) == pytest.approx(28.0)
    assert transfer_probe(pairs, 24.0) == pytest.approx(40.0 + 12.0 * 2 / 3)
    assert transfer_probe(pairs, 28.0) == pytest.approx(52.0 + 3.0 * 12.0 / 3.0)  # past the last pair: extended
    assert transfer_probe(pairs, 16.0) == pytest.approx(28.0 - 2.0 * 3.0)  # before the first: the first segment extended
    noisy = ((20.0, 10.0), (30.0, 14.0), (40.0, 13.0), (50.0, 20.0))  # 14 then 13: seed noise
    assert latent._isotonic([t for _, t in noisy]) == [10.0, 13.5, 13.5, 20.0]  # pooled into a non-decreasing curve
    assert transfer_probe(noisy, 16.75) == pytest.approx(45.0)
    with pytest.raises(ValueError, match="two or more"):
        transfer_probe(((20.0, 14.0),), 10.0)
    with pytest.raises(ValueError, match="does not rise"):
        transfer_probe(((20.0, 20.0), (40.0, 15.0)), 28.0)


def test_probe_targets_use_a_measured_line_only_where_there_is_one(monkeypatch):
    monkeypatch.setattr(latent, "TRANSFER", {("ucf", "zsl"): ((20.0, 14.0), (40.0, 26.0))})
    assert probe_targets("ucf", 90.0, 26.0) == (90.0, pytest.approx(40.0), ["zsl"])
    assert probe_targets("vggsound", 50.0, 8.0) == (50.0, 8.0, [])  # no line: probe target = target
    assert probe_targets("ucf", 90.0, 99.0)[1] == 99.0  # clamped to what a probe can be asked for
    a, b = make_ucf_task(0, SCALE, zsl_acc=26.0), make_ucf_task(0, SCALE, zsl_acc=40.0)
    assert a.meta["probe_targets"][1] == pytest.approx(40.0) and a.meta["zsl_acc_target"] == 26.0
    assert b.meta["residual"] < a.meta["residual"]  # the higher probe target explains more of a class by its text


def _trained_accuracies(task, seen_acc: bool) -> float:
    """The paper's seen MLP (SC_acc) or cross-attention model (UC_acc) at a tiny budget, in percent."""
    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=0, val=task.val)
    reg = get_registry()
    torch.manual_seed(0)
    if seen_acc:
        comp = reg.component_class("seen", "mlp")({"epochs": 8, "hidden": [64], "batch_size": 64})
        comp.fit(task.train, ctx)
        part = task.test.where(task.seen_classes)
        return mean_class_accuracy(comp.predict(part), part.labels, task.seen_classes)
    comp = reg.component_class("unseen", "cross_attention")({"epochs": 2, "batches_per_epoch": 40, "batch_size": 64})
    comp.fit(task.train, task.text, ctx)
    part = task.test.where(task.unseen_classes)
    return mean_class_accuracy(comp.predict(part, task.unseen_classes, task.text), part.labels, task.unseen_classes)


def test_knobs_move_the_trained_classifiers_accuracies():
    """The knobs target the trained classifiers: a lower target gives a lower trained accuracy."""
    assert _trained_accuracies(make_ucf_task(0, SCALE, seen_acc=40.0), True) + 15 < \
        _trained_accuracies(make_ucf_task(0, SCALE, seen_acc=95.0), True)
    assert _trained_accuracies(make_ucf_task(0, SCALE, zsl_acc=10.0), False) + 12 < \
        _trained_accuracies(make_ucf_task(0, SCALE, zsl_acc=70.0), False)


def test_a_target_outside_0_100_is_refused():
    with pytest.raises(DataError, match="--seen-acc must be a percentage"):
        make_ucf_task(0, SCALE, seen_acc=120.0)


def test_data_synth_knobs_reach_the_tree(tmp_path):
    """``avood data synth --seen-acc/--zsl-acc``: the tree's calibration note states the targets."""
    from typer.testing import CliRunner

    from avood_core.cli.commands import app

    out = CliRunner().invoke(app, ["data", "synth", str(tmp_path), "--dataset", "ucf", "--data-scale", "0.1", "--audio-dim", "8",
                                   "--video-dim", "8", "--no-caches", "--seen-acc", "70", "--zsl-acc", "40"])
    assert out.exit_code == 0, out.output
    assert "calibrated to seen 70.00 / ZSL 40.00 %" in out.output and "probes reached" in out.output
