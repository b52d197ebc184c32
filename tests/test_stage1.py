"""Stage 1 of the benchmark protocol runs only when a component selects something on val."""

from __future__ import annotations

import pytest

from tiny_runs import tiny_config, tiny_run


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from avood_core.data import write_synthetic_tree

    root = tmp_path_factory.mktemp("bench")
    write_synthetic_tree(root, "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    return ['data.source="benchmark"', f'data.path="{root}"', 'data.dataset="ucf"']


def test_stage1_skipped_when_nothing_selects(tmp_path, tree):
    messages: list[str] = []
    result = tiny_run(tmp_path, *tree, echo=messages.append)
    stage1 = result.results["protocol"]["stage1"]
    assert stage1["ran"] is False and "skipped" in stage1["reason"]
    assert not (result.run_dir / "stage1").exists()
    assert any(m.startswith("stage 1 skipped") for m in messages)
    assert result.results["protocol"]["stage2"]["report"].startswith("test")


def test_val_mean_under_the_protocol_runs_stage1_and_carries_a_quantile(tmp_path, tree):
    result = tiny_run(tmp_path, *tree, 'detector.threshold_rule="val_mean"')
    stage1 = result.results["protocol"]["stage1"]
    assert stage1["ran"] is True and "detector 'entropy'" in stage1["reason"]
    chosen = stage1["selected"]["detector"]
    assert chosen["threshold_rule"] == "quantile" and 0 <= chosen["threshold_quantile"] <= 1
    stage2 = (result.run_dir / "config.stage2.toml").read_text()
    assert 'threshold_rule = "quantile"' in stage2


def test_stage1_decision_per_component(tree):
    from avood_core.config import resolve
    from avood_core.registry import get_registry
    from avood_core.run.fitting import build_tasks, stage1_decision

    registry = get_registry()
    config = resolve(tiny_config(".", *tree), registry)
    stage1_task, _ = build_tasks(config)
    assert stage1_decision(config, stage1_task is not None, registry)[0] is False
    for extra, who in ((["seen.select_on_val=true"], "seen 'mlp'"),
                       (['detector.threshold_rule="val_mean"'], "detector 'entropy'")):
        cfg = resolve(tiny_config(".", *tree, *extra), registry)
        ran, why = stage1_decision(cfg, stage1_task is not None, registry)
        assert ran and who in why
    off = resolve(tiny_config(".", *tree, "data.stage1=false", "seen.select_on_val=true"), registry)
    assert stage1_decision(off, False, registry) == (False, "stage 1 off (data.stage1 = false): stage 2 fits with "
                                                           "the configured params")
    from avood_plugins.detectors.calibrated_stacking import CalibratedStacking

    assert CalibratedStacking().selects_on_val() and not CalibratedStacking(beta=0.5).selects_on_val()


def test_sweep_keys_are_the_first_fits_and_free_on_publish_only_in_one_stage(tree, tmp_path):
    """A sweep schedules on the hashes a trial publishes first: stage 2's when stage 1 is skipped or off
    (released once published), stage 1's when it runs (held to the trial's end)."""
    from types import SimpleNamespace

    from avood_core.config import resolve
    from avood_core.registry import get_registry
    from avood_core.run.fitting import build_pipeline, fit_hashes, publish
    from avood_core.sweep.core import component_keys, published

    registry = get_registry()

    def keys(*extra: str) -> tuple[frozenset, bool, dict]:
        cfg = resolve(tiny_config(".", *tree, *extra), registry)
        got, last = component_keys(SimpleNamespace(config=cfg), registry)
        pipeline = build_pipeline(cfg, registry)
        return got, last, {stage: frozenset(fit_hashes(cfg, pipeline, stage).items()) for stage in ("", "stage1", "stage2")}

    got, last, by_stage = keys()
    assert last and got == by_stage["stage2"] != by_stage["stage1"]
    got, last, by_stage = keys("seen.select_on_val=true")
    assert not last and got == by_stage["stage1"]
    got, last, by_stage = keys("data.stage1=false", "seen.select_on_val=true")
    assert last and got == by_stage[""]
    (kind, fit_hash), = [k for k in got if k[0] == "seen"]
    shared, saved = tmp_path / "shared", tmp_path / "saved"
    saved.mkdir()
    (saved / "model.safetensors").write_bytes(b"x")
    is_free = published(shared, set(got))
    assert not is_free((kind, fit_hash))
    publish(saved, shared, kind, fit_hash)
    assert is_free((kind, fit_hash)) and not published(shared, set())((kind, fit_hash))
    assert not is_free(next(k for k in got if k[0] != "seen"))


def test_default_declaration_follows_selected_params():
    from avood_core.protocols import Component

    class Picks(Component):
        def selected_params(self):
            return {"x": 1}

    assert Picks().selects_on_val() and not Component().selects_on_val()
