"""The fusions without parameters (paper Fig. 1, "Fusion 1-5"): ``concat``, ``x = a ⊕ v``, the paper's fusion for
the generator, the OOD detector and the seen classifier (Fig. 2, §3.1; reference ``src/dataset.py``, ``torch.cat``
of the two features); ``audio`` and ``video``, one modality alone (ablations of ``a ⊕ v``); ``mean`` and ``sum``,
element-wise alternatives for equal audio and video dims."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from avood_core.fusion import Fusion, require_equal_dims


class Concat(Fusion):
    """Concatenation (no parameters); the output of width ``Da + Dv`` is the input ``x`` itself."""

    splittable: ClassVar[bool] = True

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return audio_dim + video_dim

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return torch.cat([audio, video], dim=1)

    def fuse_x(self, x: Tensor) -> Tensor:
        return x  # already a ⊕ v: no copy


class AudioOnly(Fusion):
    """``a``; the video input is ignored (the output does not depend on it)."""

    modalities: ClassVar[tuple[str, ...]] = ("audio",)
    splittable: ClassVar[bool] = True

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return audio_dim

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return audio


class VideoOnly(AudioOnly):
    """``v``; the audio input is ignored (the output does not depend on it)."""

    modalities: ClassVar[tuple[str, ...]] = ("video",)

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return video_dim

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return video


class Mean(Fusion):
    """Element-wise mean; needs ``Da == Dv`` (one-line error otherwise)."""

    registered: ClassVar[str] = "mean"  # the name its dims error gives

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return require_equal_dims(self.registered, audio_dim, video_dim)

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return (audio + video) * 0.5


class Sum(Mean):
    """Element-wise sum; needs ``Da == Dv`` (one-line error otherwise, as ``mean``)."""

    registered: ClassVar[str] = "sum"

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return audio + video
