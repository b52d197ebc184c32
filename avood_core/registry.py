"""Plugin registry on pluggy: every component, the paper's own included, arrives through the ``avood``
entry-point group (or :meth:`Registry.register_plugin`). A plugin whose import or hook fails is
recorded in :attr:`Registry.broken` and the rest keeps working; an unknown name fails with the valid
names; the same kind/name from two providers is an error naming both. :func:`create_component` builds
one with a profile's params (:func:`profile_params`: ``quick`` overrides first, the caller's win; under
``paper`` the class defaults, §4.2, stand)."""

from __future__ import annotations

import importlib.metadata as md
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pluggy

from avood_core import hookspecs
from avood_core.errors import ConfigError, PluginError, reraise_interrupt
from avood_core.stages import KINDS, STAGES
from avood_core.strict import format_validation_error

ALL_KINDS: tuple[str, ...] = (*KINDS, "fusion")
"""The stages' kinds and ``fusion`` (how a stage combines audio and video, avood_core.fusion)."""
PLUGIN_KINDS: tuple[str, ...] = (*ALL_KINDS, "logger")
"""What a plugin may register: those and experiment loggers (avood_core.run.tracking)."""
KIND_LABELS = {**{s.kind: f"{s.noun}s" for s in STAGES}, "fusion": "fusions", "logger": "loggers"}
PROFILES: tuple[str, ...] = ("quick", "paper")
DEFAULT_PROFILE = "quick"


