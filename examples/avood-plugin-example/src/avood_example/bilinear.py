"""Low-rank bilinear fusion (MLB; Kim et al., "Hadamard product for low-rank bilinear pooling",
ICLR 2017) as an avood fusion plugin (kind ``fusion``; avood paper Fig. 1, "Fusion 1-5").

    y = tanh(U a + b_u) ⊙ tanh(W v + b_w)        U: (rank, Da), W: (rank, Dv), y: (B, rank)

A second-order interaction of every audio and visual dimension through a rank-``rank``
factorisation; the dims may differ. It trains with the component that uses it (e.g. ``avood
run --set detector.fusion=bilinear``) and is saved in that component's ``model.safetensors``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core import Fusion


class LowRankBilinear(Fusion):
    """``tanh(U a) ⊙ tanh(W v)``: a learned multiplicative fusion of width ``rank``."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        rank: int = Field(256, ge=1, le=16_384, description="Width of the joint (Hadamard) space, the fused feature's dims (at most 16384).")

    def __init__(self, audio_dim: int, video_dim: int, params=None, **overrides) -> None:
        super().__init__(audio_dim, video_dim, params, **overrides)
        self.U = nn.Linear(audio_dim, self.dim)
        self.W = nn.Linear(video_dim, self.dim)

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return self.params.rank

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return torch.tanh(self.U(audio)) * torch.tanh(self.W(video))
