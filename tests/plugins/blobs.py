"""Tiny separable tasks shared by the plugin tests: Gaussian-blob samples, a CPU fit context, and
fitting a detector on them.

Imported as ``from blobs import ...`` (pytest puts this folder on ``sys.path``, as it does
``tests/`` for ``toy_components``).
"""

from __future__ import annotations

import torch

from avood_core.protocols import FitContext
from avood_core.task import AVSamples

SEEN = torch.tensor([0, 2, 5, 7, 9, 11])
UNSEEN = torch.tensor([1, 3, 4])
AUDIO_DIM, VIDEO_DIM = 16, 12


def blobs(class_ids: torch.Tensor, per_class: int, seed: int, *, n_classes: int = 12, dim: int = AUDIO_DIM + VIDEO_DIM,
          audio_dim: int = AUDIO_DIM, scale: float = 1.5, means_seed: int = 123) -> AVSamples:
    """Gaussian blobs: class c has a fixed mean (from its id, ``means_seed`` and ``scale``) plus unit noise.

    ``per_class`` samples of each class in ``class_ids``; the first ``audio_dim`` of the ``dim``
    features are the audio, the rest the video.
    """
    means = torch.randn(n_classes, dim, generator=torch.Generator().manual_seed(means_seed)) * scale
    g = torch.Generator().manual_seed(seed)
    labels = class_ids.repeat_interleave(per_class)
    x = means[labels] + torch.randn(len(labels), dim, generator=g)
    return AVSamples.from_x(x, labels, audio_dim)


def fit_context(seen: torch.Tensor = SEEN, unseen: torch.Tensor = UNSEEN, text_shape: tuple[int, int] = (12, 8),
                **fields) -> FitContext:
    """A CPU fit context; its random class texts are drawn from torch's global generator."""
    return FitContext(text=torch.randn(*text_shape), seen_classes=seen, unseen_classes=unseen,
                      device=torch.device("cpu"), **fields)


def fit_detector(cls: type, params: dict, data: dict[str, AVSamples], seed: int = 0):
    """``cls(params)`` fitted on ``data["seen"]`` against ``data["synthetic"]``, torch seeded with ``seed`` first."""
    torch.manual_seed(seed)
    return cls(params).fit(data["seen"], data["synthetic"], fit_context())
