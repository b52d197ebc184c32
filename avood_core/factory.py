"""Components by kind and name, with a profile's params (:func:`profile_params`: ``quick`` overrides
first, the caller's win; under ``paper`` the class defaults, §4.2, stand)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping

from avood_core.errors import ConfigError
from avood_core.strict import format_validation_error

if TYPE_CHECKING:
    from avood_core.protocols import Component

Profile = Literal["quick", "paper"]
PROFILES: tuple[str, ...] = ("quick", "paper")
DEFAULT_PROFILE = "quick"


def profile_params(cls: type, profile: str = "paper", params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``cls``'s params under ``profile``, not yet validated: ``quick`` overrides (that profile only), then ``params``."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use 'quick' (reduced epochs) or 'paper' (full budgets)")
    base = dict(getattr(cls, "quick", {})) if profile == "quick" else {}
    return {**base, **dict(params or {})}


def create_component(kind: str, name: str, profile: str = "paper", **params: Any) -> "Component":
    """A new, unfitted ``kind`` component ``name`` with ``profile``'s params, ``params`` overriding single
    fields; an unknown kind or name is a :class:`PluginError`, a bad param a :class:`ConfigError`."""
    from avood_core.registry import get_registry

    cls = get_registry().component_class(kind, name)
    return cls(validated_params(cls, kind, name, profile, params))


def validated_params(cls: type, kind: str, name: str, profile: str, params: Mapping[str, Any] | None,
                     source: str = "") -> Any:
    """``cls.Params`` of :func:`profile_params`; a bad value is one :class:`ConfigError` line naming the field."""
    from pydantic import ValidationError

    try:
        return cls.Params.model_validate(profile_params(cls, profile, params))
    except ValidationError as exc:
        raise ConfigError(f"{source}{format_validation_error(exc, f'{kind}.params', cls.Params)} ({kind} '{name}')") from None


def list_components(kind: str | None = None) -> list[str] | dict[str, list[str]]:
    """The installed component names of ``kind``; no ``kind``: every kind (stages, ``fusion``) to its names."""
    from avood_core.registry import ALL_KINDS, get_registry

    registry = get_registry()
    if kind is not None:
        return registry.names(kind)
    return {k: registry.names(k) for k in ALL_KINDS}
