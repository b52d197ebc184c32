"""Files avood reads back, tampered: each is one ``avood: error:`` line naming the file, exit 2, nothing lost.

One finished tiny run (report and t-SNE included) is built once per module; each case breaks a
private copy of it (a task text row set to NaN, a component weight whose dtype was swapped, a
``pipeline.json`` of an unknown format, JSON nested 100,000 deep, a UTF-16 file...), runs the
real command through the console entry point and asserts exit status 2, nothing on stdout, one
stderr line naming the file and holding the expected text, no traceback, and every file of the
copy byte-identical to what it was before the command.

``sealed`` breaks recompute every checksum a tamperer could recompute (the weights' sha256, the
config's ``config_sha256``, the run's manifest in ``pipeline.json``), so the check under test is
the one on the values, not the checksum. Adding a case is one row of :data:`CASES`. With
``$AVOOD_FAULT_LOG`` set each case appends its outcome (one-line / traceback / silent) there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from avood_core.cli.options import EXIT_ERROR

from test_run_folder_faults import clips, finished  # noqa: F401  (module fixtures: one tiny run with its report)
from test_run_folder_faults import put  # one named entry of a dict of arrays/tensors replaced
from tiny_runs import file_digests, reseal

KINDS = ("generator", "detector", "seen", "unseen")
SEEN_CFG, SEEN_W = "components/seen/config.json", "components/seen/model.safetensors"
PREDICT = ["predict", "{run}", "{clips}"]
EVALUATE = ["evaluate", "{run}"]
REPORT = ["report", "{run}"]
RESUME = ["run", "--resume", "{run}", "-q", "--no-report"]
DEEP = b"[" * 100_000 + b"]" * 100_000


def sealed(brk):
    def both(run: Path) -> None:
        brk(run)
        reseal(run)
    return both


def write(rel: str, data: bytes):
    return lambda run: (run / rel).write_bytes(data)


def utf16(rel: str):
    return lambda run: (run / rel).write_bytes((run / rel).read_text().encode("utf-16"))


def truncate(rel: str, fraction: float):
    return lambda run: (run / rel).write_bytes((run / rel).read_bytes()[: int((run / rel).stat().st_size * fraction)])


def edit_json(rel: str, change):
    def brk(run: Path) -> None:
        data = json.loads((run / rel).read_text())
        change(data)
        (run / rel).write_text(json.dumps(data))
    return brk


def set_key(key: str, value):
    def change(data: dict) -> None:
        *head, last = key.split(".")
        for part in head:
            data = data[part]
        data[last] = value
    return change


def del_key(*path: str):
    """Delete ``data[path[0]]...[path[-1]]`` (parts, as file names hold dots)."""
    def change(data: dict) -> None:
        *head, last = path
        for part in head:
            data = data[part]
        del data[last]
    return change


def tensors(rel: str, change):
    """Rewrite a safetensors file of the run with ``change(dict of tensors)`` applied."""
    def brk(run: Path) -> None:
        from safetensors.torch import load_file, save_file

        data = load_file(str(run / rel))
        change(data)
        save_file({k: v.contiguous() for k, v in data.items()}, str(run / rel))
    return brk


def unseen_row(op):
    def change(t: dict) -> None:
        row = int(t["unseen_classes"][0])
        t["text"][row] = op(t["text"][row])
    return change


def first_float(op):
    """``op`` applied to the first floating tensor of a component's weights."""
    def change(t: dict) -> None:
        key = next(k for k, v in t.items() if v.is_floating_point())
        t[key] = op(t[key])
    return change


def metrics_line(data: bytes):
    def brk(run: Path) -> None:
        path = sorted((run / "metrics").glob("*.jsonl"))[0]
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(data + b"\n" + b"".join(lines))
    return brk


def _nan(t):
    return t * float("nan")


def _inf(t):
    return t + float("inf")


