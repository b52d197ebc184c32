"""Bad run folders and faults against the CLI: each is one ``avood: error:`` line, exit 1, nothing lost.

One finished tiny run (with its report and t-SNE) is built once per module; each case breaks a
private copy, runs one command through the console entry point and checks

* exit status 1, nothing on stdout, stderr exactly one line starting ``avood: error:`` that
  names the file or folder (its path) and holds the expected text;
* no traceback;
* every file of the run folder byte-identical to what it was before the command (the broken
  file included: a failing command never rewrites, deletes or adds anything; the lock file,
  which holds the writer's pid, aside).

Adding a case is one row of ``CASES``: ``(name, how to break the copy, command, expected text)``.
A break is a function ``(run, tmp, stack)``; ``stack`` (an ExitStack) undoes what must be undone
(e.g. stops a process holding the lock). In commands, ``{run}``, ``{tmp}`` and ``{clips}`` stand
for the run copy, a scratch folder and an .npz of 4 valid clips.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avood_core.cli.options import EXIT_ERROR
from avood_core.errors import CheckpointError

from tiny_runs import file_digests, reseal, tiny_config

REPO = Path(__file__).resolve().parents[2]
SEEN_CFG = "components/seen/config.json"
DET_CFG = "components/detector/config.json"


# -- ways to break a run folder ------------------------------------------------------------

def nothing(run: Path, tmp: Path, stack) -> None:
    """The folder is intact; the command itself is the fault."""


def edit_json(rel: str, change, seal: bool = False, **top):
    """Edit a JSON file of the run: ``change(data)`` mutates it; ``seal``: recompute config_sha256
    (a consistent file of wrong content, as a buggy plugin or a hand edit plus fix-up would leave);
    ``top``: set top-level keys afterwards (e.g. another ``avood_format``)."""
    def brk(run: Path, tmp: Path, stack) -> None:
        from avood_core.pipeline.store import seal as seal_config

        path = run / rel
        data = json.loads(path.read_text())
        change(data)
        data = seal_config(data) if seal else data
        data.update(top)
        path.write_text(json.dumps(data))
    return brk


def without_checksum(data: dict) -> None:
    data.pop("config_sha256", None)


def seen_ids(*ids: int):
    def seen(data: dict) -> None:
        data["state"]["seen_classes"][: len(ids)] = list(ids)
    return seen


def an_unseen_id_as_seen(run: Path, tmp: Path, stack) -> None:
    """The seen classifier's first class id replaced by an unseen class of the task (checksum fixed up)."""
    from safetensors.torch import load_file

    unseen = int(load_file(str(run / "task.safetensors"))["unseen_classes"][0])
    edit_json(SEEN_CFG, seen_ids(unseen), seal=True)(run, tmp, stack)


def threshold(value: float):
    def det(data: dict) -> None:
        data["state"]["threshold"] = value
    return det


def set_key(dotted: str, value):
    def change(data: dict) -> None:
        *head, last = dotted.split(".")
        for key in head:
            data = data[key]
        data[last] = value
    return change


def edit_npz(rel: str, change):
    """Rewrite an .npz of the run with ``change(arrays)`` applied (object arrays allowed here)."""
    def brk(run: Path, tmp: Path, stack) -> None:
        with np.load(run / rel, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        change(arrays)
        with open(run / rel, "wb") as fh:
            np.savez(fh, **arrays)
    return brk


def put(key: str, make):
    def change(arrays: dict) -> None:
        arrays[key] = make(arrays)
    return change


def drop(key: str):
    def change(arrays: dict) -> None:
        del arrays[key]
    return change


def truncate(rel: str, fraction: float):
    def brk(run: Path, tmp: Path, stack) -> None:
        data = (run / rel).read_bytes()
        (run / rel).write_bytes(data[: int(len(data) * fraction)])
    return brk


def write(rel: str, data: bytes):
    def brk(run: Path, tmp: Path, stack) -> None:
        (run / rel).write_bytes(data)
    return brk


def remove(rel: str):
    def brk(run: Path, tmp: Path, stack) -> None:
        (run / rel).unlink()
    return brk


def task_ids(seen=None):
    """task.safetensors with other seen class ids."""
    def brk(run: Path, tmp: Path, stack) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(run / "task.safetensors"))
        tensors["seen_classes"] = torch.tensor(seen, dtype=torch.long)
        save_file(tensors, str(run / "task.safetensors"))
    return brk


