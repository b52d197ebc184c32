"""Unseen classifier: AVCA cross-attention embedding with the paper's negative losses (paper §3.4, eq. 6-9):
``L = L⁺ + Σ_{k ∈ negative_terms} L_k⁻`` with triplet (eq. 6, plus the reference's ``l_ct`` on the decoder
outputs), reconstruction (eq. 7) and regularisation (eq. 8) terms, positives and negatives as separate halves
(reference ``src/model_clsu_embedding.py``); prediction: the nearest ``W_proj(t_c)`` to θv (docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from avood_core.errors import ConfigError
from avood_core.fusion import FusionParams, make_fusion
from avood_core.limits import bounded
from avood_core.protocols import FitContext, TorchComponent, UnseenClassifier
from avood_core.task import AVSamples
from avood_core.train.loop import LoopComponent, Training, resolve
from avood_core.train.precision import AUTO_PRECISION_HELP, AutoPrecision, adam, autocast
from avood_core.train.strategy import Halves
from avood_plugins.unseen._avca_net import AVCANet, heads_divide
from avood_plugins.unseen._joint_embedding import embedding_distances, embedding_inputs

_TERMS = ("loss", "trip", "rec", "reg")  # the loss and its terms (paper Eq. 6-9), as reported to ctx.callbacks

NegativeTerm = Literal["trip", "rec", "reg"]


def trip_loss(s: Mapping[str, Tensor], o: Mapping[str, Tensor], margin: float, decoder: bool = True) -> Tensor:
    """Eq. 6 with ``s`` as anchor half and ``o`` as the other half, summed over m ∈ {a, v}; ``decoder`` adds the
    reference's ``l_ct = T(ρ_t, ρ_m, ρ_m⁻)`` on the decoder outputs."""
    def t(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return F.triplet_margin_loss(x, y, z, margin=margin)

    total = sum(
        t(s[m], s["t"], o[m]) + t(s["t"], s[m], o["t"]) + t(s["t"], s[m], o[m]) + t(s[m], s["t"], o["t"])
        for m in ("a", "v")
    )
    if decoder:
        total = total + t(s["dec_t"], s["dec_v"], o["dec_v"]) + t(s["dec_t"], s["dec_a"], o["dec_a"])
    return total  # type: ignore[return-value]


def rec_loss(s: Mapping[str, Tensor], text: Tensor) -> Tensor:
    """Eq. 7: the decoder maps every modality's projection back to the class text."""
    return F.mse_loss(s["dec_a"], text) + F.mse_loss(s["dec_v"], text) + F.mse_loss(s["dec_t"], text)


def reg_loss(s: Mapping[str, Tensor]) -> Tensor:
    """Eq. 8: the reconstructors map θa, θv back to the encoder outputs φa, φv."""
    return F.mse_loss(s["rec_a"], s["phi_a"]) + F.mse_loss(s["rec_v"], s["phi_v"])


class CrossAttentionParams(FusionParams):
    """Hyperparameters of :class:`CrossAttentionClassifier` (defaults: the paper and the reference code)."""

    fusion: str = Field("cross_attention",
        description="Fusion-5 of the paper (§3.4): the cross_attention fusion plugin, built from embed_dim, "
        "enc_hidden, heads, ff_dim, r_enc, bn_momentum and compat_frozen_position (fusion_params override them). "
        "The embedding network needs per-modality streams, so only a fusion with streams() fits here.")
    lr: float = Field(2.4e-3, gt=0, description="Adam learning rate; per dataset, default = UCF (VGGSound and ActivityNet 5e-4).")
    batch_size: int = bounded("batch", 112, "Positive samples per step (as many negatives join them); per dataset, default = UCF (VGGSound and ActivityNet 256).")
    r_enc: float = Field(0.5, ge=0, lt=1, description="Dropout of the encoders and the cross-attention layer; per dataset, default = UCF (VGGSound .3, ActivityNet .2).")
    r_proj: float = Field(0.4, ge=0, lt=1, description="Dropout of the projectors A_proj, V_proj, W_proj; per dataset, default = UCF (VGGSound .1, ActivityNet .3).")
    r_dec: float = Field(0.4, ge=0, lt=1, description="Dropout of the decoder D and the reconstructors A_rec, V_rec; per dataset, default = UCF (VGGSound .2, ActivityNet .2).")
    bn_momentum: float = Field(0.1, gt=0, le=1,
        description="BatchNorm momentum in PyTorch's convention (running = (1 - m) * running + m * batch) of the last "
        "BatchNorm of each two-layer stack (encoders, projectors), as the reference's EmbeddingNet; the hidden "
        "BatchNorm and those of D, A_rec, V_rec keep 0.1. Per dataset, default = UCF and VGGSound 0.1; the "
        "reference passes 0.99 for ActivityNet as-is in this convention (running stats ≈ the last batches').")
    weight_decay: float = Field(1e-5, ge=0, description="Adam weight decay (L2 added to the gradient).")
    epochs: int = bounded("epochs", 50, "Training epochs.")
    batches_per_epoch: int = bounded("steps", 500, "Class-balanced batches per epoch.")
    margin: float = Field(1.0, gt=0, description="Triplet margin μ (paper: 1).")
    embed_dim: int = bounded("width", 300, "Encoder output / cross-attention width E (paper: 300, the word2vec size).")
    enc_hidden: int = bounded("width", 512, "Hidden width of the encoders A_enc, V_enc (paper: 512).")
    proj_hidden: int = bounded("width", 512, "Hidden width of the projectors (paper: 512).")
    joint_dim: int = bounded("width", 64, "Dimension of the joint embedding space (paper: 64).")
    heads: int = bounded("width", 3, "Attention heads of the cross-attention layer; must divide embed_dim (paper: 3 x 100).")
    ff_dim: int = bounded("width", 64, "Feed-forward hidden width of the cross-attention layer (paper: 64).")
    negative_terms: list[NegativeTerm] = Field(["trip", "rec", "reg"],
        description="Which negative-anchor terms L⁻ are added to L⁺: all three = the paper's L⁺ + L⁻; [] = L⁺ only "
        "(AVCA-style); single terms reproduce the supplement's Table 1 ablation.")
    decoder_triplets: bool = Field(True,
        description="Add the reference's l_ct = T(ρw, ρv, ρv⁻) + T(ρw, ρa, ρa⁻) on the decoder outputs to the triplet "
        "term of L⁺ (and of L⁻ when 'trip' is in negative_terms): the code that produced the paper's tables "
        "has them (src/model_clsu_embedding.py loss_function_w_a); False = eq. 6 of the paper's text only.")
    compat_frozen_position: bool = Field(False,
        description="Compat switch (reference defect 4, docs/defects.md): True reproduces the reference defect of never optimizing the learned "
        "position embeddings (they keep their N(0, 1) init); False (default, correct) trains them.")
    precision: AutoPrecision = Field("fp32", description=AUTO_PRECISION_HELP)

    @field_validator("negative_terms")
    @classmethod
    def _unique_terms(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"negative_terms lists a term twice: {v}; list each of trip, rec, reg at most once")
        return v

    _heads_divide = model_validator(mode="after")(heads_divide)


class CrossAttentionClassifier(LoopComponent, TorchComponent, UnseenClassifier):
    """AVCA cross-attention embedding model + negative losses (paper §3.4)."""

    Params = CrossAttentionParams

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 4, "batches_per_epoch": 60}
    precision_used: str | None = None  # params.precision resolved at fit ("auto" -> fp32 / bf16)

    def extra_scalars(self) -> dict[str, Any]:
        return {"precision": self.precision_used}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        self.precision_used = scalars.get("precision")  # absent in states saved before "auto" existed

    def make_net(self, audio_dim: int, video_dim: int, text_dim: int) -> nn.Module:  # type: ignore[override]
        p = self.params
        fusion_params = dict(p.fusion_params)
        if p.fusion == "cross_attention":  # Fusion-5 from this classifier's own params (fusion_params win)
            fusion_params = {"embed_dim": p.embed_dim, "enc_hidden": p.enc_hidden, "heads": p.heads, "ff_dim": p.ff_dim,
                             "dropout": p.r_enc, "bn_momentum": p.bn_momentum,
                             "frozen_position": p.compat_frozen_position, **fusion_params}
        fusion = make_fusion(p.fusion, audio_dim, video_dim, fusion_params, self.label)
        if not callable(getattr(fusion, "streams", None)):
            raise ConfigError(f"{self.label}: fusion '{p.fusion}' gives one fused vector, but the embedding "
                              "network needs the audio and visual streams (a fusion with streams()); use "
                              "fusion = 'cross_attention'")
        return AVCANet(text_dim, p, fusion)

    def training(self, train: AVSamples, text: Tensor, ctx: FitContext) -> Training:
        p = self.params
        net, (audio, video, labels, text), epoch = embedding_inputs(self, train, text, ctx)
        precision = resolve(self, ctx)
        opt = adam([q for q in net.parameters() if q.requires_grad], lr=p.lr, weight_decay=p.weight_decay)

        def forward(net: nn.Module, idx: Tensor) -> dict[str, Tensor]:
            """The network's outputs for rows ``idx`` (fp32, for the losses), as one call (one BatchNorm batch)."""
            classes, inverse = torch.unique(labels[idx], return_inverse=True)
            with autocast(audio.device, precision):  # text as a per-class table: W_proj's first Linear once per class
                out = net(audio[idx], video[idx], text[classes], text_rows=inverse)
            return {k: v.float() for k, v in out.items()} if precision == "bf16" else out

        halves = Halves(forward, lambda idx: text[labels[idx]], self._losses)
        return Training(net, opt, _TERMS, p.epochs, epoch, p.batches_per_epoch, halves=halves, precision=precision)

    def _losses(self, s_pos: Mapping[str, Tensor], t_pos: Tensor, s_neg: Mapping[str, Tensor], t_neg: Tensor) -> Tensor:
        """``[L, trip, rec, reg]`` of one step (eq. 6-9): L⁺ plus the terms of L⁻ in ``negative_terms``."""
        p, negative = self.params, set(self.params.negative_terms)
        trip = trip_loss(s_pos, s_neg, p.margin, p.decoder_triplets)
        rec = rec_loss(s_pos, t_pos)
        reg = reg_loss(s_pos)
        if "trip" in negative:
            trip = trip + trip_loss(s_neg, s_pos, p.margin, p.decoder_triplets)
        if "rec" in negative:
            rec = rec + rec_loss(s_neg, t_neg)
        if "reg" in negative:
            reg = reg + reg_loss(s_neg)
        return torch.stack([trip + rec + reg, trip, rec, reg])

    distances = embedding_distances  # (N, K) ‖θv(n) − W_proj(t_{candidates[k]})‖₂ (paper §3.4)
