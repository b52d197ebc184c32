"""Shared task and checks of the Table 1 baselines ``cjme`` and ``avgzslnet`` (tests/plugins/test_cjme.py,
test_avgzslnet.py): a tiny zero-shot task, the loss decreasing, distances/predict over any candidate
set, the scheduler's selection split, determinism, and tiny pipeline runs behind the entropy gate
and with calibrated stacking.

Imported as ``from joint_embedding_checks import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from avood_core.protocols import FitContext
from avood_core.task import AVSamples

NET = dict(hidden=48, text_hidden=32, joint_dim=16, batch_size=32, batches_per_epoch=20)


def zero_shot_task() -> dict[str, Any]:
    """The embedded synthetic task's generator at toy size: 8 seen and 3 unseen classes whose 20-d texts
    come from 4-d class latents; audio (16-d) and video (12-d) are fixed nonlinear maps of the latents.

    ``val`` = the task's held-out seen clips plus a third of the unseen test clips (a selection split
    with both kinds of class, as in benchmark stage 1); ``test`` = the other unseen clips.
    """
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task

    spec = SyntheticSpec(n_seen=8, n_unseen=3, audio_dim=16, video_dim=12, text_dim=20, latent_dim=4,
                         train_samples=240, test_seen_samples=40, test_unseen_samples=135,
                         latent_noise=0.5, audio_noise=0.5, video_noise=0.5)
    t = make_synthetic_task(0, spec)
    unseen_clips = t.test.where(t.unseen_classes)
    held = torch.arange(len(unseen_clips)) % 3 == 0
    return {"text": t.text, "seen": t.seen_classes, "unseen": t.unseen_classes, "train": t.train,
            "test": unseen_clips.subset(~held), "val": AVSamples.concat(t.val, unseen_clips.subset(held)),
            "val_seen_only": t.val}


def context(task: dict, val: AVSamples | None = None) -> FitContext:
    return FitContext(text=task["text"], seen_classes=task["seen"], unseen_classes=task["unseen"],
                      device=torch.device("cpu"), val=val)


def fit(cls: type, task: dict, seed: int = 0, val: AVSamples | None = None, **params: Any):
    torch.manual_seed(seed)
    return cls({**NET, **params}).fit(task["train"], task["text"], context(task, val))


def check_loss_decreases(model, terms: tuple[str, ...]) -> None:
    """The total loss and each of ``terms`` fall from the first to the last epoch."""
    first, last = model.stats.history[0], model.stats.history[-1]
    assert last["loss"] < 0.7 * first["loss"], (first, last)
    for term in terms:
        assert last[term] <= first[term] + 1e-6, (term, first[term], last[term])


def check_zero_shot(models: list, task: dict) -> float:
    """Accuracy among the 3 unseen classes, averaged over ``models`` (seeds), well above chance (1/3:
    with 90 test clips its standard deviation is 0.05)."""
    accs = [float((m.predict(task["test"], task["unseen"], task["text"]) == task["test"].labels).float().mean())
            for m in models]
    assert sum(accs) / len(accs) > 0.5, accs
    return sum(accs) / len(accs)


def check_candidates(model, task: dict) -> None:
    """Distances over any candidate set; predict = the nearest candidate, among all classes too."""
    test, text = task["test"], task["text"]
    everything = torch.arange(len(text))
    d = model.distances(test, everything, text)
    assert d.shape == (len(test), len(text)) and d.dtype == torch.float32 and torch.isfinite(d).all()
    assert (d >= 0).all()
    assert torch.equal(model.predict(test, everything, text), d.argmin(dim=1))
    sub = torch.stack([task["unseen"][-1], task["seen"][1], task["unseen"][0]])
    assert torch.allclose(model.distances(test, sub, text), d[:, sub], atol=1e-5)
    assert set(model.predict(test, sub, text).tolist()) <= set(sub.tolist())
    assert model.distances(AVSamples(test.audio[:0], test.video[:0], test.labels[:0]), sub, text).shape == (0, 3)


def tiny_run(tmp: Path, unseen: str, detector: str, unseen_params: dict[str, Any]):
    """A tiny ``avood run`` on the embedded task with ``unseen`` behind ``detector``."""
    from avood_core.config import build_config
    from avood_core.run.driver import RunOptions, execute

    overrides = [
        "data.scale=0.05", 'device="cpu"', "syn_num=5", f"output_dir={json.dumps(str(tmp))}",
        "generator.epochs=1", "generator.batches_per_epoch=3", "generator.critic_iters=1",
        "generator.noise_dim=16", "generator.hidden=32", "generator.batch_size=16",
        "seen.epochs=2", "seen.hidden=[32]", "seen.batch_size=64",
        *(f"unseen.{k}={json.dumps(v)}" for k, v in unseen_params.items()),
    ]
    if detector == "entropy":
        overrides += ["detector.epochs=2", "detector.hidden=[32]", "detector.batch_size=64"]
    cfg = build_config(components={"unseen": unseen, "detector": detector}, overrides=overrides)
    return execute(cfg, RunOptions(report=False, quiet=True, echo=lambda m: None))


def check_tiny_runs(tmp: Path, unseen: str, unseen_params: dict[str, Any]) -> None:
    """Behind the entropy gate and with calibrated stacking: every metric is a finite percentage, and
    the run folder reloads to the same predictions."""
    import math

    from avood_core.pipeline import Pipeline
    from tiny_runs import run_task

    for detector in ("entropy", "calibrated_stacking"):
        result = tiny_run(tmp / detector, unseen, detector, unseen_params)
        m = result.results["metrics"]
        for key in ("S", "U", "HM", "ZSL"):
            assert math.isfinite(m[key]) and 0 <= m[key] <= 100, (detector, key, m[key])
        run_dir = Path(result.run_dir)
        names = json.loads((run_dir / "pipeline.json").read_text())["names"]
        assert names["unseen"] == unseen and names["detector"] == detector
        pipe = Pipeline.load(run_dir)
        saved = pipe.evaluate(run_task(run_dir).test).metrics
        assert saved["HM"] == m["HM"] and saved["ZSL"] == m["ZSL"]
