"""The MLflow logger where runs meet: parallel sweep trials on a fresh default store, an
unreachable server, tags and nesting (under a caller's run, under a sweep's parent run) and what
is uploaded, all read back with MLflow's own ``search_runs``."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from test_sweep_edges import avood_command
from tiny_runs import TINY, tiny_run

from avood_core.sweep.core import run_sweep
from avood_core.sweep.spec import load_spec

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 'avood[mlflow]')")


def use_store(monkeypatch, uri: str | None) -> None:
    """MLflow's default store is ``uri`` ($MLFLOW_TRACKING_URI; ``None``: MLflow's own default) for this
    test, whatever URI an earlier test set with ``mlflow.set_tracking_uri``."""
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    if uri is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)


def runs(uri: str, experiment: str = "avood"):
    """The experiment's runs read back with ``mlflow.search_runs`` (the store at ``uri``), and a client of it."""
    assert mlflow.get_tracking_uri() == uri
    return mlflow.search_runs(experiment_names=[experiment]), mlflow.tracking.MlflowClient(uri)


def artifact_names(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_names(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def tiny_sweep(folder: Path, **extra):
    data = {"set": [*TINY, 'logging.loggers=["mlflow"]'], "seeds": [0, 1], "report": False,
            "resources": {"num_cpus": 1}, "output": str(folder), "name": "tiny-mlflow", **extra}
    return load_spec(None, data)


def test_parallel_trials_on_a_fresh_default_store_all_logged_under_the_sweep_run(tmp_path, monkeypatch):
    """Two trials side by side on MLflow's default store (./mlflow.db, created by this sweep): both
    logged, nested under the sweep's parent run, with their tags."""
    use_store(monkeypatch, None)
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    result = run_sweep(tiny_sweep(tmp_path / "sweep", max_parallel=2), echo=lines.append)
    assert [r["status"] for r in result.records] == ["done", "done"], result.records
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert f"mlflow: connecting to {uri} (experiment 'avood')" in lines
    df, client = runs(uri)
    assert len(df) == 3
    parent = df[df["tags.mlflow.runName"] == "tiny-mlflow"].iloc[0]
    trials = df[df["run_id"] != parent["run_id"]]
    assert parent["status"] == "FINISHED" and parent["tags.avood.sweep"] == "tiny-mlflow"
    assert parent["params.trials"] == "2" and parent["params.seeds"] == "[0, 1]"
    assert sorted(trials["tags.avood.seed"]) == ["0", "1"]
    assert set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.mlflow.parentRunId"]) == {parent["run_id"]}
    assert set(trials["tags.avood.sweep"]) == {"tiny-mlflow"}
    for record in result.records:
        row = trials[trials["tags.avood.seed"] == str(record["seed"])].iloc[0]
        assert row["metrics.HM"] == pytest.approx(record["metrics"]["HM"])
        assert Path(row["tags.avood.run_dir"]) == (tmp_path / "sweep" / record["run_dir"]).resolve()


def test_a_trial_whose_logging_fails_is_a_failed_trial(tmp_path, monkeypatch):
    from avood_core.registry import get_registry

    MLflowLogger = get_registry().component_class("logger", "mlflow")

    def broken(self, kind, epoch, metrics):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(MLflowLogger, "on_epoch", broken)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    use_store(monkeypatch, uri)
    monkeypatch.chdir(tmp_path)
    spec = tiny_sweep(tmp_path / "sweep", seeds=[0])
    (record,) = run_sweep(spec, quiet=True).records
    assert record["status"] == "failed", record
    assert record["error"].startswith("callback 'mlflow' on_epoch() raised RuntimeError: database is locked"), record
    assert "wgan_gp" not in record["error"]  # the logger's failure, not the component's
    df, _ = runs(uri)
    assert sorted(df["status"]) == ["FAILED", "FAILED"]  # the trial's run and the sweep's parent run


def test_unreachable_tracking_server_fails_fast_with_one_line(tmp_path):
    """`avood sweep --logger mlflow` (and so `avood run`) against a closed port: 'connecting to', then
    one error line within 30 s, before any trial starts."""
    spec = tmp_path / "s.toml"
    spec.write_text("seeds = [0]\nreport = false\nset = [" + ", ".join(json.dumps(s) for s in TINY) + "]\n")
    started = time.monotonic()
    proc = subprocess.run([*avood_command(), "sweep", str(spec), "--output-dir", str(tmp_path / "sw"), "--logger", "mlflow",
                           "--set", 'logging.mlflow.uri="http://127.0.0.1:9"'], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0 and elapsed <= 30, (elapsed, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "mlflow: connecting to http://127.0.0.1:9 (experiment 'avood')"
    assert lines[-1].startswith("avood: error: logger 'mlflow': the tracking server at 'http://127.0.0.1:9' is unreachable (")
    assert len(lines) == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "sw").exists()  # nothing written, no trial started


def test_run_nests_under_the_callers_active_run_with_tags_and_no_lock_or_event_files(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_store(monkeypatch, uri)
    monkeypatch.chdir(tmp_path)  # the new experiment's artifacts: ./mlruns
    mlflow.set_experiment("study")
    with mlflow.start_run(run_name="outer") as outer:
        run = tiny_run(tmp_path / "runs", 'logging.loggers=["mlflow", "tensorboard"]')
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the caller's run is still the active one
    df, client = runs(uri, "study")
    inner = df[df["run_id"] != outer.info.run_id].iloc[0]
    assert len(df) == 2 and inner["tags.mlflow.parentRunId"] == outer.info.run_id
    assert inner["tags.avood.seed"] == "0" and inner["tags.avood.generator"] == "wgan_gp"
    assert inner["tags.avood.detector"] == "entropy" and inner["tags.avood.unseen"] == "cross_attention"
    from avood_core import __version__
    from avood_core.bench.meter import _git_state

    assert inner["tags.avood.version"] == __version__
    assert inner.get("tags.avood.git_commit") == _git_state()  # None for an installed wheel: no tag
    names = artifact_names(client, inner["run_id"])
    assert {"results.json", "config.toml"} <= names and any(n.startswith("components/") for n in names)
    assert list((run.run_dir / "tensorboard").glob("events.out.tfevents.*"))  # written, but not uploaded
    assert not [n for n in names if n.endswith(".avood.lock") or "tfevents" in n], names


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    """Without a sweep's parent to set the store up first (``avood run --seeds 0,1 --max-parallel 2``):
    two processes open the same fresh SQLite store at once; its first-use migration runs once."""
    import sys

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = ("import sys; from avood_core.registry import get_registry\n"
            "get_registry().component_class('logger', 'mlflow')({'uri': sys.argv[1]}).check()")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
