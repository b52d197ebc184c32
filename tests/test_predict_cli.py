"""``avood predict`` / ``avood evaluate`` on a fitted run folder, the Python API, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avood_core.cli.commands import app
from avood_core.cli.options import EXIT_ERROR
from avood_core.errors import DataError
from avood_core.pipeline import Pipeline
from avood_core.task import AVSamples

from tiny_runs import assert_same_predictions_other_batch, run_task, tiny_run

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["index", "class_id", "class_name", "gate_score", "branch"]
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("runs")).run_dir


@pytest.fixture(scope="module")
def clips(run, tmp_path_factory):
    """Twelve test clips of the run's task as .npz and .h5, plus the arrays."""
    test = run_task(run).test
    audio, video = test.audio[:12].numpy(), test.video[:12].numpy()
    root = tmp_path_factory.mktemp("clips")
    np.savez(root / "clips.npz", audio=audio, video=video)
    with h5py.File(root / "clips.h5", "w") as f:
        f["audio"], f["video"] = audio, video
    return root, audio, video


def _expected_rows(run: Path, audio, video) -> list[dict]:
    pipe = Pipeline.load(run)
    pred = pipe.predict(audio, video)
    return [
        {"index": i, "class_id": int(c), "class_name": pipe.class_names[int(c)], "gate_score": float(s),
         "branch": "seen" if r else "unseen"}
        for i, (c, s, r) in enumerate(zip(pred.labels.tolist(), pred.score.tolist(), pred.routed_seen.tolist()))
    ]


def _read_csv(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(text.splitlines())
    rows = [{"index": int(r["index"]), "class_id": int(r["class_id"]), "class_name": r["class_name"],
             "gate_score": float(r["gate_score"]), "branch": r["branch"]} for r in reader]
    return reader.fieldnames, rows


# -- predict ---------------------------------------------------------------------------

def test_predict_npz_to_csv(run, clips, tmp_path):
    root, audio, video = clips
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["predict", str(run), str(root / "clips.npz"), "--output", str(out)])
    assert res.exit_code == 0, res.output
    fields, rows = _read_csv(out.read_text())
    assert fields == COLUMNS
    assert rows == _expected_rows(run, audio, video)
    assert {r["branch"] for r in rows} <= {"seen", "unseen"} and len(rows) == 12


