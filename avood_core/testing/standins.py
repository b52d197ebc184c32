"""Stand-in components (fast, closed form, with checkpoint state): the dependencies handed to
components that use ctx.fitted, and small worked examples of each protocol."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from avood_core.protocols import Component, FitContext, Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.task import AVSamples


def _ridge(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """``W = argmin ‖aW − b‖² + lam‖W‖²`` in float64."""
    a64, b64 = a.double(), b.double()
    eye = torch.eye(a64.shape[1], dtype=torch.float64)
    return torch.linalg.solve(a64.T @ a64 + lam * eye, a64.T @ b64).float().contiguous()


class _AttrState:
    """Checkpoint state from declared attributes: ``TENSORS`` go to safetensors, ``SCALARS`` (name ->
    type) to config.json; loading sets them back and marks the component fitted."""

    TENSORS: tuple[str, ...] = ()
    SCALARS: Mapping[str, type] = {}

    def state_tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.TENSORS}

    def state_scalars(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.SCALARS}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        for name in self.TENSORS:
            setattr(self, name, tensors[name])
        for name, kind in self.SCALARS.items():
            setattr(self, name, kind(scalars[name]))
        self.fitted = True


def _centroids(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    classes = torch.unique(labels)
    return classes, torch.stack([x[labels == c].mean(0) for c in classes])


class StandInGenerator(_AttrState, Generator):
    """``x̃ = t W + N(0, 0.1²)`` with ``W`` by ridge regression from text to fused features."""

    TENSORS = ("w",)
    SCALARS = {"audio_dim": int}

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInGenerator":
        self.w = _ridge(text[train.labels], train.x, 1e-1)
        self.audio_dim = train.audio_dim
        self.fitted = True
        return self

    def generate(self, class_ids: Tensor, text: Tensor, n_per_class: int) -> AVSamples:
        labels = torch.as_tensor(class_ids, dtype=torch.long).repeat_interleave(int(n_per_class))
        x = text[labels] @ self.w
        return AVSamples.from_x(x + 0.1 * torch.randn_like(x), labels, self.audio_dim)


class StandInDetector(_AttrState, OODDetector):
    """OOD score = distance to the nearest seen class centroid; threshold = its mean on seen training data."""

    TENSORS = ("centroids",)
    SCALARS = {"threshold": float}

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "StandInDetector":
        _, self.centroids = _centroids(seen.x, seen.labels)
        self.threshold = float(self.score(seen).mean())
        self.fitted = True
        return self

    def score(self, samples: AVSamples) -> Tensor:
        return torch.cdist(samples.x, self.centroids).min(dim=1).values


class StandInSeen(_AttrState, SeenClassifier):
    """Nearest class centroid among the seen classes."""

    TENSORS = ("classes", "centroids")

    def fit(self, train: AVSamples, ctx: FitContext) -> "StandInSeen":
        self.classes, self.centroids = _centroids(train.x, train.labels)
        self.fitted = True
        return self

    def predict(self, samples: AVSamples) -> Tensor:
        return self.classes[torch.cdist(samples.x, self.centroids).argmin(dim=1)]


class StandInUnseen(_AttrState, UnseenClassifier):
    """Ridge regression from fused features to text; distance = Euclidean distance to each class's text."""

    TENSORS = ("w",)

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "StandInUnseen":
        self.w = _ridge(train.x, text[train.labels], 1e-1)
        self.fitted = True
        return self

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        return torch.cdist(samples.x @ self.w, text[torch.as_tensor(candidates, dtype=torch.long)])


STAND_INS: dict[str, type[Component]] = {
    cls.kind: cls for cls in (StandInGenerator, StandInDetector, StandInSeen, StandInUnseen)
}
