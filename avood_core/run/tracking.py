"""Experiment loggers: ``logger`` plugins fed by the run's callbacks (``avood run --logger mlflow``),
chosen by the config's ``[logging]`` table; in a sweep :class:`SweepSession` starts each once
(e.g. MLflow's parent run). docs/writing-a-plugin.md §9, docs/scaling.md "Experiment loggers"."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avood_core.callbacks import Callback, CallbackList
from avood_core.errors import ConfigError, PluginError, one_line
from avood_core.strict import format_validation_error
from avood_core.util.nested import flat


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
        self.echo: Callable[[str], None] = lambda message: None  # the run's log lines (set by make_loggers)
        self.name = type(self).__name__  # its registered name, set by make_loggers

    def check(self) -> None:
        """Before any training: fail with one line when the logger cannot work (library, server)."""

    def sweep_start(self, name: str, folder: Path, params: Mapping[str, Any]) -> dict | None:
        """Once in a sweep's process, before its trials: what each trial's logger then finds in
        :func:`trial_info` under this logger's name."""
        return None

    def sweep_end(self, failed: int, exc: BaseException | None) -> None:
        """The sweep is over: ``failed`` trials failed; ``exc`` stopped it (Ctrl-C, an error)."""

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
            raise ConfigError(f"config: {format_validation_error(exc, f'logging.{name}')} (logger '{name}')") from None
    for name, value in extra.items():
        resolved.setdefault(name, value)
    return LoggingConfig.model_validate({"loggers": logging.loggers, "every_n_steps": logging.every_n_steps, **resolved})


def make_loggers(logging: LoggingConfig, registry, echo: Callable[[str], None] = lambda m: None) -> list[Logger]:
    """The chosen loggers, each checked (library importable, store reachable) before the run starts."""
    extra = dict(logging.model_extra or {})
    loggers = []
    for name in logging.loggers:
        logger = registry.component_class("logger", name)(extra.get(name) or {})
        logger.echo, logger.name = echo, name  # the name its errors are reported under
        logger.check()
        loggers.append(logger)
    return loggers


_TRIAL: dict[str, Any] = {}  # what the sweep's process handed the trial running in this process


@contextlib.contextmanager
def trial_context(context: Mapping[str, Any] | None) -> Iterator[None]:
    """While a sweep's trial runs here: ``{"sweep": name, <logger>: its sweep_start's result}``."""
    global _TRIAL
    previous, _TRIAL = _TRIAL, dict(context or {})
    try:
        yield
    finally:
        _TRIAL = previous


def trial_info(key: str) -> Any:
    """``key`` of the running sweep trial's context (``None`` outside a sweep)."""
    return _TRIAL.get(key)


class SweepSession:
    """The sweep-level hooks of a sweep's loggers: built (the loggers checked) before any work;
    :meth:`running` yields the trials' context; set ``failed`` before leaving it."""

    def __init__(self, logging: LoggingConfig | None, registry, name: str, folder: Path,
                 echo: Callable[[str], None] = lambda m: None) -> None:
        # the loggers checked here: an unreachable store is one line before any work
        self.loggers = make_loggers(logging, registry, echo) if logging is not None else []
        self.name, self.folder = name, Path(folder)
        self.failed = 0

    @contextlib.contextmanager
    def running(self, params: Mapping[str, Any], trials: int) -> Iterator[dict[str, Any]]:
        """Around the ``trials`` that run (none: no sweep_start); yields the trials' context."""
        context: dict[str, Any] = {"sweep": self.name}
        started: list[Logger] = []
        for logger in self.loggers if trials else ():
            try:
                given = logger.sweep_start(self.name, self.folder, params)
            except Exception as exc:
                raise PluginError(f"logger '{logger.name}' could not start the sweep: {one_line(exc)}; "
                                  f"check its logging.{logger.name} params or drop --logger {logger.name}") from None
            started.append(logger)
            if given:
                context[logger.name] = given
        error: BaseException | None = None
        try:
            yield context
        except BaseException as exc:
            error = exc
            raise
        finally:
            for logger in started:
                try:
                    logger.sweep_end(self.failed, error)
                except Exception as exc:
                    if error is None:
                        raise PluginError(f"logger '{logger.name}' failed at the end of the sweep ({one_line(exc)}); "
                                          "the trials themselves are complete") from None


def headline(results: Mapping[str, Any]) -> dict[str, float]:
    """The final numbers a logger records: S, U, HM, ZSL, AUROC and every other numeric metric."""
    metrics = results.get("metrics", {})
    out = {k: float(v) for k, v in flat(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "gate.AUROC" in out:
        out["AUROC"] = out["gate.AUROC"]
    return out


@contextlib.contextmanager
def run_session(loggers: list[Callback], run_dir: Path, config: Mapping[str, Any]) -> Iterator[Callable[[Any], None]]:
    """The run-level hooks of ``loggers``: ``on_run_start`` on entry, ``on_run_end`` by the function it yields
    (given the results); what raises before that, a logger's start included, goes to ``on_exception``."""
    ended = False

    def end(results: Mapping[str, Any]) -> None:
        nonlocal ended
        ended = True
        for cb in loggers:
            try:
                cb.on_run_end(run_dir, results)
            except Exception as exc:
                raise PluginError(f"logger {type(cb).__name__} failed at the end of the run ({one_line(exc)}); "
                                  f"the run itself is complete in '{run_dir}'") from None

    try:
        for cb in loggers:
            try:
                cb.on_run_start(run_dir, config)
            except Exception as exc:  # a tracking server down, a bad URI: one line before any training
                raise PluginError(f"logger {type(cb).__name__} could not start: {one_line(exc)}; "
                                  "check its logging.<name> params or drop --logger") from None
        yield end
    except BaseException as exc:
        if not ended:
            CallbackList(loggers).on_exception(run_dir, exc)
        raise
