"""The public facade ``avood_core``: cheap to import, every name resolves, and the examples use only it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import avood_core

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# What an example may import from avood_core: the facade, and the conformance kit for plugin tests
# (a public kit of its own: it imports torch and test helpers, so the cheap facade does not re-export it).
ALLOWED = {"avood_core", "avood_core.testing"}


def test_import_does_not_load_torch_or_internal_modules():
    code = ("import sys, avood_core; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pydantic', 'numpy') "
            "or m.startswith('avood_core.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("name", avood_core.__all__)
def test_every_public_name_resolves(name):
    assert getattr(avood_core, name) is not None
    assert name in dir(avood_core)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        avood_core.nope  # noqa: B018


def test_create_component_merges_the_profile_like_a_run_config():
    from avood_core.config import build_config, resolve

    quick = avood_core.create_component("seen", "mlp", profile="quick")
    paper = avood_core.create_component("seen", "mlp")
    assert quick.params.model_dump(mode="json") == resolve(build_config()).seen.params
    assert paper.params.model_dump(mode="json") == resolve(build_config(overrides=["profile=paper"])).seen.params
    assert quick.params != paper.params  # mlp has quick overrides, so the profile matters
    mine = avood_core.create_component("seen", "mlp", profile="quick", epochs=2)
    assert mine.params.epochs == 2 and not mine.fitted


def test_create_component_errors_name_the_fix():
    with pytest.raises(avood_core.PluginError, match="unknown seen 'nope'; valid seen classifiers: .*mlp"):
        avood_core.create_component("seen", "nope")
    with pytest.raises(avood_core.ConfigError, match=r"seen.params.epochs: .* \(seen 'mlp'\)"):
        avood_core.create_component("seen", "mlp", epochs=-1)
    with pytest.raises(avood_core.ConfigError, match="unknown profile 'fast'"):
        avood_core.create_component("seen", "mlp", profile="fast")


def test_list_components():
    everything = avood_core.list_components()
    assert "generator" in everything and "fusion" in everything
    assert "wgan_gp" in everything["generator"]
    assert avood_core.list_components("unseen") == everything["unseen"] == sorted(everything["unseen"])


def _example_files() -> list[Path]:
    files = [EXAMPLES / "swap_unseen_classifier.py"]
    package = EXAMPLES / "avood-plugin-example"
    files += sorted((package / "src").rglob("*.py")) + sorted((package / "tests").rglob("*.py"))
    return files


def _avood_imports(path: Path) -> list[str]:
    """Every ``avood_core...`` module ``path`` imports (``from avood_core.x import y``, ``import avood_core.x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [m for m in found if m.split(".")[0] == "avood_core"]


def test_examples_import_only_the_facade():
    files = _example_files()
    assert len(files) >= 6, files  # the script, the package's three modules and its two test files
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in files for m in _avood_imports(p) if m not in ALLOWED]
    assert not bad, "examples must import only from the facade avood_core (or avood_core.testing):\n" + "\n".join(bad)
    used = {m for p in files for m in _avood_imports(p)}
    assert "avood_core" in used  # the scan sees the imports it checks


def test_the_scan_catches_a_submodule_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from avood_core.protocols import Component\nimport avood_core.registry\nfrom avood_core import Pipeline\n")
    assert [m for m in _avood_imports(bad) if m not in ALLOWED] == ["avood_core.protocols", "avood_core.registry"]
