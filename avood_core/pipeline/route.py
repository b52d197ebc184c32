"""Routing (paper Fig. 2, §3.3): the OOD detector sends each clip to the seen or the unseen classifier.

:func:`route` asks the detector's own :meth:`~avood_core.protocols.OODDetector.is_seen` (by default
``score < threshold``), as the reference code AV-OOD-GZSL ``test.py`` splits the test clips by the
gate before classifying each part. The pipeline finds the gate and the two classifiers in the stage
table by their protocols (:data:`ROUTED`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avood_core.pipeline import boundary
from avood_core.protocols import OODDetector, SeenClassifier, UnseenClassifier
from avood_core.task import AVSamples

ROUTED = ("OODDetector", "SeenClassifier", "UnseenClassifier")
"""The protocols of the gate and of its seen and unseen branches (``Stage.protocol_name``)."""


@dataclass
class Routing:
    """The gate's view of each clip (CPU tensors)."""

    score: Tensor
    """OOD score: higher = more likely unseen (for the metrics: AUROC, histograms)."""
    seen: Tensor
    """True where the clip goes to the seen classifier."""


def route(detector: OODDetector, samples: AVSamples) -> Routing:
    """Score every clip and route it by ``detector.is_seen`` (a detector that keeps the protocol's
    ``is_seen`` is routed by its ``seen_by_score`` on the score just computed); both checked."""
    score = boundary.score(detector, samples)
    return Routing(score, boundary.is_seen(detector, samples, score))


@dataclass
class Branches:
    """Both classifiers on every clip, and where the gate sends each one."""

    routing: Routing
    seen_pred: Tensor
    """The seen classifier's class id for every clip."""
    unseen_pred: Tensor
    """The unseen classifier's class id among the unseen classes for every clip."""

    @property
    def pred(self) -> Tensor:
        """The routed prediction: the seen classifier's where routed seen, else the unseen one's."""
        return torch.where(self.routing.seen, self.seen_pred, self.unseen_pred)


def branches(detector: OODDetector, seen: SeenClassifier, unseen: UnseenClassifier, samples: AVSamples,
             seen_classes: Tensor, unseen_classes: Tensor, text: Tensor) -> Branches:
    """Route every clip and run both classifiers on all of them (ids checked against each branch's classes)."""
    routing = route(detector, samples)
    seen_pred = boundary.predict_seen(seen, samples, seen_classes)
    return Branches(routing, seen_pred, boundary.predict_unseen(unseen, samples, unseen_classes, text))
