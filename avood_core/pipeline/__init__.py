"""The AV-OOD pipeline: fit the four components, route each sample through the gate, evaluate.

Fit order (paper Fig. 2): the generator learns p(x | t) on seen classes and synthesizes
``syn_num`` features per unseen class; the seen classifier and the unseen classifier train
on real seen features (classifiers with ``uses_synthetic`` also see the synthetic ones); the
OOD detector trains last on real seen vs synthetic unseen, so a gate may use the fitted
classifiers (``ctx.fitted``). At test time a sample with ``score < threshold`` goes to the
seen classifier, the rest to the unseen classifier (among the unseen classes).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from avood_core.eval import metrics

from avood_core.pipeline import worker as parallel
from avood_core.callbacks import CallbackList, replay
from avood_core.util.progress import ProgressFactory
from avood_core.protocols import FitContext, Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.train.loops import derive_seed, inference_threads, seed_everything


def _no_log(message: str) -> None:
    """The log of a job's context in a worker (its lines come back with the result)."""


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
    last_outputs: dict | None = None
    class_names: list[str] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)
    worker_info: dict[str, dict] = field(default_factory=dict)
    """Per kind fitted in a worker process (``jobs > 1``): its wall, CPU time, peak RSS and threads."""

    @property
    def components(self) -> dict[str, object]:
        return {"generator": self.generator, "detector": self.detector, "seen": self.seen, "unseen": self.unseen}

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
        """Fit every component on ``task``.

        ``skip``: kinds already fitted (e.g. reused on resume); ``on_fitted(kind)`` is called
        right after each fit (the run saves the component there). ``jobs > 1``: the kinds of
        :meth:`worker_kinds` train in worker processes beside the others (avood_core.pipeline.worker),
        each process with ``torch.get_num_threads() // jobs`` threads; the results are those of
        a sequential fit at that thread count.

        ``callbacks`` hear each fitted component's start, curves and end (avood_core.callbacks;
        a worker's curves are replayed when it is joined); ``stage_name`` names the protocol
        stage in their ``info`` (``"stage1"``, ``"stage2"`` or ``""``).
        """
        callbacks = callbacks if callbacks is not None else CallbackList()
        self.text, self.seen_classes, self.unseen_classes = task.text, task.seen_classes, task.unseen_classes
        self.class_names = list(task.class_names)
        self.dims = {"audio": task.train.audio_dim, "video": task.train.video_dim}
        ctx = FitContext(
            text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            device=torch.device(device), seed=seed, progress=progress, val=task.val, log=log, callbacks=callbacks,
        )

        def info(kind: str, **extra: object) -> dict:
            return {"name": self.names.get(kind, type(self.components[kind]).__name__), "stage": stage_name, **extra}

        fit_args = {
            "generator": lambda: (task.train, task.text, ctx),
            "seen": lambda: (task.train, ctx),
            "unseen": lambda: (task.train, task.text, ctx),
            "detector": lambda: (task.train, self.synthetic, ctx),
        }
        offload = self.worker_kinds(jobs, skip)
        workers: dict[str, parallel.Worker] = {}
        threads_before = torch.get_num_threads()
        threads = parallel.threads_per_job(jobs) if offload else threads_before

        def join(kind: str) -> None:
            worker = workers.pop(kind)
            res = worker.result(progress)
            vars(self.components[kind]).update(vars(res.component))  # the caller's object is the fitted one
            self.worker_info[kind] = {"wall_s": res.wall_s, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb,
                                      "threads": threads, "start_s": worker.started - fit_start,
                                      "end_s": time.perf_counter() - fit_start}
            for line in res.logs:
                log(line)
            replay(res.events, callbacks)
            callbacks.on_stage_end(kind, info(kind, wall_s=res.wall_s), self.components[kind])
            self.timings[kind] = res.wall_s
            on_fitted(kind)
            ctx.fitted[kind] = self.components[kind]

        def launch_ready() -> None:
            for kind in offload:
                comp = self.components[kind]
                if kind in workers or kind in ctx.fitted or (comp.uses_synthetic and self.synthetic is None):
                    continue
                if any(dep not in ctx.fitted for dep in getattr(comp, "depends_on", ())):
                    continue
                *head, _ = fit_args[kind]()
                job_ctx = dataclasses.replace(ctx, log=_no_log, progress=None,
                                              callbacks=CallbackList(every_n_steps=callbacks.every_n_steps),
                                              fitted={d: ctx.fitted[d] for d in getattr(comp, "depends_on", ())})
                worker = parallel.start(kind, comp, (*head, job_ctx), seed, threads, log)
                if worker is not None:
                    workers[kind] = worker
                    callbacks.on_stage_start(kind, info(kind))
                    log(f"{kind}: training in a worker process ({threads} thread{'s' * (threads > 1)})")

        def stage(kind: str) -> None:
            # In a worker (joined later), or already joined: nothing to do here. An offloaded kind that
            # could not be sent, or never became ready, is fitted here in its turn.
            if kind in workers or kind in ctx.fitted:
                return
            for dep in getattr(self.components[kind], "depends_on", ()):
                if dep in workers:
                    join(dep)
            if kind not in skip:
                seed_everything(derive_seed(seed, kind))
                callbacks.on_stage_start(kind, info(kind))
                start = time.perf_counter()
                self.components[kind].fit(*fit_args[kind]())
                self.timings[kind] = time.perf_counter() - start
                callbacks.on_stage_end(kind, info(kind, wall_s=self.timings[kind]), self.components[kind])
                on_fitted(kind)
            ctx.fitted[kind] = self.components[kind]

        self.worker_info = {}
        fit_start = time.perf_counter()
        torch.set_num_threads(threads)
        try:
            launch_ready()
            stage("generator")
            seed_everything(derive_seed(seed, "synthesize"))
            callbacks.on_synthesis_start(info("generator", n_per_class=self.syn_num))
            start = time.perf_counter()
            self.synthetic = self.generator.generate(task.unseen_classes, task.text, self.syn_num)
            self.timings["synthesize"] = time.perf_counter() - start
            callbacks.on_synthesis_end(info("generator", n_per_class=self.syn_num, wall_s=self.timings["synthesize"]))
            ctx.synthetic = self.synthetic
            launch_ready()
            for kind in ("seen", "unseen", "detector"):
                stage(kind)
            for kind in list(workers):
                join(kind)
        finally:
            for worker in workers.values():
                worker.stop()
            torch.set_num_threads(threads_before)
        self.bind_dependencies()
        return self

    def worker_kinds(self, jobs: int, skip: frozenset[str] = frozenset()) -> list[str]:
        """The kinds ``fit(jobs=...)`` trains in worker processes: the unseen, then the seen classifier.

        The generator and the detector stay in this process (the detector trains on the
        generator's output). A kind another component depends on is still offloaded; that
        component waits for it.
        """
        if jobs <= 1:
            return []
        return [k for k in ("unseen", "seen") if k not in skip][: jobs - 1]

    def to(self, device: torch.device | str) -> "Pipeline":
        """Move every component's network (also one held inside another component) to ``device``."""
        from avood_core.protocols import move_components

        move_components(self.components.values(), torch.device(device))
        return self

    def bind_dependencies(self) -> None:
        """Hand each component the fitted components it declares in ``depends_on``."""
        for comp in self.components.values():
            bind = getattr(comp, "bind_fitted", None)
            if bind is not None:
                bind({kind: self.components[kind] for kind in getattr(comp, "depends_on", ())})

    @torch.inference_mode()
    def predict(self, audio: AVSamples | Tensor, video: Tensor | None = None) -> Prediction:
        """Route each sample by the gate and classify it within the chosen branch.

        Pass an :class:`AVSamples`, or ``audio`` (N, Da) and ``video`` (N, Dv) arrays.
        The computation is :meth:`outputs`' (both classifiers on every clip, at
        :data:`~avood_core.train.loops.INFERENCE_THREADS` threads), so predicting a run's test
        clips reproduces its ``predictions.npz`` bit for bit.
        """
        samples = self.check_samples(audio) if isinstance(audio, AVSamples) else self._samples(audio, video)
        if len(samples) == 0:
            empty = torch.empty(0, dtype=torch.long)
            return Prediction(empty, torch.empty(0), torch.empty(0, dtype=torch.bool))
        with inference_threads():
            score, seen_pred, unseen_pred = self._branches(samples)
        routed_seen = score < self.detector.threshold
        return Prediction(torch.where(routed_seen, seen_pred, unseen_pred), score, routed_seen)

    def _branches(self, samples: AVSamples) -> tuple[Tensor, Tensor, Tensor]:
        """Gate score, seen and unseen classifier predictions of every sample (on CPU)."""
        score = self.detector.score(samples).cpu()
        seen_pred = self.seen.predict(samples).cpu()
        return score, seen_pred, self.unseen.predict(samples, self.unseen_classes, self.text).cpu()

    def _samples(self, audio, video) -> AVSamples:
        from avood_core.errors import DataError

        arrays = {}
        for name, arr in (("audio", audio), ("video", video)):
            if arr is None:
                raise DataError(f"no {name} features given; pass audio (N, Da) and video (N, Dv) arrays")
            try:
                arrays[name] = torch.as_tensor(arr, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise DataError(f"{name} is not a numeric array ({type(exc).__name__}: {exc}); pass float features") from None
        audio, video = arrays["audio"], arrays["video"]
        for name, arr in arrays.items():
            want = self.dims.get(name)
            if arr.ndim != 2 or (want is not None and arr.shape[1] != want):
                raise DataError(f"{name} has shape {tuple(arr.shape)} but the pipeline was fitted on (N, {want}); pass features of that dim")
            if not torch.isfinite(arr).all():
                bad = int((~torch.isfinite(arr)).any(dim=1).sum())
                raise DataError(f"{name} holds NaN/inf in {bad} row(s); clean or drop those rows first")
        if len(audio) != len(video):
            raise DataError(f"audio has {len(audio)} rows but video has {len(video)}; pass one row per clip in each")
        return AVSamples(audio, video, torch.zeros(len(audio), dtype=torch.long))

    def check_samples(self, samples: AVSamples) -> AVSamples:
        """``samples`` unchanged, or a one-line :class:`DataError` when their dims differ from the fitted ones."""
        from avood_core.errors import DataError

        for name, got in (("audio", samples.audio_dim), ("video", samples.video_dim)):
            want = self.dims.get(name)
            if want is not None and got != want:
                raise DataError(
                    f"the data has {name} dim {got} but the pipeline was fitted on {name} dim {want} "
                    f"(audio {self.dims.get('audio')}, video {self.dims.get('video')}); use features of the run's dataset"
                )
        return samples

    def check_task(self, task: AVGZSLTask) -> AVGZSLTask:
        """``task`` unchanged if it matches what the pipeline was fitted on (dims, classes), else a DataError."""
        from avood_core.errors import DataError

        self.check_samples(task.test)
        if self.class_names and list(task.class_names) != list(self.class_names):
            raise DataError(
                f"the data has {len(task.class_names)} classes that differ from the {len(self.class_names)} classes "
                f"the pipeline was fitted on; evaluate on the run's dataset"
            )
        return task

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
        from safetensors.torch import save_file

        from avood_core.util.io import atomic_write, atomic_write_json

        tensors = {"text": self.text.cpu().contiguous(), "seen_classes": self.seen_classes.cpu().contiguous(),
                   "unseen_classes": self.unseen_classes.cpu().contiguous()}
        atomic_write(Path(run_dir) / "task.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        atomic_write_json(Path(run_dir) / "pipeline.json", {
            "avood_format": 1, "syn_num": self.syn_num, "names": self.names,
            "class_names": self.class_names, "dims": self.dims,
            "fit_hashes": {k: (fit_hashes or {}).get(k) for k in self.components},
        })

    @classmethod
    def load(cls, run_dir: str | Path, registry=None) -> "Pipeline":
        """Rebuild a fitted pipeline from a run folder without retraining (no pickle involved)."""
        import json

        from safetensors.torch import load_file

        from avood_core.pipeline.store import check_class_ids, check_task_meta, load_component, read_config
        from avood_core.errors import CheckpointError

        run_dir = Path(run_dir)
        meta_path, task_path = run_dir / "pipeline.json", run_dir / "task.safetensors"
        for path in (meta_path, task_path):
            if not path.is_file():
                raise CheckpointError(f"'{path}' not found; '{run_dir}' is not a finished avood run folder")
        try:
            meta = json.loads(meta_path.read_text())
            tensors = load_file(str(task_path))
            syn_num, names, class_names, dims = meta["syn_num"], meta["names"], meta["class_names"], meta["dims"]
            text, seen_c, unseen_c = tensors["text"], tensors["seen_classes"], tensors["unseen_classes"]
        except Exception as exc:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise CheckpointError(f"'{run_dir}': cannot read pipeline metadata ({detail}); rerun 'avood run'") from None
        check_task_meta(run_dir, text, seen_c, unseen_c, class_names, dims)
        parts = {kind: load_component(run_dir / "components" / kind, registry, kind=kind)
                 for kind in ("generator", "detector", "seen", "unseen")}
        expected = meta.get("fit_hashes") or {}
        for kind in parts:
            config = read_config(run_dir / "components" / kind)
            check_class_ids(config["state"], len(class_names), set(seen_c.tolist()), set(unseen_c.tolist()),
                            run_dir / "components" / kind / "config.json")
            saved = config.get("fit_hash")
            if expected.get(kind) is not None and saved != expected[kind]:
                raise CheckpointError(
                    f"'{run_dir}': {kind} was refitted (fit hash {saved}) after this pipeline was saved "
                    f"(fit hash {expected[kind]}), likely by an interrupted --resume; finish it with 'avood run --resume {run_dir}'"
                )
        pipe = cls(**parts, syn_num=syn_num, names=names)
        pipe.text, pipe.seen_classes, pipe.unseen_classes = text, seen_c, unseen_c
        pipe.class_names, pipe.dims = class_names, dims
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
            score, seen_pred, unseen_pred = self._branches(test)
            all_classes = torch.cat([self.seen_classes, self.unseen_classes]).sort().values
            baseline_pred = self.unseen.predict(test, all_classes, self.text).cpu()
        routed_seen = score < self.detector.threshold
        return {
            "labels": test.labels.cpu(),
            "score": score,
            "routed_seen": routed_seen,
            "seen_pred": seen_pred,
            "unseen_pred": unseen_pred,
            "pred": torch.where(routed_seen, seen_pred, unseen_pred),
            "baseline_pred": baseline_pred,
            "seen_classes": self.seen_classes.cpu(),
            "unseen_classes": self.unseen_classes.cpu(),
            "threshold": torch.tensor(float(self.detector.threshold)),
        }

    def evaluate(self, test: AVSamples) -> dict:
        """S, U, HM, ZSL (paper §4.1), the gate's metrics, and the no-gate baseline, in percent."""
        start = time.perf_counter()
        self.last_outputs = self.outputs(test)
        result = scores_from_outputs(self.last_outputs)
        self.timings["evaluate"] = time.perf_counter() - start
        return result


def scores_from_outputs(out: dict) -> dict:
    """Every headline metric from the arrays of :meth:`Pipeline.outputs` (see metrics.py)."""
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
