"""The sweep engines at their edges, against the real libraries: a local sweep killed with
SIGKILL leaves no worker behind, and ``--engine ray`` joins the cluster of ``$RAY_ADDRESS``
(a real ``ray start --head`` on 127.0.0.1) without passing it resources."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tiny_runs import TINY

from avood_core.errors import AvoodError


def avood_command() -> list[str]:
    """The ``avood`` console script of the running interpreter (or the same entry point through it)."""
    script = Path(sys.executable).with_name("avood")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from avood_core.cli.commands import main; main()"]


def write_spec(path: Path, seeds: list[int], *sets: str) -> Path:
    """A spec of the tiny pipeline over ``seeds`` (one thread per trial), plus ``sets``."""
    path.write_text(f"seeds = {seeds}\nreport = false\nset = [" + ", ".join(json.dumps(s) for s in [*TINY, *sets]) + "]\n"
                    "[resources]\nnum_cpus = 1\n")
    return path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        kids = tree.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc (Linux)")
def test_killed_local_sweep_leaves_no_worker(tmp_path):
    """kill -9 of `avood sweep --max-parallel 2` while both pool workers train: 15 s later none is alive."""
    spec = write_spec(tmp_path / "s.toml", [0, 1], "unseen.epochs=100")  # trials that outlast the kill
    out = tmp_path / "sweep"
    family: list[int] = []
    parent = subprocess.Popen([*avood_command(), "sweep", str(spec), "--output-dir", str(out), "--max-parallel", "2",
                               "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and parent.poll() is None:
            running = [p for p in (out / "trials").glob("*/trial.json") if '"running"' in p.read_text()]
            if len(running) == 2:
                break
            time.sleep(0.2)
        assert parent.poll() is None, parent.stderr.read().decode()
        assert len(running) == 2, "the two pool workers never started their trials"
        workers = {json.loads(p.read_text())["pid"] for p in running}
        family = descendants(parent.pid)
        assert workers <= set(family)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        time.sleep(15)
        left = [pid for pid in family if alive(pid)]
        assert not left, f"processes of the killed sweep still alive 15 s later: {left}"
    finally:
        if parent.poll() is None:
            family += descendants(parent.pid)
            parent.kill()
        for pid in family:  # what this test started and the sweep did not stop
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- Ray ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_command() -> list[str]:
    """``ray`` of the running interpreter's environment (or its module through the interpreter)."""
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-CPU ``ray start --head --block`` on 127.0.0.1 (free ports, own temp dir); stopped by pid at the end."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'avood[ray]')")
    temp = tempfile.mkdtemp(prefix="avray")
    port = _free_port()
    log = Path(temp) / "start.log"
    # token authentication off for this loopback test cluster: Ray turns it on for a `ray start` once a token
    # exists in ~/.ray, and a driver given an explicit address (RAY_ADDRESS) then needs RAY_AUTH_MODE=token too
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen([*ray_command(), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats",
                             "--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port()),
                             "--temp-dir", temp], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    family: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None and "Ray runtime started" not in log.read_text():
            time.sleep(0.5)
        if "Ray runtime started" not in log.read_text():
            pytest.skip(f"'ray start --head' did not start on this machine within 120 s: {log.read_text()[-300:]}")
        family = descendants(head.pid)
        yield f"127.0.0.1:{port}", Path(temp)
    finally:
        family += descendants(head.pid)
        head.terminate()  # --block: Ray stops the processes it started
        try:
            head.wait(40)
        except subprocess.TimeoutExpired:
            head.kill()
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_joins_the_cluster_of_ray_address(ray_cluster, tmp_path, monkeypatch):
    """With $RAY_ADDRESS set and no --address, the sweep joins that cluster (no num_cpus passed: Ray
    refuses resources for an existing cluster) and says so; the trial runs on the cluster's CPU."""
    import ray

    from avood_core.sweep.core import run_sweep
    from avood_core.sweep.spec import load_spec

    address, temp = ray_cluster
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # as the cluster (see ray_cluster)
    lines: list[str] = []
    data = {"set": list(TINY), "seeds": [0], "engine": "ray", "report": False, "resources": {"num_cpus": 1},
            "output": str(tmp_path / "sweep")}
    result = run_sweep(load_spec(None, data), echo=lines.append)
    assert not ray.is_initialized()  # the sweep left the cluster, which is still up
    assert lines[0] == f"ray: joining the Ray cluster at {address} ($RAY_ADDRESS)"
    (record,) = result.records
    assert record["status"] == "done", record
    # a worker of that cluster (its logs are named by pid in the cluster's own temp dir), not of a new local instance
    assert list(temp.glob(f"session_*/logs/worker-*-{record['pid']}.out")), record["pid"]
    assert 0 <= record["metrics"]["HM"] <= 100


def test_ray_start_failure_and_slow_start_are_one_line(monkeypatch):
    """Any failure of ray.init is one line, and a start that hangs is cut at the bound."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'avood[ray]')")
    from avood_core.executor.engines import RayEngine

    from avood_core.executor.engines import _last_ray_start

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("ray._private.services.find_bootstrap_address", lambda temp_dir: f"127.0.0.1:{_free_port()}")
    assert _last_ray_start() is None  # the record of a cluster that is gone: a local instance instead

    def broken(**kwargs):
        raise RuntimeError("Failed to start the raylet\nsee raylet.err")

    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(AvoodError) as err:
        RayEngine(None, 1, 0, 0, local_cpus=1)
    assert str(err.value).startswith("cannot start a local Ray instance (RuntimeError: Failed to start the raylet see")
    assert "\n" not in str(err.value)
    monkeypatch.setattr(ray, "init", lambda **kwargs: time.sleep(60))
    started = time.monotonic()
    with pytest.raises(AvoodError, match=r"^cannot start a local Ray instance \(TimeoutError: ray.init took longer than 1 s\)"):
        RayEngine(None, 1, 0, 0, local_cpus=1, init_timeout=1)
    assert time.monotonic() - started < 10
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(AvoodError, match=r"^cannot join the Ray cluster at '127.0.0.1:9' \(RuntimeError: .*'ray status'"):
        RayEngine(None, 1, 0, 0, local_cpus=1)


def test_ray_joins_the_cluster_of_the_last_ray_start(ray_cluster, monkeypatch):
    """No $RAY_ADDRESS: the cluster the last `ray start` here recorded is joined with its own resources."""
    import ray

    from avood_core.executor.engines import RayEngine

    address, _ = ray_cluster
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # as the cluster (see ray_cluster)
    monkeypatch.setattr("ray._private.services.find_bootstrap_address", lambda temp_dir: address)
    lines: list[str] = []
    engine = RayEngine(None, 1, 0, 0, local_cpus=3, echo=lines.append)
    try:
        assert lines == [f"ray: joining the Ray cluster at {address} (the last 'ray start' here)"]
        assert ray.cluster_resources()["CPU"] == 1  # the cluster's one CPU, not the 3 a local instance would get
    finally:
        engine.close()
    assert not ray.is_initialized()
