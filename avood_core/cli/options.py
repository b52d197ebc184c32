"""What the ``avood`` commands share: the typer app, the exit statuses, and the run-config options
declared once (a command takes them with :func:`config_options` as one :class:`ConfigOptions`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

import typer

from avood_core.stages import BY_KIND, KINDS


# The exit statuses of every command (docs/cli.md): 2 keeps click's meaning, a command line that cannot be parsed.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    0: "success",
    EXIT_ERROR: "an error reported as one line `avood: error: ...`: a bad config value or unknown plugin, missing "
                "or malformed data, an unreadable run folder, a missing CUDA device or optional package, failed sweep "
                "trials, `avood data check` finding problems",
    EXIT_USAGE: "a usage error (click's meaning): unknown option, a value outside an option's choices, a missing "
                "argument (e.g. `avood sweep` without a spec); the usage line is printed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): what was saved and how to resume",
}
DEVICE_HELP = "cpu, cuda, cuda:N (the N-th GPU) or auto (cuda when available; the default)."
CONTEXT = {"help_option_names": ["-h", "--help"]}
"""Every command and group: ``-h`` is ``--help``."""


def usage_error(message: str) -> Exception:
    """A usage error (exit 2, after the command's usage line) of the click that typer runs on; recent
    typer releases bundle their own copy of click, so it is found through ``typer.BadParameter``."""
    usage = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    return usage(message)


def new_app(help: str, completion: bool = False) -> typer.Typer:
    """A typer app as every avood command group has it: help when called bare, ``-h``, plain tracebacks
    (``main`` makes user errors one line); ``completion``: the top-level app's completion options."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=completion, pretty_exceptions_enable=False,
                       context_settings=CONTEXT)


# Options with a fixed set of values are Literal types: --help lists them, the shell completes them,
# anything else is a usage error.
Dataset = Literal["ucf", "activitynet", "vggsound"]
Profile = Literal["quick", "paper"]
Engine = Literal["local", "ray"]


def _completion(kind: str) -> Callable[[str], list[str]]:
    """Shell completion of a ``kind`` plugin name (entry points only; no torch import) or of a preset."""

    def complete(incomplete: str) -> list[str]:
        from avood_core.recipe import preset_names
        from avood_core.registry import get_registry

        names = preset_names() if kind == "preset" else get_registry().names(kind)
        return [n for n in names if n.startswith(incomplete)]

    return complete


_COMPLETE = {name: _completion(kind) for name, kind in (*zip(KINDS, KINDS), ("loggers", "logger"), ("preset",) * 2)}


def _flags(*flags: str, help: str) -> Any:
    """A :class:`ConfigOptions` field: not given by default; its command-line flags and help text."""
    return dataclasses.field(default=None, metadata={"flags": flags, "help": help})


def _kind(kind: str) -> Any:
    return _flags(f"--{kind}", help=f"{BY_KIND[kind].noun.capitalize()} plugin name.")


