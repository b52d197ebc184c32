"""The recipe of a benchmark run: ``--dataset D`` on ``--data`` means D's preset and the paper
profile unless the user says otherwise; the recipe is named on stderr and in results.json, and a
preset of another dataset or the quick profile on benchmark data is warned about once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avood_core.cli import app
from tiny_runs import TINY

runner = CliRunner()
SHARED = Path(os.environ.get("AVOOD_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "avgzsl")
PAPER_EPOCHS = {"generator": 5, "detector": 80, "seen": 200, "unseen": 50}  # paper §4.2
PAPER = {"ucf": (50, 0.1), "activitynet": (1000, 0.99), "vggsound": (50, 0.1)}  # syn_num, unseen bn_momentum
WARNING = "avood: warning: "


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> Path:
    """One tiny generated tree per dataset under one root (no shared files needed)."""
    from avood_core.data import write_synthetic_tree

    root = tmp_path_factory.mktemp("bench")
    for ds in PAPER:
        write_synthetic_tree(root, ds, scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2),
                             caches=False)
    return root


def config(*args: str) -> tuple[dict, list[str]]:
    """``avood config --format json ARGS``: the resolved config and the stderr lines."""
    res = runner.invoke(app, ["config", "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), res.stderr.splitlines()


@pytest.mark.parametrize("dataset", list(PAPER))
def test_dataset_on_benchmark_data_means_its_preset_and_the_paper_profile(trees, dataset):
    cfg, err = config("--data", str(trees), "--dataset", dataset)
    syn_num, momentum = PAPER[dataset]
    assert cfg["profile"] == "paper" and cfg["syn_num"] == syn_num
    assert cfg["unseen"]["params"]["bn_momentum"] == momentum
    assert {k: cfg[k]["params"]["epochs"] for k in PAPER_EPOCHS} == PAPER_EPOCHS
    from avood_core.config import build_config, resolve

    explicit = resolve(build_config(preset=dataset, values={"data.source": "benchmark", "data.path": str(trees)}))
    assert cfg == explicit.model_dump(mode="json")  # the same as naming the preset
    assert err == [f"recipe: preset {dataset} (the default of --dataset {dataset} on benchmark data), "
                   f"profile paper, overrides: none"]


@pytest.mark.parametrize("dataset", list(PAPER))
def test_quick_profile_on_benchmark_data_warns_once(trees, dataset):
    cfg, err = config("--data", str(trees), "--dataset", dataset, "--profile", "quick")
    assert cfg["profile"] == "quick" and cfg["syn_num"] == PAPER[dataset][0]  # still the preset's values
    assert cfg["detector"]["params"]["epochs"] < PAPER_EPOCHS["detector"]
    assert err[0].startswith(f"recipe: preset {dataset} (") and err[0].endswith('profile quick, overrides: profile="quick"')
    assert [line for line in err if line.startswith(WARNING)] == err[1:] and len(err) == 2
    assert "quick profile on benchmark data" in err[1] and "--profile paper" in err[1]


@pytest.mark.parametrize("preset, dataset", [("ucf", "activitynet"), ("activitynet", "vggsound"), ("vggsound", "ucf")])
def test_preset_of_another_dataset_warns_once(trees, preset, dataset):
    cfg, err = config("--data", str(trees), "--dataset", dataset, "--preset", preset)
    assert cfg["data"]["dataset"] == dataset and cfg["syn_num"] == PAPER[preset][0]  # allowed: the preset's values
    assert err[0] == f'recipe: preset {preset} (--preset), profile paper, overrides: data.dataset="{dataset}"'
    assert len(err) == 2 and err[1].startswith(WARNING)
    assert f"preset '{preset}' holds {preset}'s hyperparameters" in err[1] and f"--preset {dataset}" in err[1]


def test_matching_preset_and_explicit_paper_profile_do_not_warn(trees):
    _, err = config("--data", str(trees), "--dataset", "activitynet", "--preset", "activitynet", "--profile", "paper")
    assert len(err) == 1 and not any(WARNING in line for line in err)


def test_preset_none_and_a_config_file_turn_the_default_off(trees, tmp_path):
    cfg, err = config("--data", str(trees), "--dataset", "activitynet", "--preset", "none")
    assert cfg["syn_num"] == 50 and cfg["profile"] == "quick" and cfg["unseen"]["params"]["bn_momentum"] == 0.1
    assert err[0].startswith("recipe: no preset (--preset none), profile quick") and len(err) == 2
    assert "quick profile on benchmark data" in err[1]
    own = tmp_path / "own.toml"
    own.write_text('profile = "paper"\nsyn_num = 7\n')
    cfg, err = config("-c", str(own), "--data", str(trees), "--dataset", "activitynet")
    assert cfg["syn_num"] == 7 and cfg["unseen"]["params"]["bn_momentum"] == 0.1  # the user's recipe, no preset
    assert err == [f'recipe: no preset (a config file), profile paper, overrides: config file {own}; '
                   f'data.dataset="activitynet"']


def test_embedded_task_keeps_the_quick_default():
    cfg, err = config("--seed", "3", "--set", "detector.lr=0.01")
    assert cfg["profile"] == "quick" and cfg["data"]["source"] == "synthetic" and cfg["syn_num"] == 50
    assert err == ["recipe: no preset (the embedded task's default), profile quick, overrides: "
                   "--set detector.lr=0.01; seed=3"]


def test_bad_config_is_one_line_without_a_recipe_line(trees):
    res = runner.invoke(app, ["config", "--data", str(trees), "--dataset", "ucf", "--set", "syn_num=0"])
    assert res.exit_code != 0 and res.stderr == ""  # the ConfigError reaches main() (one line there)


def test_run_names_its_recipe_first_on_stderr_and_in_results(trees, tmp_path):
    sets = [a for s in TINY for a in ("--set", s)]
    res = runner.invoke(app, ["run", "--no-report", "--json", "--data", str(trees), "--dataset", "ucf", *sets,
                              "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    first = res.stderr.splitlines()[0]
    assert first.startswith("recipe: preset ucf (the default of --dataset ucf on benchmark data), profile paper, "
                            "overrides: --set data.scale=0.05; ")
    recipe = json.loads(res.stdout)["results"]["recipe"]
    assert recipe["preset"] == "ucf" and recipe["profile"] == "paper" and recipe["warnings"] == []
    assert recipe["overrides"] == [f"--set {s}" for s in TINY] + [f'output_dir="{tmp_path}"']
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    assert json.loads((run_dir / "results.json").read_text())["recipe"] == recipe


@pytest.mark.skipif(not (SHARED / "ActivityNet" / "class-split").is_dir(),
                    reason="the real AV-GZSL splits are absent: set AVOOD_SHARED or provide ../shared/avgzsl")
def test_a_tree_from_the_real_splits(tmp_path):
    res = runner.invoke(app, ["data", "synth", str(tmp_path), "--dataset", "activitynet", "--data-scale", "0.01",
                              "--splits", str(SHARED), "--audio-dim", "4", "--video-dim", "4", "--no-caches"])
    assert res.exit_code == 0, res.output
    cfg, err = config("--data", str(tmp_path), "--dataset", "activitynet")
    assert (cfg["syn_num"], cfg["unseen"]["params"]["bn_momentum"]) == (1000, 0.99) and len(err) == 1


def test_quiet_run_keeps_the_warning_but_not_the_recipe_line(trees, tmp_path):
    sets = [a for s in TINY for a in ("--set", s)]
    res = runner.invoke(app, ["run", "-q", "--no-report", "--data", str(trees), "--dataset", "ucf", "--profile", "quick",
                              *sets, "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert lines[0].startswith(WARNING + "the quick profile on benchmark data") and sum(WARNING in x for x in lines) == 1
    assert not any(x.startswith("recipe: ") for x in lines)
    run_dir = Path(lines[-1].removeprefix("run folder: "))
    assert json.loads((run_dir / "results.json").read_text())["recipe"]["profile"] == "quick"
