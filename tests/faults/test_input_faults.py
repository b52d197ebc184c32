"""Bad inputs of the config, the data tree and the output options: each is one `avood: error:` line.

Every row of :data:`CASES` is one real fault (a real non-UTF-8 file, a real chmod 000 folder, a
real symlink loop, a real read-only folder...) made in a fresh copy of a tiny benchmark tree,
then the CLI is run on it. Each case asserts: exit status 1 (``avood data check`` too), stderr
is exactly one line starting ``avood: error:`` that holds the expected text, no traceback
anywhere, and every file that existed before the command is still there, byte for byte.

Permission faults are real even though the suite runs as root (root ignores chmod): their
subprocess drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability bounding set
before exec (``prctl(PR_CAPBSET_DROP)``), so the kernel checks the file modes for it as for
any user. Adding a case is one line of :data:`CASES`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from avood_core.cli.options import EXIT_ERROR

from tiny_runs import TINY

UCF = "tree/UCF"
CS = f"{UCF}/class-split"
FEAT = f"{UCF}/features/main_features"
CACHE = f"{UCF}/_features_processed/main_features/trainingmain_split.pkl"
SETS = tuple(a for s in TINY for a in ("--set", s))
RUN_DATA = ("run", "-q", "--no-report", "--data", "{d}/tree", "--dataset", "ucf", *SETS, "-o", "{d}/runs")
RUN = ("run", "-q", "--no-report", *SETS)
CHECK = ("data", "check", "{d}/tree")


# -- ways to break the copy of the template (each takes the case folder) --------------------------

def nothing(d: Path) -> None:
    pass


def write(rel: str, data: bytes, append: bool = False) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab" if append else "wb") as fh:
            fh.write(data)
    return make


def chmod(rel: str, mode: int) -> Callable[[Path], None]:
    """``chmod mode`` on ``rel`` (a new folder if it does not exist yet)."""
    def make(d: Path) -> None:
        if not (d / rel).exists():
            (d / rel).mkdir(parents=True)
        os.chmod(d / rel, mode)
    return make


def first(rel_dir: str) -> Callable[[Path], str]:
    """The first .h5 file of a stage folder, relative to the case folder."""
    return lambda d: str(sorted((d / rel_dir).glob("*.h5"))[0].relative_to(d))


def symlink_loop(pick: Callable[[Path], str]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        path = d / pick(d)
        path.unlink()
        os.symlink(path.name, path)  # points at itself: ELOOP on open
    return make


def zero_audio_columns(d: Path) -> None:
    """Every audio h5 file with (n, 0) data: a tree written with --audio-dim 0 by the old writer."""
    import h5py
    import numpy as np

    for path in sorted((d / FEAT / "audio").glob("*/*.h5")):
        with h5py.File(path, "r") as fh:
            urls, rows = fh["video_urls"][()], fh["data"].shape[0]
        with h5py.File(path, "w") as fh:
            fh.create_dataset("data", data=np.zeros((rows, 0), np.float32))
            fh.create_dataset("video_urls", dtype=h5py.string_dtype(), data=list(urls))


def zero_audio_cache(d: Path) -> None:
    """h5 tree removed, the caches kept, the training cache's audio with 0 columns."""
    import torch

    from avood_core.data.cache import read_cache

    shutil.rmtree(d / FEAT)
    obj = read_cache(d / CACHE)
    obj["audio"]["data"] = torch.zeros(len(obj["audio"]["target"]), 0)
    torch.save(obj, d / CACHE)


def no_splits(d: Path) -> None:
    shutil.rmtree(d / CS / "main_split")
    shutil.rmtree(d / CS / "cls_split")


def h5_rewrite(pick: Callable[[Path], str], fill: Callable) -> Callable[[Path], None]:
    """The picked h5 file rewritten: ``fill(h5 file, its rows, its video_urls)`` writes ``data``."""
    def make(d: Path) -> None:
        import h5py

        path = d / pick(d)
        with h5py.File(path, "r") as fh:
            urls, rows = fh["video_urls"][()], fh["data"].shape[0]
        with h5py.File(path, "w") as fh:
            fill(fh, rows, urls)
            fh.create_dataset("video_urls", dtype=h5py.string_dtype(), data=list(urls))
    return make


def _data_group(fh, rows, urls) -> None:
    fh.create_group("data")


