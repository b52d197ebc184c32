"""``avood sweep``: specs, the local engine, and the Ray engine against a real local Ray instance.

The Ray tests share one Ray instance (2 CPUs) per module and are skipped only when Ray is not
installed (``pip install 'avood[ray]'``; the Makefile's set-up installs it). Every trial is a
tiny config (tests/tiny_runs.py), about two seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny_runs import TINY

from avood_core.errors import AvoodError, ConfigError
from avood_core.sweep.core import run_sweep
from avood_core.sweep.spec import load_spec

GATES = ["entropy", "calibrated_stacking"]
# the tiny budget, with the detector's params for the entropy gate only (calibrated stacking has no network)
TINY_GATES = [f"params.detector.entropy.{s[len('detector.'):]}" if s.startswith("detector.") else s for s in TINY]


def spec(folder: Path, engine: str = "local", **extra):
    """2 gates × 2 seeds of the tiny pipeline, one thread per trial."""
    data = {"set": list(TINY_GATES), "seeds": [0, 1], "axes": {"detector": GATES}, "engine": engine, "report": False,
            "resources": {"num_cpus": 1}, "output": str(folder), **extra}
    return load_spec(None, data)


def trial_metrics(result) -> dict[str, dict]:
    return {r["id"]: r["metrics"] for r in result.records}


def fits(result) -> int:
    """Component fits the sweep's trials made (4 per trial minus those reused)."""
    return sum(4 - len(r.get("reused", {}).get("run", [])) for r in result.records if not r.get("skipped"))


# --- specs -------------------------------------------------------------------------------------


def test_spec_values_table_and_flags_are_typed_overrides(tmp_path):
    from avood_core.sweep.spec import expand, load_spec

    path = tmp_path / "spec.toml"
    path.write_text('seeds = [4]\n[values]\n"unseen.lr" = 0.01\n"data.path" = "1e3"\n[axes]\n"seen.lr" = [0.5]\n')
    spec = load_spec(path, {"values": {"profile": "paper"}})
    assert spec.values == {"unseen.lr": 0.01, "data.path": "1e3", "profile": "paper"}
    (trial,) = expand(spec)
    cfg = trial.config
    assert (cfg.unseen.params["lr"], cfg.seen.params["lr"], cfg.profile, cfg.seed) == (0.01, 0.5, "paper", 4)
    assert str(cfg.data.path) == "1e3"


def test_tied_axis_sets_every_key_and_trials_run_seed_by_seed():
    from avood_core.sweep.spec import expand

    spec = load_spec(None, {"seeds": [0, 1], "axes": {"generator.precision+unseen.precision": ["fp32", "bf16"],
                                                       "seen.lr": [0.5, 0.25]}})
    trials = expand(spec)
    assert [t.seed for t in trials] == [0, 0, 0, 0, 1, 1, 1, 1]  # every config at seed 0 before any at seed 1
    for t in trials:
        tied = t.axes["generator.precision+unseen.precision"]
        assert t.config.generator.params["precision"] == t.config.unseen.params["precision"] == tied
        assert t.config.seen.params["lr"] == t.axes["seen.lr"]
    assert trials[0].id == "generator.precision-unseen.precision-fp32_seen.lr-0.5_seed-0"
    assert trials[0].label == "generator.precision+unseen.precision=fp32, seen.lr=0.5"
    with pytest.raises(ConfigError, match="a key is set by two axes"):
        load_spec(None, {"axes": {"seen.lr+unseen.lr": [0.1], "seen.lr": [0.2]}})
    with pytest.raises(ConfigError, match="empty part"):
        load_spec(None, {"axes": {"seen.lr+": [0.1]}})
    with pytest.raises(ConfigError, match=r"'seed' cannot be set in \[axes\]"):
        load_spec(None, {"axes": {"seen.lr+seed": [1, 2]}})


def test_spec_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = [0, 0]\nengine = "slurm"\n')
    with pytest.raises(ConfigError) as err:
        load_spec(bad)
    assert "seeds must be distinct" in str(err.value) and "engine" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"'seed' cannot be set in \[axes\]"):
        load_spec(None, {"axes": {"seed": [1, 2]}})
    with pytest.raises(ConfigError, match="unknown_key"):
        load_spec(None, {"unknown_key": 1})
    with pytest.raises(AvoodError, match=r"trial 'detector=nope, seed=0'.*nope"):
        run_sweep(load_spec(None, {"axes": {"detector": ["nope"]}, "output": str(tmp_path / "s")}))


