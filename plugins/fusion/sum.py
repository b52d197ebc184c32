"""``sum``: ``a + v`` for equal audio and video dims (an element-wise alternative to the paper's
``a ⊕ v``, Fig. 1 "Fusion 1-5")."""

from __future__ import annotations

from torch import Tensor

from avood_core.fusion import Fusion, require_equal_dims


class Sum(Fusion):
    """Element-wise sum; needs ``Da == Dv`` (one-line error otherwise)."""

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return require_equal_dims("sum", audio_dim, video_dim)

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return audio + video
