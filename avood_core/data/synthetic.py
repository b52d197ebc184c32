"""Small synthetic AV-GZSL tasks of any shape, generated in-process from a seed.

The embedded default task (``make run``) is :mod:`avood_core.data.embedded` (real UCF classes and
word2vec vectors, features from the calibrated latent model of :mod:`avood_core.data.latent`).
This module builds the tiny tasks of the plugin test kit and the tests (any class count and
width, generated text), and provides ``split_counts`` and ``make_text_embeddings`` to the tree
writer. ``SyntheticSpec()``'s defaults are UCF-GZSL-shaped (stage 2): 51 classes (42 seen,
9 unseen), 512-d audio and video, 300-d unit-norm text embeddings, and UCF's split sizes (4994
train, 555 test seen, 1267 test unseen clips). Zero-shot transfer is learnable but not trivial:

* each class has a latent ``h_c = normalize(t_c + σ_class · ε_c)``: the text embedding
  explains only part of the class (class-level noise);
* each modality sees the latent through its own random two-layer network
  ``f_m(h) = W2_m · tanh(g · W1_m · h)``, so audio and video relate differently to text;
* each clip adds latent noise before the map and feature noise after it (sample level);
  audio is noisier than video, as in the real benchmark.

A held-out part of the training clips forms ``val`` (seen classes only) for components
that select on a validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        from dataclasses import replace

        return replace(
            self,
            train_samples=max(2 * self.n_seen, round(self.train_samples * scale)),
            test_seen_samples=max(self.n_seen, round(self.test_seen_samples * scale)),
            test_unseen_samples=max(2 * self.n_unseen, round(self.test_unseen_samples * scale)),
        )


def unit(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


_unit = unit


def split_counts(total: int, n_classes: int, g: torch.Generator) -> Tensor:
    """Uneven per-class counts summing to ``total`` (each class at least one)."""
    weights = 0.5 + torch.rand(n_classes, generator=g)
    counts = torch.floor(weights / weights.sum() * (total - n_classes)).long() + 1
    counts[torch.argsort(weights, descending=True)[: total - int(counts.sum())]] += 1
    return counts


_counts = split_counts


class ModalityMap:
    """A fixed random map latent -> feature for one modality.

    ``hidden`` defaults to ``2 * out_dim``; a smaller one keeps very wide outputs (e.g. the
    4096-d C3D video features) cheap to generate.
    """

    def __init__(
        self, latent_dim: int, out_dim: int, gain: float, g: torch.Generator, hidden: int | None = None
    ) -> None:
        hidden = 2 * out_dim if hidden is None else hidden
        self.w1 = torch.randn(latent_dim, hidden, generator=g) * (gain / latent_dim**0.5)
        self.w2 = torch.randn(hidden, out_dim, generator=g) / hidden**0.5
        self.b = torch.randn(out_dim, generator=g) * 0.5

    def __call__(self, h: Tensor) -> Tensor:
        return torch.tanh(h @ self.w1) @ self.w2 + self.b


_ModalityMap = ModalityMap


def make_class_latents(base_latent: Tensor, class_noise: float, g: torch.Generator) -> Tensor:
    """Per-class latents ``normalize(normalize(base) + σ_class · ε)``: text explains only part of a class."""
    n, latent_dim = base_latent.shape
    return unit(unit(base_latent) + class_noise * unit(torch.randn(n, latent_dim, generator=g)))


def sample_features(
    class_latent: Tensor,
    labels: Tensor,
    audio_map: ModalityMap,
    video_map: ModalityMap,
    spec: "SyntheticSpec",
    g: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Audio and video features of clips with class ``labels``: latent noise, the maps, feature noise."""
    latent_dim = class_latent.shape[1]
    h = class_latent[labels] + spec.latent_noise / latent_dim**0.5 * torch.randn(len(labels), latent_dim, generator=g)
    audio = audio_map(h) + spec.audio_noise * torch.randn(len(labels), audio_map.b.shape[0], generator=g)
    video = video_map(h) + spec.video_noise * torch.randn(len(labels), video_map.b.shape[0], generator=g)
    return audio, video


def make_text_embeddings(n_classes: int, text_dim: int, latent_dim: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Unit-norm text embeddings driven by a low-rank latent (like word vectors), and that latent."""
    latent = torch.randn(n_classes, latent_dim, generator=g)
    mix = torch.randn(latent_dim, text_dim, generator=g) / latent_dim**0.5
    text = unit(latent @ mix + 0.3 * torch.randn(n_classes, text_dim, generator=g))
    return text, latent


def make_synthetic_task(seed: int = 0, spec: SyntheticSpec | None = None, val_fraction: float = 0.1) -> AVGZSLTask:
    """Generate the embedded default task from ``seed`` (same seed, same task)."""
    spec = spec or SyntheticSpec()
    g = torch.Generator().manual_seed(seed)
    n = spec.n_seen + spec.n_unseen
    text, latent = make_text_embeddings(n, spec.text_dim, spec.latent_dim, g)
    class_latent = make_class_latents(latent, spec.class_noise, g)
    audio_map = ModalityMap(spec.latent_dim, spec.audio_dim, spec.gain, g)
    video_map = ModalityMap(spec.latent_dim, spec.video_dim, spec.gain, g)
    perm = torch.randperm(n, generator=g)
    seen, unseen = perm[: spec.n_seen].sort().values, perm[spec.n_seen :].sort().values

    def clips(classes: Tensor, total: int) -> AVSamples:
        labels = torch.repeat_interleave(classes, split_counts(total, len(classes), g))
        audio, video = sample_features(class_latent, labels, audio_map, video_map, spec, g)
        return AVSamples(audio, video, labels)

    train_all = clips(seen, spec.train_samples)
    test = AVSamples.concat(clips(seen, spec.test_seen_samples), clips(unseen, spec.test_unseen_samples))
    held = torch.rand(len(train_all), generator=g) < val_fraction
    return AVGZSLTask(
        train=train_all.subset(~held),
        val=train_all.subset(held),
        test=test,
        text=text,
        seen_classes=seen,
        unseen_classes=unseen,
        class_names=[f"class_{i:02d}" for i in range(n)],
        name=f"synthetic-ucf-seed{seed}",
        meta={"source": "synthetic", "seed": seed, **spec.__dict__},
    )
