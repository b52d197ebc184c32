"""Stage callbacks: what a run tells the outside world while it trains (Lightning-Callback-like, small);
the hooks' order and who fires them: docs/architecture.md "Training curves and loggers". Built in:
:class:`MetricsWriter` (``<run>/metrics/<kind>.jsonl``); experiment loggers are ``logger`` plugins."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from avood_core.errors import AvoodError, CallbackError, one_line
from avood_core.util.io import open_nofollow


Metrics = Mapping[str, float]


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_run_start(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        """The run folder exists and holds ``config.toml``."""

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        """Component ``kind`` starts fitting (``info``: ``name``, ``stage``)."""

    def on_step(self, kind: str, step: int, metrics: Metrics) -> None:
        """``metrics`` (loss terms, ``lr``) after optimizer step ``step`` (1-based) of ``kind``."""

    def on_epoch(self, kind: str, epoch: int, metrics: Metrics) -> None:
        """The mean loss terms (and ``lr``) of epoch ``epoch`` (0-based) of ``kind``."""

    def on_stage_end(self, kind: str, info: Mapping[str, Any]) -> None:
        """Component ``kind`` is fitted (``info``: ``name``, ``stage``, ``wall_s``)."""

    def on_synthesis_start(self, info: Mapping[str, Any]) -> None:
        """The fitted generator starts synthesizing the unseen features (paper Fig. 2; ``info``: ``name``,
        ``stage``, ``n_per_class``)."""

    def on_synthesis_end(self, info: Mapping[str, Any]) -> None:
        """The synthetic unseen features exist (``info`` as at the start, plus ``wall_s``)."""

    def on_run_end(self, run_dir: Path, results: Mapping[str, Any]) -> None:
        """``results.json`` is written (S, U, HM, ZSL, the gate's AUROC, ...)."""

    def on_exception(self, run_dir: Path, exc: BaseException) -> None:
        """The run stopped with ``exc`` (error or Ctrl-C) after :meth:`on_run_start`."""


def clean(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, finite entries of ``metrics`` as floats (``epoch``/``step`` keys dropped)."""
    return {str(k): float(v) for k, v in metrics.items() if k not in ("epoch", "step")
            and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class CallbackList(Callback):
    """Dispatches every hook to its callbacks in order; what the pipeline and the components call."""

    def __init__(self, callbacks: Iterable[Callback] = (), every_n_steps: int = 50) -> None:
        self.callbacks = list(callbacks)
        self.every_n_steps = int(every_n_steps)
        self._epochs_seen: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def _each(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback; what one raises is a :class:`CallbackError` naming it (a
        logger's failure is not the component's whose step fired the hook)."""
        for cb in self.callbacks:
            try:
                getattr(cb, hook)(*args)
            except (KeyboardInterrupt, AvoodError):
                raise
            except Exception as exc:  # noqa: BLE001 - a third party's logger may raise anything
                name = getattr(cb, "name", None) or type(cb).__name__
                raise CallbackError(f"callback '{name}' {hook}() raised {one_line(exc, 300)}; check its "
                                    f"settings or drop it (--logger)") from exc

    def step_due(self, step: int) -> bool:
        """True when step metrics should be reported after ``step`` (1-based): anyone listening, every N."""
        return bool(self.callbacks) and self.every_n_steps > 0 and step % self.every_n_steps == 0

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        self._epochs_seen.discard(kind)
        self._each("on_stage_start", kind, info)

    def on_step(self, kind: str, step: int, metrics: Metrics) -> None:
        self._each("on_step", kind, step, clean(metrics))

    def on_epoch(self, kind: str, epoch: int, metrics: Metrics) -> None:
        self._epochs_seen.add(kind)
        self._each("on_epoch", kind, epoch, clean(metrics))

    def on_stage_end(self, kind: str, info: Mapping[str, Any], component: Any = None) -> None:
        """``component`` (the fitted component): its ``stats.history`` is replayed as epochs when it reported none itself."""
        if kind not in self._epochs_seen and component is not None:
            for i, record in enumerate(component.stats.history):
                if isinstance(record, Mapping):
                    self.on_epoch(kind, int(record.get("epoch", i)), record)
        self._each("on_stage_end", kind, info)

    def on_exception(self, run_dir: Path, exc: BaseException) -> None:
        for cb in self.callbacks:
            try:
                cb.on_exception(run_dir, exc)
            except Exception:  # noqa: BLE001 - the run's own error is the one to report
                pass


for _hook in ("on_run_start", "on_synthesis_start", "on_synthesis_end", "on_run_end"):  # sent on as they are
    setattr(CallbackList, _hook, lambda self, *args, _hook=_hook: self._each(_hook, *args))


class EventRecorder(Callback):
    """Records the step/epoch events of a fit as ``(hook, kind, index, metrics)`` (a worker process's callbacks)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, dict[str, float]]] = []

    def on_step(self, kind: str, step: int, metrics: Metrics) -> None:
        self.events.append(("on_step", kind, step, dict(metrics)))

    def on_epoch(self, kind: str, epoch: int, metrics: Metrics) -> None:
        self.events.append(("on_epoch", kind, epoch, dict(metrics)))


def replay(events: Iterable[tuple[str, str, int, Mapping[str, float]]], callbacks: CallbackList) -> None:
    """Send recorded events (:class:`EventRecorder`) to ``callbacks``."""
    for hook, kind, index, metrics in events:
        getattr(callbacks, hook)(kind, index, metrics)


class MetricsWriter(Callback):
    """``<folder>/<kind>.jsonl``: per step or epoch report, as it happens, one JSON line ``{"kind", "stage",
    "event": "step"|"epoch", "step" or "epoch", "time" (s since the component started), <metrics>}``. A
    refitted component (e.g. on ``--resume``) starts its file anew; a reused one keeps its old file."""

    def __init__(self, folder: Path, stage: str = "") -> None:
        self.folder, self.stage = Path(folder), stage
        self._files: dict[str, Any] = {}
        self._start: dict[str, float] = {}

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.on_stage_end(kind, info)
        self._files[kind] = open_nofollow(self.folder / f"{kind}.jsonl", "w")
        self._start[kind] = time.perf_counter()

    def _write(self, kind: str, event: str, index: int, metrics: Metrics) -> None:
        if kind not in self._files:  # a report outside a stage (a component fitted by hand): open on demand
            self.on_stage_start(kind, {})
        fh = self._files[kind]
        record = {"kind": kind, "stage": self.stage, "event": event, event: index,
                  "time": round(time.perf_counter() - self._start[kind], 3), **metrics}
        fh.write(json.dumps(record) + "\n")
        fh.flush()

    def on_step(self, kind: str, step: int, metrics: Metrics) -> None:
        self._write(kind, "step", step, metrics)

    def on_epoch(self, kind: str, epoch: int, metrics: Metrics) -> None:
        self._write(kind, "epoch", epoch, metrics)

    def on_stage_end(self, kind: str, info: Mapping[str, Any]) -> None:
        fh = self._files.pop(kind, None)
        if fh is not None:
            fh.close()


def read_metrics(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """``<folder>/<kind>.jsonl`` as lists of records by kind; a last line cut by a kill (no newline
    after it) is skipped, any other line that is not one JSON object is a one-line CheckpointError."""
    from avood_core.errors import CheckpointError
    from avood_core.util.json_read import field, parse_json

    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(folder).glob("*.jsonl")):
        fix = f"delete '{path}' (the report then omits its training curves)"
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"'{path}' cannot be read as UTF-8 text ({exc}); {fix}") from None
        complete = text.split("\n")[:-1]  # the last piece: "" after a final newline, else a cut line
        records = []
        for n, line in enumerate(complete, 1):
            where = f"'{path}' line {n}"
            record = parse_json(line, where, error=CheckpointError, fix=fix) if line.strip() else None
            if record is not None and record.get("event") in ("step", "epoch"):  # the x axis of its curve
                field(record, record["event"], int, where, error=CheckpointError, fix=fix)
            records += [record] if record is not None else []
        out[path.stem] = records
    return out
