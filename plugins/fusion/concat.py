"""``concat``: ``x = a ⊕ v``, the paper's fusion for the generator, the OOD detector and the seen
classifier (Fig. 2, §3.1; reference ``src/dataset.py``, ``torch.cat`` of the two features)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from avood_core.fusion import Fusion


class Concat(Fusion):
    """Concatenation (no parameters); the output of width ``Da + Dv`` is the input ``x`` itself."""

    splittable: ClassVar[bool] = True

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return audio_dim + video_dim

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return torch.cat([audio, video], dim=1)

    def fuse_x(self, x: Tensor) -> Tensor:
        return x  # already a ⊕ v: no copy
