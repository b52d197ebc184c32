"""The :class:`Pipeline`: one component per row of the stage table, the task state they share, routing, metrics.

Routing (paper Fig. 2, §3.3): the OOD detector sends each clip to the seen or the unseen classifier by its own
:meth:`~avood_core.protocols.OODDetector.is_seen` (by default ``score < threshold``), as the reference code
AV-OOD-GZSL ``test.py`` splits the test clips by the gate before classifying each part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from avood_core.callbacks import Callback, CallbackList
from avood_core.errors import DataError
from avood_core.eval import metrics
from avood_core.pipeline import boundary, folder
from avood_core.pipeline.store import save_component
from avood_core.protocols import Component, FitContext, OODDetector, move_components
from avood_core.stages import STAGES, Stage, kind_of, worker_kinds
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.train.loops import inference_threads
from avood_core.util.progress import ProgressFactory


def samples_from_arrays(audio: Any, video: Any, dims: dict[str, int]) -> AVSamples:
    """:class:`AVSamples` from ``audio`` (N, Da) and ``video`` (N, Dv) arrays of the fitted ``dims``."""
    arrays = {}
    for name, arr in (("audio", audio), ("video", video)):
        if arr is None:
            raise DataError(f"no {name} features given; pass audio (N, Da) and video (N, Dv) arrays")
        try:
            arrays[name] = arr = torch.as_tensor(arr, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{name} is not a numeric array ({type(exc).__name__}: {exc}); pass float features") from None
        want = dims.get(name)
        if arr.ndim != 2 or (want is not None and arr.shape[1] != want):
            raise DataError(f"{name} has shape {tuple(arr.shape)} but the pipeline was fitted on (N, {want}); pass features of that dim")
        if not torch.isfinite(arr).all():
            bad = int((~torch.isfinite(arr)).any(dim=1).sum())
            raise DataError(f"{name} holds NaN/inf in {bad} row(s); clean or drop those rows first")
    audio, video = arrays["audio"], arrays["video"]
    if len(audio) != len(video):
        raise DataError(f"audio has {len(audio)} rows but video has {len(video)}; pass one row per clip in each")
    return AVSamples(audio, video, torch.zeros(len(audio), dtype=torch.long))


ROUTED = ("OODDetector", "SeenClassifier", "UnseenClassifier")
"""The protocols of the gate and of its seen and unseen branches (``Stage.protocol_name``)."""


@dataclass
class Routing:
    """The gate's view of each clip (CPU tensors): ``score`` (higher = more likely unseen) and ``seen``
    (True where the clip goes to the seen classifier)."""

    score: Tensor
    seen: Tensor


def route(detector: OODDetector, samples: AVSamples) -> Routing:
    """Score every clip and route it by ``detector.is_seen`` (a detector that keeps the protocol's
    ``is_seen`` is routed by its ``seen_by_score`` on the score just computed); both checked."""
    score = boundary.score(detector, samples)
    return Routing(score, boundary.is_seen(detector, samples, score))


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`Pipeline.evaluate` returns: ``metrics`` as ``results.json`` stores them
    (``evaluation.metrics["HM"]``) and the per-sample ``outputs`` they came from (``predictions.npz``)."""

    metrics: dict
    outputs: dict[str, Tensor]


def scores_from_outputs(out: dict) -> dict:
    """Every headline metric (paper §4.1) from the arrays of :meth:`Pipeline.outputs` (see avood_core.eval.metrics)."""
    labels, seen_c, unseen_c = out["labels"], out["seen_classes"], out["unseen_classes"]
    is_unseen = torch.isin(torch.as_tensor(labels), torch.as_tensor(unseen_c))
    is_seen = ~is_unseen
    return {
        **metrics.gzsl_scores(out["pred"], labels, seen_c, unseen_c),
        "ZSL": metrics.mean_class_accuracy(out["unseen_pred"][is_unseen], labels[is_unseen], unseen_c),
        "seen_classifier_acc": metrics.mean_class_accuracy(out["seen_pred"][is_seen], labels[is_seen], seen_c),
        "gate": {
            **metrics.gate_scores(out["score"], out["routed_seen"], labels, seen_c),
            "threshold": float(out["threshold"]),
            "routing": metrics.routing_counts(out["routed_seen"], labels, seen_c),
        },
        "baseline_no_gate": metrics.gzsl_scores(out["baseline_pred"], labels, seen_c, unseen_c),
    }


@dataclass
class Prediction:
    """Per-sample output of the routed pipeline."""

    labels: Tensor
    score: Tensor
    routed_seen: Tensor


