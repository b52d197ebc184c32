"""Component checkpoints: save → load round trips, atomic writes, no pickles, bad checkpoints.

Uses the real plugins (wgan_gp, entropy, mlp, cross_attention) at tiny budgets (tiny_runs.py).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avood_core.pipeline.store import CONFIG, WEIGHTS, load_component, read_config, save_component, seal
from avood_core.cli.commands import app
from avood_core.cli.options import EXIT_ERROR
from avood_core.errors import CheckpointError
from avood_core.pipeline import Pipeline

from tiny_runs import KINDS, predictions, run_task, weights

REPO = Path(__file__).resolve().parents[1]


def _same_outputs(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


# -- save → load ---------------------------------------------------------------------------

def test_run_folder_layout(finished_run):
    run_dir, _ = finished_run
    for kind in KINDS:
        folder = run_dir / "components" / kind
        assert sorted(p.name for p in folder.iterdir()) == [CONFIG, WEIGHTS]
        config = json.loads((folder / CONFIG).read_text())
        assert config["kind"] == kind and config["distribution"] == "avood" and config["version"]
        assert config["params"] and "dims" in config["state"] and len(config["fit_hash"]) == 16
    for name in ("config.toml", "results.json", "pipeline.json", "task.safetensors", "predictions.npz"):
        assert (run_dir / name).is_file(), name
    detector = json.loads((run_dir / "components/detector" / CONFIG).read_text())
    assert np.isfinite(detector["state"]["threshold"])  # the learned threshold lives in config.json
    # no temp or backup folder is left behind by a clean run
    assert not [p for p in (run_dir / "components").iterdir() if p.name.startswith(".")]


def test_load_gives_identical_metrics_and_predictions(finished_run):
    run_dir, results = finished_run
    task = run_task(run_dir)
    pipe = Pipeline.load(run_dir)
    evaluation = pipe.evaluate(task.test)
    assert evaluation.metrics == results["metrics"]
    _same_outputs({k: v.numpy() for k, v in evaluation.outputs.items()}, predictions(run_dir))
    pred = pipe.predict(task.test.audio, task.test.video)
    saved = predictions(run_dir)
    assert np.array_equal(pred.labels.numpy(), saved["pred"])
    assert np.array_equal(pred.score.numpy(), saved["score"])
    assert np.array_equal(pred.routed_seen.numpy(), saved["routed_seen"])


def test_inference_runs_at_fixed_threads_whatever_the_caller(finished_run):
    """The run evaluated at its own thread count; a reload at another one gives the same bits."""
    from avood_core.train.loops import INFERENCE_THREADS

    run_dir, results = finished_run
    task = run_task(run_dir)
    pipe = Pipeline.load(run_dir)
    counts, score = [], pipe.detector.score
    pipe.detector.score = lambda samples: (counts.append(torch.get_num_threads()), score(samples))[1]
    before = torch.get_num_threads()
    torch.set_num_threads(2 if INFERENCE_THREADS != 2 else 1)
    try:
        caller = torch.get_num_threads()
        evaluation = pipe.evaluate(task.test)
        assert evaluation.metrics == results["metrics"]
        pred = pipe.predict(task.test)
        assert torch.get_num_threads() == caller  # restored
    finally:
        torch.set_num_threads(before)
    assert counts == [INFERENCE_THREADS, INFERENCE_THREADS]
    _same_outputs({k: v.numpy() for k, v in evaluation.outputs.items()}, predictions(run_dir))
    assert np.array_equal(pred.score.numpy(), predictions(run_dir)["score"])


def test_each_component_round_trips_bit_for_bit(finished_run, tmp_path):
    run_dir, _ = finished_run
    for kind in KINDS:
        comp = load_component(run_dir / "components" / kind, kind=kind)
        assert comp.fitted and comp.kind == kind
        saved = weights(run_dir, kind)
        state = comp.state_tensors()
        assert state.keys() == saved.keys()
        assert all(torch.equal(state[k], saved[k]) for k in saved)
        # saving the loaded component again reproduces the same files (weights byte-identical)
        config = read_config(run_dir / "components" / kind)
        save_component(comp, tmp_path / kind, config["name"], fit_hash=config["fit_hash"])
        again = read_config(tmp_path / kind)
        assert again["weights_sha256"] == config["weights_sha256"]
        assert {k: again[k] for k in ("params", "state", "fit_hash")} == {k: config[k] for k in ("params", "state", "fit_hash")}


def test_pipeline_save_api_round_trip(finished_run, tmp_path):
    run_dir, _ = finished_run
    task = run_task(run_dir)
    pipe = Pipeline.load(run_dir)
    pipe.save(tmp_path / "copy")
    again = Pipeline.load(tmp_path / "copy")
    a, b = pipe.predict(task.test), again.predict(task.test)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.score, b.score)
    assert again.class_names == pipe.class_names and again.dims == pipe.dims == {"audio": 512, "video": 512}


def test_avood_evaluate_cli_matches_results(finished_run):
    run_dir, results = finished_run
    res = CliRunner().invoke(app, ["evaluate", str(run_dir)])
    assert res.exit_code == 0, res.output
    m = results["metrics"]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("AV-OOD (gated)"))
    assert line.split()[-3:] == [f"{m['S']:.2f}", f"{m['U']:.2f}", f"{m['HM']:.2f}"]
    assert f"ZSL {m['ZSL']:.2f}" in res.stdout


# -- no pickles --------------------------------------------------------------------------

def test_run_folder_holds_no_pickles(finished_run):
    run_dir, _ = finished_run
    from safetensors import safe_open

    for path in run_dir.rglob("*"):
        if not path.is_file():
            continue
        assert path.suffix in {".json", ".jsonl", ".toml", ".safetensors", ".npz", ".md", ".html", ".png", ".lock"}, path
        head = path.read_bytes()[:2]
        assert head != b"\x80\x04" and head[:1] != b"\x80", f"{path} looks like a pickle"
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                for key in f.files:
                    assert f[key].dtype != object
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as f:
                assert list(f.keys())


def test_loading_never_unpickles(finished_run, monkeypatch):
    run_dir, _ = finished_run

    def forbidden(*args, **kwargs):
        raise AssertionError("a load path unpickled something")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    task_x = run_task(run_dir).test
    pipe = Pipeline.load(run_dir)
    pipe.predict(task_x.audio, task_x.video)
    for kind in KINDS:
        load_component(run_dir / "components" / kind)


# -- atomic writes ---------------------------------------------------------------------

def _seen_state(folder: Path):
    comp = load_component(folder, kind="seen")
    return comp, {k: v.clone() for k, v in comp.state_tensors().items()}


def _assert_still_loads(folder: Path, expected: dict) -> None:
    comp = load_component(folder, kind="seen")
    state = comp.state_tensors()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.tmp-")]
    assert not leftovers


def _perturbed(comp):
    with torch.no_grad():
        for p in comp.net.parameters():
            p.add_(1.0)
    return comp


def test_exception_while_writing_weights_keeps_previous_checkpoint(run_copy, monkeypatch):
    from avood_core.pipeline import store

    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    real = store.save_file

    def half_written(tensors, filename, metadata=None):
        real(tensors, filename, metadata)
        with open(filename, "r+b") as fh:
            fh.truncate(os.path.getsize(filename) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "save_file", half_written)
    with pytest.raises(OSError, match="No space"):
        save_component(_perturbed(comp), folder, "mlp")
    _assert_still_loads(folder, before)


def _save_with_failing_rename(monkeypatch, comp, folder, fails) -> None:
    """``save_component`` while ``os.rename(src, dst)`` raises where ``fails(call_number, src)`` says so."""
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if fails(len(calls), Path(src)):
            raise OSError("simulated crash during rename")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="simulated crash"):
        save_component(_perturbed(comp), folder, "mlp")
    monkeypatch.setattr(os, "rename", real)


@pytest.mark.parametrize("fail_on", [1, 2])
def test_exception_during_the_swap_keeps_previous_checkpoint(run_copy, monkeypatch, fail_on):
    """fail_on=1: the old folder is still in place; 2: cut between the two renames (repaired on load)."""
    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    _save_with_failing_rename(monkeypatch, comp, folder, lambda call, src: call == fail_on)
    assert folder.exists() == (fail_on == 1)
    _assert_still_loads(folder, before)
    assert not folder.with_name(".seen.old").exists()


def test_save_after_a_cut_swap_never_drops_the_only_good_copy(run_copy, monkeypatch):
    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    os.rename(folder, folder.with_name(".seen.old"))  # state left by a crash between the two renames
    _save_with_failing_rename(monkeypatch, comp, folder, lambda call, src: ".tmp-" in src.name)  # the new one fails
    _assert_still_loads(folder, before)


_KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from avood_core.pipeline import store
    from avood_core.pipeline.store import load_component, save_component

    folder, where = Path(sys.argv[1]), sys.argv[2]
    comp = load_component(folder, kind="seen")
    for p in comp.net.parameters():
        p.data.add_(1.0)
    real_rename, real_save = os.rename, store.save_file
    calls = []

    def rename(src, dst):
        calls.append(src)
        if where == "between-renames" and len(calls) == 2:
            os._exit(9)  # killed: no cleanup, no exception handlers
        return real_rename(src, dst)

    def save_file(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata)
        if where == "mid-write":
            with open(filename, "r+b") as fh:
                fh.truncate(100)
            os._exit(9)

    os.rename, store.save_file = rename, save_file
    save_component(comp, folder, "mlp")
    sys.exit(0)
""")