def _declared_huge(fh, rows, urls) -> None:
    fh.create_dataset("data", shape=(10**9, 6), dtype="f4")  # declared, never written: 24 GB if read


def _nan_row(fh, rows, urls) -> None:
    import numpy as np

    data = np.ones((rows, 6), np.float32)
    data[0, 2] = np.nan
    fh.create_dataset("data", data=data)


def csv_field(rel: str, column: str, value: str) -> Callable[[Path], None]:
    """The first data row of a csv with ``column`` set to ``value``."""
    def make(d: Path) -> None:
        import csv

        with open(d / rel, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        rows[1][rows[0].index(column)] = value
        with open(d / rel, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)
    return make


NOT_UTF8 = b"original,manual\n\xff\xfe\xfa,x\n"


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], None]
    args: tuple[str, ...]
    expect: str
    no_dac: bool = False  # a real subprocess without root's permission override (a chmod fault must be real)
    table: bool = True  # data check: the report on stdout lists the problem too (False: no tree to report on)
    proc: bool = False  # a real subprocess (`python -m avood_core.cli.commands`); else in-process through avood_core.cli.commands.main


CASES = [
    # 5. one value per --set
    Case("set-two-lines", nothing, ("config", "--set", 'seed=1\ndevice="cuda"'), "holds more than one value (device too)"),
    Case("set-table", nothing, ("config", "--set", "seed=1\n[x]\ny=2"), "holds more than one value (x too)"),
    Case("set-bare-multiline", nothing, ("config", "--set", "device=cpu\nseed"), "spans several lines"),
    Case("set-bad-key", nothing, ("config", "--set", "seed\nx=1"), "is not a dotted key"),
    Case("set-empty-key-part", nothing, ("config", "--set", "detector..lr=1"), "'detector..lr' is not a dotted key"),
    Case("set-no-value", nothing, ("config", "--set", "seed"), "expected KEY=VALUE"),
    Case("run-set-two-lines", nothing, (*RUN, "--set", 'seed=1\ndevice="cuda"', "-o", "{d}/runs"), "holds more than one value", proc=True),
    # 6. feature dims >= 1: the writer, the check and the run
    Case("synth-audio-dim-0", nothing, ("data", "synth", "{d}/out", "--dataset", "ucf", "--audio-dim", "0"), "--audio-dim 0: a feature width must be 1..16384", proc=True),
    Case("synth-video-dim-negative", nothing, ("data", "synth", "{d}/out", "--dataset", "ucf", "--video-dim", "-3"), "--video-dim -3"),
    Case("synth-dim-too-wide", nothing, ("data", "synth", "{d}/out", "--dataset", "ucf", "--audio-dim", "100000"), "1..16384"),
    Case("check-h5-zero-audio", zero_audio_columns, CHECK, "data has 0 feature columns"),
    Case("run-h5-zero-audio", zero_audio_columns, RUN_DATA, "data has 0 feature columns", proc=True),
    Case("run-cache-zero-audio", zero_audio_cache, RUN_DATA, "audio: data has 0 feature columns"),
    Case("check-cache-zero-audio", zero_audio_cache, CHECK, "audio: data has 0 feature columns"),
    # 8. -o / OUT / --out: a file, a path under a file, a read-only folder; refused before any work
    Case("run-o-file", write("f", b"hi\n"), (*RUN, "-o", "{d}/f"), "is a file, not a folder; pass a folder path to -o/--output-dir", proc=True),
    Case("run-o-under-file", write("f", b"hi\n"), (*RUN, "-o", "{d}/f/sub"), "/f' is a file, not a folder"),
    Case("run-o-readonly", chmod("ro", 0o555), (*RUN, "-o", "{d}/ro"), "is not writable", no_dac=True),
    Case("run-o-readonly-nested", chmod("ro", 0o555), (*RUN, "-o", "{d}/ro/a/b"), "folder '{d}/ro' is not writable", no_dac=True),
    Case("run-data-o-file", write("f", b"hi\n"), (*RUN_DATA, "-o", "{d}/f"), "is a file, not a folder"),
    Case("seeds-o-file", write("f", b"hi\n"), (*RUN, "--seeds", "0,1", "-o", "{d}/f"), "is a file, not a folder"),
    Case("ablate-o-file", write("f", b"hi\n"), ("ablate", "gates", "-q", *SETS, "-o", "{d}/f"), "is a file, not a folder"),
    Case("ablate-o-readonly", chmod("ro", 0o555), ("ablate", "gates", "-q", *SETS, "-o", "{d}/ro"), "is not writable", no_dac=True),
    Case("bench-out-file", write("f", b"hi\n"), ("bench", "--dataset", "ucf", "-o", "{d}/f"), "-o/--output-dir '{d}/f'"),
    # 9. class-split csv: not UTF-8, a row with a missing field (check and run)
    Case("check-w2v-csv-not-utf8", write(f"{CS}/ucf_w2v_class_names.csv", NOT_UTF8), CHECK, "ucf_w2v_class_names.csv' is not UTF-8"),
    Case("run-w2v-csv-not-utf8", write(f"{CS}/ucf_w2v_class_names.csv", NOT_UTF8), RUN_DATA, "ucf_w2v_class_names.csv' is not UTF-8", proc=True),
    Case("check-stage-csv-not-utf8", write(f"{CS}/main_split/stage_1_train.csv", b"\xff", append=True), CHECK, "stage_1_train.csv' is not UTF-8"),
    Case("check-stage-csv-short-row", write(f"{CS}/main_split/stage_1_train.csv", b"v_lonely_g01_c01\n", append=True), CHECK, "the row has no label, label_code field", proc=True),
    Case("check-w2v-csv-short-row", write(f"{CS}/ucf_w2v_class_names.csv", b"lonely\n", append=True), CHECK, "the row has no manual field"),
    Case("run-w2v-csv-short-row", write(f"{CS}/ucf_w2v_class_names.csv", b"lonely\n", append=True), RUN_DATA, "the row has no manual field"),
    Case("check-txt-not-utf8", write(f"{CS}/main_split/stage_1_val_seen.txt", b"\xff\xfe"), CHECK, "stage_1_val_seen.txt' is not UTF-8"),
    Case("run-all-class-not-utf8", write(f"{CS}/all_class.txt", b"\xffBad\n", append=True), RUN_DATA, "all_class.txt' is not UTF-8"),
    # 10. permissions, a symlink loop, a non-UTF-8 TOML, OUT a file
    Case("check-stage-folder-000", chmod(f"{FEAT}/audio/stage_1_train", 0), CHECK, "stage_1_train' cannot be read (Permission denied)", no_dac=True),
    Case("run-stage-folder-000", chmod(f"{FEAT}/audio/stage_1_train", 0), RUN_DATA, "stage_1_train' cannot be read (Permission denied)", no_dac=True),
    Case("check-all-class-000", chmod(f"{CS}/all_class.txt", 0), CHECK, "all_class.txt' cannot be read (Permission denied)", no_dac=True),
    Case("run-all-class-000", chmod(f"{CS}/all_class.txt", 0), RUN_DATA, "all_class.txt' cannot be read (Permission denied)", no_dac=True),
    Case("check-pkl-cache-000", chmod(CACHE, 0), CHECK, "trainingmain_split.pkl' cannot be read (Permission denied)", no_dac=True),
    Case("run-pkl-cache-000", chmod(CACHE, 0), (*RUN_DATA, "--set", 'data.format="pkl"'), "trainingmain_split.pkl' cannot be read (Permission denied)", no_dac=True),
    Case("check-h5-file-000", lambda d: os.chmod(d / first(f"{FEAT}/video/stage_2_test_seen")(d), 0), CHECK, "cannot be read (Permission denied)", no_dac=True),
    Case("check-split-folder-000", chmod(f"{CS}/main_split", 0), CHECK, "cannot be read (Permission denied)", no_dac=True),
    Case("run-split-folder-000", chmod(f"{CS}/main_split", 0), RUN_DATA, "stage_1_train.txt' cannot be read (Permission denied)", no_dac=True),
    Case("check-features-folder-000", chmod(FEAT, 0), CHECK, "main_features/audio' cannot be read (Permission denied)", no_dac=True),
    Case("run-features-folder-000", chmod(FEAT, 0), RUN_DATA, "main_features/audio' cannot be read (Permission denied)", no_dac=True),
    Case("check-h5-symlink-loop", symlink_loop(first(f"{FEAT}/audio/stage_1_train")), CHECK, "cannot be read (Too many levels of symbolic links)", proc=True),
    Case("run-h5-symlink-loop", symlink_loop(first(f"{FEAT}/audio/stage_1_train")), RUN_DATA, "cannot be read (Too many levels of symbolic links)", proc=True),
    Case("config-toml-not-utf8", write("c.toml", b"seed = 1\n# \xff\n"), ("config", "-c", "{d}/c.toml"), "config file '{d}/c.toml' is not UTF-8", proc=True),
    Case("run-toml-not-utf8", write("c.toml", b"seed = 1\n# \xff\n"), (*RUN, "-c", "{d}/c.toml", "-o", "{d}/runs"), "is not UTF-8"),
    Case("config-toml-000", lambda d: (write("c.toml", b"seed = 1\n")(d), os.chmod(d / "c.toml", 0)), ("config", "-c", "{d}/c.toml"), "cannot be read (Permission denied)", no_dac=True),
    Case("check-root-000", chmod("tree", 0), CHECK, "tree/UCF' cannot be read (Permission denied)", no_dac=True, table=False),
    Case("run-data-root-000", chmod("tree", 0), RUN_DATA, "tree/UCF' cannot be read (Permission denied)", no_dac=True),
    Case("synth-out-file", write("f", b"hi\n"), ("data", "synth", "{d}/f", "--dataset", "ucf"), "OUT '{d}/f': '{d}/f' is a file, not a folder", proc=True),
    Case("synth-out-under-file", write("f", b"hi\n"), ("data", "synth", "{d}/f/x", "--dataset", "ucf"), "is a file, not a folder"),
    Case("synth-out-readonly", chmod("ro", 0o555), ("data", "synth", "{d}/ro", "--dataset", "ucf"), "is not writable", no_dac=True),
    Case("synth-splits-not-utf8", write("splits/UCF/class-split/all_class.txt", b"\xff\n"), ("data", "synth", "{d}/out", "--dataset", "ucf", "--splits", "{d}/splits"), "all_class.txt' is not UTF-8"),
    Case("check-root-file", write("f", b"hi\n"), ("data", "check", "{d}/f"), "'{d}/f' is a file, not a folder", table=False),
    Case("run-data-file", write("f", b"hi\n"), (*RUN_DATA[:4], "{d}/f", *RUN_DATA[5:]), "'{d}/f' is a file, not a folder"),
    Case("config-file-symlink-loop", lambda d: os.symlink("c.toml", d / "c.toml"), ("config", "-c", "{d}/c.toml"), "not found", proc=True),
    # 12. absurd sizes, counts and epochs: refused with the limit
    Case("hidden-1e8", nothing, ("config", "--set", "generator.hidden=1e8"), "generator.params.hidden: Input should be less than or equal to 16384"),
    Case("syn-num-1e9", nothing, ("config", "--set", "syn_num=1e9"), "syn_num: Input should be less than or equal to 10000"),
    Case("epochs-1e12", nothing, ("config", "--set", "unseen.epochs=1e12"), "unseen.params.epochs: Input should be less than or equal to 10000"),
    Case("epochs-1e23", nothing, ("config", "--set", "detector.epochs=1e23"), "the limit is 10000"),
    Case("mlp-width", nothing, ("config", "--set", "seen.hidden=[512, 100000]"), "seen.params.hidden.1: Input should be less than or equal to 16384"),
    Case("mlp-depth", nothing, ("config", "--set", f"seen.hidden={[8] * 17}"), "at most 16 items"),
    Case("batch-1e9", nothing, ("config", "--set", "unseen.batch_size=1e9"), "less than or equal to 65536"),
    Case("steps-1e9", nothing, ("config", "--set", "generator.batches_per_epoch=1e9"), "less than or equal to 100000"),
    Case("critic-iters", nothing, ("config", "--set", "generator.critic_iters=1e6"), "less than or equal to 100"),
    Case("beta-grid-long", nothing, ("config", "--detector", "calibrated_stacking", "--set", f"detector.beta_grid={[0.0] * 1001}"), "at most 1000 items"),
    Case("plugin-keyed-epochs", nothing, ("config", "--set", "params.unseen.cross_attention.epochs=1e12"), "less than or equal to 10000"),
    Case("seed-1e30", nothing, ("config", "--set", "seed=1e30"), "the limit is 9223372036854775807"),
    Case("data-scale-1e9", nothing, ("config", "--set", "data.scale=1e9"), "data.scale: Input should be less than or equal to 100"),
    Case("run-syn-num-1e9", nothing, (*RUN, "--set", "syn_num=1e9", "-o", "{d}/runs"), "syn_num: Input should be less than or equal to 10000", proc=True),
    Case("seeds-too-big", nothing, (*RUN, "--seeds", f"0,{2**64}", "-o", "{d}/runs"), "is not a 64-bit integer"),
    Case("synth-scale-1e9", nothing, ("data", "synth", "{d}/out", "--dataset", "ucf", "--data-scale", "1e9"), "at most 100"),
    Case("synth-seed-huge", nothing, ("data", "synth", "{d}/out", "--dataset", "ucf", "--data-seed", str(2**70)), "must be a 64-bit integer"),
    # 15. a tree without any class split is an error (an absent cls_split alone is not: see below)
    Case("check-no-split", no_splits, CHECK, "holds neither main_split nor cls_split"),
    # 16. values inside the files: csv fields, an h5 'data' that is no dataset, declared but never written, NaN
    Case("check-csv-label-code-notanint", csv_field(f"{CS}/main_split/stage_1_train.csv", "label_code", "notanint"), CHECK,
         "stage_1_train.csv' line 2: label_code 'notanint' is not an integer"),
    Case("check-h5-data-a-group", h5_rewrite(first(f"{FEAT}/audio/stage_1_train"), _data_group), CHECK, "'data' is a group, not a dataset"),
    Case("run-h5-data-a-group", h5_rewrite(first(f"{FEAT}/audio/stage_1_train"), _data_group), RUN_DATA, "'data' is a group, not a dataset"),
    Case("check-h5-declared-huge", h5_rewrite(first(f"{FEAT}/video/stage_1_train"), _declared_huge), CHECK, "declares (1000000000, 6)"),
    Case("run-h5-declared-huge", h5_rewrite(first(f"{FEAT}/video/stage_1_train"), _declared_huge), RUN_DATA, "declares (1000000000, 6)"),
    Case("check-h5-nan", h5_rewrite(first(f"{FEAT}/audio/stage_2_train"), _nan_row), CHECK, "NaN/inf"),
]


