"""Unseen classifier: CJME, Coordinated Joint Multimodal Embeddings (paper Table 1 baseline).

Parida, Matiyali, Guha, Sharma, "Coordinated Joint Multimodal Embeddings for Generalized
Audio-Visual Zero-shot Classification and Retrieval of Videos", WACV 2020; built as AVCA-GZSL
benchmarks it (``src/model.py`` ``CJME``/``EmbeddingNetCJME``, ``src/loss.py`` ``CJMELoss``/
``CompositeCJMETripletLoss``, ``src/utils.py`` ``get_best_evaluation``), whose numbers the
paper's Table 1 reports.

Network (:mod:`avood_plugins.unseen._joint_embedding`): ``F_A``, ``F_V``, ``F_T`` into a 64-d
space, each ending in a ReLU, dropout ``dropout`` (AVCA's ``--dropout_baselines``); and a
modality attention ``w(a, v) = σ(Linear(BN(a ⊕ v)))`` ∈ (0, 1), the weight of video.

Loss of a batch of positives p (class y) and negatives q (another class), with
``T(x, y, z) = max(‖x − y‖₂ − ‖x − z‖₂ + μ, 0)`` per sample::

    L_ct  = mean_i [ (1 − w_i) T(t_p, a_p, a_q)_i + w_i T(t_p, v_p, v_q)_i ]
    L_av  = MSE(a_p, v_p)                                     (coordinate the two modalities)
    L_att = MSE(w, s),  s_i = 1 if H_a,i − H_v,i > ε, 0 if H_v,i − H_a,i > ε, else 0.5
    L     = L_ct + L_av + L_att

where ``a_p = F_A(audio_p)``, ``t_p = F_T(text_y)`` etc., and ``H_m`` is the entropy of
``softmax(m_p · F_T(T_train)ᵀ)`` over the training classes (embeddings detached): the
attention learns to pick the modality whose class posterior is more certain (ε =
``entropy_margin``, 0.1). AVCA-GZSL multiplies the (B, 1) weights with the (B,) triplet losses,
which broadcasts to (B, B), so its ``L_ct`` is ``mean(1 − w)·mean(T_a) + mean(w)·mean(T_v)``;
``compat_batch_mean_weights`` reproduces that, the default weighs each sample by its own w.

Prediction: ``d(x, c) = ‖a − F_T(t_c)‖₂`` if ``w(a, v) < 0.5`` else ``‖v − F_T(t_c)‖₂`` (the
thresholded attention of AVCA-GZSL's evaluation), nearest candidate.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

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


def posterior_entropy(emb: Tensor, class_emb: Tensor) -> Tensor:
    """Entropy (nats) of ``softmax(emb · class_embᵀ)`` per row."""
    logp = torch.log_softmax(emb @ class_emb.T, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


class CJMEClassifier(JointEmbeddingClassifier):
    """CJME (Parida et al., WACV 2020) as AVCA-GZSL trains and evaluates it."""

    Net: ClassVar[type[JointEmbeddingNet]] = CJMENet
    terms: ClassVar[tuple[str, ...]] = ("loss", "trip", "av", "attention")

    class Params(JointEmbeddingParams):
        dropout: float = Field(0.2, ge=0, lt=1, description="Dropout of F_A, F_V, F_T; per dataset, default = UCF and ActivityNet (VGGSound 0.0; AVCA-GZSL run_scripts/*/cjme.sh --dropout_baselines).")
        entropy_margin: float = Field(0.1, ge=0, description="ε of the attention supervision: entropies closer than ε give target 0.5 (AVCA-GZSL src/loss.py CJMELoss).")
        compat_batch_mean_weights: bool = Field(
            False,
            description="Compat switch: True reproduces AVCA-GZSL's broadcast in the composite triplet loss "
            "(mean(1 - w) * mean(T_a) + mean(w) * mean(T_v)); False (default) weighs each sample's triplets by its own w.",
        )

    def batch_terms(self, net: nn.Module, pos: tuple[Tensor, Tensor, Tensor], neg: tuple[Tensor, Tensor, Tensor],
                    class_text: Tensor) -> Tensor:
        p = self.params
        a_p, v_p, t_p = net.F_A(pos[0]), net.F_V(pos[1]), net.F_T(pos[2])
        a_q, v_q = net.F_A(neg[0]), net.F_V(neg[1])
        w = net.weight(pos[0], pos[1])
        with torch.no_grad():  # AVCA-GZSL: the training classes' text embeddings, in train mode, detached
            classes = net.F_T(class_text)
            target = attention_targets(posterior_entropy(a_p.detach(), classes),
                                       posterior_entropy(v_p.detach(), classes), p.entropy_margin)
        l_ta = F.triplet_margin_loss(t_p, a_p, a_q, margin=p.margin, reduction="none")
        l_tv = F.triplet_margin_loss(t_p, v_p, v_q, margin=p.margin, reduction="none")
        if p.compat_batch_mean_weights:
            trip = (1 - w).mean() * l_ta.mean() + w.mean() * l_tv.mean()
        else:
            trip = ((1 - w) * l_ta + w * l_tv).mean()
        av = F.mse_loss(a_p, v_p)
        att = F.mse_loss(w, target)
        return torch.stack([trip + av + att, trip, av, att])