def test_docs_spec_expands(tmp_path):
    import re

    from avood_core.sweep.spec import expand

    text = (Path(__file__).resolve().parents[1] / "docs" / "scaling.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- doc-test: sweep-spec[^>]*-->\s*```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "gates.toml").write_text(block)
    trials = expand(load_spec(tmp_path / "gates.toml"))
    assert len(trials) == 3 * 2 * 3 and len({t.id for t in trials}) == 18
    assert {t.config.data.source for t in trials} == {"benchmark"} and {t.config.profile for t in trials} == {"quick"}
    assert {t.config.unseen.params["lr"] for t in trials} == {0.0024, 0.001}


def test_ray_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(AvoodError, match=r"pip install 'avood\[ray\]'"):
        run_sweep(spec(tmp_path / "s", "ray", seeds=[0]), quiet=True)


def test_cli_sweep_inline_and_changed_spec_refused(tmp_path):
    from typer.testing import CliRunner

    from avood_core.cli.commands import app

    spec_file = tmp_path / "gates.toml"
    spec_file.write_text("seeds = [0]\nreport = false\nset = [" + ", ".join(json.dumps(s) for s in TINY) + "]\n"
                         "[axes]\ndetector = [\"entropy\", \"binary\"]\n")
    out = tmp_path / "sw"
    res = CliRunner().invoke(app, ["sweep", str(spec_file), "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "| detector=entropy | 0 |" in res.output and "| detector=binary | 0 |" in res.output
    for name in ("sweep.json", "table.md", "table.csv"):
        assert (out / name).is_file()
    saved = json.loads((out / "sweep.json").read_text())
    # binary reused entropy's generator, seen and unseen classifier (same fit hashes)
    assert sorted(len(t["reused"]["run"]) for t in saved["trials"]) == [0, 3]
    # a gates sweep (the detector varies): the gate's Table 2 metrics are columns, read from each trial's results
    assert saved["metrics"] == ["S", "U", "HM", "ZSL", "gate.AUROC", "gate.FPR@TPR60"]
    assert "| S | U | HM | ZSL | gate AUROC | gate FPR@TPR60 |" in res.stdout
    assert "gate.FPR@TPR60_mean" in (out / "table.csv").read_text().splitlines()[0]
    for row in saved["rows"]:
        (trial,) = row["trials"]
        gate = json.loads((out / trial / "results.json").read_text())["metrics"]["gate"]
        assert row["mean"]["gate.AUROC"] == pytest.approx(gate["AUROC"])
        assert row["mean"]["gate.FPR@TPR60"] == pytest.approx(gate["FPR@TPR60"])
        assert f"{gate['AUROC']:.2f}" in res.stdout
    # --metrics picks the columns (a rerun only rewrites the tables); a key no trial has is refused
    res = CliRunner().invoke(app, ["sweep", str(spec_file), "-o", str(out), "--quiet", "--metrics", "HM,gate.TPR"])
    assert res.exit_code == 0 and "| Config | Seeds | HM | gate TPR | Trials |" in res.stdout, res.output
    res = CliRunner().invoke(app, ["sweep", str(spec_file), "-o", str(out), "--quiet", "--metrics", "gate.AUC"])
    assert isinstance(res.exception, AvoodError) and "gate.AUROC" in str(res.exception)
    res = CliRunner().invoke(app, ["sweep", str(spec_file), "-o", str(out), "--seeds", "0,1", "--quiet"])
    assert res.exit_code != 0 and "--allow-changes" in str(res.exception)


def test_cli_sweep_failed_trial_exits_1_names_it_and_logs(tmp_path, monkeypatch, capsys):
    """One trial fails (its benchmark folder is missing), one trains: exit 1, the failed one named with its
    reason, --json still one document; the training trial's log.txt holds the run's log lines."""
    from avood_core.cli.commands import main
    from avood_core.cli.jsonio import JSON_KEYS
    from avood_core.cli.options import EXIT_ERROR

    missing = tmp_path / "missing"
    spec_file = tmp_path / "fails.toml"
    spec_file.write_text("seeds = [0]\nreport = false\nset = [" + ", ".join(json.dumps(s) for s in [
        *TINY, f"data.path={json.dumps(str(missing))}", 'data.dataset="ucf"']) + "]\n"
        '[axes]\n"data.source" = ["synthetic", "benchmark"]\n')
    out = tmp_path / "sw"
    monkeypatch.setattr(sys, "argv", ["avood", "sweep", str(spec_file), "-o", str(out), "--json"])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    assert exc.value.code == EXIT_ERROR, captured.err
    doc = json.loads(captured.out)
    assert list(doc) == list(JSON_KEYS["sweep"]) and doc["output_dir"] == str(out)
    assert doc["sweep"] == json.loads((out / "sweep.json").read_text()) and doc["table"] == (out / "table.md").read_text()
    assert doc["sweep"]["counts"] == {"done": 1, "failed": 1, "pending": 0}
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: data.source=benchmark, seed=0: benchmark folder ")
    assert str(missing) in failed[0]
    assert captured.err.splitlines()[-1].startswith("avood: error: 1 of 2 trials failed")
    trials = out / "trials"
    trained = (trials / "data.source-synthetic_seed-0" / "log.txt").read_text()
    assert "generator wgan_gp epoch 1/1" in trained and "detector entropy" in trained, trained
    assert "DataError" in (trials / "data.source-benchmark_seed-0" / "log.txt").read_text()


def test_sweep_releases_a_shared_component_once_it_is_published(tmp_path, monkeypatch):
    """The scheduler gets a release that frees the components both gates share as soon as they are in
    ``shared/``, and nothing that is not there."""
    import avood_core.sweep.core as core

    seen: dict = {}
    real = core.run_jobs

    def spy(jobs, *args):  # engine, parallel, quiet, echo, title, on_done, released
        seen["keys"], seen["released"] = [job.keys for job in jobs], args[6]
        return real(jobs, *args)

    monkeypatch.setattr(core, "run_jobs", spy)
    result = run_sweep(spec(tmp_path / "s", seeds=[0]), quiet=True)
    assert [r["status"] for r in result.records] == ["done", "done"]
    entropy, stacking = seen["keys"]
    shared = entropy & stacking
    assert {kind for kind, _ in shared} == {"generator", "seen", "unseen"}
    assert all(seen["released"](key) for key in entropy | stacking)  # every fit published
    assert not seen["released"](("generator", "0" * 16))
    assert sorted(result.records[1]["reused"]["run"]) == ["generator", "seen", "unseen"]


def test_run_seeds_goes_through_the_sweep_machinery(tmp_path):
    from tiny_runs import tiny_config

    from avood_core.run.driver import RunOptions, execute_seeds

    options = RunOptions(report=False, quiet=True, echo=lambda m: None)
    result = execute_seeds(tiny_config(tmp_path), [0, 1], options, max_parallel=2)
    section = result.results["seeds"]
    assert section["seeds"] == [0, 1]
    for seed in (0, 1):
        trial = json.loads((result.run_dir / f"seed-{seed}" / "trial.json").read_text())
        assert trial["status"] == "done" and trial["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
        assert trial["pid"] != os.getpid()  # ran in the pool
        assert section["per_seed"][seed]["metrics"]["HM"] == trial["metrics"]["HM"]


def test_ablate_seeds_run_as_jobs_and_keep_the_shared_fits(tmp_path):
    from test_ablate import TINY as TINY_ABLATE

    from avood_core.eval.ablate import run_ablation_seeds
    from avood_core.config import assemble_config

    data = assemble_config(overrides=[*TINY_ABLATE, f"output_dir={json.dumps(str(tmp_path))}"])
    result = run_ablation_seeds("gates", data, [0, 1], max_parallel=2, quiet=True, echo=lambda m: None)
    per_seed = {}
    for seed in (0, 1):
        job = json.loads((result.run_dir / f"seed-{seed}" / "trial.json").read_text())
        assert job["status"] == "done" and job["pid"] != os.getpid()
        folder = result.run_dir / result.results["per_seed"][seed]["folder"]
        saved = json.loads((folder / "results.json").read_text())
        assert saved["seed"] == seed and saved["trained"]["run"]["generator"] == 1  # rows still share the fits
        per_seed[seed] = {r["label"]: r["values"] for r in saved["rows"]}
    for row in result.results["rows"]:
        values = [per_seed[s][row["label"]]["HM@own"] for s in (0, 1)]
        assert row["values"]["HM@own"]["mean"] == pytest.approx(sum(values) / 2)
    assert "± " in result.markdown and "OOD-entropy (paper)" in result.markdown


# --- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'avood[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_sweep(ray_instance, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray") / "sweep"
    return folder, run_sweep(spec(folder, "ray"), quiet=True)


def test_ray_sweep_table(ray_sweep):
    from avood_core.pipeline import Pipeline

    folder, result = ray_sweep
    assert [r["status"] for r in result.records] == ["done"] * 4
    saved = json.loads((folder / "sweep.json").read_text())
    assert saved["engine"]["name"] == "ray" and saved["counts"] == {"done": 4, "failed": 0, "pending": 0}
    rows = saved["rows"]
    assert [r["config"] for r in rows] == ["detector=entropy", "detector=calibrated_stacking"]
    for row in rows:
        per_seed = [json.loads((folder / p / "results.json").read_text())["metrics"] for p in row["trials"]]
        assert row["seeds"] == [0, 1] and len(per_seed) == 2
        for key in ("S", "U", "HM", "ZSL"):
            assert row["mean"][key] == pytest.approx(sum(m[key] for m in per_seed) / 2)
        assert row["std"]["HM"] == pytest.approx(abs(per_seed[0]["HM"] - per_seed[1]["HM"]) / 2 ** 0.5)
        for p in row["trials"]:
            assert f"]({p}/)" in result.markdown
            assert Pipeline.load(folder / p).names["detector"] in row["config"]  # an ordinary, loadable run folder
    assert {r["pid"] for r in result.records}.isdisjoint({os.getpid()})
    # one generator + seen + unseen per seed, shared by both gates: 2 × 4 + 2 × 1 fits
    assert fits(result) == 10


def test_ray_rerun_refits_nothing(ray_sweep):
    folder, first = ray_sweep
    weights = sorted(folder.glob("trials/*/components/*/model.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in weights]
    again = run_sweep(spec(folder, "ray"), quiet=True)
    assert all(r["skipped"] for r in again.records)
    assert trial_metrics(again) == trial_metrics(first)
    assert [p.stat().st_mtime_ns for p in weights] == stamps
    # an unfinished trial is resumed from its own folder: every component reused, none refitted
    (folder / "trials" / first.records[0]["id"] / "results.json").unlink()
    third = run_sweep(spec(folder, "ray"), quiet=True)
    resumed = [r for r in third.records if not r.get("skipped")]
    assert len(resumed) == 1 and sorted(resumed[0]["reused"]["run"]) == ["detector", "generator", "seen", "unseen"]
    assert fits(third) == 0 and trial_metrics(third) == trial_metrics(first)


def test_local_engine_gives_the_ray_table(ray_sweep, tmp_path):
    _, on_ray = ray_sweep
    local = run_sweep(spec(tmp_path / "local", "local", max_parallel=2), quiet=True)
    assert trial_metrics(local) == trial_metrics(on_ray)  # identical, not approximately equal
    assert {r["threads"] for r in local.records} == {r["threads"] for r in on_ray.records} == {1}


def test_ray_failed_trial_is_a_row(ray_instance, tmp_path):
    folder = tmp_path / "sweep"
    s = spec(folder, "ray", seeds=[0], axes={"data.source": ["synthetic", "benchmark"]},
             set=[*TINY_GATES, f"data.path={json.dumps(str(tmp_path / 'missing'))}", 'data.dataset="ucf"'])
    result = run_sweep(s, quiet=True)
    status = {r["axes"]["data.source"]: r for r in result.records}
    assert status["synthetic"]["status"] == "done"
    assert status["benchmark"]["status"] == "failed" and "missing" in status["benchmark"]["error"]
    assert "failed:" in (folder / "table.md").read_text()
    assert "failed" in (folder / "table.csv").read_text()


def test_ray_killed_worker_is_retried(ray_instance, tmp_path):
    folder = tmp_path / "sweep"
    s = spec(folder, "ray", seeds=[0], axes={}, set=[*TINY, "unseen.epochs=4"], retries=1)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", run_sweep(s, quiet=True)))
    thread.start()
    trial_file = folder / "trials" / "seed-0" / "trial.json"
    pid, deadline = None, time.time() + 120
    while pid is None and time.time() < deadline:
        try:
            info = json.loads(trial_file.read_text())
            pid = info["pid"] if info["status"] == "running" else None
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert pid is not None and pid != os.getpid(), "the trial never started"
    os.kill(pid, signal.SIGKILL)
    thread.join(180)
    record = box["result"].records[0]
    assert record["status"] == "done" and record["attempt"] == 2 and record["pid"] != pid
