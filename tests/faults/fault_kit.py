"""Shared by the write-fault and option-fault tables: run the CLI on a real fault, sort the outcome.

A case runs ``python -m avood_core.cli.commands ARGS`` in a real subprocess (real tmpfs mounts,
real symlinks, a real ``/dev/full`` on stdout) and its outcome is one of

* ``one-line``: non-zero exit, stderr ends with one ``avood: error:`` line, the only line that
  mentions an error (status lines printed before the fault, e.g. ``resume: reusing ...``, may precede it);
* ``multi-line``: non-zero exit, but the error is not one such line (a usage box, a second error);
* ``traceback``: ``Traceback`` anywhere in stdout or stderr;
* ``silent``: exit 0 on a case that must fail;
* ``outside``: a path the command must not create (outside the folder the user named) exists;
* ``lost``: a file that existed before the command changed or vanished;
* ``finished``: something that looks finished (``results.json``, a table) is left behind;
* ``hang``: the command ran past its time bound.

``AVOOD_FAULT_SRC`` (a source checkout) is put first on the subprocess's ``PYTHONPATH``, so the same
table can be measured on another version of avood; ``AVOOD_FAULT_TALLY`` (a file) gets one JSON
line per case with its outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from avood_core.cli.options import EXIT_ERROR


@dataclass(frozen=True)
class Case:
    """One fault: ``make(d, stack)`` builds it in the case folder ``d``; ``args`` ({d}: that folder)."""

    id: str
    make: Callable[[Path, contextlib.ExitStack], None]
    args: tuple[str, ...]
    expect: str  # text the one stderr line holds ({d} filled in)
    absent: tuple[str, ...] = ()  # globs under d that must match nothing after the command (outside writes, half results)
    stdout: str | None = None  # a file to send stdout to (e.g. /dev/full)
    cwd: str = "."  # relative to d
    limit: float = 120.0  # seconds: past this the case is a hang
    within: float | None = None  # seconds the refusal must take at most
    nofile: int | None = None  # RLIMIT_NOFILE of the command (a real EMFILE)


@dataclass
class Outcome:
    rc: int | None
    out: str
    err: str
    seconds: float
    verdict: str = ""
    problems: list[str] = field(default_factory=list)


def fill(text: str, d: Path) -> str:
    return text.replace("{d}", str(d))


LOCKS = (".avood.lock", ".avood-sweep.lock")  # rewritten with the holder's pid by every writer


def snapshot(d: Path) -> dict[str, str]:
    """sha256 of every regular file under ``d`` (links not followed; lock files aside)."""
    out = {}
    for root, _, files in os.walk(d):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink() and name not in LOCKS:
                out[str(path.relative_to(d))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_cli(args: list[str], cwd: Path, stdout: str | None, limit: float,
            nofile: int | None = None) -> tuple[int | None, str, str, float]:
    env = dict(os.environ)
    src = os.environ.get("AVOOD_FAULT_SRC")
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(stdout, "w")) if stdout else subprocess.PIPE
        proc = subprocess.Popen([sys.executable, "-m", "avood_core.cli.commands", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=None if nofile is None else lambda: resource.setrlimit(
                                    resource.RLIMIT_NOFILE, (nofile, nofile)))
        try:
            o, e = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            o, e = proc.communicate()
            return None, o or "", e or "", time.perf_counter() - start
    return proc.returncode, o or "", e or "", time.perf_counter() - start


def judge(case: Case, d: Path) -> Outcome:
    """Run ``case`` in ``d`` (already made) and sort its outcome (the first that applies, worst first)."""
    before = snapshot(d)
    rc, out, err, seconds = run_cli([fill(a, d) for a in case.args], d / case.cwd, case.stdout, case.limit, case.nofile)
    got = Outcome(rc, out, err, seconds)
    after = snapshot(d)
    lost = [p for p, h in before.items() if after.get(p) != h]
    left = [str(p.relative_to(d)) for g in case.absent for p in d.glob(fill(g, d))
            if not (p.is_dir() and not any(p.iterdir()))]
    lines = err.strip().splitlines()
    checks = [
        ("hang", rc is None), ("traceback", "Traceback" in out + err), ("lost", bool(lost)),
        ("outside", bool(left)), ("silent", rc == 0),
        ("multi-line", not lines or not lines[-1].startswith("avood: error:")
         or sum("error" in line.lower() for line in lines) != 1),
    ]
    flags = [name for name, bad in checks if bad]
    got.verdict = flags[0] if flags else "one-line"
    got.problems = [*(f"changed: {p}" for p in lost), *(f"left behind: {p}" for p in left)]
    tally = os.environ.get("AVOOD_FAULT_TALLY")
    if tally:
        with open(tally, "a") as fh:
            fh.write(json.dumps({"case": case.id, "verdict": got.verdict, "flags": flags, "seconds": round(seconds, 2)}) + "\n")
    return got


def check(case: Case, d: Path) -> None:
    """Assert the case's outcome: one ``avood: error:`` line holding ``expect``, nothing else wrong."""
    got = judge(case, d)
    assert got.verdict == "one-line", f"{case.id}: {got.verdict} {got.problems} rc={got.rc}\n{got.err[-3000:]}"
    assert fill(case.expect, d) in got.err, got.err
    assert got.rc == EXIT_ERROR, got.rc
    if case.within is not None:
        assert got.seconds < case.within, f"{case.id}: refused after {got.seconds:.1f} s"


def run_case(case: Case, tmp_path: Path) -> None:
    """Make ``case`` in a fresh folder under ``tmp_path``, run it and :func:`check` it; undo its mounts."""
    d = tmp_path / "case"
    d.mkdir()
    with contextlib.ExitStack() as stack:
        case.make(d, stack)
        check(case, d)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", inodes: int | None = None) -> Iterator[Path]:
    """A real tmpfs of ``size`` (and ``inodes``) mounted at ``path`` for the ``with`` block (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
