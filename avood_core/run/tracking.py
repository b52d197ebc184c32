"""Experiment loggers: ``logger`` plugins fed by the run's callbacks (``avood run --logger mlflow``).

A logger is a :class:`~avood_core.callbacks.Callback` with a pydantic ``Params`` model and
``kind = "logger"``, registered like a component (``register("logger", "name", "pkg.mod:Class")``
in a plugin's ``register_components`` hook). The run config's ``[logging]`` table chooses them::

    [logging]
    loggers = ["mlflow", "tensorboard"]   # avood run --logger mlflow --logger tensorboard
    every_n_steps = 50                    # step metrics every N optimizer steps (0: epochs only)
    [logging.mlflow]                      # params of the mlflow logger (--set logging.mlflow.uri=...)
    uri = "file:/path/to/mlruns"

A logger imports its library only in :meth:`Logger.check` and later hooks, so ``avood --help``
stays fast; a missing library is one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avood_core.callbacks import Callback, CallbackList
from avood_core.errors import ConfigError, PluginError


class LoggingConfig(BaseModel):
    """The ``[logging]`` table: which loggers a run feeds, how often, and each one's params."""

    model_config = ConfigDict(extra="allow")
    loggers: list[str] = Field(
        default_factory=list, description="Experiment loggers fed during the run, e.g. ['mlflow', 'tensorboard'] "
        "(see 'avood plugins'); every run also writes metrics/<kind>.jsonl."
    )
    every_n_steps: int = Field(50, ge=0, description="Step metrics (loss terms, lr) every N optimizer steps; 0: per epoch only.")


class Logger(Callback):
    """Base of a logger plugin: ``Params`` validated from ``[logging.<name>]``; ``check`` imports its library."""

    kind: ClassVar[str] = "logger"
    Params: ClassVar[type[BaseModel]] = BaseModel
    extra: ClassVar[str] = ""
    """The avood extra that installs the library (``pip install 'avood[<extra>]'``)."""

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, BaseModel):
            params = params.model_dump()
        self.params = self.Params.model_validate(dict(params or {}))

    def check(self) -> None:
        """Fail with one line when the logger cannot work (its library missing); called before any training."""

    @classmethod
    def require(cls, module: str) -> Any:
        """``import module``, or a :class:`PluginError` saying which extra installs it."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            extra = cls.extra or module.split(".")[0]
            raise PluginError(
                f"logger '{extra}' needs the '{module.split('.')[0]}' package ({exc}); pip install 'avood[{extra}]'"
            ) from None


def resolve_logging(logging: LoggingConfig, registry) -> LoggingConfig:
    """``logging`` with each chosen logger known and its params validated, defaults filled."""
    extra = dict(logging.model_extra or {})
    unknown = sorted(set(extra) - set(logging.loggers) - set(registry.names("logger")))
    if unknown:
        raise ConfigError(f"config: logging.{unknown[0]} names no installed logger; "
                          f"valid loggers: {', '.join(registry.names('logger')) or '(none installed)'}")
    if len(set(logging.loggers)) != len(logging.loggers):
        raise ConfigError(f"config: logging.loggers {logging.loggers} names a logger twice; give each once")
    resolved: dict[str, Any] = {}
    for name in logging.loggers:
        cls = registry.component_class("logger", name)
        given = extra.get(name) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"config: logging.{name} must be a table of that logger's params, got {given!r}")
        try:
            resolved[name] = cls.Params.model_validate(given).model_dump(mode="json")
        except ValidationError as exc:
            from avood_core.config import format_validation_error

            raise ConfigError(f"config: {format_validation_error(exc, f'logging.{name}')} (logger '{name}')") from None
    for name, value in extra.items():
        resolved.setdefault(name, value)
    return LoggingConfig.model_validate({"loggers": logging.loggers, "every_n_steps": logging.every_n_steps, **resolved})


def make_loggers(logging: LoggingConfig, registry) -> list[Logger]:
    """The chosen loggers, each checked (library importable) before the run starts."""
    extra = dict(logging.model_extra or {})
    loggers = []
    for name in logging.loggers:
        logger = registry.component_class("logger", name)(extra.get(name) or {})
        logger.check()
        loggers.append(logger)
    return loggers


def flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def headline(results: Mapping[str, Any]) -> dict[str, float]:
    """The final numbers a logger records: S, U, HM, ZSL, AUROC and every other numeric metric."""
    metrics = results.get("metrics", {})
    out = {k: float(v) for k, v in flat(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "gate.AUROC" in out:
        out["AUROC"] = out["gate.AUROC"]
    return out


class RunSession:
    """The run-level hooks of ``loggers``: :meth:`start` once the run folder exists, :meth:`end`
    with the results; leaving the ``with`` block by an exception after :meth:`start` calls
    ``on_exception`` (a logger marks its run failed and closes its files)."""

    def __init__(self, loggers: list[Callback]) -> None:
        self.callbacks = CallbackList(loggers)
        self.run_dir: Path | None = None

    def __enter__(self) -> "RunSession":
        return self

    def start(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        for cb in self.callbacks.callbacks:
            try:
                cb.on_run_start(self.run_dir, config)
            except Exception as exc:  # a tracking server down, a bad URI: one line before any training
                detail = " ".join(str(exc).split())[:400]
                raise PluginError(f"logger {type(cb).__name__} could not start: {type(exc).__name__}: {detail}; "
                                  "check its logging.<name> params or drop --logger") from None

    def end(self, results: Mapping[str, Any]) -> None:
        run_dir, self.run_dir = self.run_dir, None
        if run_dir is None:
            return
        for cb in self.callbacks.callbacks:
            try:
                cb.on_run_end(run_dir, results)
            except Exception as exc:
                detail = " ".join(str(exc).split())[:400]
                raise PluginError(f"logger {type(cb).__name__} failed at the end of the run ({type(exc).__name__}: "
                                  f"{detail}); the run itself is complete in '{run_dir}'") from None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self.run_dir is not None:
            self.callbacks.on_exception(self.run_dir, exc)
