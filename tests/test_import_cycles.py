"""The import graph of ``avood_core`` and ``plugins``: no cycles, and no module importing one above its layer.

Every ``import`` counts: at module level, inside a function (a lazy import still ties the two
modules together) and under ``if TYPE_CHECKING:`` (a type still names the module). Imports of a package's
``__init__`` (the facade ``avood_core``) are not edges. docs/architecture.md, "Layers", shows
:data:`LAYERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"avood_core": ROOT / "avood_core", "avood_plugins": ROOT / "plugins"}

# Lowest first. A module belongs to the entry with the longest prefix of its dotted name (under
# avood_core); it may import its own layer and the ones below, never one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("util", "errors", "limits", "strict", "hookspecs")),
    ("contract", ("protocols", "task", "stages", "callbacks", "registry", "fusion")),
    ("numerics", ("data", "train", "eval.metrics", "eval.stats", "bench.meter",
                  "run.files", "run.tracking")),
    ("config", ("config", "recipe")),
    ("pipeline", ("pipeline", "testing", "eval", "run.folder")),
    ("executor", ("executor",)),
    ("run", ("run",)),
    ("experiments", ("sweep", "eval.ablate", "eval.ablate_table1",
                     "bench")),
    ("cli", ("cli",)),
)
PLUGIN_CEILING = "config"  # plugins may import the core up to this layer (and the facade)


def modules() -> dict[str, Path]:
    out = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child)

    visit(tree)
    return found


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the tree it imports (packages' ``__init__`` left out)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
                head = ".".join(p for p in (base, node.module or "") if p)
                targets = [head, *(f"{head}.{a.name}" for a in node.names)]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod and mods[target].name != "__init__.py":
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(module: str) -> int:
    """The index in :data:`LAYERS` of an ``avood_core`` module (its longest matching prefix)."""
    name = module.removeprefix("avood_core.")
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS in {Path(__file__).name}")
    return best


def violations(graph: dict[str, set[str]]) -> list[str]:
    ceiling = [name for name, _ in LAYERS].index(PLUGIN_CEILING)
    out = []
    for mod, targets in sorted(graph.items()):
        if mod == "avood_core":  # the facade draws lazily on any module (PEP 562)
            continue
        for target in sorted(t for t in targets if t.startswith("avood_core.")):
            own = ceiling if mod.startswith("avood_plugins.") else layer(mod)
            if layer(target) > own:
                out.append(f"{mod} ({LAYERS[own][0]}) imports {target} ({LAYERS[layer(target)][0]})")
    return out


def test_no_import_cycles() -> None:
    found = cycles(edges(modules()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_climbs_a_layer() -> None:
    bad = violations(edges(modules()))
    assert not bad, "imports above the importer's layer:\n" + "\n".join(bad)


def test_the_checks_can_fail() -> None:
    graph = {"avood_core.config": {"avood_core.cli.options"}, "avood_core.cli.options": {"avood_core.config"},
             "avood_core.util.io": set(), "avood_plugins.x": {"avood_core.pipeline.core"}}
    assert cycles(graph) == [["avood_core.cli.options", "avood_core.config"]]
    assert violations(graph) == [
        "avood_core.config (config) imports avood_core.cli.options (cli)",
        "avood_plugins.x (config) imports avood_core.pipeline.core (pipeline)"]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                     "def f():\n    import c\n")
    assert sorted(n.names[0].name for n in _imports(tree) if isinstance(n, ast.Import)) == ["a", "b", "c"]


def test_every_module_has_a_layer() -> None:
    for mod in modules():
        if mod.startswith("avood_core."):
            assert 0 <= layer(mod) < len(LAYERS)


def test_architecture_shows_the_layers() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    for name, prefixes in LAYERS:
        row = next((line for line in section.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"docs/architecture.md, Layers: no row for layer '{name}'"
        for prefix in prefixes:
            assert f"`{prefix}`" in row, f"docs/architecture.md, Layers: '{name}' row lacks `{prefix}`"