def other_tree(run: Path, tmp: Path, stack) -> None:
    from avood_core.data import write_synthetic_tree

    write_synthetic_tree(tmp / "tree", "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))


def folder_at(rel: str):
    def brk(run: Path, tmp: Path, stack) -> None:
        (tmp / rel).mkdir(parents=True)
    return brk


def link_to(name: str, target: str):
    def brk(run: Path, tmp: Path, stack) -> None:
        (tmp / name).symlink_to(run / target)
    return brk


def file_at(rel: str):
    def brk(run: Path, tmp: Path, stack) -> None:
        (tmp / rel).write_text("not a folder\n")
    return brk


HOLDER = """
import sys
from avood_core.run.folder import lock
with lock(sys.argv[1], "test-holder"):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def hold_lock(run: Path, tmp: Path, stack) -> subprocess.Popen:
    """A second real process holds the run folder's lock until the case ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def stop() -> None:
        proc.stdin.close()
        proc.wait(timeout=60)

    stack.callback(stop)
    assert proc.stdout.readline().strip() == "held"
    return proc


RESUME = ["run", "--resume", "{run}", "-q", "--no-report"]
PREDICT = ["predict", "{run}", "{clips}"]
REPORT = ["report", "{run}"]
EVALUATE = ["evaluate", "{run}"]
TAMPERED = "was edited or corrupted after it was saved"
REWRITE = "rewrite it with 'avood run --resume"

CASES = [
    # 1. a resume whose config differs from the run's config.toml
    ("resume-other-param", nothing, [*RESUME, "--set", "generator.beta=0.02"],
     "the config differs from its config.toml (generator.params.beta 0.1 -> 0.02); resuming would refit"),
    ("resume-other-seed", nothing, [*RESUME, "--seed", "5"], "(seed 0 -> 5)"),
    ("resume-other-plugin", nothing, [*RESUME, "--detector", "binary"], "detector.name 'entropy' -> 'binary'"),
    ("resume-other-data-tree", other_tree, [*RESUME, "--data", "{tmp}/tree", "--dataset", "ucf"],
     "data.dataset None -> 'ucf'"),
    ("resume-other-scale", nothing, [*RESUME, "--set", "data.scale=0.1"], "data.scale 0.05 -> 0.1"),
    ("resume-without-config-toml", remove("config.toml"), RESUME, "config.toml' not found"),
    # 2. a second writer while another process holds the run folder
    ("resume-while-locked", hold_lock, RESUME, "is being written by another avood process (pid"),
    ("report-while-locked", hold_lock, REPORT, "is being written by another avood process (pid"),
    # 3. predict -o into the run's own files, a folder, or under a file
    ("predict-o-results-json", nothing, [*PREDICT, "--output", "{run}/results.json"],
     "would overwrite 'results.json' of the run folder"),
    ("predict-o-pipeline-json", nothing, [*PREDICT, "--output", "{run}/pipeline.json"], "would overwrite 'pipeline.json'"),
    ("predict-o-component-config", nothing, [*PREDICT, "--output", f"{{run}}/{SEEN_CFG}"], "would overwrite 'components'"),
    ("predict-o-figures", nothing, [*PREDICT, "--output", "{run}/figures/roc.csv"], "would overwrite 'figures'"),
    ("predict-o-lock-file", nothing, [*PREDICT, "--output", "{run}/.avood.lock.csv"], "would overwrite '.avood.lock.csv'"),
    ("predict-o-symlink-to-results", link_to("out.json", "results.json"), [*PREDICT, "--output", "{tmp}/out.json"],
     "would overwrite 'results.json'"),
    ("predict-o-run-folder", nothing, [*PREDICT, "--output", "{run}"], "is a folder; name a file in it"),
    ("predict-o-folder-named-csv", folder_at("out.csv"), [*PREDICT, "--output", "{tmp}/out.csv"], "is a folder"),
    ("predict-o-under-a-file", file_at("plain"), [*PREDICT, "--output", "{tmp}/plain/out.csv"], "cannot be written"),
    # 4. component config.json: edited (checksum), and wrong scalars even with a consistent checksum
    ("seen-classes-negative", edit_json(SEEN_CFG, seen_ids(-5)), PREDICT, TAMPERED),
    ("seen-classes-999", edit_json(SEEN_CFG, seen_ids(999)), PREDICT, TAMPERED),
    ("threshold-nan", edit_json(DET_CFG, threshold(float("nan"))), PREDICT, TAMPERED),
    ("checksum-removed", edit_json(SEEN_CFG, without_checksum), PREDICT, TAMPERED),
    ("params-edited", edit_json(SEEN_CFG, set_key("params.dropout", 0.3)), EVALUATE, TAMPERED),
    ("sealed-seen-classes-negative", edit_json(SEEN_CFG, seen_ids(-5), seal=True), PREDICT,
     "state.seen_classes holds class id(s) [-5] that are not seen classes"),
    ("sealed-seen-classes-999", edit_json(SEEN_CFG, seen_ids(999), seal=True), PREDICT, "class id(s) [999]"),
    ("sealed-seen-classes-unseen-id", an_unseen_id_as_seen, PREDICT, "that are not seen classes of this run's task"),
    ("sealed-seen-classes-strings", edit_json(SEEN_CFG, set_key("state.seen_classes", ["a"]), seal=True), PREDICT,
     "state.seen_classes must be a list of integer class ids"),
    ("sealed-threshold-nan", edit_json(DET_CFG, threshold(float("nan")), seal=True), PREDICT,
     "learned value(s) ['threshold'] are NaN"),
    ("sealed-dims-zero", edit_json(SEEN_CFG, set_key("state.dims.in_dim", 0), seal=True), EVALUATE,
     "state.dims must map names to positive integers"),
    ("old-format-without-checksum", edit_json(SEEN_CFG, without_checksum, avood_format=1), PREDICT,
     "is not an avood component config (format 2)"),
    ("pipeline-json-class-names", edit_json("pipeline.json", set_key("class_names", ["a", "b"])), PREDICT,
     "class_names must be 51 strings"),
    ("pipeline-json-dims-zero", edit_json("pipeline.json", set_key("dims.audio", 0)), PREDICT,
     "dims.audio: Input should be greater than or equal to 1"),
    ("task-seen-classes-edited", task_ids([-1, 3, 4]), PREDICT, "task.safetensors' was changed after the run was saved"),
    # 7. NaN/inf in the run's outputs
    ("predictions-score-nan", edit_npz("predictions.npz", put("score", lambda a: np.where(
        np.arange(len(a["score"])) == 3, np.nan, a["score"]).astype(np.float32))), REPORT,
     "'score' holds 1 NaN/inf value(s)"),
    ("predictions-score-inf", edit_npz("predictions.npz", put("score", lambda a: np.full_like(a["score"], np.inf))),
     REPORT, "NaN/inf value(s)"),
    ("predictions-threshold-nan", edit_npz("predictions.npz", put("threshold", lambda a: np.array(np.nan, np.float32))),
     REPORT, "'threshold' must be one finite number (got [nan])"),
    # 11. truncated, foreign, pickled or incomplete output files
    ("predictions-truncated", truncate("predictions.npz", 0.5), REPORT, "predictions.npz' cannot be read (BadZipFile"),
    ("predictions-empty", write("predictions.npz", b""), REPORT, "predictions.npz' cannot be read"),
    ("predictions-not-zip", write("predictions.npz", b"PK\x03\x04 garbage"), REPORT, "predictions.npz' cannot be read"),
    ("predictions-object-array", edit_npz("predictions.npz", put("labels", lambda a: np.array([1, "x"], dtype=object))),
     REPORT, "holds object (pickled) arrays, which avood never loads"),
    ("predictions-missing-score", edit_npz("predictions.npz", drop("score")), REPORT, "array(s) score missing"),
    ("predictions-float-labels", edit_npz("predictions.npz", put("labels", lambda a: a["labels"] + 0.5)), REPORT,
     "'labels' must be a 1-D integer array"),
    ("predictions-short-pred", edit_npz("predictions.npz", put("pred", lambda a: a["pred"][:-1])), REPORT,
     "must be 1-D with one entry per test sample"),
    ("results-truncated", truncate("results.json", 0.5), REPORT, "results.json' is not valid JSON"),
    ("results-not-utf8", write("results.json", b"\xff\xfe{}"), REPORT, "results.json' is not UTF-8 text"),
    ("results-a-list", write("results.json", b"[1, 2]"), REPORT, "holds a list where an object belongs"),
    ("results-metric-a-string", edit_json("results.json", set_key("metrics.S", "high")), REPORT,
     "metrics.S: Input should be a valid number (got 'high')"),
    ("results-metrics-a-number", edit_json("results.json", set_key("metrics", 5)), REPORT, "metrics: Input should be"),
    ("results-routing-a-string", edit_json("results.json", set_key("metrics.gate.routing.seen_to_seen", "x")), REPORT,
     "metrics.gate.routing.seen_to_seen"),
    ("results-routing-missing", edit_json("results.json", lambda d: d["metrics"]["gate"]["routing"].pop("seen_to_seen")),
     REPORT, "seen_to_seen: Field required"),
    ("results-timing-a-string", edit_json("results.json", set_key("timings_s.total", "slow")), REPORT, "timings_s.total"),
    ("results-task-split-a-number", edit_json("results.json", set_key("task.test", 3)), REPORT, "task.test must be a table"),
    ("results-missing", remove("results.json"), REPORT, "results.json' not found"),
    ("tsne-truncated", truncate("tsne.npz", 0.3), REPORT, "tsne.npz' cannot be read"),
    ("tsne-indices-out-of-range", edit_npz("tsne.npz", put("indices", lambda a: a["indices"] + 10_000)), REPORT,
     "'indices' must lie in [0,"),
    ("tsne-coords-nan", edit_npz("tsne.npz", put("coords", lambda a: a["coords"] * np.nan)), REPORT, "'coords' must be finite"),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished tiny run with every file a run writes (report, figures, t-SNE included)."""
    from avood_core.run.driver import RunOptions, execute

    out = tmp_path_factory.mktemp("faults")
    return execute(tiny_config(out), RunOptions(tsne_cap=40, quiet=True, echo=lambda m: None)).run_dir


@pytest.fixture(scope="module")
def clips(finished, tmp_path_factory) -> Path:
    from tiny_runs import run_task

    test = run_task(finished).test
    path = tmp_path_factory.mktemp("clips") / "clips.npz"
    np.savez(path, audio=test.audio[:4].numpy(), video=test.video[:4].numpy())
    return path


def cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    """The console entry point in this process: (exit status, stdout, stderr)."""
    from avood_core.cli.commands import main

    monkeypatch.setattr(sys, "argv", ["avood", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_the_cases_have_distinct_names():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name, brk, command, expected", CASES, ids=[c[0] for c in CASES])
def test_fault_is_one_line_exit_2_and_nothing_is_lost(finished, clips, tmp_path, monkeypatch, capsys,
                                                       name, brk, command, expected):
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    shutil.copytree(finished, run)
    scratch.mkdir()
    with contextlib.ExitStack() as stack:
        brk(run, scratch, stack)
        before = file_digests(run)
        args = [a.format(run=run, tmp=scratch, clips=clips) for a in command]
        code, out, err = cli(monkeypatch, capsys, args)
    assert "Traceback" not in err
    assert code == EXIT_ERROR and out == "", (code, out, err)
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("avood: error: "), err
    assert str(run) in err or str(scratch) in err, f"the error names no file: {err}"
    assert expected in err, err
    assert file_digests(run) == before, "the failing command changed the run folder"


# -- the same faults end to end, and what still works ----------------------------------------

def avood(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "avood_core.cli.commands", *args], capture_output=True, text=True, timeout=timeout)


def test_a_second_process_holding_the_lock_stops_a_real_resume_until_it_exits(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = file_digests(run)
    with contextlib.ExitStack() as stack:
        holder = hold_lock(run, tmp_path, stack)
        proc = avood("run", "--resume", str(run), "-q", "--no-report")
        assert proc.returncode == EXIT_ERROR and proc.stdout == "", proc.stderr
        assert proc.stderr.splitlines() == [
            f"avood: error: the run folder '{run}' is being written by another avood process (pid {holder.pid}: "
            f"avood test-holder); wait until it finishes (or stop it), then retry"]
        assert file_digests(run) == before
    # the holder is gone: the lock went with it, the resume runs (all four components reused)
    proc = avood("run", "--resume", str(run), "-q", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "results.json").read_text())["reused_components"] == ["detector", "generator", "seen", "unseen"]


def test_a_killed_writer_leaves_no_stale_lock(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with contextlib.ExitStack() as stack:
        holder = hold_lock(run, tmp_path, stack)
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
        holder.wait(timeout=60)
        from avood_core.run.folder import lock

        with lock(run, "test"):
            assert (run / ".avood.lock").read_text().split()[0] != str(holder.pid)


def test_resume_on_another_tree_with_allow_changes_writes_a_new_folder(finished, tmp_path):
    """The issue's reproduction: --resume RUN --data OTHER_TREE used to refit RUN in place."""
    run = tmp_path / "runs" / "run"
    shutil.copytree(finished, run)
    other_tree(run, tmp_path, None)
    before = file_digests(run)
    proc = avood("run", "--resume", str(run), "--data", str(tmp_path / "tree"), "--dataset", "ucf", "-q",
                 "--no-report", "--allow-changes")
    assert proc.returncode == 0, proc.stderr
    (new,) = [p for p in run.parent.iterdir() if p != run]
    assert f"run folder: {new}" in proc.stderr
    assert file_digests(run) == before
    results = json.loads((new / "results.json").read_text())
    assert results["resumed_from"] == str(run) and results["task"]["audio_dim"] == 6
    assert json.loads((run / "pipeline.json").read_text())["dims"] == {"audio": 512, "video": 512}


def test_predict_may_write_beside_the_run_files(finished, clips, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = file_digests(run)
    code, out, err = cli(monkeypatch, capsys, ["predict", str(run), str(clips), "--output", str(run / "my-predictions.csv")])
    assert code == 0 and out == err == ""
    rows = (run / "my-predictions.csv").read_text().splitlines()
    assert rows[0] == "index,class_id,class_name,gate_score,branch" and len(rows) == 5
    assert {k: v for k, v in file_digests(run).items() if k != "my-predictions.csv"} == before
    assert not list(run.glob(".*.tmp"))  # written through a temp file and os.replace


def test_a_component_config_of_another_format_is_refused_in_one_line(finished, tmp_path):
    """A config without config_sha256 (format 1) is refused, naming the file and the fix."""
    from avood_core.pipeline import Pipeline

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    path = run / "components" / "seen" / "config.json"
    data = json.loads(path.read_text())
    assert data["avood_format"] == 2 and len(data.pop("config_sha256")) == 64
    path.write_text(json.dumps({**data, "avood_format": 1}))
    reseal(run)  # the manifest of pipeline.json records the edited file
    with pytest.raises(CheckpointError, match=r"config.json' is not an avood component config \(format 2\); refit"):
        Pipeline.load(run)


def test_nan_metrics_in_results_json_are_never_reported_as_a_match(finished, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert "S, U and HM recomputed from predictions.npz match results.json." in (run / "report.md").read_text()
    edit_json("results.json", set_key("metrics.HM", float("nan")))(run, tmp_path, None)
    code, out, err = cli(monkeypatch, capsys, ["report", str(run)])
    assert code == 0 and out == "" and err.startswith("wrote ")
    text = (run / "report.md").read_text()
    assert "match results.json" not in text
    assert "WARNING: S, U or HM is NaN, inf or absent in predictions.npz or results.json" in text


def test_the_fix_named_for_broken_outputs_works(finished, tmp_path):
    """'rewrite it with avood run --resume RUN': the outputs come back from the saved components."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    truncate("predictions.npz", 0.5)(run, tmp_path, None)
    write("results.json", b"{")(run, tmp_path, None)
    assert avood("report", str(run)).returncode == EXIT_ERROR
    proc = avood("run", "--resume", str(run), "-q", "--tsne-cap", "40")
    assert proc.returncode == 0, proc.stderr
    proc = avood("report", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "S, U and HM recomputed from predictions.npz match results.json." in (run / "report.md").read_text()
