"""Unseen classifier CJME (Parida et al., "Coordinated Joint Multimodal Embeddings for Generalized Audio-Visual
Zero-shot Classification and Retrieval of Videos", WACV 2020; paper Table 1 baseline), as AVCA-GZSL benchmarks it
(``src/model.py`` ``CJME``, ``src/loss.py`` ``CJMELoss``): ``L = L_ct + L_av + L_att`` with a learned modality
attention ``w(a, v)``; the nearer modality's distance by ``w`` at prediction (docs/plugins.md)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from avood_plugins._mlp import entropy_from_logits
from avood_plugins.unseen._joint_embedding import JointEmbeddingClassifier, JointEmbeddingNet, JointEmbeddingParams


class CJMENet(JointEmbeddingNet):
    """``F_A``, ``F_V``, ``F_T`` (ReLU outputs) and the modality attention ``w``."""

    def __init__(self, audio_dim: int, video_dim: int, text_dim: int, p: "CJMEClassifier.Params") -> None:
        super().__init__(audio_dim, video_dim, text_dim, p, p.dropout, out_relu=True)
        self.attention = nn.Sequential(nn.BatchNorm1d(audio_dim + video_dim), nn.Linear(audio_dim + video_dim, 1),
                                       nn.Sigmoid())

    def weight(self, audio: Tensor, video: Tensor) -> Tensor:
        """(N,) attention weight of video, in (0, 1)."""
        return self.attention(torch.cat([audio, video], dim=1)).squeeze(1)

    def clip_distances(self, audio: Tensor, video: Tensor, theta_t: Tensor) -> Tensor:
        use_video = (self.weight(audio, video) >= 0.5).unsqueeze(1)
        return torch.where(use_video, torch.cdist(self.F_V(video), theta_t), torch.cdist(self.F_A(audio), theta_t))


def attention_targets(h_audio: Tensor, h_video: Tensor, eps: float) -> Tensor:
    """CJME's attention supervision: 1 (video) where audio is less certain by > ε, 0 (audio) where video is, else 0.5."""
    s = torch.full_like(h_audio, 0.5)
    s[h_audio - h_video > eps] = 1.0
    s[h_video - h_audio > eps] = 0.0
    return s


class CJMEClassifier(JointEmbeddingClassifier):
    """CJME (Parida et al., WACV 2020) as AVCA-GZSL trains and evaluates it."""

    Net: ClassVar[type[JointEmbeddingNet]] = CJMENet
    terms: ClassVar[tuple[str, ...]] = ("loss", "trip", "av", "attention")

    class Params(JointEmbeddingParams):
        dropout: float = Field(0.2, ge=0, lt=1, description="Dropout of F_A, F_V, F_T; per dataset, default = UCF and ActivityNet (VGGSound 0.0; AVCA-GZSL run_scripts/*/cjme.sh --dropout_baselines).")
        entropy_margin: float = Field(0.1, ge=0, description="ε of the attention supervision: entropies closer than ε give target 0.5 (AVCA-GZSL src/loss.py CJMELoss).")
        compat_batch_mean_weights: bool = Field(False,
            description="Compat switch: True reproduces AVCA-GZSL's broadcast in the composite triplet loss "
            "(mean(1 - w) * mean(T_a) + mean(w) * mean(T_v)); False (default) weighs each sample's triplets by its own w.")

    def batch_terms(self, net: nn.Module, pos: tuple[Tensor, Tensor, Tensor], neg: tuple[Tensor, Tensor, Tensor],
                    class_text: Tensor) -> Tensor:
        p = self.params
        a_p, v_p, t_p = net.F_A(pos[0]), net.F_V(pos[1]), net.F_T(pos[2])
        a_q, v_q = net.F_A(neg[0]), net.F_V(neg[1])
        w = net.weight(pos[0], pos[1])
        with torch.no_grad():  # AVCA-GZSL: the training classes' text embeddings, in train mode, detached
            classes = net.F_T(class_text)
            # the entropy (nats) of each modality's posterior softmax(emb · class_embᵀ)
            target = attention_targets(entropy_from_logits(a_p.detach() @ classes.T),
                                       entropy_from_logits(v_p.detach() @ classes.T), p.entropy_margin)
        l_ta = F.triplet_margin_loss(t_p, a_p, a_q, margin=p.margin, reduction="none")
        l_tv = F.triplet_margin_loss(t_p, v_p, v_q, margin=p.margin, reduction="none")
        if p.compat_batch_mean_weights:
            trip = (1 - w).mean() * l_ta.mean() + w.mean() * l_tv.mean()
        else:
            trip = ((1 - w) * l_ta + w * l_tv).mean()
        av = F.mse_loss(a_p, v_p)
        att = F.mse_loss(w, target)
        return torch.stack([trip + av + att, trip, av, att])
