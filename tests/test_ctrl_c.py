"""Ctrl-C during ``avood run``: one line saying what was saved and how to resume, exit status 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avood_core.run.folder import interrupted_message, saved_components
from tiny_runs import TINY

REPO = Path(__file__).resolve().parents[1]


def _avood(*args: str, env=None) -> subprocess.Popen:
    # As from a terminal: SIGINT raises KeyboardInterrupt. A test runner started in the background
    # by a non-interactive shell (`make test &`, nohup) passes SIGINT ignored to its children, and
    # Python then keeps it ignored; the child restores the default handler first.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from avood_core.cli.commands import main; sys.argv[0] = 'avood'; main()")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_sigint_after_a_saved_component_prints_one_line_and_exits_130(tmp_path):
    # The unseen stage is made far longer than any test (10,000 epochs x 50 batches): Ctrl-C always
    # lands in it, however late a loaded machine lets this process see the seen checkpoint.
    sets = [a for s in TINY if not s.startswith(("unseen.epochs", "unseen.batches_per_epoch")) for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = _avood("run", "-q", "--no-report", "-o", str(tmp_path), *sets, "--set", "unseen.epochs=10000",
                  "--set", "unseen.batches_per_epoch=50", env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("*/components/seen/model.safetensors")):  # generator and seen are saved
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        run_dir = next(tmp_path.iterdir())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    line = lines[0]
    assert line.startswith("avood: interrupted; ") and f"'avood run --resume {run_dir}'" in line
    assert saved_components(run_dir) == ["generator", "seen"] and f"saved in '{run_dir}': generator, seen;" in line
    assert not (run_dir / "components" / "unseen").exists()


def test_message_when_nothing_or_everything_was_saved(tmp_path):
    assert interrupted_message(None) == "interrupted before a run folder was created; nothing was saved"
    assert f"saved in '{tmp_path}': nothing; continue with 'avood run --resume {tmp_path}'" in interrupted_message(tmp_path)
    (tmp_path / "stage1" / "components" / "generator").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "stage1" / "components" / "generator" / name).write_text("{}")
    assert "stage 1: generator; stage 2: nothing;" in interrupted_message(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    assert "after the run finished" in interrupted_message(tmp_path)
