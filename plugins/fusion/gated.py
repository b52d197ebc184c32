"""``gated``: ``y = g ⊙ P_a(a) + (1 − g) ⊙ P_v(v)``, ``g = σ(W [a ⊕ v] + b)`` per dimension, ``W``, ``b`` = 0 at
init (not in the paper; an option of its Fig. 1 "Fusion 1-5", after gated multimodal units, Arevalo et al. 2017)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from avood_core.fusion import Fusion
from avood_core.limits import bounded


class Gated(Fusion):
    """Learned per-dimension convex combination of the (projected) audio and video features."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        dim: int | None = bounded("width", None,
            description="Width D of the fused feature; None = the common dim when Da = Dv (no projections), "
            "else max(Da, Dv) with a Linear projection of each modality.")

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return max(audio_dim, video_dim) if self.params.dim is None else int(self.params.dim)

    def __init__(self, audio_dim: int, video_dim: int, params=None, **overrides) -> None:
        super().__init__(audio_dim, video_dim, params, **overrides)
        d = self.dim
        self.proj_a: nn.Module = nn.Identity() if audio_dim == d else nn.Linear(audio_dim, d)
        self.proj_v: nn.Module = nn.Identity() if video_dim == d else nn.Linear(video_dim, d)
        self.gate = nn.Linear(audio_dim + video_dim, d)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        g = torch.sigmoid(self.gate(torch.cat([audio, video], dim=1)))
        return g * self.proj_a(audio) + (1 - g) * self.proj_v(video)
