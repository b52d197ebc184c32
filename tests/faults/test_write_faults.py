"""Where avood writes: names that would be paths, symlinks out of a run or sweep folder, full disks.

Each row of :data:`CASES` is a real fault made in a fresh case folder: a real symlink, a real
tmpfs mounted there (2 MB, or 12 inodes, or filled up), a real ``/dev/full`` on stdout. Each asserts
exit 2, exactly one ``avood: error:`` line on stderr naming the path, no traceback, every file that
existed before byte-identical, and nothing at the ``absent`` globs: no write through a link or a
name outside the folder the user named (the link's target stays empty), no ``results.json`` or
table that would look finished. Adding a case is one line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fault_kit import Case, run_case, tmpfs
from tiny_runs import TINY, run_task, tiny_run

SETS = tuple(a for s in TINY for a in ("--set", s))
RUN = ("run", "-q", "--no-report", *SETS)
SWEEP = ("sweep", "-q", "--no-report", *SETS, "--axis", "detector=entropy")
TEMPLATE: dict[str, Path] = {}  # the tiny run folder every case copies (made once, by the fixture below)


def run_copy(d: Path, stack) -> None:
    shutil.copytree(TEMPLATE["run"], d / "run")
    np.savez(d / "x.npz", **np.load(TEMPLATE["clips"]))


def both(*makes):
    def make(d: Path, stack) -> None:
        for m in makes:
            m(d, stack)
    return make


def link(rel: str, target: str):
    """``d/rel`` a symlink to the (new, empty) folder ``d/target``."""
    def make(d: Path, stack) -> None:
        (d / target).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(d / rel, ignore_errors=True)
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(d / target, (d / rel).parent), d / rel)
    return make


def file_link(rel: str, target: str):
    """``d/rel`` a symlink to the file ``d/target`` (made, holding a line that must stay)."""
    def make(d: Path, stack) -> None:
        (d / target).parent.mkdir(parents=True, exist_ok=True)
        (d / target).write_text("the user's file\n")
        (d / rel).unlink(missing_ok=True)
        os.symlink(os.path.relpath(d / target, (d / rel).parent), d / rel)
    return make


def remove(rel: str):
    return lambda d, stack: shutil.rmtree(d / rel)


def spec(text: str):
    def make(d: Path, stack) -> None:
        (d / "cwd").mkdir(exist_ok=True)
        (d / "s.toml").write_text(text.replace("{d}", str(d)))
    return make


def sweep_folder(d: Path, stack) -> None:
    """``d/sw``: a sweep folder of another spec (rerun with --allow-changes)."""
    (d / "sw").mkdir()
    (d / "sw" / "sweep.json").write_text('{"spec_hash": "another spec"}\n')


def mount(rel: str, size: str = "2m", inodes: int | None = None, leave: int | None = None):
    """A real tmpfs at ``d/rel``; ``leave``: fill it with a file but for that many bytes."""
    def make(d: Path, stack) -> None:
        stack.enter_context(tmpfs(d / rel, size, inodes))
        if leave is not None:
            fill_up(d / rel, leave)
    return make


def fill_up(folder: Path, leave: int) -> None:
    """A file ``folder/filler`` taking all the free space of its file system but ``leave`` bytes."""
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def into_tmpfs(size: str, leave: int):
    """The run folder copied into a tmpfs at ``d/small/run``, then the tmpfs filled but for ``leave`` bytes."""
    def make(d: Path, stack) -> None:
        run_copy(d, stack)
        stack.enter_context(tmpfs(d / "small", size))
        shutil.copytree(d / "run", d / "small" / "run")
        fill_up(d / "small", leave)
    return make


def nothing(d: Path, stack) -> None:
    pass


LINKED_RESULTS = "out/*"  # whatever a command wrote through a link into d/out
FINISHED = ("small/**/results.json", "small/**/table.md", "small/**/report.md", "small/**/*.csv")

CASES = [
    # -- names and symlinks: nothing is written outside the folder the user named ---------------------
    Case("report-figures-link", both(run_copy, link("run/figures", "out")), ("report", "{d}/run"), "run/figures' is a symbolic link", (LINKED_RESULTS,)),
    Case("report-figures-link-up", both(run_copy, link("run/figures", "run/../out")), ("report", "{d}/run"), "figures' is a symbolic link", (LINKED_RESULTS,)),
    Case("resume-metrics-link", both(run_copy, link("run/metrics", "out")), (*RUN, "--resume", "{d}/run"), "run/metrics' is a symbolic link", (LINKED_RESULTS,)),
    Case("resume-component-link", both(run_copy, link("run/components/seen", "out")), (*RUN, "--resume", "{d}/run"), "components/seen' is a symbolic link", (LINKED_RESULTS,)),
    Case("resume-metrics-file-link", both(run_copy, remove("run/components/seen"), file_link("run/metrics/seen.jsonl", "out/seen.jsonl")), (*RUN, "--resume", "{d}/run"), "seen.jsonl' is a symbolic link"),
    Case("report-lock-link", both(run_copy, file_link("run/.avood.lock", "out/victim")), ("report", "{d}/run"), ".avood.lock' is a symbolic link"),
    Case("sweep-name-dotdot", spec('name = "../../esc"\n'), (*SWEEP, "{d}/s.toml"), "is not a plain name", ("esc", "cwd/sweeps/*"), cwd="cwd"),
    Case("sweep-name-abs", spec('name = "{d}/abs"\n'), (*SWEEP, "{d}/s.toml"), "is not a plain name", ("abs", "cwd/sweeps/*"), cwd="cwd"),
    Case("sweep-name-dot-dot-only", spec('name = ".."\n'), (*SWEEP, "{d}/s.toml"), "is not a plain name", ("cwd/*.md", "cwd/trials"), cwd="cwd"),
    Case("sweep-name-empty", spec('name = ""\n'), (*SWEEP, "{d}/s.toml"), "is not a plain name", ("cwd/sweeps",), cwd="cwd"),
    Case("sweep-name-newline", spec('name = "a\\nb"\n'), (*SWEEP, "{d}/s.toml"), "control character", ("cwd/sweeps",), cwd="cwd"),
    Case("sweep-trials-link", both(sweep_folder, link("sw/trials", "out")), (*SWEEP, "--output-dir", "{d}/sw", "--allow-changes"), "sw/trials' is a symbolic link", (LINKED_RESULTS,)),
    Case("sweep-shared-link", both(sweep_folder, link("sw/shared", "out")), (*SWEEP, "--output-dir", "{d}/sw", "--allow-changes"), "sw/shared' is a symbolic link", (LINKED_RESULTS,)),
    Case("sweep-shared-entry-link", both(sweep_folder, link("sw/shared/seen-0123", "out")), (*SWEEP, "--output-dir", "{d}/sw", "--allow-changes"), "shared/seen-0123' is a symbolic link", (LINKED_RESULTS,)),
    # -- resources: a full or tiny file system, no inodes, stdout on /dev/full ------------------------
    Case("run-o-tmpfs-2m", mount("small"), (*RUN, "-o", "{d}/small"), "No space left on device", FINISHED),
    Case("run-o-tmpfs-12-inodes", mount("small", "64m", inodes=12), (*RUN, "-o", "{d}/small"), "No space left on device", FINISHED),
    Case("run-o-tmpfs-full", mount("small", "10m", leave=0), (*RUN, "-o", "{d}/small"), "'{d}/small", FINISHED),
    Case("seeds-o-tmpfs-2m", mount("small"), (*RUN, "--seeds", "0,1", "-o", "{d}/small"), "No space left on device", FINISHED),
    Case("report-tmpfs-full", into_tmpfs("12m", 8192), ("report", "{d}/small/run"), "No space left on device", ("small/run/report.*",)),
    Case("predict-output-full", both(run_copy, mount("small", "1m", leave=0)), ("predict", "{d}/run", "{d}/x.npz", "--output", "{d}/small/p.csv"), "'{d}/small/p.csv'", FINISHED),
    Case("sweep-dir-tmpfs-full", mount("small", "1m", leave=0), (*SWEEP, "--output-dir", "{d}/small/sw"), "'{d}/small/sw", FINISHED),
    Case("seeds-too-many-open-files", nothing, (*RUN, "--seeds", "0,1", "--max-parallel", "2", "-o", "{d}/out"), "Too many open files", ("out/**/results.json",), nofile=10),
    Case("stdout-full-config", nothing, ("config",), "standard output", stdout="/dev/full"),
    Case("stdout-full-presets-json", nothing, ("presets", "--json"), "standard output", stdout="/dev/full"),
    Case("stdout-full-plugins", nothing, ("plugins",), "standard output", stdout="/dev/full"),
    Case("stdout-full-predict", run_copy, ("predict", "{d}/run", "{d}/x.npz"), "standard output", stdout="/dev/full"),
]


@pytest.fixture(scope="module", autouse=True)
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    TEMPLATE["run"] = tiny_run(root / "runs").run_dir
    test = run_task(TEMPLATE["run"]).test
    TEMPLATE["clips"] = root / "clips.npz"
    np.savez(TEMPLATE["clips"], audio=test.audio[:12].numpy(), video=test.video[:12].numpy())
    yield


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_write_fault_is_one_line_and_writes_nothing_outside(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
