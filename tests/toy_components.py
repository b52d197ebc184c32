"""Small closed-form components used by core tests (fast, deterministic, genuinely working)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from avood_core.hookspecs import hookimpl
from avood_core.protocols import Generator, OODDetector, SeenClassifier, UnseenClassifier
from avood_core.task import AVSamples


def _ridge(a: torch.Tensor, b: torch.Tensor, lam: float = 1e-2) -> torch.Tensor:
    """W minimising |aW - b|² + lam|W|²."""
    eye = torch.eye(a.shape[1])
    return torch.linalg.solve(a.T @ a + lam * eye, a.T @ b)


class RidgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lam: float = 0.1
    noise: float = 0.1


class RidgeGenerator(Generator):
    """x̃ = t W + noise, W by ridge regression from class text to features."""

    Params = RidgeParams

    def fit(self, train, text, ctx):
        self.w = _ridge(text[train.labels], train.x, self.params.lam)
        self.audio_dim = train.audio_dim
        self.fitted = True
        return self

    def generate(self, class_ids, text, n_per_class):
        labels = torch.as_tensor(class_ids).repeat_interleave(n_per_class)
        x = text[labels] @ self.w
        x = x + self.params.noise * torch.randn_like(x)
        return AVSamples.from_x(x, labels, self.audio_dim)


class CentroidDetector(OODDetector):
    """OOD score = distance to the nearest seen centroid; threshold = mean seen distance."""

    def fit(self, seen, synthetic_unseen, ctx):
        self.centroids = torch.stack([seen.x[seen.labels == c].mean(0) for c in seen.classes])
        self.threshold = float(self.score(seen).mean())
        self.fitted = True
        return self

    def score(self, samples):
        return torch.cdist(samples.x, self.centroids).min(dim=1).values


class CentroidSeen(SeenClassifier):
    def fit(self, train, ctx):
        self.classes = train.classes
        self.centroids = torch.stack([train.x[train.labels == c].mean(0) for c in self.classes])
        self.fitted = True
        return self

    def predict(self, samples):
        return self.classes[torch.cdist(samples.x, self.centroids).argmin(dim=1)]


class RidgeUnseen(UnseenClassifier):
    """Maps features to text space by ridge regression; nearest class text wins."""

    Params = RidgeParams

    def fit(self, train, text, ctx):
        self.w = _ridge(train.x, text[train.labels], self.params.lam)
        self.fitted = True
        return self

    def distances(self, samples, candidates, text):
        return torch.cdist(samples.x @ self.w, text[candidates])


class ToyPlugin:
    """Registers the toy components under the names used by the tests."""

    @staticmethod
    @hookimpl
    def register_components(register):
        register("generator", "toy_ridge", RidgeGenerator)
        register("detector", "toy_centroid", CentroidDetector)
        register("seen", "toy_centroid", CentroidSeen)
        register("unseen", "toy_ridge", RidgeUnseen)
