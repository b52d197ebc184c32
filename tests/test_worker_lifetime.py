"""A ``jobs = 2`` worker dies with its parent, even one killed with SIGKILL, and leaves no temp folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avood_core.pipeline.worker import OWNER, PREFIX, _alive, clean_stale

REPO = Path(__file__).resolve().parents[1]

# A tiny run whose unseen classifier trains long enough (hundreds of steps) in its worker.
PARENT = """
import sys
from pathlib import Path
sys.path.insert(0, 'tests')
from tiny_runs import tiny_run
tiny_run(Path(sys.argv[1]), 'jobs=2', 'unseen.epochs=3000')
"""


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_of_the_parent_ends_the_worker_and_removes_its_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "runs")], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    worker = None
    try:
        assert _wait(lambda: list(tmp.glob(f"{PREFIX}unseen-*/{OWNER}")), 120), parent.stderr.read().decode()[-2000:]
        folder = next(tmp.glob(f"{PREFIX}unseen-*"))
        owner, worker = (int(p) for p in (folder / OWNER).read_text().split())
        assert owner == parent.pid and _alive(worker)
        time.sleep(1.0)  # the worker is training now
        assert _alive(worker) and parent.poll() is None
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: not _alive(worker), 10), f"worker {worker} outlived its parent"
        assert _wait(lambda: not folder.exists(), 10), f"{folder} left behind"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if worker is not None and _alive(worker):  # a failed run of this test leaves no orphan behind
            os.kill(worker, signal.SIGKILL)


def test_next_start_removes_folders_whose_processes_are_dead(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    assert not _alive(dead_pid)
    stale, live, other = tmp_path / f"{PREFIX}unseen-abc", tmp_path / f"{PREFIX}unseen-def", tmp_path / f"{PREFIX}notes-x"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "job.pkl").write_bytes(b"x" * 100)
    (stale / OWNER).write_text(f"{dead_pid} {dead_pid}")
    (live / OWNER).write_text(f"{dead_pid} {os.getpid()}")  # its worker (this process) still runs
    assert clean_stale(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()  # no owner file: not ours to remove
