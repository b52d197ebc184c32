"""The AV-OOD pipeline: fit the four components, route each sample through the gate, evaluate.

Fit order (paper Fig. 2): the generator learns p(x | t) on seen classes and synthesizes
``syn_num`` features per unseen class; the seen classifier and the unseen classifier train
on real seen features (classifiers with ``uses_synthetic`` also see the synthetic ones); the
OOD detector trains last on real seen vs synthetic unseen, so a gate may use the fitted
classifiers (``ctx.fitted``). At test time a sample with ``score < threshold`` goes to the
seen classifier, the rest to the unseen classifier (among the unseen classes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from avood_core import metrics
from avood_core.progress import ProgressFactory
from avood_core.protocols import FitContext, Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.training import derive_seed, seed_everything


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
    ) -> "Pipeline":
        """Fit every component on ``task`` (``skip``: kinds already fitted, e.g. on resume)."""
        self.text, self.seen_classes, self.unseen_classes = task.text, task.seen_classes, task.unseen_classes
        ctx = FitContext(
            text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            device=torch.device(device), seed=seed, progress=progress, val=task.val, log=log,
        )

        def stage(kind: str, run: Callable[[], object]) -> None:
            if kind not in skip:
                seed_everything(derive_seed(seed, kind))
                start = time.perf_counter()
                run()
                self.timings[kind] = time.perf_counter() - start
            ctx.fitted[kind] = self.components[kind]

        stage("generator", lambda: self.generator.fit(task.train, task.text, ctx))
        seed_everything(derive_seed(seed, "synthesize"))
        start = time.perf_counter()
        self.synthetic = self.generator.generate(task.unseen_classes, task.text, self.syn_num)
        self.timings["synthesize"] = time.perf_counter() - start
        ctx.synthetic = self.synthetic
        stage("seen", lambda: self.seen.fit(task.train, ctx))
        stage("unseen", lambda: self.unseen.fit(task.train, task.text, ctx))
        stage("detector", lambda: self.detector.fit(task.train, self.synthetic, ctx))
        return self

    @torch.inference_mode()
    def predict(self, samples: AVSamples) -> Prediction:
        """Route each sample by the gate and classify it within the chosen branch."""
        score = self.detector.score(samples).cpu()
        routed_seen = score < self.detector.threshold
        labels = torch.empty(len(samples), dtype=torch.long)
        if routed_seen.any():
            labels[routed_seen] = self.seen.predict(samples.subset(routed_seen)).cpu()
        if (~routed_seen).any():
            labels[~routed_seen] = self.unseen.predict(
                samples.subset(~routed_seen), self.unseen_classes, self.text
            ).cpu()
        return Prediction(labels, score, routed_seen)

    @torch.inference_mode()
    def evaluate(self, test: AVSamples) -> dict:
        """S, U, HM, ZSL (SPEC §5), the gate's metrics, and the no-gate baseline, in percent."""
        start = time.perf_counter()
        pred = self.predict(test)
        seen_c, unseen_c = self.seen_classes, self.unseen_classes
        unseen_test = test.where(unseen_c)
        seen_test = test.where(seen_c)
        zsl_pred = self.unseen.predict(unseen_test, unseen_c, self.text)
        all_classes = torch.cat([seen_c, unseen_c]).sort().values
        baseline_pred = self.unseen.predict(test, all_classes, self.text)
        result = {
            **metrics.gzsl_scores(pred.labels, test.labels, seen_c, unseen_c),
            "ZSL": metrics.mean_class_accuracy(zsl_pred, unseen_test.labels, unseen_c),
            "seen_classifier_acc": metrics.mean_class_accuracy(
                self.seen.predict(seen_test), seen_test.labels, seen_c
            ),
            "gate": {
                **metrics.gate_scores(pred.score, pred.routed_seen, test.labels, seen_c),
                "threshold": float(self.detector.threshold),
                "routing": metrics.routing_counts(pred.routed_seen, test.labels, seen_c),
            },
            "baseline_no_gate": metrics.gzsl_scores(baseline_pred, test.labels, seen_c, unseen_c),
        }
        self.timings["evaluate"] = time.perf_counter() - start
        return result
