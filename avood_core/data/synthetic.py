"""Small synthetic AV-GZSL tasks of any shape from a seed (the test kit's); ``SyntheticSpec()`` is UCF-GZSL-shaped.

Class latent ``h_c = unit(t_c + σ_class·ε_c)``, per modality ``W2·tanh(g·W1·h)``, latent and feature noise per
clip (audio noisier); ``val`` holds out part of the seen training clips.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from avood_core.task import AVGZSLTask, AVSamples


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and noise levels of a synthetic task (defaults: UCF-GZSL-shaped)."""

    n_seen: int = 42
    n_unseen: int = 9
    audio_dim: int = 512
    video_dim: int = 512
    text_dim: int = 300
    latent_dim: int = 64
    train_samples: int = 4994
    test_seen_samples: int = 555
    test_unseen_samples: int = 1267
    class_noise: float = 0.6
    latent_noise: float = 1.0
    audio_noise: float = 1.7
    video_noise: float = 1.2
    gain: float = 2.0

    def __post_init__(self) -> None:
        from avood_core.errors import DataError
        from avood_core.limits import MAX_FEATURE_DIM

        for name in ("n_seen", "n_unseen", "audio_dim", "video_dim", "text_dim", "latent_dim"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_FEATURE_DIM:
                raise DataError(f"synthetic task: {name} = {value}; it must be 1..{MAX_FEATURE_DIM} (every clip needs audio, "
                                f"video and text)")
        for name in ("train_samples", "test_seen_samples", "test_unseen_samples"):
            if getattr(self, name) < 1:
                raise DataError(f"synthetic task: {name} = {getattr(self, name)}; it must be at least 1")

    def scaled(self, scale: float) -> "SyntheticSpec":
        """Same structure with the sample counts multiplied by ``scale`` (at least 2 per class)."""
        return replace(self, train_samples=max(2 * self.n_seen, round(self.train_samples * scale)),
                       test_seen_samples=max(self.n_seen, round(self.test_seen_samples * scale)),
                       test_unseen_samples=max(2 * self.n_unseen, round(self.test_unseen_samples * scale)))


def unit(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def split_counts(total: int, n_classes: int, g: torch.Generator) -> Tensor:
    """Uneven per-class counts summing to ``total`` (each class at least one)."""
    weights = 0.5 + torch.rand(n_classes, generator=g)
    counts = torch.floor(weights / weights.sum() * (total - n_classes)).long() + 1
    counts[torch.argsort(weights, descending=True)[: total - int(counts.sum())]] += 1
    return counts


def _modality_map(latent_dim: int, out_dim: int, gain: float, g: torch.Generator):
    """A fixed random map latent -> feature of one modality: ``W2·tanh(g·W1·h) + b``."""
    hidden = 2 * out_dim
    w1 = torch.randn(latent_dim, hidden, generator=g) * (gain / latent_dim**0.5)
    w2 = torch.randn(hidden, out_dim, generator=g) / hidden**0.5
    b = torch.randn(out_dim, generator=g) * 0.5
    return lambda h: torch.tanh(h @ w1) @ w2 + b


def make_text_embeddings(n_classes: int, text_dim: int, latent_dim: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Unit-norm text embeddings driven by a low-rank latent (like word vectors), and that latent."""
    latent = torch.randn(n_classes, latent_dim, generator=g)
    mix = torch.randn(latent_dim, text_dim, generator=g) / latent_dim**0.5
    text = unit(latent @ mix + 0.3 * torch.randn(n_classes, text_dim, generator=g))
    return text, latent


def make_synthetic_task(seed: int = 0, spec: SyntheticSpec | None = None, val_fraction: float = 0.1) -> AVGZSLTask:
    """Generate a task of shape ``spec`` from ``seed`` (same seed, same task)."""
    spec = spec or SyntheticSpec()
    g = torch.Generator().manual_seed(seed)
    n = spec.n_seen + spec.n_unseen
    text, latent = make_text_embeddings(n, spec.text_dim, spec.latent_dim, g)
    class_latent = unit(unit(latent) + spec.class_noise * unit(torch.randn(n, spec.latent_dim, generator=g)))
    maps = [_modality_map(spec.latent_dim, d, spec.gain, g) for d in (spec.audio_dim, spec.video_dim)]
    perm = torch.randperm(n, generator=g)
    seen, unseen = perm[: spec.n_seen].sort().values, perm[spec.n_seen :].sort().values

    def clips(classes: Tensor, total: int) -> AVSamples:
        labels = torch.repeat_interleave(classes, split_counts(total, len(classes), g))
        h = class_latent[labels] + spec.latent_noise / spec.latent_dim**0.5 * torch.randn(len(labels), spec.latent_dim, generator=g)
        audio, video = (m(h) + noise * torch.randn(len(labels), d, generator=g) for m, noise, d in
                        zip(maps, (spec.audio_noise, spec.video_noise), (spec.audio_dim, spec.video_dim)))
        return AVSamples(audio, video, labels)

    train_all = clips(seen, spec.train_samples)
    test = AVSamples.concat(clips(seen, spec.test_seen_samples), clips(unseen, spec.test_unseen_samples))
    held = torch.rand(len(train_all), generator=g) < val_fraction
    return AVGZSLTask(train=train_all.subset(~held), val=train_all.subset(held), test=test, text=text, seen_classes=seen,
                      unseen_classes=unseen, class_names=[f"class_{i:02d}" for i in range(n)],
                      name=f"synthetic-ucf-seed{seed}", meta={"source": "synthetic", "seed": seed, **spec.__dict__})
