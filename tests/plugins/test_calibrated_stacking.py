"""Tests of the calibrated-stacking gate: equivalence with AVCA's calibrated argmin, β selection
on the selection split only (poisoned test labels leave β unchanged), checkpoints and errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from avood_core.eval import metrics
from avood_core.errors import AvoodError
from avood_core.pipeline import Pipeline
from avood_core.protocols import FitContext, OODDetector, UnseenClassifier
from avood_core.registry import get_registry
from avood_core.task import AVGZSLTask, AVSamples
from avood_plugins.detectors.calibrated_stacking import DEFAULT_GRID, CalibratedStacking

from toy_components import CentroidSeen, RidgeGenerator, RidgeUnseen


class PrototypeDistances(UnseenClassifier):
    """d(x, c) = ‖x − proto_c‖ for fixed random prototypes (no training)."""

    def __init__(self, protos: torch.Tensor) -> None:
        super().__init__()
        self.protos = protos
        self.fitted = True

    def fit(self, train, text, ctx):
        return self

    def distances(self, samples, candidates, text):
        return torch.cdist(samples.x, self.protos[torch.as_tensor(candidates)])


SEEN, UNSEEN = torch.tensor([0, 2, 3, 5, 6]), torch.tensor([1, 4, 7])


def _ctx(unseen_clf, val=None, text=None) -> FitContext:
    ctx = FitContext(text=torch.randn(8, 4) if text is None else text, seen_classes=SEEN, unseen_classes=UNSEEN,
                     device=torch.device("cpu"), val=val)
    ctx.fitted["unseen"] = unseen_clf
    return ctx


def _samples(n: int, seed: int, classes: torch.Tensor = torch.arange(8), dim: int = 6) -> AVSamples:
    g = torch.Generator().manual_seed(seed)
    labels = classes[torch.randint(len(classes), (n,), generator=g)]
    return AVSamples(torch.randn(n, dim // 2, generator=g), torch.randn(n, dim - dim // 2, generator=g), labels)


def test_protocol_params_registration():
    gate = CalibratedStacking()
    assert isinstance(gate, OODDetector) and gate.kind == "detector" and gate.depends_on == ("unseen",)
    assert gate.params.beta is None
    assert gate.params.beta_grid == pytest.approx([float(b) for b in torch.linspace(0, 3, 16)])
    assert DEFAULT_GRID[0] == 0.0 and DEFAULT_GRID[-1] == 3.0 and len(DEFAULT_GRID) == 16
    assert get_registry().component_class("detector", "calibrated_stacking") is CalibratedStacking
    with pytest.raises(Exception):
        CalibratedStacking(beta_grid=[])


@pytest.mark.parametrize("beta", [0.0, 0.2, 0.9, 1.6, 3.0, -0.4])
def test_score_threshold_routing_is_calibrated_argmin(beta):
    """seen iff argmin_c d_c + β·[c seen] is a seen class ⇔ score < threshold = −β."""
    protos = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    clf = PrototypeDistances(protos)
    gate = CalibratedStacking(beta=beta).fit(_samples(30, 2, SEEN), _samples(30, 3, UNSEEN), _ctx(clf))
    test = _samples(400, 4)
    assert gate.threshold == -beta
    all_classes = torch.cat([SEEN, UNSEEN])
    d = clf.distances(test, all_classes, None) + beta * (torch.arange(len(all_classes)) < len(SEEN)).float()
    argmin = all_classes[d.argmin(dim=1)]
    brute_seen = torch.isin(argmin, SEEN)
    assert torch.equal(gate.is_seen(test), brute_seen)
    assert torch.equal(gate.score(test) < gate.threshold, brute_seen)
    assert torch.equal(gate.predict_calibrated(test), argmin)
    assert gate.selected_params() == {}  # β given: nothing selected


def _brute_force_beta(clf, samples, grid):
    """β of the grid with the best HM of the calibrated argmin (first on ties)."""
    all_classes = torch.cat([SEEN, UNSEEN])
    best, best_hm = None, -1.0
    for b in grid:
        d = clf.distances(samples, all_classes, None) + b * (torch.arange(len(all_classes)) < len(SEEN)).float()
        hm = metrics.gzsl_scores(all_classes[d.argmin(dim=1)], samples.labels, SEEN, UNSEEN)["HM"]
        if hm > best_hm:
            best, best_hm = b, hm
    return best, best_hm


def _biased_setup():
    """Prototypes with seen classes pulled towards the data: calibration (β > 0) pays off."""
    g = torch.Generator().manual_seed(7)
    protos = torch.randn(8, 6, generator=g) * 2.0
    protos[SEEN] *= 0.5  # seen prototypes nearer the origin: the uncalibrated argmin favours them
    clf = PrototypeDistances(protos)

    def clips(classes, n, seed):
        gg = torch.Generator().manual_seed(seed)
        y = classes[torch.randint(len(classes), (n,), generator=gg)]
        x = protos[y] + 1.2 * torch.randn(n, 6, generator=gg)
        return AVSamples.from_x(x, y, 3)

    return clf, clips


def test_beta_selected_on_val_with_seen_and_unseen_clips():
    clf, clips = _biased_setup()
    val = AVSamples.concat(clips(SEEN, 200, 1), clips(UNSEEN, 200, 2))
    log = []
    ctx = _ctx(clf, val=val)
    ctx.log = log.append
    gate = CalibratedStacking().fit(clips(SEEN, 50, 3), clips(UNSEEN, 50, 4), ctx)
    expected, hm = _brute_force_beta(clf, val, DEFAULT_GRID)
    assert gate.beta == expected and gate.threshold == -expected and expected > 0
    assert gate.selection["best_HM"] == pytest.approx(hm)
    assert gate.selection["source"] == "val seen-class clips + val unseen-class clips"
    assert gate.selected_params() == {"beta": expected}
    assert any("beta" in m for m in log)


def test_embedded_task_val_seen_only_uses_synthetic_unseen():
    clf, clips = _biased_setup()
    val_seen, synthetic = clips(SEEN, 200, 1), clips(UNSEEN, 150, 5)
    gate = CalibratedStacking().fit(clips(SEEN, 50, 3), synthetic, _ctx(clf, val=val_seen))
    expected, _ = _brute_force_beta(clf, AVSamples.concat(val_seen, synthetic), DEFAULT_GRID)
    assert gate.beta == expected
    assert gate.selection["source"] == "val seen-class clips + synthetic unseen features"


def test_without_val_uses_training_clips_and_says_so():
    clf, clips = _biased_setup()
    train, synthetic = clips(SEEN, 100, 3), clips(UNSEEN, 100, 5)
    log = []
    ctx = _ctx(clf)
    ctx.log = log.append
    gate = CalibratedStacking().fit(train, synthetic, ctx)
    assert gate.beta == _brute_force_beta(clf, AVSamples.concat(train, synthetic), DEFAULT_GRID)[0]
    assert gate.selection["source"].startswith("training clips")
    assert any("optimistic" in m for m in log)


# -- the acceptance test: β never depends on test labels ------------------------------------


def _toy_pipeline(syn_num: int = 20) -> Pipeline:
    return Pipeline(RidgeGenerator(), CalibratedStacking(), CentroidSeen(), RidgeUnseen(), syn_num=syn_num)


def _poison_test(task: AVGZSLTask, seed: int = 99) -> AVGZSLTask:
    g = torch.Generator().manual_seed(seed)
    all_classes = task.all_classes
    labels = all_classes[torch.randint(len(all_classes), (len(task.test),), generator=g)]
    test = AVSamples(task.test.audio.clone(), task.test.video.clone(), labels)
    return dataclasses.replace(task, test=test)


def _stage1_like(task: AVGZSLTask) -> AVGZSLTask:
    """A task whose val split holds seen and unseen clips (as stage-1 val), disjoint from test."""
    half = torch.arange(len(task.test)) % 2 == 0
    return dataclasses.replace(task, val=task.test.subset(half), test=task.test.subset(~half))


@pytest.mark.parametrize("shape", ["embedded", "stage1"])
def test_beta_unchanged_when_test_labels_are_poisoned(tiny_task, shape):
    task = tiny_task if shape == "embedded" else _stage1_like(tiny_task)
    clean = _toy_pipeline().fit(task, seed=0)
    poisoned_task = _poison_test(task)
    assert not torch.equal(poisoned_task.test.labels, task.test.labels)
    poisoned = _toy_pipeline().fit(poisoned_task, seed=0)
    assert poisoned.detector.beta == clean.detector.beta
    assert poisoned.detector.selection == clean.detector.selection
    assert clean.evaluate(task.test).metrics["HM"] != poisoned.evaluate(poisoned_task.test).metrics["HM"]  # the poison bites
    # ...while the selection split does matter: poisoning val changes the HM curve.
    val = task.val
    shuffled = AVSamples(val.audio, val.video, val.labels[torch.randperm(len(val), generator=torch.Generator().manual_seed(1))])
    other = _toy_pipeline().fit(dataclasses.replace(task, val=shuffled), seed=0)
    assert other.detector.selection["curve"] != clean.detector.selection["curve"]


def test_beta_unchanged_with_real_plugins_and_poisoned_test_labels(tiny_task):
    from avood_plugins.generators.wgan_gp import WGANGP
    from avood_plugins.seen.mlp import MLPSeenClassifier
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    def pipe():
        return Pipeline(
            WGANGP(epochs=1, batches_per_epoch=3, critic_iters=1, noise_dim=16, hidden=32, batch_size=16),
            CalibratedStacking(), MLPSeenClassifier(epochs=2, hidden=(32,), batch_size=64),
            CrossAttentionClassifier(epochs=1, batches_per_epoch=5, batch_size=16, embed_dim=12, heads=2,
                                     enc_hidden=16, proj_hidden=16, joint_dim=8, ff_dim=8),
            syn_num=10)

    task = _stage1_like(tiny_task)
    clean = pipe().fit(task, seed=3)
    poisoned = pipe().fit(_poison_test(task), seed=3)
    assert poisoned.detector.beta == clean.detector.beta
    assert poisoned.detector.selection == clean.detector.selection


def test_checkpoint_round_trip_needs_binding(tiny_task, tmp_path):
    from avood_core.pipeline.store import load_component, save_component

    pipe = _toy_pipeline().fit(tiny_task, seed=0)
    save_component(pipe.detector, tmp_path / "detector", "calibrated_stacking")
    gate = load_component(tmp_path / "detector", kind="detector")
    assert isinstance(gate, CalibratedStacking) and gate.beta == pipe.detector.beta
    assert gate.threshold == -gate.beta and gate.selection == json.loads(json.dumps(pipe.detector.selection))
    with pytest.raises(AvoodError, match="no fitted unseen classifier bound"):
        gate.score(tiny_task.test)
    gate.bind_fitted({"unseen": pipe.unseen})
    assert torch.equal(gate.score(tiny_task.test), pipe.detector.score(tiny_task.test))


def test_run_folder_reload_and_resume_bind_the_unseen_classifier(tmp_path):
    """``avood run`` with the gate, then Pipeline.load (no refit) and --resume (all reused)."""
    import numpy as np

    from avood_core.config import build_config
    from avood_core.run.driver import RunOptions, execute

    tiny = [
        "data.scale=0.05", 'device="cpu"', "syn_num=5", "detector.name=\"calibrated_stacking\"",
        "generator.epochs=1", "generator.batches_per_epoch=3", "generator.critic_iters=1",
        "generator.noise_dim=16", "generator.hidden=32", "generator.batch_size=16",
        "seen.epochs=2", "seen.hidden=[32]", "seen.batch_size=64",
        "unseen.epochs=1", "unseen.batches_per_epoch=3", "unseen.batch_size=16", "unseen.embed_dim=30",
        "unseen.enc_hidden=32", "unseen.proj_hidden=32", "unseen.joint_dim=8", "unseen.ff_dim=8",
        f"output_dir={json.dumps(str(tmp_path))}",
    ]
    first = execute(build_config(overrides=tiny), RunOptions(report=False, quiet=True, echo=lambda m: None))
    assert first.results["components"]["detector"] == "calibrated_stacking"
    loaded = Pipeline.load(first.run_dir)
    from avood_core.run.fitting import build_task

    out = loaded.outputs(build_task(build_config(overrides=tiny)).test)
    with np.load(first.run_dir / "predictions.npz") as saved:
        assert np.array_equal(saved["score"], out["score"].numpy())
        assert np.array_equal(saved["pred"], out["pred"].numpy())
    again = execute(build_config(overrides=tiny), RunOptions(report=False, quiet=True, echo=lambda m: None,
                                                          resume=first.run_dir))
    assert again.results["reused_components"] == ["detector", "generator", "seen", "unseen"]
    assert again.results["metrics"]["gate"] == first.results["metrics"]["gate"]


def test_needs_an_unseen_classifier_with_distances():
    class NoDistances(UnseenClassifier):
        fitted = True

    with pytest.raises(AvoodError, match="cross_attention"):
        CalibratedStacking().fit(_samples(10, 1, SEEN), _samples(10, 2, UNSEEN), _ctx(NoDistances()))
    ctx = _ctx(None)
    ctx.fitted.clear()
    with pytest.raises(AvoodError, match="ctx.fitted"):
        CalibratedStacking().fit(_samples(10, 1, SEEN), _samples(10, 2, UNSEEN), ctx)


def test_conformance_kit():
    """Every kit check, with the kit's stand-in embedding model as ``ctx.fitted['unseen']``
    (the kit binds it again after its save/load round trip, as ``Pipeline.load`` does)."""
    from avood_core.testing import StandInUnseen, check_component

    report = check_component(CalibratedStacking, "detector", {}, name="calibrated_stacking")
    assert isinstance(report.fitted._unseen, StandInUnseen)
