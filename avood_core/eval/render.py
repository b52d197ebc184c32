"""Markdown and self-contained HTML (PNGs embedded) of a report's blocks: ``("h1"|"h2"|"h3", text)``,
``("p", text)``, ``("table", header, rows)``, ``("code", text, language)``, ``("figure", stem, caption)``.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np


def num(v: Any, fmt: str = ".2f") -> str:
    """``v`` formatted with ``fmt``; NaN/inf and None as n/a, anything else as its text."""
    if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
        return format(float(v), fmt) if math.isfinite(float(v)) else "n/a"
    return "n/a" if v is None else str(v)


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def interval(v: Any) -> list | None:
    """``v`` if it is an interval ``[lo, hi]`` of finite numbers (as results.json stores them), else None."""
    return v if isinstance(v, list) and len(v) == 2 and all(finite(x) for x in v) else None


def ci_cell(value: Any, ci: Any) -> str:
    """``30.31 [27.9, 32.6]``: a metric with its bootstrap interval (``results["metrics_ci"]``), if any."""
    ci = interval(ci)
    return num(value) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci and finite(value) else "")


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def md_table(header: list, rows: list, align: str = "") -> str:
    """A markdown table; ``align``: ``l``/``r`` per column (default: the first left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows])


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .6em}td:not(:first-child),th:not(:first-child){text-align:right}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-style:italic;color:#555}"""


def render(blocks: list, run_dir: Path, title: str) -> tuple[str, str]:
    """The markdown and the self-contained HTML (figures' PNGs from ``run_dir`` embedded) of ``blocks``."""
    e = html.escape
    md, out = [], [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
                   f"<style>{_CSS}</style></head><body>"]
    for kind, *a in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            md.append(("#" * int(kind[1]) + " " if kind != "p" else "") + a[0])
            out.append(f"<{kind}>{e(a[0])}</{kind}>")
        elif kind == "table":
            header, rows = a
            md.append(md_table(header, rows))
            out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
        elif kind == "code":
            md.append(f"```{a[1]}\n{a[0].rstrip()}\n```")
            out.append(f"<pre><code>{e(a[0].rstrip())}</code></pre>")
        elif kind == "figure":
            rel, caption = a
            md.append(f"![{caption}]({rel}.png)\n\n*{caption}* ([SVG]({rel}.svg))")
            data = base64.b64encode((run_dir / f"{rel}.png").read_bytes()).decode("ascii")
            out.append(f"<figure><img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{e(caption)}</figcaption></figure>")
    out.append("</body></html>\n")
    return "\n\n".join(md) + "\n", "\n".join(out)
