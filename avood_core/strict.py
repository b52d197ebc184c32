"""Config values as they were typed: what pydantic's lax mode would coerce silently (``seed = true``,
``"0.001"``, ``stage1 = 1``, ``lr = inf``) is refused as one line naming the dotted field."""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

from annotated_types import Le
from pydantic import BaseModel, ValidationError

from avood_core.errors import ConfigError


def _field_at(model: Any, loc: tuple) -> tuple[Any, Any]:
    """``(field, annotation)`` at ``loc`` (a pydantic error's location) of ``model``, or ``(None, None)``."""
    field = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None, None
        field = model.model_fields[part]
        model = field.annotation
    return field, model


def _numeric(annotation: Any) -> tuple[str | None, Any]:
    """``("an integer" | "a number" | None, element annotation)`` of a field's annotation:
    what a numeric field expects, or the annotation of a list/tuple field's items."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric(args[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [_numeric(a)[0] for a in args if a is not type(None)]
        if kinds and all(kinds) and "a boolean" not in kinds:
            return ("an integer" if set(kinds) == {"an integer"} else "a number"), None
        return None, None
    if origin in (list, tuple) and args:
        return None, args[0]
    return next((word for t, word in ((bool, "a boolean"), (int, "an integer"), (float, "a number"))
                 if annotation is t), None), None


def check_values(model: type[BaseModel], data: Any, prefix: str, source: str) -> None:
    """Refuse, as one :class:`ConfigError` line naming ``prefix`` + field, what pydantic would coerce into
    a numeric or boolean field of ``model`` (nested models and list items too)."""

    def check(annotation: Any, value: Any, loc: str) -> None:
        kind, item = _numeric(annotation)
        if kind == "a boolean":
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: {loc}: expected a boolean, got {value!r}; give true or false")
        elif kind is not None:
            if isinstance(value, bool):
                raise ConfigError(f"{source}: {loc}: expected {kind}, got the boolean {json.dumps(value)}; give {kind}")
            if isinstance(value, str):
                raise ConfigError(f"{source}: {loc}: expected {kind}, got the string {value!r}; "
                                  f"write the number without quotes")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{source}: {loc}: {value} is not a finite number; give a finite value")
        elif item is not None and isinstance(value, (list, tuple)):
            items = typing.get_args(annotation)
            for i, v in enumerate(value):
                check(items[i] if len(items) > i and items[-1] is not Ellipsis else item, v, f"{loc}.{i}")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
            check_values(annotation, value, f"{loc}.", source)

    for key, value in data.items() if isinstance(data, dict) else ():
        if key in model.model_fields:
            check(model.model_fields[key].annotation, value, f"{prefix}{key}")


def format_validation_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line, ``field.path: message (got value)`` per error; ``model`` lets it name a limit and valid keys."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(err["loc"]))
        got = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
        limit, valid = None, None
        if err["type"] == "int_parsing_size":  # a number too large to parse: name the field's limit
            field = _field_at(model, err["loc"])[0]
            limit = next((m.le for m in (field.metadata if field else []) if isinstance(m, Le)), None)
        elif err["type"] == "extra_forbidden":
            nested = _field_at(model, err["loc"][:-1])[1]
            valid = list(nested.model_fields) if isinstance(nested, type) and issubclass(nested, BaseModel) else None
        parts.append(f"{loc}: {err['msg']}{got}" + (f"; the limit is {limit}" if limit is not None else "")
                     + (f"; valid keys: {', '.join(valid)}" if valid else ""))
    return "; ".join(parts)