def failure(exc: BaseException) -> str:
    """What a plugin's code raised, in one line (``sys.exit`` named as such)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


@dataclass(frozen=True)
class Provider:
    """Where a component came from: the plugin (entry point) and its distribution."""

    plugin: str
    dist: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.dist:
            return f"{self.dist} {self.version} (plugin '{self.plugin}')"
        return f"plugin '{self.plugin}' (not installed from a package)"


@dataclass
class ComponentEntry:
    """One registered component; ``target`` is a class or a lazy ``"module:Class"`` path."""

    kind: str
    name: str
    target: Any
    provider: Provider
    _cls: type | None = field(default=None, repr=False)

    def load(self) -> type:
        if self._cls is None:
            try:
                self._cls = pkgutil.resolve_name(self.target) if isinstance(self.target, str) else self.target
            except BaseException as exc:  # a third party's import may fail in any way, sys.exit included
                reraise_interrupt(exc)
                raise PluginError(f"{self.kind} '{self.name}' from {self.provider} failed to import "
                                  f"'{self.target}': {failure(exc)}; reinstall or fix that plugin") from None
        return self._cls


@dataclass(frozen=True)
class BrokenPlugin:
    provider: Provider
    error: str


class Registry:
    """Components by kind and name, collected from plugins through the ``register_components`` hook."""

    def __init__(self, discover: bool = True, kinds: tuple[str, ...] = PLUGIN_KINDS) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.kinds = kinds  # what a plugin may register (a stage table other than STAGES adds its kinds)
        self.entries: dict[str, dict[str, ComponentEntry]] = {k: {} for k in kinds}
        self.broken: list[BrokenPlugin] = []
        if discover:
            self.discover()

    def discover(self, group: str = hookspecs.PROJECT) -> None:
        """Load every entry point of ``group``; a failing one is recorded as broken."""
        for ep in sorted(md.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            provider = Provider(ep.name, *((dist.name, dist.version) if dist else ()))
            try:
                plugin = ep.load()
            except BaseException as exc:  # SystemExit at import too: the plugin is broken, not avood
                reraise_interrupt(exc)
                self.broken.append(BrokenPlugin(provider, failure(exc)))
                continue
            self.register_plugin(plugin, provider=provider)

    def register_plugin(self, plugin: object, name: str | None = None, provider: Provider | None = None) -> None:
        """Register a module or object implementing ``register_components`` (no package needed)."""
        provider = provider or Provider(name or getattr(plugin, "__name__", type(plugin).__name__))
        try:
            self.pm.register(plugin, name=f"{provider.plugin}@{id(plugin)}")
        except Exception as exc:
            self.broken.append(BrokenPlugin(provider, f"{type(exc).__name__}: {exc}"))
            return
        added: list[tuple[str, str]] = []

        def register(kind: str, comp_name: str, target: object) -> None:
            self.add(ComponentEntry(kind, comp_name, target, provider))
            added.append((kind, comp_name))

        for impl in self.pm.hook.register_components.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except BaseException as exc:
                reraise_interrupt(exc)
                for kind, comp_name in added:
                    self.entries[kind].pop(comp_name, None)
                self.pm.unregister(plugin)
                self.broken.append(BrokenPlugin(provider, failure(exc)))
                return

    def add(self, entry: ComponentEntry) -> None:
        """Register one component directly (the kit's private registry; plugins use the hook)."""
        if entry.kind not in self.kinds:
            raise PluginError(f"{entry.provider} registers '{entry.name}' under unknown kind '{entry.kind}'; "
                              f"valid kinds: {', '.join(self.kinds)}")
        if not isinstance(entry.name, str) or not entry.name.isidentifier():
            raise PluginError(f"{entry.provider} registers an invalid {entry.kind} name {entry.name!r}; use an identifier")
        existing = self.entries[entry.kind].get(entry.name)
        if existing is not None:
            raise PluginError(f"duplicate {entry.kind} '{entry.name}': provided by {existing.provider} and by "
                              f"{entry.provider}; uninstall one of them")
        self.entries[entry.kind][entry.name] = entry

    def names(self, kind: str) -> list[str]:
        if kind not in self.kinds:
            raise PluginError(f"unknown plugin kind '{kind}'; valid kinds: {', '.join(self.kinds)}")
        return sorted(self.entries[kind])

    def entry(self, kind: str, name: str) -> ComponentEntry:
        names = self.names(kind)
        if name not in names:
            valid = ", ".join(names) or "(none installed)"
            raise PluginError(f"unknown {kind} '{name}'; valid {KIND_LABELS.get(kind, kind + 's')}: {valid}")
        return self.entries[kind][name]

    def component_class(self, kind: str, name: str) -> type:
        cls = self.entry(kind, name).load()
        declared = getattr(cls, "kind", None)
        if declared != kind:
            raise PluginError(f"{kind} '{name}' resolves to {cls!r}, which declares kind={declared!r}; its plugin "
                              f"must register it under kind '{declared}' or subclass the {kind} protocol")
        return cls

    def __iter__(self) -> Iterable[ComponentEntry]:
        """The components (the stages' kinds and fusions); :meth:`all_entries` adds the loggers."""
        return self.all_entries(ALL_KINDS)

    def all_entries(self, kinds: tuple[str, ...] | None = None) -> Iterable[ComponentEntry]:
        """Every registered plugin entry of ``kinds`` (default: all), by kind then name."""
        for kind in kinds or self.kinds:
            for name in sorted(self.entries[kind]):
                yield self.entries[kind][name]


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, discovered from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def set_registry(registry: Registry | None) -> None:
    """Replace (or with ``None`` reset) the process-wide registry, e.g. in tests."""
    global _default
    _default = registry


def registered_name(cls: type) -> str:
    """The name the process-wide registry knows ``cls`` by under its ``kind`` (a lazy ``"module:Class"``
    entry matches without importing anything); the class name for a class not from the registry."""
    kind, path = getattr(cls, "kind", ""), f"{cls.__module__}:{cls.__qualname__}"
    for entry in get_registry().entries.get(kind, {}).values():
        if entry.target is cls or entry.target == path or entry._cls is cls:
            return entry.name
    return cls.__name__


def profile_params(cls: type, profile: str = "paper", params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``cls``'s params under ``profile``, not yet validated: ``quick`` overrides (that profile only), then ``params``."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use 'quick' (reduced epochs) or 'paper' (full budgets)")
    base = dict(getattr(cls, "quick", {})) if profile == "quick" else {}
    return {**base, **dict(params or {})}


def validated_params(cls: type, kind: str, name: str, profile: str, params: Mapping[str, Any] | None,
                     source: str = "") -> Any:
    """``cls.Params`` of :func:`profile_params`; a bad value is one :class:`ConfigError` line naming the field."""
    from pydantic import ValidationError

    try:
        return cls.Params.model_validate(profile_params(cls, profile, params))
    except ValidationError as exc:
        raise ConfigError(f"{source}{format_validation_error(exc, f'{kind}.params', cls.Params)} ({kind} '{name}')") from None


def create_component(kind: str, name: str, profile: str = "paper", **params: Any) -> Any:
    """A new, unfitted ``kind`` component ``name`` with ``profile``'s params, ``params`` overriding single
    fields; an unknown kind or name is a :class:`PluginError`, a bad param a :class:`ConfigError`."""
    cls = get_registry().component_class(kind, name)
    return cls(validated_params(cls, kind, name, profile, params))


def list_components(kind: str | None = None) -> list[str] | dict[str, list[str]]:
    """The installed component names of ``kind``; no ``kind``: every kind (stages, ``fusion``) to its names."""
    registry = get_registry()
    return registry.names(kind) if kind is not None else {k: registry.names(k) for k in ALL_KINDS}