# -- running a case -------------------------------------------------------------------------------

def _drop_dac() -> None:
    """In the child before exec: lose root's permission override (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@functools.lru_cache(maxsize=1)
def _dac_dropped_probe() -> bool:
    """Whether a child can really lose root's permission override here (needs CAP_SETPCAP)."""
    try:
        return subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_dac, timeout=60).returncode == 0
    except (subprocess.SubprocessError, OSError):
        return False


def _fill(text: str, d: Path) -> str:
    return text.replace("{d}", str(d))


def _snapshot(d: Path) -> dict[str, str | None]:
    """sha256 of every regular file under ``d`` (None: this process cannot read it)."""
    out: dict[str, str | None] = {}
    for root, _, files in os.walk(d):
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            try:
                out[str(path.relative_to(d))] = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                out[str(path.relative_to(d))] = None
    return out


def _lost(before: dict[str, str | None], d: Path) -> list[str]:
    after = _snapshot(d)
    return [p for p, h in before.items() if p not in after or (h is not None and after[p] not in (h, None))]


def _restore_modes(d: Path) -> None:
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                os.chmod(path, stat.S_IRWXU | os.stat(path).st_mode)


def _invoke(case: Case, args: list[str], d: Path, capsys, monkeypatch) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); an uncaught exception in-process is reported as a traceback."""
    if not (case.proc or case.no_dac):
        from avood_core.cli import commands as cli

        monkeypatch.setattr(sys, "argv", ["avood", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001  (the fault under test: report it as a traceback)
            out, err = capsys.readouterr()
            return 1, out, err + f"Traceback (in-process): {type(exc).__name__}: {exc}"
        out, err = capsys.readouterr()
        return code, out, err
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(d), "MPLCONFIGDIR": str(d / ".mpl")}
    proc = subprocess.run(
        [sys.executable, "-m", "avood_core.cli.commands", *args], cwd=d, env=env, capture_output=True, text=True,
        timeout=600, preexec_fn=_drop_dac if case.no_dac and os.geteuid() == 0 else None,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _log(case: Case, code: int, out: str, err: str, lines: list[str], lost: list[str], expect: str) -> None:
    """With $AVOOD_FAULT_LOG set, append the case's outcome (for counting: one-line / traceback / silent / lost)."""
    path = os.environ.get("AVOOD_FAULT_LOG")
    if not path:
        return
    import json

    kind = ("traceback" if "Traceback" in out + err else "silent" if code == 0 else
            "one-line" if len(lines) == 1 and lines[0].startswith("avood: error: ") else "other")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": case.id, "outcome": kind, "code": code, "lost": lost,
                             "expected_text": expect in err}) + "\n")


