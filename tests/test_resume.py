"""``--resume`` by fit hash, determinism across runs, and training divergence (no NaN model saved)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avood_core.cli.commands import app
from avood_core.errors import CheckpointError, TrainingDiverged
from avood_core.pipeline import Pipeline

from tiny_runs import KINDS, file_digests, fit_hash, predictions, run_task, tiny_run, weights


def _digests(run_dir: Path) -> dict[str, str]:
    return {kind: hashlib.sha256((run_dir / "components" / kind / "model.safetensors").read_bytes()).hexdigest()
            for kind in KINDS}


def _same_predictions(a: Path, b: Path) -> None:
    pa, pb = predictions(a), predictions(b)
    assert pa.keys() == pb.keys()
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def _resume(run_dir: Path, *extra: str, allow_changes: bool = False):
    """Resume ``run_dir``; with ``allow_changes`` (a changed config) the result is a new folder
    and ``run_dir`` must be left byte-identical."""
    messages: list[str] = []
    before = file_digests(run_dir)
    result = tiny_run(run_dir.parent / "new", *extra, echo=messages.append, resume=run_dir, allow_changes=allow_changes)
    if allow_changes:
        assert result.run_dir.parent == run_dir.parent / "new" and result.results["resumed_from"] == str(run_dir)
        assert file_digests(run_dir) == before
    else:
        assert result.run_dir == run_dir
    return result, messages


# -- resume ----------------------------------------------------------------------------

def test_resume_with_matching_config_reuses_all_four(finished_run, run_copy):
    before = _digests(run_copy)
    config_toml = (run_copy / "config.toml").read_bytes()
    result, messages = _resume(run_copy)
    assert (run_copy / "config.toml").read_bytes() == config_toml  # kept, though output_dir differs
    assert result.results["reused_components"] == sorted(KINDS)
    assert result.results["metrics"] == finished_run[1]["metrics"]
    _same_predictions(run_copy, finished_run[0])
    assert _digests(run_copy) == before  # nothing refitted, nothing rewritten
    assert sum("resume: reusing fitted" in m for m in messages) == 4
    assert not any("refitting" in m for m in messages)
    assert "timings_s" in result.results and "generator" not in result.results["timings_s"]


def test_changed_config_is_refused_and_the_run_is_untouched(run_copy):
    from avood_core.errors import ConfigError

    before = file_digests(run_copy)
    with pytest.raises(ConfigError) as exc:
        _resume(run_copy, "generator.beta=0.02", "seed=4")
    msg = str(exc.value)
    assert "\n" not in msg and f"--resume '{run_copy}': the config differs from its config.toml" in msg
    assert "generator.params.beta 0.1 -> 0.02" in msg and "seed 0 -> 4" in msg
    assert "--allow-changes" in msg and f"avood run --config {run_copy / 'config.toml'}" in msg
    assert file_digests(run_copy) == before


def test_changed_generator_param_refits_generator_and_detector_in_a_new_folder(finished_run, run_copy):
    before = _digests(run_copy)
    old = {k: fit_hash(run_copy, k) for k in KINDS}
    result, messages = _resume(run_copy, "generator.beta=0.02", allow_changes=True)
    new = result.run_dir
    assert result.results["reused_components"] == ["seen", "unseen"]
    assert any(m.startswith(f"resume: the config differs from '{run_copy}' (generator.params.beta 0.1 -> 0.02)")
               and f"writing the new run folder '{new}'" in m for m in messages), messages
    for kind in ("generator", "detector"):
        assert any(m.startswith(f"resume: {kind} ") and "fitted with another config" in m and "not reusing" in m
                   for m in messages), messages
        assert fit_hash(new, kind) != old[kind]
    after = _digests(new)
    assert after["seen"] == before["seen"] and after["unseen"] == before["unseen"]  # copied, not refitted
    assert after["generator"] != before["generator"] and after["detector"] != before["detector"]
    # both folders are consistent, loadable pipelines reporting their own metrics
    assert Pipeline.load(new).evaluate(run_task(new).test).metrics == result.results["metrics"]
    assert Pipeline.load(run_copy).evaluate(run_task(run_copy).test).metrics == finished_run[1]["metrics"]


def test_changed_seen_param_refits_only_the_seen_classifier(run_copy):
    old = {k: fit_hash(run_copy, k) for k in KINDS}
    result, messages = _resume(run_copy, "seen.lr=0.003", allow_changes=True)
    assert result.results["reused_components"] == ["detector", "generator", "unseen"]
    (mismatch,) = [m for m in messages if "another config" in m]
    assert mismatch.startswith("resume: seen 'mlp' was fitted with another config") and "not reusing" in mismatch
    assert fit_hash(result.run_dir, "seen") != old["seen"]
    assert all(fit_hash(result.run_dir, k) == old[k] for k in ("generator", "detector", "unseen"))


def test_changed_seed_refits_everything(run_copy):
    result, messages = _resume(run_copy, "seed=1", allow_changes=True)
    assert result.results["reused_components"] == []
    assert sum("fitted with another config" in m for m in messages) == 4


def test_missing_or_broken_components_are_reported_and_refitted(finished_run, run_copy):
    shutil.rmtree(run_copy / "components" / "unseen")
    w = run_copy / "components" / "seen" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    result, messages = _resume(run_copy)
    assert result.results["reused_components"] == ["detector", "generator"]
    assert any("resume: unseen was not saved yet" in m for m in messages)
    assert any(m.startswith("resume: seen:") and "checksum" in m and "refitting" in m for m in messages)
    # refitted with the same config and seed: the same weights and numbers as the original run
    assert _digests(run_copy) == _digests(finished_run[0])
    assert result.results["metrics"] == finished_run[1]["metrics"]


def test_cli_resume_refuses_a_change_unless_allowed(run_copy):
    before = file_digests(run_copy)
    args = ["run", "--resume", str(run_copy), "--set", "unseen.margin=0.5", "-q", "--no-report"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "unseen.params.margin" in str(res.exception)
    res = CliRunner().invoke(app, [*args, "--allow-changes"])
    assert res.exit_code == 0, res.output
    assert "resume: unseen 'cross_attention' was fitted with another config" in res.stderr
    assert "resume: reusing fitted generator 'wgan_gp'" in res.stderr
    (new,) = [p for p in run_copy.parent.iterdir() if p != run_copy]  # beside the resumed folder
    assert f"run folder: {new}" in res.stderr
    assert file_digests(run_copy) == before
    res = CliRunner().invoke(app, ["run", "--allow-changes", "-q"])
    assert res.exit_code != 0 and "--allow-changes only applies to --resume" in str(res.exception)


def test_interrupted_resume_keeps_the_old_run_and_the_new_folder_resumes(finished_run, run_copy, monkeypatch):
    from avood_plugins.detectors.entropy import EntropyDetector

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(EntropyDetector, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        _resume(run_copy, "generator.beta=0.02", allow_changes=True)
    monkeypatch.undo()
    (new,) = (run_copy.parent / "new").iterdir()
    assert sorted(p.name for p in (new / "components").iterdir()) == ["generator", "seen", "unseen"]
    with pytest.raises(CheckpointError, match="not a finished avood run folder"):
        Pipeline.load(new)
    assert Pipeline.load(run_copy).evaluate(run_task(run_copy).test).metrics == finished_run[1]["metrics"]
    # the new folder's config.toml holds the changed config: resuming it is no change, it finishes in place
    result, messages = _resume(new, "generator.beta=0.02")
    assert result.results["reused_components"] == ["generator", "seen", "unseen"]
    assert any(m == "resume: detector was not saved yet; fitting it" for m in messages)
    assert Pipeline.load(new).evaluate(run_task(new).test).metrics == result.results["metrics"]


def test_a_cut_resume_in_place_refuses_to_load_until_finished(run_copy):
    """A folder whose components were refitted by a cut resume (an older avood refitted in place)."""
    import json

    cfg = run_copy / "components" / "generator" / "config.json"
    from avood_core.pipeline.store import seal

    cfg.write_text(json.dumps(seal({**json.loads(cfg.read_text()), "fit_hash": "0" * 16})))
    with pytest.raises(CheckpointError, match="generator was refitted .* --resume"):
        Pipeline.load(run_copy)
    result, messages = _resume(run_copy)
    assert result.results["reused_components"] == ["detector", "seen", "unseen"]
    assert Pipeline.load(run_copy).evaluate(run_task(run_copy).test).metrics == result.results["metrics"]


# -- determinism -----------------------------------------------------------------------

def test_same_seed_gives_identical_results_and_weights(finished_run, tmp_path):
    again = tiny_run(tmp_path)
    assert again.results["metrics"] == finished_run[1]["metrics"]
    assert again.results["task"] == finished_run[1]["task"]
    _same_predictions(again.run_dir, finished_run[0])
    for kind in KINDS:
        a, b = weights(again.run_dir, kind), weights(finished_run[0], kind)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), kind
        assert fit_hash(again.run_dir, kind) == fit_hash(finished_run[0], kind)
    assert _digests(again.run_dir) == _digests(finished_run[0])


# -- training stability ----------------------------------------------------------------

def test_diverging_detector_stops_with_a_clear_message_and_saves_nothing_of_it(tmp_path):
    with pytest.raises(TrainingDiverged) as exc:
        tiny_run(tmp_path, "detector.lr=1e30")
    msg = str(exc.value)
    assert msg.startswith("detector entropy: loss became nan in epoch 1;") and "lower the detector lr" in msg
    assert "\n" not in msg
    (run_dir,) = tmp_path.iterdir()
    components = run_dir / "components"
    assert sorted(p.name for p in components.iterdir()) == ["generator", "seen", "unseen"]  # no detector, no temp folder
    assert not (run_dir / "pipeline.json").exists() and not (run_dir / "results.json").exists()
    for kind in ("generator", "seen", "unseen"):
        assert all(torch.isfinite(v).all() for v in weights(run_dir, kind).values() if v.is_floating_point())
    with pytest.raises(CheckpointError, match="not a finished avood run folder"):
        Pipeline.load(run_dir)


def test_diverging_refit_on_resume_keeps_the_previous_good_checkpoint(finished_run, run_copy):
    before = file_digests(run_copy)
    with pytest.raises(TrainingDiverged, match="seen mlp: loss became nan in epoch 1"):
        _resume(run_copy, "seen.lr=1e30", allow_changes=True)
    assert file_digests(run_copy) == before
    assert Pipeline.load(run_copy).evaluate(run_task(run_copy).test).metrics == finished_run[1]["metrics"]


def test_nan_features_stop_the_generator_and_nothing_is_saved(tmp_path, monkeypatch):
    import avood_core.run.driver as run_mod

    real = run_mod.build_tasks

    def poisoned(config):
        stage1, task = real(config)
        task.train.audio[:, 5] = float("nan")  # every clip: the very first batch holds a NaN
        return stage1, task

    monkeypatch.setattr(run_mod, "build_tasks", poisoned)
    with pytest.raises(TrainingDiverged, match=r"^generator wgan_gp: loss became nan in epoch 1; .*lower lr"):
        tiny_run(tmp_path)
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "components").exists() or not list((run_dir / "components").iterdir())


def test_divergence_through_the_cli_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from avood_core.cli.commands import main
    from avood_core.cli.options import EXIT_ERROR
    from tiny_runs import TINY

    args = ["avood", "run", "-q", "--no-report", "-o", str(tmp_path)]
    for o in [*TINY, "generator.lr=1e30"]:
        args += ["--set", o]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_ERROR
    assert err.count("\n") == 1 and err.startswith("avood: error: generator wgan_gp: loss became nan in epoch 1")
    assert "change the seed" in err


# -- the two-stage benchmark protocol ------------------------------------------------

def test_benchmark_protocol_resume_and_evaluate_on_a_moved_tree(tmp_path):
    from avood_core.data import write_synthetic_tree

    tree = tmp_path / "bench"
    write_synthetic_tree(tree, "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    data = ['data.source="benchmark"', f'data.path="{tree}"', 'data.dataset="ucf"', "seen.select_on_val=true", "seen.epochs=3"]
    first = tiny_run(tmp_path / "runs", *data)
    stage1 = first.results["protocol"]["stage1"]
    kept = Pipeline.load(first.run_dir / "stage1").seen.best_epoch
    assert stage1["selected"] == {"seen": {"epochs": kept + 1, "select_on_val": False}}  # an epoch count, never 0
    result, messages = _resume(first.run_dir, *data)
    assert result.results["reused_components"] == sorted(KINDS)
    assert result.results["protocol"]["stage1"]["reused_components"] == sorted(KINDS)
    assert result.results["protocol"]["stage1"]["selected"] == stage1["selected"]
    assert result.results["metrics"] == first.results["metrics"]
    assert sum("resume: reusing fitted" in m for m in messages) == 8
    # evaluate reloads without retraining, also from a tree that moved (--data)
    moved = tmp_path / "moved"
    tree.rename(moved)
    res = CliRunner().invoke(app, ["evaluate", str(first.run_dir), "--data", str(moved)])
    assert res.exit_code == 0, res.output
    hm = first.results["metrics"]["HM"]
    assert next(ln for ln in res.stdout.splitlines() if ln.startswith("AV-OOD")).split()[-1] == f"{hm:.2f}"
