"""The tree stays readable: small modules and classes, and docs/architecture.md maps every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("avood_core", "plugins")
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200



def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _oversized(paths: list[Path] | None = None) -> list[tuple[str, int]]:
    """``(path, N lines)`` and ``(path::Class, N lines)`` for every module and class over the limits."""
    found = []
    for path in paths if paths is not None else _modules(*PACKAGES):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append((_rel(path), lines))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                found.append((f"{_rel(path)}::{node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_no_module_over_400_lines_no_class_over_200():
    found = _oversized()
    over = [f"{name} ({n} lines)" for name, n in found]
    assert not over, (f"split these (modules <= {MAX_MODULE_LINES} lines, classes <= {MAX_CLASS_LINES}):\n"
                      + "\n".join(over))


def test_the_size_check_sees_classes_and_modules(tmp_path, monkeypatch):
    # the scan covers both packages (a wrong root would find nothing and pass)
    assert len(_modules("avood_core")) > 50 and len(_modules("plugins")) > 20
    big_class = "class Big:\n" + "    x = 1\n" * MAX_CLASS_LINES
    long_module = "\n" * (MAX_MODULE_LINES + 1)
    (tmp_path / "a.py").write_text(big_class)
    (tmp_path / "b.py").write_text(long_module)
    (tmp_path / "c.py").write_text("class Small:\n    x = 1\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)  # _rel() names files relative to ROOT
    assert sorted(_oversized(sorted(tmp_path.glob("*.py")))) == [("a.py::Big", MAX_CLASS_LINES + 1),
                                                                  ("b.py", MAX_MODULE_LINES + 1)]


def _module_map() -> list[str]:
    """The ``avood_core/...py`` paths in the first column of docs/architecture.md's "Module map"."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(avood_core/[^`]+\.py)` \|", section, flags=re.M)


def test_module_map_lists_every_module_once():
    listed = _module_map()
    assert len(listed) > 50, "no Module map table found in docs/architecture.md"
    twice = sorted({p for p in listed if listed.count(p) > 1})
    assert not twice, f"docs/architecture.md lists these modules twice: {twice}"
    actual = {_rel(p) for p in _modules("avood_core")}
    missing = sorted(actual - set(listed))
    assert not missing, "add to the Module map of docs/architecture.md (path + one line):\n" + "\n".join(missing)
    gone = sorted(set(listed) - actual)
    assert not gone, "the Module map of docs/architecture.md lists modules that do not exist:\n" + "\n".join(gone)
