"""Third parties: the example plugin package installs, shows up, runs, and disappears cleanly;
the swap example runs.

The example package is installed into a throwaway virtual environment layered over this one
(a ``.pth`` file adds this environment's site-packages), never into the environment running
the tests: the suite leaves it exactly as it found it even if a step fails or the run is cut,
and other processes sharing it never see the plugin. pip installs with ``--no-deps`` from a copy
of the example folder (building in place would leave ``build/`` behind), offline with this
environment's setuptools where it can build wheels, else with pip's isolated build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from avood_core.cli.options import EXIT_ERROR
from tiny_runs import TINY as TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "avood-plugin-example"
DIST, VERSION, NAME = "avood-plugin-example", "0.1.0", "eszsl"

# the shared tiny budget for the built-ins, with ESZSL's params in the unseen slot
TINY = [o for o in TINY_RUN if not o.startswith("unseen.")] + ["unseen.gamma=1000.0", "unseen.lam=0.5"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "NO_COLOR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _site_dirs() -> list[str]:
    """This environment's site directories, in sys.path order (the throwaway env layers over them)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    seen: list[str] = []
    for d in dirs:
        if os.path.isdir(d) and d not in seen:
            seen.append(d)
    return seen


class ThrowawayEnv:
    """A venv without pip whose interpreter also sees this environment's packages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
        bindir = folder / ("Scripts" if os.name == "nt" else "bin")
        self.python = bindir / ("python.exe" if os.name == "nt" else "python")
        purelib = self.run_py("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
        lines = "; ".join(f"site.addsitedir({d!r})" for d in _site_dirs())
        (Path(purelib) / "_avood_parent_env.pth").write_text(f"import site; {lines}\n")

    def run_py(self, code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-c", code, *args], capture_output=True, text=True,
                              env=_env(), timeout=timeout)

    def avood(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The CLI as the installed `avood` script runs it, inside this environment."""
        return self.run_py("import sys; sys.argv[0] = 'avood'; from avood_core.cli.commands import main; main()",
                           *args, timeout=timeout)

    def pip(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-m", "pip", *args], capture_output=True, text=True,
                              env=_env(), timeout=300)


def _ok(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _install(env: ThrowawayEnv, source: Path) -> None:
    """``pip install`` the package: offline with this environment's setuptools when it can build
    wheels (setuptools >= 70.1, or the ``wheel`` package), else with pip's isolated build, which
    fetches setuptools from the configured index exactly as ``make`` does to install avood."""
    offline = env.pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(source))
    if offline.returncode == 0:
        return
    isolated = env.pip("install", "--no-deps", "-q", str(source))
    assert isolated.returncode == 0, (
        f"pip install of the example package failed offline:\n{offline.stderr[-2000:]}\n"
        f"and with an isolated build:\n{isolated.stderr[-2000:]}"
    )


