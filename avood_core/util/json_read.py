"""The one JSON reader of the project: unreadable, empty, non-UTF-8, too deep (:data:`MAX_DEPTH`, by a
bracket scan before parsing), invalid or mistyped files are refused with one line naming file and fix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Union

from avood_core.errors import AvoodError

MAX_DEPTH = 64
"""Deepest nesting accepted; avood's own files nest at most 6 levels (results.json's gate routing)."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
          bool: "true/false", type(None): "null"}

Types = Union[type, tuple[type, ...]]


def _name(types: Types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(_NAMES.get(t, t.__name__) for t in types)


def depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of JSON ``text`` (brackets inside strings not counted)."""
    deepest = level = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        level += 1 if match.group() in "[{" else -1
        deepest = max(deepest, level)
    return deepest


def _is(value: Any, types: Types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:  # JSON true is no number
        return False
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def parse_json(text: str, where: str, *, expect: Types | None = dict, error: type[AvoodError] = AvoodError,
               fix: str = "restore or rewrite it") -> Any:
    """JSON ``text`` parsed, depth- and type-checked; ``where`` names its origin in messages
    (``"'results.json'"``, ``"'metrics/seen.jsonl' line 3"``)."""
    if not text.strip():
        raise error(f"{where} is empty; {fix}")
    nested = depth(text)
    if nested > MAX_DEPTH:
        raise error(f"{where} nests {nested} levels deep (avood reads at most {MAX_DEPTH}); {fix}")
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = " ".join(str(exc).split())
        raise error(f"{where} is not valid JSON ({detail}); {fix}") from None
    if expect is not None and not _is(value, expect):
        raise error(f"{where} holds {_name(type(value))} where {_name(expect)} belongs; {fix}")
    return value


def read_json(path: str | Path, *, expect: Types | None = dict, error: type[AvoodError] = AvoodError,
              fix: str = "restore or rewrite it") -> Any:
    """The parsed JSON file ``path``; one ``error`` line naming it and ``fix`` on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"'{path}' not found; {fix}") from None
    except OSError as exc:
        raise error(f"'{path}' cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"'{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
                    f"avood writes UTF-8 JSON); {fix}") from None
    return parse_json(text, f"'{path}'", expect=expect, error=error, fix=fix)


def field(obj: dict, key: str, types: Types, where: str, *, error: type[AvoodError] = AvoodError,
          fix: str = "restore or rewrite it", required: bool = True, finite: bool = True) -> Any:
    """``obj[key]`` checked to be of ``types`` (a bool is never a number; a float must be finite);
    ``where`` names the object in messages, as for :func:`parse_json`."""
    if key not in obj:
        if required:
            raise error(f"{where}: field '{key}' is missing ({_name(types)} expected); {fix}")
        return None
    value = obj[key]
    if not _is(value, types):
        raise error(f"{where}: field '{key}' must be {_name(types)}, not {_name(type(value))} {value!r:.60}; {fix}")
    if finite and isinstance(value, float) and not math.isfinite(value):
        raise error(f"{where}: field '{key}' is {value}, not a finite number; {fix}")
    return value


def describe(exc: Any, shown: int = 2) -> str:
    """The first problems of a pydantic ``ValidationError``, one per field (a number's int/float
    alternatives merged): ``metrics.S: Input should be a valid number (got 'high')``."""
    problems: dict[str, tuple[str, Any]] = {}
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p not in ("int", "float")) or "the top level"
        problems[where] = (err["msg"].split(" or instance of")[0], err["input"])  # the last alternative: 'valid number'
    items = list(problems.items())
    text = "; ".join(f"{where}: {msg} (got {got!r:.60})" for where, (msg, got) in items[:shown])
    return text + (f" (and {len(items) - shown} more)" if len(items) > shown else "")