CASES = [
    # task.safetensors: values an unseen class is predicted from, its layout, its bytes
    ("task-unseen-text-nan", tensors("task.safetensors", unseen_row(_nan)), PREDICT, "task.safetensors"),
    ("task-unseen-text-x1e6", tensors("task.safetensors", unseen_row(lambda r: r * 1e6)), EVALUATE, "task.safetensors"),
    ("task-unseen-text-inf", tensors("task.safetensors", unseen_row(_inf)), PREDICT, "task.safetensors"),
    ("sealed-task-text-nan", sealed(tensors("task.safetensors", unseen_row(_nan))), PREDICT, "NaN/inf"),
    ("sealed-task-text-inf", sealed(tensors("task.safetensors", unseen_row(_inf))), EVALUATE, "NaN/inf"),
    ("sealed-task-text-10-columns", sealed(tensors("task.safetensors", put("text", lambda t: t["text"][:, :10]))), EVALUATE,
     "text has 10 columns"),
    ("sealed-task-no-unseen", sealed(tensors("task.safetensors", put("unseen_classes", lambda t: t["unseen_classes"][:0]))),
     PREDICT, "no unseen classes"),
    ("sealed-task-seen-out-of-range", sealed(tensors("task.safetensors", put("seen_classes", lambda t: t["seen_classes"] - 1))),
     PREDICT, "seen/unseen classes must be distinct class ids"),
    ("sealed-task-text-int", sealed(tensors("task.safetensors", put("text", lambda t: t["text"].view(__import__("torch").int32)))),
     PREDICT, "text must be float32"),
    ("task-truncated", truncate("task.safetensors", 0.5), PREDICT, "task.safetensors"),
    ("sealed-task-truncated", sealed(truncate("task.safetensors", 0.5)), PREDICT, "task.safetensors' cannot be read"),
    ("task-empty", write("task.safetensors", b""), EVALUATE, "task.safetensors"),
    # pipeline.json: format, encoding, nesting, types, the manifest
    ("pipeline-format-99", edit_json("pipeline.json", set_key("avood_format", 99)), PREDICT, "avood_format"),
    ("pipeline-format-missing", edit_json("pipeline.json", del_key("avood_format")), PREDICT, "avood_format"),
    ("pipeline-format-a-string", edit_json("pipeline.json", set_key("avood_format", "2")), PREDICT, "avood_format"),
    ("pipeline-a-list", write("pipeline.json", b"[1, 2]"), PREDICT, "holds a list where an object belongs"),
    ("pipeline-utf16", utf16("pipeline.json"), PREDICT, "pipeline.json' is not UTF-8"),
    ("pipeline-deep", write("pipeline.json", DEEP), EVALUATE, "pipeline.json' nests 100000 levels deep"),
    ("pipeline-empty", write("pipeline.json", b""), PREDICT, "pipeline.json' is empty"),
    ("pipeline-fit-hashes-zzz", edit_json("pipeline.json", set_key("fit_hashes", "zzz")), PREDICT, "fit_hashes"),
    ("pipeline-syn-num-a-string", edit_json("pipeline.json", set_key("syn_num", "5")), PREDICT, "syn_num"),
    ("pipeline-class-name-a-number", edit_json("pipeline.json", lambda d: d["class_names"].__setitem__(0, 7)), PREDICT,
     "class_names.0: Input should be a valid string (got 7)"),
    ("pipeline-names-a-list", edit_json("pipeline.json", set_key("names", ["wgan_gp"])), EVALUATE, "names: Input should be"),
    ("pipeline-unknown-key", edit_json("pipeline.json", set_key("extra_field", 1)), PREDICT, "extra_field"),
    ("pipeline-manifest-entry-missing", edit_json("pipeline.json", del_key("files", "task.safetensors")), PREDICT,
     "task.safetensors"),
    ("pipeline-manifest-missing", edit_json("pipeline.json", del_key("files")), EVALUATE, "files"),
    # component weights: checksum, then values and declared dtypes/shapes with every checksum recomputed
    ("weights-f32-as-i32", tensors(SEEN_W, first_float(lambda t: t.view(__import__("torch").int32))), PREDICT, "model.safetensors"),
    ("sealed-weights-f32-as-i32", sealed(tensors(SEEN_W, first_float(lambda t: t.view(__import__("torch").int32)))), PREDICT,
     "dtype"),
    ("sealed-weights-nan", sealed(tensors(SEEN_W, first_float(_nan))), PREDICT, "NaN/inf"),
    ("sealed-weights-inf", sealed(tensors("components/detector/model.safetensors", first_float(_inf))), EVALUATE, "NaN/inf"),
    ("sealed-weights-transposed", sealed(tensors(SEEN_W, first_float(lambda t: t.T if t.ndim == 2 else t[:-1]))), PREDICT,
     "model.safetensors"),
    ("sealed-weights-truncated", sealed(truncate(SEEN_W, 0.5)), PREDICT, "model.safetensors' cannot be read"),
    ("sealed-weights-extra-tensor", sealed(tensors(SEEN_W, put("zzz", lambda t: t[next(iter(t))].clone()))), PREDICT,
     "model.safetensors"),
    # component config.json: encoding, nesting, types
    ("component-config-utf16", utf16(SEEN_CFG), PREDICT, "config.json' is not UTF-8"),
    ("component-config-deep", write(SEEN_CFG, DEEP), PREDICT, "config.json' nests 100000 levels deep"),
    ("component-config-a-list", write(SEEN_CFG, b"[]"), EVALUATE, "holds a list where an object belongs"),
    ("component-config-empty", write(SEEN_CFG, b""), PREDICT, "config.json' is empty"),
    ("sealed-component-kind-a-list", sealed(edit_json(SEEN_CFG, set_key("kind", ["seen"]))), PREDICT,
     "field 'kind' must be a string, not a list"),
    ("sealed-component-state-a-list", sealed(edit_json(SEEN_CFG, set_key("state", []))), EVALUATE, "field 'state' must be an object"),
    ("sealed-component-fit-hash-a-number", sealed(edit_json(SEEN_CFG, set_key("fit_hash", 5))), PREDICT, "field 'fit_hash'"),
    # the run's outputs the report reads
    ("results-deep", write("results.json", DEEP), REPORT, "results.json' nests 100000 levels deep"),
    ("results-utf16", utf16("results.json"), REPORT, "results.json' is not UTF-8"),
    ("results-empty", write("results.json", b""), REPORT, "results.json' is empty"),
    ("metrics-line-deep", metrics_line(DEEP), REPORT, ".jsonl' line 1"),
    ("metrics-line-a-list", metrics_line(b"[1, 2]"), REPORT, ".jsonl' line 1"),
    ("metrics-line-garbage", metrics_line(b"{oops"), REPORT, ".jsonl' line 1"),
    ("metrics-line-epoch-missing", metrics_line(b'{"event": "epoch", "loss": 1.0}'), REPORT, ".jsonl' line 1: field 'epoch' is missing"),
    ("metrics-line-epoch-a-string", metrics_line(b'{"event": "epoch", "epoch": "x"}'), REPORT, "field 'epoch' must be an integer"),
]


