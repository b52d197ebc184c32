"""Training curves and experiment loggers: metrics/<kind>.jsonl in every run folder (also from a
worker process), and the mlflow / tensorboard loggers read back with their own libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from avood_core.callbacks import Callback, CallbackList, MetricsWriter, read_metrics
from avood_core.cli.options import EXIT_ERROR
from avood_core.errors import ConfigError
from avood_core.protocols import Component
from tiny_runs import KINDS, tiny_config, tiny_run

# Epochs per component in the tiny runs (tests/tiny_runs.py TINY).
TINY_EPOCHS = {"generator": 1, "detector": 2, "seen": 2, "unseen": 1}


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_stage_start(self, kind, info):
        self.calls.append(("start", kind, info["name"]))

    def on_epoch(self, kind, epoch, metrics):
        self.calls.append(("epoch", kind, epoch, dict(metrics)))

    def on_stage_end(self, kind, info):
        self.calls.append(("end", kind, info["name"]))


def test_history_of_a_silent_component_is_replayed_and_values_cleaned(tmp_path):
    silent = Component()  # its fit filled stats.history but called no callback
    silent.stats.history = [{"epoch": 0, "loss": 2.0, "note": "x", "bad": float("nan")}, {"epoch": 1, "loss": 1.0}]

    rec = Recorder()
    cbs = CallbackList([rec, MetricsWriter(tmp_path)])
    cbs.on_stage_start("seen", {"name": "silent", "stage": ""})
    cbs.on_stage_end("seen", {"name": "silent", "stage": ""}, silent)
    assert rec.calls == [("start", "seen", "silent"), ("epoch", "seen", 0, {"loss": 2.0}), ("epoch", "seen", 1, {"loss": 1.0}),
                         ("end", "seen", "silent")]
    lines = read_metrics(tmp_path)["seen"]
    assert [(r["event"], r["epoch"], r["loss"]) for r in lines] == [("epoch", 0, 2.0), ("epoch", 1, 1.0)]


def test_step_due_every_n_and_only_with_listeners():
    assert not CallbackList([], every_n_steps=1).step_due(1)
    cbs = CallbackList([Callback()], every_n_steps=3)
    assert [s for s in range(1, 10) if cbs.step_due(s)] == [3, 6, 9]
    assert not CallbackList([Callback()], every_n_steps=0).step_due(3)


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_folder_gets_per_epoch_and_step_curves(tmp_path, jobs):
    """Every component's epochs (loss terms and lr) land in metrics/<kind>.jsonl, the worker's too."""
    run = tiny_run(tmp_path, f"jobs={jobs}", "logging.every_n_steps=2")
    curves = read_metrics(run.run_dir / "metrics")
    assert set(curves) == set(KINDS)
    for kind in KINDS:
        epochs = [r for r in curves[kind] if r["event"] == "epoch"]
        assert [r["epoch"] for r in epochs] == list(range(TINY_EPOCHS[kind])), kind
        assert all("lr" in r and r["lr"] > 0 for r in epochs), kind
        assert any(k not in ("kind", "stage", "event", "epoch", "time", "lr") for k in epochs[0]), kind  # a loss term
    # the unseen classifier (3 steps: a report at step 2) runs in the worker with jobs=2
    steps = [r["step"] for r in curves["unseen"] if r["event"] == "step"]
    assert steps == [2]
    assert {"loss", "trip", "rec", "reg", "lr"} <= set(curves["unseen"][-1])
    if jobs == 1:  # the report draws one training-curves figure per component
        from avood_core.eval.report import write_report

        md, _ = write_report(run.run_dir)
        for kind in KINDS:
            assert (run.run_dir / "figures" / f"curves_{kind}.png").is_file()
            assert f"figures/curves_{kind}.png" in md.read_text()


def test_unknown_logger_and_bad_params_fail_before_any_work(tmp_path):
    from avood_core.config import resolve

    with pytest.raises(Exception, match="unknown logger 'nope'; valid loggers: mlflow, tensorboard"):
        resolve(tiny_config(tmp_path, 'logging.loggers=["nope"]'))
    with pytest.raises(ConfigError, match="logging.mlflow.colour"):
        resolve(tiny_config(tmp_path, 'logging.loggers=["mlflow"]', "logging.mlflow.colour=1"))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_missing_extra_is_one_line_naming_it(tmp_path):
    """With the library not importable, `avood run --logger mlflow` says which extra to install."""
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "sys.argv = ['avood', 'run', '--logger', 'mlflow', '-o', sys.argv[1]]\n"
            "from avood_core.cli.commands import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("avood: error: logger 'mlflow' needs the 'mlflow' package")
    assert "pip install 'avood[mlflow]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # failed before a run folder was made


def test_mlflow_store_read_back_with_search_runs(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tiny_run(tmp_path / "runs", 'logging.loggers=["mlflow"]', f"logging.mlflow.uri={json.dumps(uri)}",
                   'logging.mlflow.experiment="tiny"',
                   f"logging.mlflow.artifact_location={json.dumps((tmp_path / 'artifacts').as_uri())}")
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["tiny"])
    assert len(df) == 1
    row = df.iloc[0]
    assert row["status"] == "FINISHED" and row["tags.mlflow.runName"] == run.run_dir.name
    assert row["params.seed"] == "0" and row["params.generator.name"] == "wgan_gp"
    assert row["params.unseen.params.batch_size"] == "16"
    m = run.results["metrics"]
    for key, value in {"S": m["S"], "U": m["U"], "HM": m["HM"], "ZSL": m["ZSL"], "AUROC": m["gate"]["AUROC"]}.items():
        assert row[f"metrics.{key}"] == pytest.approx(value)
    client = mlflow.tracking.MlflowClient(uri)
    history = client.get_metric_history(row["run_id"], "seen/epoch/loss")
    assert [h.step for h in history] == [0, 1]
    curves = read_metrics(run.run_dir / "metrics")["seen"]
    assert [h.value for h in history] == pytest.approx([r["loss"] for r in curves if r["event"] == "epoch"])
    artifacts = {a.path for a in client.list_artifacts(row["run_id"])}
    assert {"results.json", "config.toml", "metrics", "components"} <= artifacts
    assert (tmp_path / "artifacts").is_dir() and not Path("mlruns").exists()  # nothing written into the cwd


def test_tensorboard_events_read_back_with_event_accumulator(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tiny_run(tmp_path, 'logging.loggers=["tensorboard"]', "logging.every_n_steps=1")
    acc = EventAccumulator(str(run.run_dir / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"detector/epoch/loss", "generator/epoch/d_loss", "unseen/epoch/trip", "seen/epoch/lr", "results/HM"} <= tags
    assert "unseen/step/loss" in tags
    assert [e.step for e in acc.Scalars("detector/epoch/loss")] == [0, 1]
    assert acc.Scalars("results/HM")[0].value == pytest.approx(run.results["metrics"]["HM"], rel=1e-6)
    # the hparams plugin's session: the config as hyperparameters, the results scalars as its metrics
    from tensorboard.plugins.hparams import metadata

    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["seed"].number_value == 0 and start.hparams["generator.name"].string_value == "wgan_gp"
    assert start.hparams["unseen.params.batch_size"].number_value == 16
    assert start.hparams["detector.params.hidden"].string_value == "[32]"
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert {"results/HM", "results/AUROC", "results/S"} <= {m.name.tag for m in experiment.metric_infos}
    assert {h.name for h in experiment.hparam_infos} == set(start.hparams)
