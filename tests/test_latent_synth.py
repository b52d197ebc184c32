"""The calibrated latent generator behind the embedded task and ``avood data synth``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from avood_core.errors import DataError
from avood_core.data.latent import ridge_text_map
from avood_core.data.embedded import make_ucf_task, ucf_classes

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


def test_probes_hit_the_published_targets_by_default():
    task = make_ucf_task(0, SCALE)
    assert (task.meta["seen_acc_target"], task.meta["zsl_acc_target"]) == (96.12, 28.21)  # paper Table 3, UCF
    assert abs(task.meta["seen_probe"] - 96.12) < 3 and abs(task.meta["zsl_probe"] - 28.21) < 3


def test_a_target_outside_0_100_is_refused():
    with pytest.raises(DataError, match="--seen-acc must be a percentage"):
        make_ucf_task(0, SCALE, seen_acc=120.0)


def test_data_synth_knobs_reach_the_tree(tmp_path):
    """``avood data synth --seen-acc/--zsl-acc``: the tree's calibration note states the targets."""
    from typer.testing import CliRunner

    from avood_core.cli.commands import app

    out = CliRunner().invoke(app, ["data", "synth", str(tmp_path), "--like", "ucf", "--scale", "0.1", "--audio-dim", "8",
                                   "--video-dim", "8", "--no-caches", "--seen-acc", "70", "--zsl-acc", "40"])
    assert out.exit_code == 0, out.output
    assert "calibrated to seen 70.00 / ZSL 40.00 %" in out.output
