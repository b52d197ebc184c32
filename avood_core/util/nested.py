"""Dotted paths into nested dicts (``"gate.AUROC"``), as results.json, the sweep tables and the loggers name metrics."""

from __future__ import annotations

from typing import Any, Mapping


def get_path(d: Any, path: str) -> Any:
    """``d["gate"]["AUROC"]`` for ``"gate.AUROC"``; None where a step is missing."""
    for key in path.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