def invoke(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    """The console entry point in this process; an escaping exception counts as a traceback."""
    from avood_core.cli.commands import main

    monkeypatch.setattr(sys, "argv", ["avood", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001  (the fault under test: report it as a traceback)
        out = capsys.readouterr()
        return 1, out.out, out.err + f"Traceback (in-process): {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    out = capsys.readouterr()
    return code, out.out, out.err


def _log(name: str, code: int, err: str, lost: bool) -> None:
    path = os.environ.get("AVOOD_FAULT_LOG")
    if path:
        lines = err.splitlines()
        kind = ("traceback" if "Traceback" in err else "silent" if code == 0 else
                "one-line" if len(lines) == 1 and lines[0].startswith("avood: error: ") else "other")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": name, "outcome": kind, "code": code, "lost": lost}) + "\n")


def test_the_cases_have_distinct_names():
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, brk, command, expected", CASES, ids=[c[0] for c in CASES])
def test_tampered_file_is_one_line_naming_it(finished, clips, tmp_path, monkeypatch, capsys, name, brk, command, expected):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    brk(run)
    before = file_digests(run)
    code, out, err = invoke(monkeypatch, capsys, [a.format(run=run, clips=clips) for a in command])
    lost = file_digests(run) != before
    _log(name, code, err, lost)
    assert "Traceback" not in err, err[-2000:]
    assert code == EXIT_ERROR and out == "", (code, out[-500:], err[-2000:])
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("avood: error: "), err
    assert str(run) in err, f"the error names no file: {err}"
    assert expected in err, err
    assert not lost, "the failing command changed the run folder"


def test_an_untampered_copy_still_loads_and_predicts(finished, clips, tmp_path, monkeypatch, capsys):
    """The checks refuse only what was changed: a resealed but unchanged folder predicts as before."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    reseal(run)
    code, out, err = invoke(monkeypatch, capsys, ["predict", str(run), str(clips)])
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == "index,class_id,class_name,gate_score,branch" and len(out.splitlines()) == 5


@pytest.mark.parametrize("brk", [write(SEEN_CFG, DEEP), utf16(SEEN_CFG), write(SEEN_CFG, b"[]"),
                                 sealed(edit_json(SEEN_CFG, set_key("fit_hash", 5)))],
                         ids=["deep", "utf16", "a-list", "sealed-fit-hash-a-number"])
def test_resume_refits_a_component_whose_config_cannot_be_read(finished, tmp_path, monkeypatch, capsys, brk):
    """``run --resume`` names the unreadable config.json and refits that component only (the others are reused)."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    brk(run)
    code, out, err = invoke(monkeypatch, capsys, [a.format(run=run) for a in RESUME])
    assert code == 0 and "Traceback" not in err, err[-2000:]
    assert f"resume: seen: '{run / SEEN_CFG}'" in err and "; refitting" in err, err
    assert json.loads((run / "results.json").read_text())["reused_components"] == ["detector", "generator", "unseen"]
    assert json.loads((run / SEEN_CFG).read_text())["kind"] == "seen"
