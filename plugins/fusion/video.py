"""``video``: the visual feature alone (a one-modality ablation of the paper's ``a ⊕ v``, Fig. 1)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from avood_core.fusion import Fusion


class VideoOnly(Fusion):
    """``v``; the audio input is ignored (the output does not depend on it)."""

    modalities: ClassVar[tuple[str, ...]] = ("video",)
    splittable: ClassVar[bool] = True

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return video_dim

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return video