def test_predict_h5_to_json(run, clips, tmp_path):
    root, audio, video = clips
    out = tmp_path / "out.json"
    res = runner.invoke(app, ["predict", str(run), str(root / "clips.h5"), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [list(r) for r in rows] == [COLUMNS] * 12
    assert rows == _expected_rows(run, audio, video)


def test_predict_to_stdout_and_empty_input(run, clips, tmp_path):
    root, audio, video = clips
    res = runner.invoke(app, ["predict", str(run), str(root / "clips.npz")])
    assert res.exit_code == 0, res.output
    assert _read_csv(res.stdout) == (COLUMNS, _expected_rows(run, audio, video))
    empty = tmp_path / "empty.npz"
    np.savez(empty, audio=np.zeros((0, 512), np.float32), video=np.zeros((0, 512), np.float32))
    res = runner.invoke(app, ["predict", str(run), str(empty)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == ",".join(COLUMNS)


def test_python_api_predict(run, clips):
    _, audio, video = clips
    pipe = Pipeline.load(run)
    a = pipe.predict(audio, video)  # numpy
    b = pipe.predict(torch.from_numpy(audio), torch.from_numpy(video))  # torch
    c = pipe.predict(AVSamples(audio, video, torch.zeros(12, dtype=torch.long)))  # AVSamples
    for p in (b, c):
        assert torch.equal(a.labels, p.labels) and torch.equal(a.score, p.score) and torch.equal(a.routed_seen, p.routed_seen)
    assert torch.equal(a.routed_seen, a.score < pipe.detector.threshold)
    assert torch.isin(a.labels[a.routed_seen], pipe.seen_classes).all()
    assert torch.isin(a.labels[~a.routed_seen], pipe.unseen_classes).all()
    # the same clips inside the run's evaluation (a batch of all test clips: other matmul shapes)
    saved = np.load(run / "predictions.npz", allow_pickle=False)
    assert_same_predictions_other_batch(a.labels, a.score, saved["pred"][:12], saved["score"][:12], pipe.detector.threshold)
    # the whole test split in one call is the run's own computation: bit-identical
    test = run_task(run).test
    full = pipe.predict(test.audio, test.video)
    assert np.array_equal(full.score.numpy(), saved["score"]) and np.array_equal(full.labels.numpy(), saved["pred"])


def test_python_api_rejects_bad_arrays(run, clips):
    _, audio, video = clips
    pipe = Pipeline.load(run)
    bad_nan = audio.copy()
    bad_nan[2, 7] = np.nan
    cases = [
        ((audio[:, :100], video), "audio has shape (12, 100) but the pipeline was fitted on (N, 512)"),
        ((audio, video[:, :-1]), "video has shape (12, 511)"),
        ((audio[0], video[0]), "audio has shape (512,)"),
        ((bad_nan, video), "audio holds NaN/inf in 1 row(s)"),
        ((audio, None), "no video features given"),
        ((audio, video[:5]), "audio has 12 rows but video has 5"),
        ((np.array([["x"] * 512] * 2), video[:2]), "audio is not a numeric array"),
    ]
    for args, message in cases:
        with pytest.raises(DataError) as exc:
            pipe.predict(*args)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(DataError, match="audio dim 24 but the pipeline was fitted on audio dim 512"):
        pipe.predict(AVSamples(torch.zeros(3, 24), torch.zeros(3, 512), torch.zeros(3, dtype=torch.long)))


# -- bad input: one line, exit 1 -----------------------------------------------------

def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from avood_core.cli.commands import main

    monkeypatch.setattr(sys, "argv", ["avood", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _write_bad(path: Path, how: str) -> Path:
    rng = np.random.default_rng(0)
    audio, video = rng.normal(size=(4, 512)).astype(np.float32), rng.normal(size=(4, 512)).astype(np.float32)
    if how == "wrong-dims":
        np.savez(path, audio=audio[:, :128], video=video)
    elif how == "nan":
        audio[1, 2] = np.nan
        np.savez(path, audio=audio, video=video)
    elif how == "inf-h5":
        video[0, 0] = np.inf
        with h5py.File(path, "w") as f:
            f["audio"], f["video"] = audio, video
    elif how == "missing-video":
        np.savez(path, audio=audio)
    elif how == "missing-video-h5":
        with h5py.File(path, "w") as f:
            f["audio"] = audio
    elif how == "row-mismatch":
        np.savez(path, audio=audio, video=video[:3])
    elif how == "strings":
        np.savez(path, audio=np.full((4, 512), "a"), video=video)
    elif how == "object-array":
        np.savez(path, audio=np.array([audio[0], "x"], dtype=object), video=video)
    elif how in ("not-an-archive", "unsupported-suffix"):
        path.write_text("audio,video\n1,2\n")
    elif how == "complex":
        np.savez(path, audio=audio + 1j, video=video)
    elif how == "group-h5":
        with h5py.File(path, "w") as f:
            f.create_group("audio")
            f["video"] = video
    elif how == "declared-huge-h5":
        with h5py.File(path, "w") as f:
            f.create_dataset("audio", shape=(10**9, 512), dtype="f4")  # declared, never written
            f["video"] = video
    elif how == "not-hdf5":
        path.write_bytes(b"\x00" * 64)
    return path


BAD_INPUT = {
    "wrong-dims": ("bad.npz", "audio has shape (4, 128) but the pipeline was fitted on (N, 512)"),
    "nan": ("bad.npz", "audio holds NaN/inf in 1 row(s)"),
    "inf-h5": ("bad.h5", "video holds NaN/inf in 1 row(s)"),
    "missing-video": ("bad.npz", "has no 'video' array"),
    "missing-video-h5": ("bad.h5", "has no 'video' array"),
    "row-mismatch": ("bad.npz", "must be 2-D with the same number of rows"),
    "strings": ("bad.npz", "(strings); store real-valued float features"),
    "object-array": ("bad.npz", "holds object (pickled) arrays, which avood never loads"),
    "not-an-archive": ("bad.npz", "is not an .npz (zip) archive"),
    "not-hdf5": ("bad.h5", "cannot be read (OSError"),
    "complex": ("bad.npz", "array 'audio' has dtype complex64 (complex numbers)"),
    "group-h5": ("bad.h5", "'audio' is a group, not a dataset"),
    "declared-huge-h5": ("bad.h5", "audio: data declares (1000000000, 512)"),
    "unsupported-suffix": ("clips.csv", "unsupported file type '.csv'; use .npz or .h5"),
    "missing-file": ("absent.npz", "not found; pass an .npz or .h5 file"),
}


@pytest.mark.parametrize("how", sorted(BAD_INPUT))
def test_bad_predict_input_is_one_line_exit_1(run, tmp_path, monkeypatch, capsys, how):
    name, message = BAD_INPUT[how]
    path = _write_bad(tmp_path / name, how)
    code, out, err = _cli(monkeypatch, capsys, "predict", str(run), str(path), "--output", str(tmp_path / "out.csv"))
    assert code == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith("avood: error: ") and message in err, err
    assert not (tmp_path / "out.csv").exists()


def test_unsupported_output_suffix_fails_before_any_work(run, clips, tmp_path, monkeypatch, capsys):
    root, _, _ = clips
    code, out, err = _cli(monkeypatch, capsys, "predict", str(run), str(root / "clips.npz"), "--output", str(tmp_path / "out.txt"))
    assert code == EXIT_ERROR and err.count("\n") == 1 and "unsupported file type '.txt'; use .csv or .json" in err
    assert not (tmp_path / "out.txt").exists()


def test_real_console_script_on_bad_input(run, tmp_path):
    path = _write_bad(tmp_path / "bad.npz", "nan")
    avood = Path(sys.executable).parent / "avood"  # the console script of the interpreter running the tests
    proc = subprocess.run([str(avood), "predict", str(run), str(path)], capture_output=True, text=True)
    assert proc.returncode == EXIT_ERROR and proc.stdout == ""
    assert proc.stderr.splitlines() == ["avood: error: audio holds NaN/inf in 1 row(s); clean or drop those rows first"]


# -- a checkpoint whose dims do not match the data -----------------------------------

def test_evaluate_on_data_of_other_dims_fails_clearly(run, tiny_task, tmp_path, monkeypatch, capsys):
    from avood_core.data import write_synthetic_tree

    pipe = Pipeline.load(run)
    with pytest.raises(DataError, match="the data has audio dim 24 but the pipeline was fitted on audio dim 512"):
        pipe.evaluate(tiny_task.test)
    write_synthetic_tree(tmp_path, "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    code, out, err = _cli(monkeypatch, capsys, "evaluate", str(run), "--data", str(tmp_path), "--dataset", "ucf")
    assert code == EXIT_ERROR and err.count("\n") == 1
    assert "avood: error: the data has audio dim 6 but the pipeline was fitted on audio dim 512" in err


def test_evaluate_on_other_classes_fails_clearly(run, monkeypatch):
    """Same dims, different classes: refuse instead of scoring labels against the wrong class table."""
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task

    pipe = Pipeline.load(run)
    other = make_synthetic_task(0, SyntheticSpec(n_seen=5, n_unseen=2).scaled(0.02))
    with pytest.raises(DataError, match="differ from the 51 classes the pipeline was fitted on"):
        pipe.check_task(other)
    assert pipe.check_task(run_task(run)) is not None