# One meaning per option name across every command (docs/cli.md): -o/--output-dir is always a folder,
# --profile always quick/paper, --seed always the run's seed, --dataset always one of ucf/activitynet/vggsound.
@dataclasses.dataclass
class ConfigOptions:
    """The run-config options a command was given; ``None``: not given (the config's value stands)."""

    config: Optional[Path] = _flags("--config", "-c", help="TOML run config.")
    preset: Optional[str] = _flags("--preset", help=(
        "Per-dataset paper hyperparameters as the base config: ucf, activitynet or vggsound (see 'avood presets'); "
        "default with --data and no --config: the --dataset's own; none: no preset."))
    generator: Optional[str] = _kind("generator")
    detector: Optional[str] = _kind("detector")
    seen: Optional[str] = _kind("seen")
    unseen: Optional[str] = _kind("unseen")
    sets: Optional[list[str]] = _flags("--set", help="Override one value: KEY=VALUE, e.g. detector.lr=0.001 or seed=3.")
    profile: Optional[Profile] = _flags("--profile", help="quick (reduced epochs) or paper (full budgets).")
    seed: Optional[int] = _flags("--seed", help="Random seed of the run.")
    device: Optional[str] = _flags("--device", help=DEVICE_HELP)
    jobs: Optional[int] = _flags("--jobs", "-j", help=(
        "Processes fitting components side by side (2: the unseen classifier in a worker; the main process "
        "computes half of its later steps once free; identical results at equal threads per process; timings in "
        "docs/performance.md)."))
    output_dir: Optional[Path] = _flags("--output-dir", "-o", help="Parent folder of the run folder.")
    data: Optional[Path] = _flags("--data", help=(
        "Benchmark root (avgzsl_benchmark_datasets); runs the stage-1/stage-2 protocol."))
    dataset: Optional[Dataset] = _flags("--dataset", help=(
        "ucf, activitynet or vggsound (with --data: also picks that dataset's preset and the paper profile "
        "unless --preset, --profile or --config says otherwise)."))
    loggers: Optional[list[str]] = _flags("--logger", help=(
        "Experiment logger fed during the run (repeatable): mlflow, tensorboard or an installed logger plugin "
        "(see 'avood plugins'); params by --set logging.<name>.<param>=VALUE."))

    def components(self) -> dict[str, str | None]:
        """The ``--generator/--detector/--seen/--unseen`` choices, by kind."""
        return {kind: getattr(self, kind) for kind in KINDS}

    def values(self) -> dict[str, Any]:
        """The typed options by dotted config key (``--seed 3``: ``{"seed": 3}``), applied after ``--set``."""
        values: dict[str, Any] = {}
        if self.data is not None:
            values.update({"data.source": "benchmark", "data.path": str(self.data)})
        if self.dataset is not None:
            values["data.dataset"] = self.dataset
        for key, cast in (("profile", str), ("device", str), ("output_dir", str), ("seed", int), ("jobs", int)):
            if getattr(self, key) is not None:
                values[key] = cast(getattr(self, key))
        if self.loggers:
            from avood_core.cli.jsonio import split_list

            values["logging.loggers"] = split_list(self.loggers)
        return values

    def assemble_recipe(self) -> tuple[dict[str, Any], Any]:
        """:meth:`assemble` and its :class:`~avood_core.recipe.Recipe` (:func:`avood_core.recipe.assemble_recipe`)."""
        from avood_core.recipe import assemble_recipe

        return assemble_recipe(self.config, self.components(), self.sets, preset=self.preset, values=self.values())

    def build_recipe(self):
        """The validated run config (:func:`avood_core.config.finalize_config`) and its recipe."""
        from avood_core.config import finalize_config

        data, recipe = self.assemble_recipe()
        return finalize_config(data, source=str(self.config) if self.config else "config"), recipe


def announce(recipe: Any, quiet: bool = False) -> None:
    """The recipe line (not with ``quiet``) and its warnings on stderr, once the config is valid."""
    if not quiet:
        typer.echo(recipe.line(), err=True)
    for warning in recipe.warnings:
        typer.echo(f"avood: warning: {warning}", err=True)


_OPTIONS = {f.name: (f.metadata["flags"], f.metadata["help"]) for f in dataclasses.fields(ConfigOptions)}
_TYPES = typing.get_type_hints(ConfigOptions)


def option(name: str, help: str | None = None) -> Any:
    """The typer option for the :class:`ConfigOptions` field ``name`` (default: not given); ``help`` replaces its text."""
    flags, text = _OPTIONS[name]
    # readable=False: an unreadable --config/--data/-o is reported by the code that reads it, as one line
    return typer.Option(None, *flags, help=help or text, readable=False, autocompletion=_COMPLETE.get(name))


QUIET_OPTION: Any = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")
DEVICE_OPTION: Any = typer.Option("auto", "--device", help=DEVICE_HELP)
"""``--device`` of the commands that load a fitted pipeline (``avood run`` takes the config's, also auto by default)."""


def at_least(option: str, low: float, strict: bool = False) -> Callable[[Any], Any]:
    """A typer callback refusing ``option`` values below ``low`` (``strict``: ``low`` too) as one line."""

    def check(value: Any) -> Any:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is not None and (v <= low if strict else v < low):
                from avood_core.errors import AvoodError

                bound = f"greater than {low:g}" if strict else f"at least {low:g}"
                raise AvoodError(f"{option} {v:g}: must be {bound}")
        return value

    return check


def config_options(*names: str, help: Mapping[str, str] | None = None) -> Callable[[Callable], Callable]:
    """Give a command the named :class:`ConfigOptions` options (none named: all), ahead of its own; its
    first parameter receives them as one :class:`ConfigOptions`. ``help`` replaces some help texts."""
    names = names or tuple(_OPTIONS)
    texts = dict(help or {})
    unknown = (set(names) | set(texts)) - set(_OPTIONS)
    if unknown:
        raise ValueError(f"no shared option {sorted(unknown)}; known: {', '.join(_OPTIONS)}")

    def decorate(command: Callable) -> Callable:
        own = list(inspect.signature(command).parameters.values())[1:]  # the first receives the ConfigOptions
        own_types = typing.get_type_hints(command)
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=option(n, texts.get(n)),
                                    annotation=_TYPES[n]) for n in names]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            opts = ConfigOptions(**{n: kwargs.pop(n) for n in names})
            return command(opts, **kwargs)

        parameters = shared + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                                         annotation=own_types.get(p.name, p.annotation)) for p in own]
        wrapper.__signature__ = inspect.Signature(parameters, return_annotation=own_types.get("return"))
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": own_types.get("return")}
        return wrapper

    return decorate
