"""Unseen classifier AVGZSLNet (Mazumder et al., "AVGZSLNet: Audio-Visual Generalized Zero-Shot Learning by
Reconstructing Label Features from Multi-Modal Embeddings", WACV 2021; paper Table 1 baseline), as AVCA-GZSL
benchmarks it (``src/model.py`` ``AVGZSLNet``, ``src/loss.py`` ``AVGZSLLoss``): composite triplet loss plus the
cross-modal decoder's label reconstruction; ``d = ‖a − F_T(t)‖ + ‖v − F_T(t)‖`` at prediction (docs/plugins.md)."""

from __future__ import annotations

import functools
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from avood_core.limits import bounded
from avood_plugins.unseen._joint_embedding import (
    JointEmbeddingClassifier,
    JointEmbeddingNet,
    JointEmbeddingParams,
    embedding_net,
)


class AVGZSLNetNet(JointEmbeddingNet):
    """``F_A``, ``F_V``, ``F_T`` and the cross-modal decoder ``D``."""

    def __init__(self, audio_dim: int, video_dim: int, text_dim: int, p: "AVGZSLNetClassifier.Params") -> None:
        super().__init__(audio_dim, video_dim, text_dim, p, p.embed_dropout)
        self.D = embedding_net(p.joint_dim, p.decoder_hidden, text_dim, p.decoder_dropout, p.decoder_bn)
        self.normalize_decoder = p.normalize_decoder

    def decode(self, emb: Tensor) -> Tensor:
        out = self.D(emb)
        return F.normalize(out, dim=1) if self.normalize_decoder else out

    def clip_distances(self, audio: Tensor, video: Tensor, theta_t: Tensor) -> Tensor:
        return torch.cdist(self.F_A(audio), theta_t) + torch.cdist(self.F_V(video), theta_t)


class AVGZSLNetClassifier(JointEmbeddingClassifier):
    """AVGZSLNet (Mazumder et al., WACV 2021) as AVCA-GZSL trains and evaluates it."""

    Net: ClassVar[type[JointEmbeddingNet]] = AVGZSLNetNet
    terms: ClassVar[tuple[str, ...]] = ("loss", "trip", "rec", "dec_trip")

    class Params(JointEmbeddingParams):
        embed_dropout: float = Field(0.8, ge=0, lt=1, description="Dropout of F_A, F_V, F_T (AVCA-GZSL src/args.py --embedding_dropout default 0.8; the run scripts keep it).")
        decoder_hidden: int = bounded("width", 64, description="Hidden width of the decoder D (src/args.py --decoder_hidden_size 64).")
        decoder_dropout: float = Field(0.5, ge=0, lt=1, description="Dropout of the decoder D (src/args.py --decoder_dropout 0.5).")
        decoder_bn: bool = Field(True, description="BatchNorm in the decoder D (run scripts: --decoder_use_bn).")
        normalize_decoder: bool = Field(True, description="L2-normalise the decoder's outputs (run scripts: --normalize_decoder_outputs).")

    def batch_terms(self, net: nn.Module, pos: tuple[Tensor, Tensor, Tensor], neg: tuple[Tensor, Tensor, Tensor],
                    class_text: Tensor) -> Tensor:
        trip = functools.partial(F.triplet_margin_loss, margin=self.params.margin)
        x_t = pos[2]
        a_p, v_p, t_p = net.F_A(pos[0]), net.F_V(pos[1]), net.F_T(x_t)
        a_q, v_q, t_q = net.F_A(neg[0]), net.F_V(neg[1]), net.F_T(neg[2])
        d_ta, d_tv, d_tt = net.decode(a_p), net.decode(v_p), net.decode(t_p)
        d_ta_q, d_tv_q = net.decode(a_q), net.decode(v_q)
        ct = trip(t_p, a_p, a_q) + trip(a_p, t_p, t_q) + trip(t_p, v_p, v_q) + trip(v_p, t_p, t_q)
        rec = sum((d - x_t).norm(dim=1).mean() for d in (d_tt, d_ta, d_tv))
        dec_trip = trip(d_tt, d_ta, d_ta_q) + trip(d_tt, d_tv, d_tv_q)
        return torch.stack([ct + rec + dec_trip, ct, rec, dec_trip])  # type: ignore[list-item]
