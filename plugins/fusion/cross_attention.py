"""``cross_attention``: the paper's Fusion-5 (§3.4, Fig. 2 right), AVCA's audio-visual cross-attention:
encoders ``φa``, ``φv``, one pre-LN transformer layer over the two tokens with learned positions, output
``(φa + ya) ⊕ (φv + yv)``; :meth:`CrossAttentionFusion.streams` gives the streams (docs/plugins.md)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from avood_core.fusion import Fusion
from avood_core.limits import bounded
from avood_plugins.unseen._avca_net import CrossAttentionLayer, heads_divide, mlp


class CrossAttentionFusion(Fusion):
    """Encoders + one cross-attention layer over the (audio, video) token pair."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        embed_dim: int = bounded("width", 300, description="Encoder output / attention width E (paper: 300).")
        enc_hidden: int = bounded("width", 512, description="Hidden width of the encoders A_enc, V_enc (paper: 512).")
        heads: int = bounded("width", 3, description="Attention heads; must divide embed_dim (paper: 3 x 100).")
        ff_dim: int = bounded("width", 64, description="Feed-forward hidden width of the attention layer (paper: 64).")
        dropout: float = Field(0.5, ge=0, lt=1, description="Dropout of the encoders and the attention layer (paper UCF r_enc: 0.5).")
        bn_momentum: float = Field(0.1, gt=0, le=1, description="Momentum of the encoders' last BatchNorm (PyTorch convention).")
        frozen_position: bool = Field(False, description="Keep the position embeddings at their N(0, 1) init (reference defect 4, docs/defects.md).")

        _heads_divide = model_validator(mode="after")(heads_divide)

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        return 2 * self.params.embed_dim

    def __init__(self, audio_dim: int, video_dim: int, params=None, **overrides) -> None:
        super().__init__(audio_dim, video_dim, params, **overrides)
        p = self.params
        self.A_enc = mlp([audio_dim, p.enc_hidden, p.embed_dim], p.dropout, p.bn_momentum)
        self.V_enc = mlp([video_dim, p.enc_hidden, p.embed_dim], p.dropout, p.bn_momentum)
        self.cross = CrossAttentionLayer(p.embed_dim, p.heads, p.ff_dim, p.dropout)
        # Learned position embeddings p0 (audio), p1 (video); N(0, 1) init as in AVCA.
        self.pos = nn.Parameter(torch.randn(2, p.embed_dim), requires_grad=not p.frozen_position)

    def streams(self, audio: Tensor, video: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(φa, φv, φa + ya, φv + yv)``: encoder outputs and attended streams, each (B, E)."""
        phi_a, phi_v = self.A_enc(audio), self.V_enc(video)
        y = self.cross(torch.stack([phi_a + self.pos[0], phi_v + self.pos[1]], dim=1))
        return phi_a, phi_v, phi_a + y[:, 0], phi_v + y[:, 1]

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        return torch.cat(self.streams(audio, video)[2:], dim=1)  # (φa + ya) ⊕ (φv + yv)
