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
    """-o/--output-dir is a folder wherever it appears; --profile is always quick/paper; no old spelling is left."""
    import typer.main

    seen: dict[str, set[str]] = {}

    def walk(cmd) -> None:
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)
        for p in cmd.params:
            if p.param_type_name == "option":
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


def _command_paths(cmd=None, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the app, as argument lists (the root is ``()``)."""
    import typer.main

    cmd = cmd or typer.main.get_command(app)
    subs = getattr(cmd, "commands", {})
    return [path, *(p for name, sub in subs.items() for p in _command_paths(sub, (*path, name)))]


COMMANDS = _command_paths()


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "avood")
def test_dash_h_is_help_everywhere(path):
    res = runner.invoke(app, [*path, "-h"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "--help" in res.output, res.output


def test_the_command_list_is_complete():
    assert {("run",), ("sweep",), ("bench",), ("predict",), ("evaluate",), ("data", "check"), ("ablate", "gates")} <= set(COMMANDS)


def _avood(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The console entry point in a fresh process, as a shell runs it."""
    code = "import sys; sys.argv[0] = 'avood'; from avood_core.cli.commands import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


def test_sweep_without_a_spec_is_a_quick_usage_error():
    import time

    started = time.perf_counter()
    proc = _avood("sweep", timeout=60)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert "Usage: avood sweep [OPTIONS]" in proc.stderr
    assert "give a sweep spec" in proc.stderr
    assert seconds < 5, seconds  # nothing trains


def test_exit_codes_usage_2_runtime_1(tmp_path):
    from avood_core.cli.options import EXIT_CODES, EXIT_ERROR, EXIT_USAGE

    assert (EXIT_ERROR, EXIT_USAGE) == (1, 2) and set(EXIT_CODES) == {0, 1, 2, 130}
    usage = _avood("run", "--no-such-option", timeout=60)
    assert usage.returncode == EXIT_USAGE and "No such option" in usage.stderr
    usage = _avood("evaluate", timeout=60)  # missing RUN_DIR
    assert usage.returncode == EXIT_USAGE and "Missing argument" in usage.stderr
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is no error here")
    proc = _avood("run", "--device", "cuda", "-o", str(tmp_path), *_sets())
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert proc.stderr.splitlines() == ["avood: error: device 'cuda' requested but no CUDA device is available; "
                                        "use --device cpu or auto"]


def _completions(command: str, option: str, incomplete: str = "") -> list[str]:
    """What the shell completion offers for ``avood COMMAND OPTION <incomplete>`` (click's completion API)."""
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    (param,) = [p for p in cmd.params if option in p.opts]
    return [item.value for item in param.shell_complete(cmd.context_class(cmd, info_name=command), incomplete)]


def test_completion_offers_plugin_preset_and_engine_names():
    from avood_core.recipe import list_presets
    from avood_core.registry import get_registry

    reg = get_registry()
    for kind in ("generator", "detector", "seen", "unseen"):
        assert _completions("run", f"--{kind}") == reg.names(kind) and reg.names(kind)
    assert _completions("run", "--logger") == reg.names("logger") == ["mlflow", "tensorboard"]
    assert _completions("run", "--detector", "cal") == ["calibrated_stacking"]
    assert _completions("run", "--preset") == [p.name for p in list_presets()]
    assert _completions("sweep", "--preset", "u") == ["ucf"]
    assert _completions("sweep", "--engine") == _completions("run", "--engine") == ["local", "ray"]


def test_completion_through_the_shell_protocol_without_torch():
    """bash's side of the protocol (_AVOOD_COMPLETE): plugin names, and torch never imported (stays fast)."""
    code = ("import sys; sys.argv[0] = 'avood'\nfrom avood_core.cli.commands import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    env = {**os.environ, "_AVOOD_COMPLETE": "complete_bash", "COMP_WORDS": "avood run --detector ", "COMP_CWORD": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.stdout.split() == ["binary", "calibrated_stacking", "entropy"], proc.stdout + proc.stderr
    assert proc.stderr.strip() == "False"


def test_device_is_auto_by_default_and_quiet_is_everywhere_progress_is():
    from avood_core.config import RunConfig

    assert RunConfig().device == "auto"  # avood run (and sweep trials) take the config's
    for name in ("evaluate", "predict"):
        (device,) = [p for p in _command(name).params if p.name == "device"]
        assert device.default == "auto", name
    for path in (("run",), ("sweep",), ("bench",), ("ablate", "gates")):
        import typer.main

        cmd = typer.main.get_command(app)
        for name in path:
            cmd = cmd.commands[name]
        assert any({"-q", "--quiet"} <= set(p.opts) for p in cmd.params), path
    # predict's output is a FILE: --output, never -o (which is a folder in every command)
    assert [p.opts for p in _command("predict").params if p.name == "output"] == [["--output"]]
