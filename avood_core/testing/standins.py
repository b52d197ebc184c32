"""Stand-in components (fast, closed form, with checkpoint state): the dependencies handed to
components that use ctx.fitted, and small worked examples of each protocol."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from avood_core.protocols import (
    Component,
    FitContext,
    Generator,
    OODDetector,
    SeenClassifier,
    UnseenClassifier,
)
from avood_core.task import AVSamples


def _ridge(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``W = argmin ‖aW − b‖² + lam‖W‖²`` in float64."""
    a64, b64 = a.double(), b.double()
    eye = torch.eye(a64.shape[1], dtype=torch.float64)
    return torch.linalg.solve(a64.T @ a64 + lam * eye, a64.T @ b64).float().contiguous()


def _centroids(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    classes = torch.unique(labels)
    return classes, torch.stack([x[labels == c].mean(0) for c in classes])


class StandInGenerator(Generator):
    """``x̃ = t W + N(0, 0.1²)`` with ``W`` by ridge regression from text to fused features."""

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInGenerator":
        self.w = _ridge(text[train.labels], train.x, 1e-1)
        self.audio_dim = train.audio_dim
        self.fitted = True
        return self

    def generate(self, class_ids: Tensor, text: Tensor, n_per_class: int) -> AVSamples:
        labels = torch.as_tensor(class_ids, dtype=torch.long).repeat_interleave(int(n_per_class))
        x = text[labels] @ self.w
        return AVSamples.from_x(x + 0.1 * torch.randn_like(x), labels, self.audio_dim)

    def state_tensors(self) -> dict[str, Tensor]:
        return {"w": self.w}

    def state_scalars(self) -> dict[str, Any]:
        return {"audio_dim": self.audio_dim}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.w, self.audio_dim, self.fitted = tensors["w"], int(scalars["audio_dim"]), True


class StandInDetector(OODDetector):
    """OOD score = distance to the nearest seen class centroid; threshold = its mean on seen training data."""

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "StandInDetector":
        _, self.centroids = _centroids(seen.x, seen.labels)
        self.threshold = float(self.score(seen).mean())
        self.fitted = True
        return self

    def score(self, samples: AVSamples) -> Tensor:
        return torch.cdist(samples.x, self.centroids).min(dim=1).values

    def state_tensors(self) -> dict[str, Tensor]:
        return {"centroids": self.centroids}

    def state_scalars(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.centroids, self.threshold, self.fitted = tensors["centroids"], float(scalars["threshold"]), True


class StandInSeen(SeenClassifier):
    """Nearest class centroid among the seen classes."""

    def fit(self, train: AVSamples, ctx: FitContext) -> "StandInSeen":
        self.classes, self.centroids = _centroids(train.x, train.labels)
        self.fitted = True
        return self

    def predict(self, samples: AVSamples) -> Tensor:
        return self.classes[torch.cdist(samples.x, self.centroids).argmin(dim=1)]

    def state_tensors(self) -> dict[str, Tensor]:
        return {"classes": self.classes, "centroids": self.centroids}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.classes, self.centroids, self.fitted = tensors["classes"], tensors["centroids"], True


class StandInUnseen(UnseenClassifier):
    """Ridge regression from fused features to text; distance = Euclidean distance to each class's text."""

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInUnseen":
        self.w = _ridge(train.x, text[train.labels], 1e-1)
        self.fitted = True
        return self

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        return torch.cdist(samples.x @ self.w, text[torch.as_tensor(candidates, dtype=torch.long)])

    def state_tensors(self) -> dict[str, Tensor]:
        return {"w": self.w}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.w, self.fitted = tensors["w"], True


STAND_INS: dict[str, type[Component]] = {
    cls.kind: cls for cls in (StandInGenerator, StandInDetector, StandInSeen, StandInUnseen)
}