@pytest.mark.parametrize("where", ["mid-write", "between-renames"])
def test_killed_save_leaves_previous_checkpoint_loadable(run_copy, where):
    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(folder), where], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    comp2 = load_component(folder, kind="seen")  # repairs a cut swap
    assert all(torch.equal(comp2.state_tensors()[k], before[k]) for k in before)
    # a later save works despite the killed save's leftovers, and replaces the checkpoint
    expected = {k: v.clone() for k, v in _perturbed(comp2).state_tensors().items()}
    save_component(comp2, folder, "mlp")
    after = load_component(folder, kind="seen").state_tensors()
    assert all(torch.equal(after[k], expected[k]) for k in expected)
    assert not any(torch.equal(after[k], before[k]) for k in before)


def test_nan_weights_are_never_saved(run_copy):
    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    with torch.no_grad():
        next(comp.net.parameters())[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN/inf.*not saved"):
        save_component(comp, folder, "mlp")
    _assert_still_loads(folder, before)
    with pytest.raises(CheckpointError):
        save_component(comp, run_copy / "components" / "fresh", "mlp")
    assert not (run_copy / "components" / "fresh").exists()


def test_nan_learned_threshold_is_never_saved(run_copy):
    folder = run_copy / "components" / "detector"
    det = load_component(folder, kind="detector")
    det.threshold = float("nan")
    with pytest.raises(CheckpointError, match=r"detector 'entropy': learned value\(s\) \['threshold'\] are NaN"):
        save_component(det, folder, "entropy")
    assert np.isfinite(load_component(folder, kind="detector").threshold)


# -- bad checkpoints: one line each, exit 1 --------------------------------------------

def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the console entry point in-process; returns (exit status, stderr)."""
    from avood_core.cli.commands import main

    monkeypatch.setattr(sys, "argv", ["avood", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def _break(run_dir: Path, how: str) -> None:
    folder = run_dir / "components" / "seen"
    weights_path, config_path = folder / WEIGHTS, folder / CONFIG
    if how == "missing-weights":
        weights_path.unlink()
    elif how == "corrupted-weights":
        data = bytearray(weights_path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights_path.write_bytes(bytes(data))
    elif how == "truncated-weights":
        weights_path.write_bytes(weights_path.read_bytes()[:64])
    elif how == "garbage-weights-matching-checksum":  # checksum fixed up: the safetensors reader must refuse it
        weights_path.write_bytes(b"not a safetensors file")
        config = json.loads(config_path.read_text())
        import hashlib

        config["weights_sha256"] = hashlib.sha256(b"not a safetensors file").hexdigest()
        config_path.write_text(json.dumps(seal(config)))  # a consistent config of other content
    elif how == "plugin-not-installed":
        config = json.loads(config_path.read_text())
        config.update(name="fancy_seen", distribution="avood-fancy", version="9.9")
        config_path.write_text(json.dumps(seal(config)))  # a consistent config of other content
    elif how == "missing-config":
        config_path.unlink()
    elif how == "invalid-json":
        config_path.write_text("{ not json")
    elif how == "wrong-kind":
        shutil.rmtree(folder)
        shutil.copytree(run_dir / "components" / "detector", folder)
    elif how == "invalid-params":
        config = json.loads(config_path.read_text())
        config["params"]["dropout"] = 7
        config_path.write_text(json.dumps(seal(config)))  # a consistent config of other content
    elif how == "weights-of-other-shape":
        config = json.loads(config_path.read_text())
        config["state"]["dims"]["in_dim"] += 1
        config_path.write_text(json.dumps(seal(config)))  # a consistent config of other content
    elif how == "missing-pipeline-json":
        (run_dir / "pipeline.json").unlink()
    else:  # pragma: no cover
        raise ValueError(how)


BAD = {
    "missing-weights": "model.safetensors' not found",
    "corrupted-weights": "does not match its config.json checksum",
    "truncated-weights": "does not match its config.json checksum",
    "garbage-weights-matching-checksum": "cannot be read",
    "plugin-not-installed": "needs seen 'fancy_seen' from avood-fancy 9.9, which is not installed",
    "missing-config": "config.json' not found",
    "invalid-json": "is not valid JSON",
    "wrong-kind": "holds a detector 'entropy' but this folder is the seen slot",
    "invalid-params": "params of seen 'mlp' no longer validate (dropout",
    "weights-of-other-shape": "does not fit seen 'mlp'",
    "missing-pipeline-json": "is not a finished avood run folder",
}


@pytest.mark.parametrize("how", sorted(BAD))
def test_bad_checkpoint_is_one_line_exit_1(run_copy, tmp_path, monkeypatch, capsys, how):
    _break(run_copy, how)
    with pytest.raises(CheckpointError, match=None) as exc:
        Pipeline.load(run_copy)
    assert BAD[how] in str(exc.value) and "\n" not in str(exc.value)
    clips = tmp_path / "clips.npz"
    np.savez(clips, audio=np.zeros((2, 512), np.float32), video=np.zeros((2, 512), np.float32))
    for args in (["evaluate", str(run_copy)], ["predict", str(run_copy), str(clips)]):
        code, err = _cli(monkeypatch, capsys, *args)
        assert code == EXIT_ERROR
        assert err.count("\n") == 1 and err.startswith("avood: error: ") and BAD[how] in err


def test_real_console_script_exit_status(run_copy):
    _break(run_copy, "corrupted-weights")
    avood = Path(sys.executable).parent / "avood"  # the console script of the interpreter running the tests
    proc = subprocess.run([str(avood), "evaluate", str(run_copy)], capture_output=True, text=True)
    assert proc.returncode == EXIT_ERROR and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "does not match its config.json checksum" in proc.stderr


def test_a_new_save_clears_what_a_killed_save_left(run_copy):
    folder = run_copy / "components" / "seen"
    comp, before = _seen_state(folder)
    stale = folder.with_name(".seen.tmp-killed")
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a file")
    other = folder.with_name(".unseen.tmp-other")  # another component's: not touched
    other.mkdir()
    save_component(comp, folder, "mlp")
    assert not stale.exists() and other.exists()
    _assert_still_loads(folder, before)
