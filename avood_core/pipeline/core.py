"""The :class:`Pipeline`: four fitted components, their shared task state, and the public methods.

Fitting is scheduled in :mod:`avood_core.pipeline.fit`, routing in :mod:`avood_core.pipeline.route`,
input checks in :mod:`avood_core.pipeline.validate`, run folders in :mod:`avood_core.pipeline.store`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from avood_core.callbacks import CallbackList
from avood_core.pipeline import boundary, validate
from avood_core.pipeline.route import branches
from avood_core.pipeline.scores import Evaluation, scores_from_outputs
from avood_core.protocols import FitContext, Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.stages import KINDS
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.train.loops import inference_threads
from avood_core.util.progress import ProgressFactory


@dataclass
class Prediction:
    """Per-sample output of the routed pipeline."""

    labels: Tensor
    score: Tensor
    routed_seen: Tensor


@dataclass
class Pipeline:
    """Generator → OOD detector → seen / unseen classifier, each a replaceable plugin."""

    generator: Generator
    detector: OODDetector
    seen: SeenClassifier
    unseen: UnseenClassifier
    syn_num: int = 50
    names: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    text: Tensor | None = None
    seen_classes: Tensor | None = None
    unseen_classes: Tensor | None = None
    synthetic: AVSamples | None = None
    class_names: list[str] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)
    worker_info: dict[str, dict] = field(default_factory=dict)
    """Per kind fitted in a worker process (``jobs > 1``): its wall, CPU time, peak RSS and threads."""

    @property
    def components(self) -> dict[str, object]:
        """The four components by kind, in the stage table's order (avood_core.stages)."""
        return {kind: getattr(self, kind) for kind in KINDS}

    def fit(
        self,
        task: AVGZSLTask,
        device: torch.device | str = "cpu",
        seed: int = 0,
        progress: ProgressFactory | None = None,
        log: Callable[[str], None] = lambda m: None,
        skip: frozenset[str] = frozenset(),
        on_fitted: Callable[[str], None] = lambda kind: None,
        jobs: int = 1,
        callbacks: CallbackList | None = None,
        stage_name: str = "",
    ) -> "Pipeline":
        """Fit every component on ``task``, in the order of the stage table (avood_core.pipeline.fit).

        ``skip``: kinds already fitted (e.g. reused on resume); ``on_fitted(kind)`` is called
        right after each fit (the run saves the component there). ``jobs > 1``: the kinds of
        :meth:`worker_kinds` train in worker processes beside the others (avood_core.pipeline.worker),
        each process with ``torch.get_num_threads() // jobs`` threads; the results are those of
        a sequential fit at that thread count.

        ``callbacks`` hear each fitted component's start, curves and end (avood_core.callbacks;
        a worker's curves are replayed when it is joined); ``stage_name`` names the protocol
        stage in their ``info`` (``"stage1"``, ``"stage2"`` or ``""``).
        """
        from avood_core.pipeline.fit import fit_pipeline

        callbacks = callbacks if callbacks is not None else CallbackList()
        self.text, self.seen_classes, self.unseen_classes = task.text, task.seen_classes, task.unseen_classes
        self.class_names = list(task.class_names)
        self.dims = {"audio": task.train.audio_dim, "video": task.train.video_dim}
        ctx = FitContext(
            text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            device=torch.device(device), seed=seed, progress=progress, val=task.val, log=log, callbacks=callbacks,
        )
        fit_pipeline(self, task, ctx, skip, on_fitted, jobs, stage_name)
        self.bind_dependencies()
        return self

    def worker_kinds(self, jobs: int, skip: frozenset[str] = frozenset()) -> list[str]:
        """The kinds ``fit(jobs=...)`` trains in worker processes: the unseen, then the seen classifier.

        The generator and the detector stay in this process (the detector trains on the
        generator's output). A kind another component depends on is still offloaded; that
        component waits for it.
        """
        from avood_core.pipeline.fit import worker_kinds

        return worker_kinds(jobs, skip)

    def to(self, device: torch.device | str) -> "Pipeline":
        """Move every component's network (also one held inside another component) to ``device``."""
        from avood_core.protocols import move_components

        move_components(self.components.values(), torch.device(device))
        return self

    def bind_dependencies(self) -> None:
        """Hand each component the fitted components it declares in ``depends_on``."""
        for comp in self.components.values():
            boundary.bind_fitted(comp, {kind: self.components[kind] for kind in getattr(comp, "depends_on", ())})

    @torch.inference_mode()
    def predict(self, audio: AVSamples | Tensor, video: Tensor | None = None) -> Prediction:
        """Route each sample by the gate and classify it within the chosen branch.

        Pass an :class:`AVSamples`, or ``audio`` (N, Da) and ``video`` (N, Dv) arrays.
        The computation is :meth:`outputs`' (both classifiers on every clip, at
        :data:`~avood_core.train.loops.INFERENCE_THREADS` threads), so predicting a run's test
        clips reproduces its ``predictions.npz`` bit for bit.
        """
        samples = (self.check_samples(audio) if isinstance(audio, AVSamples)
                   else validate.samples_from_arrays(audio, video, self.dims))
        if len(samples) == 0:
            empty = torch.empty(0, dtype=torch.long)
            return Prediction(empty, torch.empty(0), torch.empty(0, dtype=torch.bool))
        with inference_threads():
            out = branches(self.detector, self.seen, self.unseen, samples, self.seen_classes, self.unseen_classes,
                           self.text)
        return Prediction(out.pred, out.routing.score, out.routing.seen)

    def check_samples(self, samples: AVSamples) -> AVSamples:
        """``samples`` unchanged, or a one-line :class:`DataError` when their dims differ from the fitted ones."""
        return validate.check_samples(samples, self.dims)

    def check_task(self, task: AVGZSLTask) -> AVGZSLTask:
        """``task`` unchanged if it matches what the pipeline was fitted on (dims, classes), else a DataError."""
        return validate.check_task(task, self.dims, self.class_names)

    def save(self, run_dir: str | Path, providers: dict | None = None, fit_hashes: dict | None = None) -> None:
        """Write every component plus ``pipeline.json`` and ``task.safetensors`` (text, class sets)."""
        from avood_core.pipeline.store import save_component

        for kind, comp in self.components.items():
            save_component(comp, Path(run_dir) / "components" / kind, self.names.get(kind, kind),
                           (providers or {}).get(kind), (fit_hashes or {}).get(kind))
        self.save_meta(run_dir, fit_hashes)

    def save_meta(self, run_dir: str | Path, fit_hashes: dict | None = None) -> None:
        """``task.safetensors`` and ``pipeline.json``, written last: they mark the run folder finished.

        ``fit_hashes`` records which fit of each component belongs to this pipeline, so that
        :meth:`load` refuses a folder whose components were partly refitted by a cut resume.
        """
        from avood_core.pipeline.folder import save_pipeline_meta

        save_pipeline_meta(self, Path(run_dir), fit_hashes)

    @classmethod
    def load(cls, run_dir: str | Path, registry=None) -> "Pipeline":
        """Rebuild a fitted pipeline from a run folder without retraining (no pickle involved)."""
        from avood_core.pipeline.folder import load_pipeline_parts

        parts, meta = load_pipeline_parts(Path(run_dir), registry)
        pipe = cls(**parts, syn_num=meta["syn_num"], names=meta["names"])
        pipe.text, pipe.seen_classes, pipe.unseen_classes = meta["text"], meta["seen_classes"], meta["unseen_classes"]
        pipe.class_names, pipe.dims = meta["class_names"], meta["dims"]
        pipe.bind_dependencies()
        return pipe

    @torch.inference_mode()
    def outputs(self, test: AVSamples) -> dict[str, Tensor]:
        """Per-sample arrays from which every metric and figure is computed.

        ``score`` (OOD score), ``seen_pred`` (seen classifier on every sample),
        ``unseen_pred`` (unseen classifier among the unseen classes, every sample),
        ``baseline_pred`` (unseen classifier among all classes, no gate), ``pred`` (routed).
        Computed at :data:`~avood_core.train.loops.INFERENCE_THREADS` threads, whatever the caller's
        count: the run that fitted the pipeline and a :meth:`load` of its folder on the same
        machine give the same bits.
        """
        self.check_samples(test)
        with inference_threads():
            out = branches(self.detector, self.seen, self.unseen, test, self.seen_classes, self.unseen_classes, self.text)
            all_classes = torch.cat([self.seen_classes, self.unseen_classes]).sort().values
            baseline_pred = boundary.predict_unseen(self.unseen, test, all_classes, self.text)
        return {
            "labels": test.labels.cpu(),
            "score": out.routing.score,
            "routed_seen": out.routing.seen,
            "seen_pred": out.seen_pred,
            "unseen_pred": out.unseen_pred,
            "pred": out.pred,
            "baseline_pred": baseline_pred,
            "seen_classes": self.seen_classes.cpu(),
            "unseen_classes": self.unseen_classes.cpu(),
            "threshold": torch.tensor(boundary.check_threshold(self.detector)),
        }

    def evaluate(self, test: AVSamples) -> Evaluation:
        """S, U, HM, ZSL (paper §4.1), the gate's metrics and the no-gate baseline, in percent.

        The result is the metrics dict (as ``results.json`` stores it); its ``outputs`` holds the
        per-sample arrays of :meth:`outputs` they were computed from (``predictions.npz``).
        """
        start = time.perf_counter()
        outputs = self.outputs(test)
        result = Evaluation(scores_from_outputs(outputs), outputs)
        self.timings["evaluate"] = time.perf_counter() - start
        return result
