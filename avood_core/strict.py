"""Config values as they were typed: what pydantic's lax mode would coerce silently (``seed = true``,
``"0.001"``, ``stage1 = 1``, ``lr = inf``) is refused as one line naming the dotted field."""

from __future__ import annotations

import json
import math
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


_EXPECTED = {"bool_type": "a boolean", "int_type": "an integer", "float_type": "a number"}


def check_values(model: type[BaseModel], data: Any, prefix: str, source: str) -> None:
    """Refuse, as one :class:`ConfigError` line naming ``prefix`` + field, what pydantic would coerce into
    a numeric or boolean field of ``model`` (nested models and list items too): its strict mode finds them."""

    def marked(value: Any) -> Any:  # a non-finite number goes in as a string, which strict mode refuses
        if isinstance(value, dict):
            return {k: marked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [marked(v) for v in value]
        return "non-finite" if isinstance(value, float) and not math.isfinite(value) else value

    found: dict[str, tuple[Any, set[str]]] = {}
    try:  # JSON input, so that lists fill tuples; what TOML cannot hold (a Path, a date) goes in as null
        model.model_validate_json(json.dumps(marked(data), default=lambda v: None), strict=True)
    except ValidationError as exc:
        for err in (e for e in exc.errors() if e["type"] in _EXPECTED and isinstance(data, dict)):
            path, value = [], data
            for part in err["loc"]:  # the keys and indices into data, not a union member's tag ('constrained-int')
                if part in value if isinstance(value, dict) else isinstance(value, list) and isinstance(part, int):
                    path.append(str(part))
                    value = value[part]
            found.setdefault(f"{source}: {prefix}{'.'.join(path)}", (value, set()))[1].add(_EXPECTED[err["type"]])
    for loc, (value, kinds) in found.items():
        if kinds == {"a boolean"}:
            raise ConfigError(f"{loc}: expected a boolean, got {value!r}; give true or false")
        kind = "an integer" if kinds == {"an integer"} else "a number"
        if "a boolean" in kinds:
            continue
        if isinstance(value, bool):
            raise ConfigError(f"{loc}: expected {kind}, got the boolean {json.dumps(value)}; give {kind}")
        if isinstance(value, str):
            raise ConfigError(f"{loc}: expected {kind}, got the string {value!r}; write the number without quotes")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{loc}: {value} is not a finite number; give a finite value")


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