def _plugin_rows(out: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4 and not line.startswith("BROKEN"):
            rows[(cols[0], cols[1])] = cols[2:]
    return rows


def test_example_plugin_install_run_uninstall(tmp_path):
    assert (EXAMPLE / "pyproject.toml").is_file()
    env = ThrowawayEnv(tmp_path / "venv")
    # Build from a copy: building in place would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src-copy"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    installed = False
    try:
        # Before: the name is unknown.
        assert (NAME not in (_ok(env.avood("plugins"), "avood plugins").stdout))

        _install(env, source)
        installed = True

        # `avood plugins` shows it with its distribution and version (and nothing broken).
        out = _ok(env.avood("plugins"), "avood plugins").stdout
        rows = _plugin_rows(out)
        assert rows.get(("unseen", NAME), [None])[:2] == [DIST, VERSION], out
        assert rows.get(("fusion", "bilinear"), [None])[:2] == [DIST, VERSION], out  # its third-party fusion
        assert ("unseen", "cross_attention") in rows and "BROKEN" not in out

        # `avood run --unseen eszsl` on a tiny task, with its params set through --set.
        runs = tmp_path / "runs"
        args = ["run", "-q", "--no-report", "--unseen", NAME, "-o", str(runs)]
        for assignment in TINY:
            args += ["--set", assignment]
        started = time.perf_counter()
        # ... and the package's fusion in the detector (it trains with the detector and is saved with it)
        fused = [*args, "--set", 'detector.fusion="bilinear"', "--set", "detector.fusion_params={rank = 16}"]
        proc = _ok(env.avood(*fused, timeout=300), "avood run --unseen eszsl --set detector.fusion=bilinear")
        assert time.perf_counter() - started < 60
        assert "AV-OOD (gated)" in proc.stdout and "HM" in proc.stdout
        run_dir = Path(re.search(r"run folder: (.+)", proc.stderr).group(1).strip())
        results = json.loads((run_dir / "results.json").read_text())
        assert results["components"]["unseen"] == NAME
        assert 0.0 <= results["metrics"]["HM"] <= 100.0
        saved = json.loads((run_dir / "components" / "unseen" / "config.json").read_text())
        assert (saved["distribution"], saved["version"], saved["name"]) == (DIST, VERSION, NAME)
        assert saved["params"]["gamma"] == 1000.0 and saved["params"]["standardize"] is True
        gate = json.loads((run_dir / "components" / "detector" / "config.json").read_text())
        assert gate["params"]["fusion"] == "bilinear" and gate["params"]["fusion_params"] == {"rank": 16}
        from safetensors.torch import load_file

        gate_weights = load_file(str(run_dir / "components" / "detector" / "model.safetensors"))
        assert gate_weights["fusion.U.weight"].shape[0] == 16 and gate_weights["0.weight"].shape[1] == 16

        # The fitted pipeline reloads through the registry (no retraining).
        evaluated = _ok(env.avood("evaluate", str(run_dir)), "avood evaluate").stdout
        assert "AV-OOD (gated)" in evaluated

        # An unknown ESZSL param fails with the field path, before any work.
        bad = env.avood("config", "--unseen", NAME, "--set", "unseen.gama=1")
        assert bad.returncode == EXIT_ERROR and "unseen.params.gama" in bad.stderr

        # The package's own tests (they use avood's conformance kit) pass where it is installed.
        tests = subprocess.run(
            [str(env.python), "-m", "pytest", "-v", "-p", "no:cacheprovider", str(source / "tests")],
            capture_output=True, text=True, env=_env(), timeout=300, cwd=source,
        )
        _ok(tests, "the example package's tests")
        assert re.search(r"test_registered_through_the_entry_point PASSED", tests.stdout), tests.stdout
        assert re.search(r"test_bilinear_registered_through_the_entry_point PASSED", tests.stdout), tests.stdout

        _ok(env.pip("uninstall", "-y", "-q", DIST), "pip uninstall")
        installed = False

        # After: the name is gone, with the usual unknown-name error.
        out = _ok(env.avood("plugins"), "avood plugins").stdout
        assert ("unseen", NAME) not in _plugin_rows(out)
        gone = env.avood(*args)
        assert gone.returncode == EXIT_ERROR, gone.stdout + gone.stderr
        assert f"unknown unseen '{NAME}'; valid unseen classifiers: " in gone.stderr
        assert "cross_attention" in gone.stderr and "Traceback" not in gone.stderr
    finally:
        if installed:
            env.pip("uninstall", "-y", "-q", DIST)


def test_swap_example_runs_and_prints_metrics():
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "swap_unseen_classifier.py")],
                          capture_output=True, text=True, env=_env(), timeout=120, cwd=ROOT)
    elapsed = time.perf_counter() - started
    _ok(proc, "examples/swap_unseen_classifier.py")
    for metric in ("S", "U", "HM", "ZSL"):
        assert re.search(rf"\b{metric} \d+\.\d\d", proc.stdout), proc.stdout
    assert elapsed < 60, f"the swap example took {elapsed:.1f} s"



def test_the_example_loop_component_gets_callbacks_stats_and_jobs_2(monkeypatch, torch_threads):
    """The example's ``triplet`` classifier only describes its step (two halves): the core's loop fires
    its callbacks and fills its stats, and under ``jobs = 2`` the main process computes the second half
    of its steps in the worker's fit, with the bits of ``jobs = 1``."""
    import torch

    from avood_core import Callback, Pipeline, SyntheticSpec, make_synthetic_task
    from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator

    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))  # the worker process gets this sys.path too
    from avood_example.triplet import TripletEmbedding

    torch_threads(1)
    task = make_synthetic_task(seed=0, spec=SyntheticSpec(n_seen=8, n_unseen=4, audio_dim=24, video_dim=20, text_dim=16,
                                                          latent_dim=8, train_samples=480, test_seen_samples=60,
                                                          test_unseen_samples=80))

    class Epochs(Callback):
        def __init__(self) -> None:
            self.seen: list[tuple[str, int, int]] = []

        def on_step(self, kind, step, metrics):
            self.seen.append(("step", step, "loss" in metrics))

        def on_epoch(self, kind, epoch, metrics):
            self.seen.append(("epoch", epoch, "loss" in metrics) if kind == "unseen" else ("other", 0, 0))

    def fit(jobs: int):
        heard = Epochs()
        pipe = Pipeline(generator=RidgeGenerator(), detector=CentroidDetector(), seen=CentroidSeen(),
                        unseen=TripletEmbedding(dim=16, epochs=3, steps=30, batch_size=32), syn_num=5)
        return pipe.fit(task, seed=3, jobs=jobs, callbacks=[heard], every_n_steps=30), heard

    one, heard_one = fit(1)
    two, heard_two = fit(2)
    assert two.worker_info["unseen"]["assist"]["steps"] > 0  # split over the two processes
    assert one.unseen.stats.steps == two.unseen.stats.steps == 90 and len(two.unseen.stats.history) == 3
    assert [e for e in heard_one.seen if e[0] != "other"] == [e for e in heard_two.seen if e[0] != "other"] == [
        ("step", 30, True), ("epoch", 0, True), ("step", 60, True), ("epoch", 1, True), ("step", 90, True), ("epoch", 2, True)]
    a, b = one.unseen.state_tensors(), two.unseen.state_tensors()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