@pytest.fixture(scope="module")
def inp_template():
    """A tiny UCF tree with caches in a folder every process may traverse (0755)."""
    from avood_core.data import write_synthetic_tree

    base = Path(tempfile.mkdtemp(prefix="avood-inp-"))
    os.chmod(base, 0o755)
    write_synthetic_tree(base / "template" / "tree", "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5,
                         class_counts=(6, 3, 2))
    yield base
    _restore_modes(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def inp_case_dir(inp_template, request):
    """A fresh copy of the template for one test, free to break."""
    d = inp_template / "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
    shutil.copytree(inp_template / "template", d, symlinks=True)
    os.chmod(d, 0o755)
    yield d
    _restore_modes(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, inp_case_dir: Path, capsys, monkeypatch):
    d = inp_case_dir
    if case.no_dac and os.geteuid() == 0 and not _dac_dropped_probe():
        pytest.skip("running as root and this kernel/container refuses PR_CAPBSET_DROP: a chmod fault would not be real")
    case.make(d)
    before = _snapshot(d)
    code, out, err = _invoke(case, [_fill(a, d) for a in case.args], d, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    _log(case, code, out, err, lines, _lost(before, d), _fill(case.expect, d))
    assert "Traceback" not in out + err, err[-3000:]
    assert code == EXIT_ERROR, (code, out[-2000:], err[-2000:])  # 0 would be a silent result
    assert len(lines) == 1 and lines[0].startswith("avood: error: "), err
    assert _fill(case.expect, d) in lines[0], lines[0]
    assert not _lost(before, d), _lost(before, d)
    if case.args[:2] == ("data", "check") and case.table:  # the check's own report names the problem too
        assert "problem:" in out and "problem(s) found" in out, out


# -- the same rules outside the CLI table ---------------------------------------------------------

def test_every_integer_param_has_an_upper_bound():
    """Item 12, systematically: every int (or list of int) param of the run config and of every installed plugin is bounded."""
    import typing

    from annotated_types import Le, MaxLen

    from avood_core.config import DataConfig, RunConfig
    from avood_core.registry import KINDS, get_registry

    def args(tp) -> list:
        return [a for x in typing.get_args(tp) for a in [x, *args(x)]]

    def meta(tp) -> list:
        found = [m for a in [tp, *args(tp)] for m in getattr(a, "__metadata__", ())]
        return [x for m in found for x in getattr(m, "metadata", [m])]  # a FieldInfo in Annotated: its constraints

    def unbounded(field) -> bool:
        types = [field.annotation, *args(field.annotation)]
        if int not in types:
            return False
        found = list(field.metadata) + meta(field.annotation)
        container = any(typing.get_origin(t) in (tuple, list) for t in types)
        return not any(isinstance(m, Le) for m in found) or container and not any(isinstance(m, MaxLen) for m in found)

    models = {"RunConfig": RunConfig, "DataConfig": DataConfig}
    reg = get_registry()
    for kind in KINDS:
        for name in reg.names(kind):
            models[f"{kind}.{name}"] = reg.component_class(kind, name).Params
    missing = [f"{m}.{f}" for m, model in models.items() for f, field in model.model_fields.items() if unbounded(field)]
    assert len(models) >= 10, models
    assert not missing, missing


def test_embedded_task_dims_must_be_positive():
    """Item 6 for the embedded task's params: a zero width is refused, not a task without audio."""
    from avood_core.errors import DataError
    from avood_core.data.synthetic import SyntheticSpec

    for field in ("audio_dim", "video_dim", "text_dim"):
        with pytest.raises(DataError, match=f"{field} = 0; it must be 1..16384"):
            SyntheticSpec(**{field: 0})


def test_check_reports_an_absent_cls_split_as_a_note(inp_case_dir: Path):
    """Item 15: a tree with main_split only (no cls_split, no cls features) checks OK, as `avood run` uses it."""
    d = inp_case_dir
    shutil.rmtree(d / CS / "cls_split")
    proc = subprocess.run([sys.executable, "-m", "avood_core.cli.commands", "data", "check", str(d / "tree"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "class-split/cls_split is absent (optional" in proc.stdout and "OK:" in proc.stdout, proc.stdout
    assert proc.stderr.strip() == ""

