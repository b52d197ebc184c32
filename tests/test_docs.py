"""The docs stay true: generated references up to date, code in the docs runs, links resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), DOCS / script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script,target", [
    ("gen_config_reference.py", "config-reference.md"),
    ("gen_cli_reference.py", "cli.md"),
])
def test_generated_reference_is_up_to_date(script, target):
    expected = _load(script).render()
    current = (DOCS / target).read_text(encoding="utf-8")
    assert current == expected, f"docs/{target} is out of date; run: python docs/{script}"


def test_config_reference_covers_every_field_and_builtin():
    from avood_core.config import DataConfig, RunConfig
    from avood_core.registry import Registry

    text = (DOCS / "config-reference.md").read_text(encoding="utf-8")
    for name in RunConfig.model_fields:
        assert f"`{name}" in text
    for name in DataConfig.model_fields:
        assert f"`data.{name}`" in text
    registry = Registry()
    for entry in registry:
        if entry.provider.dist != "avood":
            continue
        assert f"### {entry.kind} `{entry.name}`" in text
        for field in registry.component_class(entry.kind, entry.name).Params.model_fields:
            assert f"`{entry.kind}.{field}`" in text


def test_cli_reference_lists_every_command():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for command in ("run", "config", "plugins", "evaluate", "predict", "data synth", "data check", "presets",
                    "report", "ablate gates", "ablate classifiers", "ablate losses", "ablate fusion"):
        assert f"`avood {command}`" in text, command


def _block(doc: str, tag: str, lang: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    match = re.search(rf"<!-- doc-test: {re.escape(tag)}[^>]*-->\s*```{lang}\n(.*?)```", text, re.S)
    assert match, f"docs/{doc}: no ```{lang} block after the doc-test marker '{tag}'"
    return match.group(1)


def test_plugin_guide_example_passes_the_kit():
    from avood_core.testing import check_component

    namespace: dict = {}
    exec(compile(_block("writing-a-plugin.md", "centroid_gate", "python"), "writing-a-plugin.md", "exec"), namespace)
    check_component(namespace["CentroidGate"], name="centroid_gate")


def test_plugin_guide_fusion_example_passes_the_fusion_kit():
    from avood_core.testing import FUSION_CHECKS, check_component

    namespace: dict = {}
    exec(compile(_block("writing-a-plugin.md", "hadamard_fusion", "python"), "writing-a-plugin.md", "exec"), namespace)
    report = check_component(namespace["Hadamard"], params={"init_scale": 0.5}, name="hadamard")
    assert set(report.results) == set(FUSION_CHECKS)


def test_readme_and_plugins_command_show_the_fusion_kind():
    from typer.testing import CliRunner

    from avood_core.cli.commands import app

    assert re.search(r"fusions\s+`concat` \(paper", (ROOT / "README.md").read_text(encoding="utf-8"))
    out = CliRunner().invoke(app, ["plugins"]).output
    rows = {tuple(line.split()[:2]) for line in out.splitlines()[1:]}
    assert {("fusion", n) for n in ("concat", "audio", "video", "mean", "sum", "gated", "cross_attention")} <= rows


def test_reference_config_in_defects_doc_validates(tmp_path):
    from avood_core.config import build_config, resolve

    path = tmp_path / "reference.toml"
    path.write_text(_block("defects.md", "reference-config", "toml"))
    cfg = resolve(build_config(path))
    assert cfg.data.compat_positional_text is True
    assert cfg.generator.params["compat_label_condition"] is True
    assert cfg.unseen.params["compat_frozen_position"] is True
    assert cfg.detector.params["threshold_rule"] == "reference_half"


def test_defect_switches_named_in_the_docs_exist():
    """Each switch defects.md names is a real field (a rename must update the doc)."""
    from avood_core.config import DataConfig
    from avood_core.registry import Registry

    text = (DOCS / "defects.md").read_text(encoding="utf-8")
    registry = Registry()
    fields: dict[str, set[str]] = {"data": set(DataConfig.model_fields)}
    for entry in registry:
        if entry.kind == "fusion":  # fusions are set through a stage's fusion_params, not as `fusion.<param>`
            continue
        cls = registry.component_class(entry.kind, entry.name)
        fields.setdefault(entry.kind, set()).update(cls.Params.model_fields)
    for kind, known in fields.items():
        named = set(re.findall(rf"`{kind}\.([a-z_]+)", text))
        assert named, f"defects.md names no {kind} switch"
        missing = named - known
        assert not missing, f"defects.md names {kind}.{sorted(missing)}, which no {kind} plugin has"
    entropy_rule = registry.component_class("detector", "entropy").Params.model_fields["threshold_rule"]
    assert "reference_half" in str(entropy_rule.annotation)


def test_reproducing_names_the_commands():
    text = (DOCS / "reproducing.md").read_text(encoding="utf-8")
    for needle in ("avood ablate gates", "avood ablate classifiers", "avood ablate losses",
                   "--preset ucf", "activitynet", "vggsound", "avood run --preset"):
        assert needle in text
    assert "once implemented" not in text.lower()


def test_architecture_has_the_data_flow_diagram():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert "```mermaid" in text
    for needle in ("generator", "synthetic unseen", "OOD detector", "seen classifier", "unseen classifier",
                   "stage 1", "stage 2"):
        assert needle in text


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(doc):
    text = (DOCS / doc).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (DOCS / target).resolve().exists(), f"docs/{doc} links to missing {target}"


def test_readme_links_work_on_a_package_index_page():
    """PyPI renders the README without the repository: every link is absolute, and each one into the
    repository (pyproject's Source URL) names a file or folder of this checkout."""
    import tomllib

    source = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Source"]
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links
    for link in links:
        assert re.match(r"https?://", link), f"README.md has the relative link {link}"
        path = re.match(re.escape(source) + r"/(?:blob|tree)/main/([^#]*)", link.split("?")[0])
        if path:
            assert (ROOT / path.group(1)).exists(), f"README.md links to missing {path.group(1)}"
