"""Round-1 import paths keep working after the restructuring (issue 14): third-party plugins must not break."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from avood_core._moved import MOVED

# What the round-1 plugins and example package imported from modules that have moved since.
ROUND1_IMPORTS = [
    ("avood_core.perf", "adam"),
    ("avood_core.perf", "autocast"),
    ("avood_core.training", "check_finite"),
    ("avood_core.training", "ClassBalancedSampler"),
    ("avood_core.metrics", "harmonic_mean"),
    ("avood_core.synthetic", "make_synthetic_task"),
    ("avood_core.checkpoint", "save_component"),
    ("avood_core.run", "fit_hashes"),
    ("avood_core.sweep", "run_sweep"),
]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_is_the_same_object(old):
    assert importlib.import_module(f"avood_core.{old}") is importlib.import_module(f"avood_core.{MOVED[old]}")


@pytest.mark.parametrize("module,name", ROUND1_IMPORTS)
def test_round1_from_imports(module, name):
    mod = importlib.import_module(module)
    if not hasattr(mod, name):
        pytest.fail(f"{module} lost {name}: {sorted(n for n in dir(mod) if not n.startswith('_'))[:30]}")


def test_old_path_in_a_fresh_interpreter():
    """``from avood_core.training import ...`` as the first avood import of a process (the finder is
    installed by ``import avood_core``, which Python runs first for any submodule)."""
    code = "from avood_core.metrics import harmonic_mean; import avood_core.perf as p, avood_core.train.precision as q; " \
           "assert p is q; print(harmonic_mean(50.0, 50.0))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "50.0"


def test_unknown_old_name_still_fails_cleanly():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("avood_core.no_such_module")
