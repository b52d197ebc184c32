"""``avood data synth`` and ``avood data check`` through typer's CliRunner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from avood_core.cli.data import data_app
from avood_core.errors import DataError

runner = CliRunner()


def test_synth_then_check(tmp_path):
    out = tmp_path / "bench"
    res = runner.invoke(data_app, ["synth", str(out), "--dataset", "activitynet", "--data-scale", "0.01", "--data-seed", "2",
                                   "--audio-dim", "4", "--video-dim", "3", "--no-caches"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "stage_2_test_unseen" in res.output
    assert (out / "ActivityNet/features/main_features/text/word_embeddings_activity_normed.npy").is_file()
    res = runner.invoke(data_app, ["check", str(out), "--dataset", "activitynet", "--quick"])
    assert res.exit_code == 0, res.output
    assert "ActivityNet - main_split" in res.output and res.output.strip().splitlines()[-1].startswith("OK:")


def test_synth_from_real_splits(tmp_path, shared):
    res = runner.invoke(data_app, ["synth", str(tmp_path), "--dataset", "ucf", "--data-scale", "0.02", "--splits", str(shared),
                                   "--features", "cls", "--audio-dim", "2", "--video-dim", "3"])
    assert res.exit_code == 0, res.output
    assert "cls_features audio 2 / video 3" in res.output and "cls_split; caches yes" in res.output
    assert (tmp_path / "UCF/_features_processed/cls_features/testcls_split.pkl").is_file()
    res = runner.invoke(data_app, ["check", str(tmp_path / "UCF")])
    assert res.exit_code == 0, res.output


def test_errors_are_avood_errors_with_one_line(tmp_path, tree):
    res = runner.invoke(data_app, ["synth", str(tmp_path), "--dataset", "kinetics"])
    assert res.exit_code == 2 and "'kinetics' is not one of" in res.output.replace("│", " ")
    (sorted((tree / "UCF/features/main_features/audio/stage_1_train").glob("*.h5"))[0]).unlink()
    res = runner.invoke(data_app, ["check", str(tree)])
    assert res.exit_code != 0 and isinstance(res.exception, DataError)
    msg = str(res.exception)
    assert "\n" not in msg and "problem(s) in" in msg and "stage_1_train/" in msg and "is missing" in msg
    assert "problem:" in res.output  # the table was printed before failing


@pytest.mark.parametrize("args", [["--help"], ["synth", "--help"], ["check", "--help"]])
def test_help(args):
    res = runner.invoke(data_app, args)
    assert res.exit_code == 0 and "Usage" in res.output


def test_old_spellings_are_gone(tmp_path):
    """--like/--scale/--seed are not options of synth (they are --dataset/--data-scale/--data-seed)."""
    for old in ("--like", "--scale", "--seed"):
        res = runner.invoke(data_app, ["synth", str(tmp_path / "x"), "--dataset", "ucf", old, "1"])
        assert res.exit_code == 2 and "No such option" in res.output, old
