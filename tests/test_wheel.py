"""The wheel is a complete package: built with ``pip wheel``, installed into a fresh venv, it runs
``avood run`` (quick profile) and finds every plugin and preset, from any folder, no source tree.
The sdist is the source tree: LICENSE and NOTICE, and tests whose helpers it ships, so a packager
who installs it can collect (and run) them against the installed package.

Offline and fast: the fresh venvs reach the dependencies already installed for the tests through a
``.pth`` line (which does not activate this checkout's editable install), and the wheel or sdist
goes in with ``pip install --no-deps``. The tests check that the installed modules are the ones imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tiny_runs import TINY

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["NO_COLOR"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    return proc


def _fresh_venv(folder: Path, package: Path) -> Path:
    """A new venv at ``folder`` with ``package`` (a wheel or an sdist) installed and the test deps reachable; its python."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder).stdout.strip())
    # torch, numpy, ... of this venv (addsitedir: its own .pth lines count too)
    (site / "outer_deps.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(package)], cwd=folder)
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's python, the wheel) with only the wheel's avood in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(ROOT)],
         cwd=tmp)
    (wheel,) = (tmp / "dist").glob("avood-*.whl")
    return _fresh_venv(tmp / "venv", wheel), wheel


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist, built by setuptools' PEP 517 backend from this checkout."""
    tmp = tmp_path_factory.mktemp("sdist")
    name = _run([sys.executable, "-c", "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))",
                 str(tmp)], cwd=ROOT).stdout.strip().splitlines()[-1]
    return tmp / name


def _wheel_of(sdist: Path, folder: Path) -> Path:
    """The wheel pip builds from ``sdist`` alone (no source checkout)."""
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), str(sdist)],
         cwd=folder.parent)
    (wheel,) = folder.glob("avood-*.whl")
    return wheel


def test_wheel_holds_the_package_data(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("avood_core/py.typed", "avood_core/presets/ucf.toml", "avood_core/presets/activitynet.toml",
                     "avood_core/presets/vggsound.toml", "avood_plugins/loggers/mlflow.py", "avood_core/data/check.py",
                     "avood_core/testing/__init__.py", "avood_plugins/unseen/cross_attention.py"):
        assert required in names, required
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: MIT" in text and "Requires-Python: >=3.11" in text
    assert "Provides-Extra: mlflow" in text and "Provides-Extra: tensorboard" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    notice = next(n for n in names if n.endswith(".dist-info/licenses/NOTICE"))  # the shipped word vectors' MIT notice
    assert zipfile.ZipFile(wheel).read(notice) == (ROOT / "NOTICE").read_bytes()
    assert "License-File: NOTICE" in text
    assert "pip install avood" in text  # the README is the package page


def test_installed_wheel_runs_and_finds_every_plugin_and_preset(installed, tmp_path):
    python, _ = installed
    avood = [str(python), "-c", "import sys; from avood_core.cli.commands import main; sys.argv[0] = 'avood'; main()"]
    where = _run([str(python), "-c", "import avood_core, avood_plugins, avood_core.bench.meter as b; "
                  "print(avood_core.__file__, avood_plugins.__file__, avood_core.__version__, b._git_state())"], cwd=tmp_path)
    core, plugins, version, git = where.stdout.split()
    site = str(python.parents[1])
    assert core.startswith(site) and plugins.startswith(site), where.stdout  # the wheel's, not this checkout's
    assert version == "0.1.0" and git == "None"  # no source checkout assumed
    found = json.loads(_run([*avood, "plugins", "--json"], cwd=tmp_path).stdout)
    assert found["broken"] == []
    assert {(p["kind"], p["name"]) for p in found["plugins"]} >= {
        ("generator", "wgan_gp"), ("detector", "entropy"), ("detector", "binary"), ("detector", "calibrated_stacking"),
        ("seen", "mlp"), ("seen", "cross_attention"), ("unseen", "cross_attention"), ("unseen", "mlp"),
        ("logger", "mlflow"), ("logger", "tensorboard")}
    assert {p["distribution"] for p in found["plugins"]} == {"avood"}
    presets = json.loads(_run([*avood, "presets", "--json"], cwd=tmp_path).stdout)
    assert [p["name"] for p in presets["presets"]] == ["activitynet", "ucf", "vggsound"]
    sets = [a for s in TINY for a in ("--set", s)]
    run = _run([*avood, "run", "--profile", "quick", "--preset", "ucf", "--json", "--tsne-cap", "0", *sets], cwd=tmp_path)
    doc = json.loads(run.stdout)
    run_dir = tmp_path / doc["run_dir"]
    assert {"S", "U", "HM", "ZSL"} <= set(doc["results"]["metrics"])
    assert (run_dir / "report.html").is_file() and (run_dir / "figures" / "curves_unseen.png").is_file()


def test_sdist_has_the_notices_and_its_tests_collect_against_the_installed_package(sdist, tmp_path):
    import tarfile

    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "src", filter="data")
    for required in ("LICENSE", "NOTICE", "tests/conftest.py", "tests/tiny_runs.py", "tests/toy_components.py",
                     "tests/plugins/blobs.py", "tests/data/conftest.py", "docs/architecture.md", "avood_core/data/ucf_w2v.npz"):
        assert required in names, required
    (root,) = (tmp_path / "src").iterdir()
    assert (root / "NOTICE").read_bytes() == (ROOT / "NOTICE").read_bytes()
    python = _fresh_venv(tmp_path / "venv", _wheel_of(sdist, tmp_path / "dist"))
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(python), "-c", "import avood_core; print(avood_core.__file__)"], cwd=work).stdout.strip()
    assert where.startswith(str(tmp_path / "venv")), where  # the installed package, not the unpacked source
    proc = _run([str(python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(root / "tests")], cwd=work)
    collected = {line.split("::", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    shipped = {n for n in names if n.startswith("tests/") and Path(n).name.startswith("test_") and n.endswith(".py")}
    assert shipped and collected == shipped, sorted(shipped ^ collected)
