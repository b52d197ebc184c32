"""Scriptable output: every ``--json`` command prints one JSON document with its documented keys on
stdout and nothing else; status lines go to stderr; ``--version``; one CLI vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from avood_core.cli.commands import app
from avood_core.cli.jsonio import JSON_KEYS
from tiny_runs import TINY

runner = CliRunner()


def _sets(*extra: str) -> list[str]:
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


def _doc(command: str, res) -> dict:
    """stdout parsed as one JSON document (json.loads fails on anything else) with the documented keys."""
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert list(doc) == list(JSON_KEYS[command]), command
    return doc


def test_run_json_in_a_real_process_stdout_is_only_json(tmp_path):
    """`avood run --json` as a shell runs it: stdout parses whole, progress and the folder line on stderr."""
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", "from avood_core.cli.commands import main; main()", "run", "--json", "--no-report",
                           "-o", str(tmp_path), *_sets()], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == list(JSON_KEYS["run"])
    assert doc["results"] == json.loads((tmp_path / os.path.basename(doc["run_dir"]) / "results.json").read_text())
    assert {"S", "U", "HM", "ZSL"} <= set(doc["results"]["metrics"])
    assert f"run folder: {doc['run_dir']}" in proc.stderr


def test_evaluate_json(finished_run):
    run_dir, results = finished_run
    doc = _doc("evaluate", runner.invoke(app, ["evaluate", str(run_dir), "--json", "--device", "cpu"]))
    assert doc["run_dir"] == str(run_dir)
    assert doc["metrics"]["HM"] == pytest.approx(results["metrics"]["HM"])


def test_plugins_and_presets_json():
    doc = _doc("plugins", runner.invoke(app, ["plugins", "--json"]))
    found = {(p["kind"], p["name"]) for p in doc["plugins"]}
    assert {("generator", "wgan_gp"), ("unseen", "cross_attention"), ("logger", "mlflow"), ("logger", "tensorboard")} <= found
    assert all(set(p) == {"kind", "name", "distribution", "version", "plugin"} for p in doc["plugins"])
    assert doc["broken"] == []
    doc = _doc("presets", runner.invoke(app, ["presets", "--json"]))
    assert [p["name"] for p in doc["presets"]] == ["activitynet", "ucf", "vggsound"] and all(p["description"] for p in doc["presets"])


def test_ablate_json_and_table_without_status_line(tmp_path):
    res = runner.invoke(app, ["ablate", "gates", "--quiet", "--json", "-o", str(tmp_path), *_sets()])
    doc = _doc("ablate", res)
    folder = tmp_path / os.path.basename(doc["run_dir"])
    assert doc["ablation"] == "gates" and doc["table"] == (folder / "table.md").read_text()
    assert doc["results"] == json.loads((folder / "results.json").read_text())
    assert "run folder:" in res.stderr and "run folder:" not in res.stdout


def test_data_check_json(tmp_path):
    from avood_core.cli.data import data_app

    res = runner.invoke(data_app, ["synth", str(tmp_path), "--dataset", "ucf", "--data-scale", "0.01",
                                   "--audio-dim", "4", "--video-dim", "3", "--no-caches"])
    assert res.exit_code == 0, res.output
    doc = _doc("data check", runner.invoke(app, ["data", "check", str(tmp_path), "--quick", "--json"]))
    assert doc["ok"] is True and doc["problems"] == [] and doc["root"] == str(tmp_path)
    assert doc["sections"][0]["dataset"] == "UCF" and {s["stage"] for s in doc["sections"][0]["stages"]} >= {"stage_1_train"}
    next((tmp_path / "UCF/features/main_features/audio/stage_1_train").glob("*.h5")).unlink()
    res = runner.invoke(app, ["data", "check", str(tmp_path), "--quick", "--json"])
    assert res.exit_code != 0  # still a failure for the shell, with the document on stdout
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["problems"]


def test_bench_json(tmp_path):
    args = ["bench", "--json", "--dataset", "ucf", "--epochs-scale", "0.001", "--data-scale", "0.02", "--generated",
            "--threads", "1", "-o", str(tmp_path), "--set", "unseen.enc_hidden=32", "--set", "unseen.proj_hidden=32"]
    res = runner.invoke(app, args)
    doc = _doc("bench", res)
    assert doc["bench"] == json.loads((tmp_path / "bench.json").read_text())
    assert "wrote" in res.stderr and "wrote" not in res.stdout


def test_version():
    from avood_core import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"avood {__version__}" and __version__ != "0+unknown"


def test_config_takes_every_run_option(tmp_path):
    """`avood config` resolves what `avood run` would with the same options (seed, device, jobs, output dir...)."""
    args = ["--seed", "7", "--device", "cuda:1", "--jobs", "2", "-o", str(tmp_path), "--profile", "paper",
            "--logger", "tensorboard", "--set", "logging.every_n_steps=5"]
    res = runner.invoke(app, ["config", "--json", *args])
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.stdout)
    assert (cfg["seed"], cfg["device"], cfg["jobs"], cfg["output_dir"], cfg["profile"]) == (7, "cuda:1", 2, str(tmp_path), "paper")
    assert cfg["logging"]["loggers"] == ["tensorboard"] and cfg["logging"]["every_n_steps"] == 5
    assert cfg["logging"]["tensorboard"] == {"dir": None}  # the logger's params, defaults filled
    run_params = {p.name for p in _command("run").params}
    config_params = {p.name for p in _command("config").params}
    assert run_params - config_params <= {"quiet", "resume", "allow_changes", "seeds", "engine", "max_parallel", "address", "report", "tsne_cap", "as_json"}


def _command(name: str):
    import typer.main

    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("args", [["config", "--format", "yaml"], ["run", "--profile", "fast"], ["bench", "--stages", "3"],
                                  ["evaluate", "x", "--dataset", "kinetics"]])
def test_fixed_value_options_are_choices(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "is not one of" in res.output.replace("│", " ")


def test_one_meaning_per_option_name():
    """-o/--output-dir is a folder wherever it appears; --profile is always quick/paper; old spellings are hidden."""
    import typer.main

    seen: dict[str, set[str]] = {}

    def walk(cmd) -> None:
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                for opt in p.opts:
                    seen.setdefault(opt, set()).add(p.name)

    walk(typer.main.get_command(app))
    assert seen["-o"] == {"output_dir"} and seen["--output-dir"] == {"output_dir"}
    assert seen["--profile"] == {"profile"} and seen["--dataset"] == {"dataset"} and seen["--seed"] == {"seed"}
    for old in ("--out", "--datasets", "--like", "--scale", "--tree-seed"):
        assert old not in seen, old


@pytest.mark.parametrize("command", [["run"], ["sweep"], ["ablate", "gates"]])
def test_seeds_is_one_repeatable_option_everywhere(command):
    """--seeds takes repeated or comma-separated values in every command that runs several seeds."""
    import typer.main

    from avood_core.cli.jsonio import int_list

    cmd = typer.main.get_command(app)
    for name in command:
        cmd = cmd.commands[name]
    (opt,) = [p for p in cmd.params if "--seeds" in p.opts]
    assert opt.multiple, command
    assert int_list(["0,1", "2"], "--seeds") == [0, 1, 2]
    with pytest.raises(Exception, match="expected integers"):
        int_list(["0,x"], "--seeds")