class Pipeline:
    """One plugin component per row of ``stages`` (the stage table, avood_core.stages), which the pipeline
    fits, routes, saves and loads by: ``Pipeline(generator, detector, seen, unseen)`` in table order or
    by kind (``Pipeline(generator=..., ...)``); ``pipe.detector`` is ``pipe.components["detector"]``."""

    def __init__(self, *components: Component, stages: tuple[Stage, ...] = STAGES, syn_num: int = 50,
                 names: dict[str, str] | None = None, **by_kind: Component) -> None:
        kinds = [s.kind for s in stages]
        given = {**dict(zip(kinds, components)), **by_kind}
        if len(components) > len(kinds) or set(given) != set(kinds):
            raise TypeError(f"Pipeline takes one component per stage ({', '.join(kinds)}), got {', '.join(given)}")
        self.components: dict[str, Component] = {kind: given[kind] for kind in kinds}
        self.stages, self.syn_num, self.names = stages, syn_num, dict(names or {})
        self.timings: dict[str, float] = {}
        self.text: Tensor | None = None
        self.seen_classes: Tensor | None = None
        self.unseen_classes: Tensor | None = None
        self.synthetic: AVSamples | None = None
        self.class_names: list[str] = []
        self.dims: dict[str, int] = {}
        self.worker_info: dict[str, dict] = {}  # per kind fitted in a worker: wall, CPU time, peak RSS, threads

    def __getattr__(self, name: str) -> Component:
        components = self.__dict__.get("components", {})
        if name in components:
            return components[name]
        raise AttributeError(f"'Pipeline' object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("components", {}):
            self.components[name] = value
        else:
            super().__setattr__(name, value)

    def fit(self, task: AVGZSLTask, device: torch.device | str = "cpu", seed: int = 0,
            progress: ProgressFactory | None = None, log: Callable[[str], None] = lambda m: None,
            skip: frozenset[str] = frozenset(), on_fitted: Callable[[str], None] = lambda kind: None,
            jobs: int = 1, callbacks: Iterable[Callback] = (), every_n_steps: int = 50,
            stage_name: str = "") -> "Pipeline":
        """Fit every component on ``task`` in the table's fitting order (avood_core.pipeline.fit).

        ``skip``: kinds already fitted (reused); ``on_fitted(kind)`` runs right after each fit.
        ``jobs > 1``: the kinds of :meth:`worker_kinds` train in worker processes, each process at
        ``torch.get_num_threads() // jobs`` threads, with the results of a sequential fit at that
        count. ``callbacks`` hear each fit (step metrics every ``every_n_steps`` steps);
        ``stage_name`` (``"stage1"``, ``"stage2"`` or ``""``) is in their ``info``.
        """
        self.text, self.seen_classes, self.unseen_classes = task.text, task.seen_classes, task.unseen_classes
        self.class_names = list(task.class_names)
        self.dims = {"audio": task.train.audio_dim, "video": task.train.video_dim}
        ctx = FitContext(
            text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            device=torch.device(device), seed=seed, progress=progress, val=task.val, log=log,
            callbacks=CallbackList(callbacks, every_n_steps=every_n_steps),
        )
        # imported here: ``python -m avood_core.pipeline.worker`` imports this package before the worker module
        from avood_core.pipeline.fit import Scheduler

        scheduler = Scheduler(self.components, self.stages, ctx, {"train": task.train, "text": task.text}, self.names,
                              self.syn_num, self.dims, skip, on_fitted, stage_name, self.worker_kinds(jobs, skip))
        scheduler.run(jobs)
        self.timings.update(scheduler.timings)
        self.synthetic, self.worker_info = scheduler.data.get("synthetic"), scheduler.worker_info
        self.bind_dependencies()
        return self

    def worker_kinds(self, jobs: int, skip: frozenset[str] = frozenset()) -> list[str]:
        """The kinds ``fit(jobs=...)`` trains in worker processes, by the table's ``worker`` rank."""
        return worker_kinds(jobs, skip, self.stages)

    def to(self, device: torch.device | str) -> "Pipeline":
        """Move every component's network (also one held inside another component) to ``device``."""
        move_components(self.components.values(), torch.device(device))
        return self

    def bind_dependencies(self) -> None:
        """Hand each component the fitted components it declares in ``depends_on``."""
        for comp in self.components.values():
            boundary.bind_fitted(comp, {kind: self.components[kind] for kind in getattr(comp, "depends_on", ())})

    def routed(self) -> tuple[Component, ...]:
        """The gate and the classifiers of its seen and unseen branches: the rows of the protocols in ``ROUTED``."""
        return tuple(self.components[kind_of(p, self.stages)] for p in ROUTED)

    def _branches(self, samples: AVSamples) -> dict[str, Tensor]:
        """Route every clip and run both classifiers on all of them (ids checked against each branch's
        classes); ``pred``: the seen classifier's where routed seen, else the unseen one's."""
        gate, seen, unseen = self.routed()
        routing = route(gate, samples)
        out = {"score": routing.score, "routed_seen": routing.seen,
               "seen_pred": boundary.predict_seen(seen, samples, self.seen_classes),
               "unseen_pred": boundary.predict_unseen(unseen, samples, self.unseen_classes, self.text)}
        return {**out, "pred": torch.where(routing.seen, out["seen_pred"], out["unseen_pred"])}

    @torch.inference_mode()
    def predict(self, audio: AVSamples | Tensor, video: Tensor | None = None) -> Prediction:
        """Route each sample (an :class:`AVSamples`, or ``audio`` (N, Da) and ``video`` (N, Dv) arrays) by the
        gate and classify it in its branch, as :meth:`outputs` does (``predictions.npz`` reproduced)."""
        samples = (self.check_samples(audio) if isinstance(audio, AVSamples)
                   else samples_from_arrays(audio, video, self.dims))
        if len(samples) == 0:
            empty = torch.empty(0, dtype=torch.long)
            return Prediction(empty, torch.empty(0), torch.empty(0, dtype=torch.bool))
        with inference_threads():
            out = self._branches(samples)
        return Prediction(out["pred"], out["score"], out["routed_seen"])

    def check_samples(self, samples: AVSamples) -> AVSamples:
        """``samples`` unchanged, or a one-line :class:`DataError` when their dims differ from the fitted ones."""
        for name, got in (("audio", samples.audio_dim), ("video", samples.video_dim)):
            want = self.dims.get(name)
            if want is not None and got != want:
                raise DataError(f"the data has {name} dim {got} but the pipeline was fitted on {name} dim {want} "
                                f"(audio {self.dims.get('audio')}, video {self.dims.get('video')}); use features of "
                                f"the run's dataset")
        return samples

    def check_task(self, task: AVGZSLTask) -> AVGZSLTask:
        """``task`` unchanged if it matches what the pipeline was fitted on (dims, classes), else a DataError."""
        self.check_samples(task.test)
        if self.class_names and list(task.class_names) != self.class_names:
            raise DataError(f"the data has {len(task.class_names)} classes that differ from the {len(self.class_names)} "
                            f"classes the pipeline was fitted on; evaluate on the run's dataset")
        return task

    def save(self, run_dir: str | Path, providers: dict | None = None, fit_hashes: dict | None = None) -> None:
        """Write every component plus ``pipeline.json`` and ``task.safetensors`` (text, class sets)."""
        for kind, comp in self.components.items():
            save_component(comp, Path(run_dir) / "components" / kind, self.names.get(kind, kind),
                           (providers or {}).get(kind), (fit_hashes or {}).get(kind))
        self.save_meta(run_dir, fit_hashes)

    def save_meta(self, run_dir: str | Path, fit_hashes: dict | None = None) -> None:
        """``task.safetensors`` and ``pipeline.json``, written last (the folder is finished); ``fit_hashes``
        lets :meth:`load` refuse a folder whose components were partly refitted by a cut resume."""
        folder.save_meta(Path(run_dir), list(self.components), {k: getattr(self, k) for k in folder.TENSORS},
                         {k: getattr(self, k) for k in folder.FIELDS}, fit_hashes)

    @classmethod
    def load(cls, run_dir: str | Path, registry=None, stages: tuple[Stage, ...] = STAGES) -> "Pipeline":
        """Rebuild a fitted pipeline from a run folder without retraining (no pickle involved)."""
        components, state = folder.load(Path(run_dir), [s.kind for s in stages], registry)
        pipe = cls(**components, stages=stages)
        for key, value in state.items():
            setattr(pipe, key, value)
        pipe.bind_dependencies()
        return pipe

    @torch.inference_mode()
    def outputs(self, test: AVSamples) -> dict[str, Tensor]:
        """Per-sample arrays of every metric and figure: ``score`` (OOD score), ``seen_pred`` and ``unseen_pred``
        (each classifier on every sample), ``baseline_pred`` (the unseen classifier among all classes, no gate),
        ``pred`` (routed). At :data:`~avood_core.train.loops.INFERENCE_THREADS` threads whatever the caller's
        count, so a run and a :meth:`load` of its folder give the same bits."""
        self.check_samples(test)
        with inference_threads():
            out = self._branches(test)
            all_classes = torch.cat([self.seen_classes, self.unseen_classes]).sort().values
            gate, _, unseen = self.routed()
            baseline_pred = boundary.predict_unseen(unseen, test, all_classes, self.text)
        return {"labels": test.labels.cpu(), **out, "baseline_pred": baseline_pred,
                "seen_classes": self.seen_classes.cpu(),
                "unseen_classes": self.unseen_classes.cpu(), "threshold": torch.tensor(boundary.check_threshold(gate))}

    def evaluate(self, test: AVSamples) -> Evaluation:
        """S, U, HM, ZSL (paper §4.1), the gate's metrics and the no-gate baseline, in percent (``.metrics``,
        as ``results.json`` stores them), with the per-sample arrays of :meth:`outputs` (``.outputs``)."""
        start = time.perf_counter()
        outputs = self.outputs(test)
        result = Evaluation(scores_from_outputs(outputs), outputs)
        self.timings["evaluate"] = time.perf_counter() - start
        return result
