"""The AVCA cross-attention embedding network (paper §3.4, Fig. 2 right; AVCA, Mercea et al. 2022): the
fusion's encoders and cross-attention, projectors A_proj, V_proj, W_proj into the joint space, decoder D to the
text space and reconstructors A_rec, V_rec, each block ``Linear -> BatchNorm1d -> ReLU -> Dropout``
(shapes: docs/plugins.md)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avood_core.train.precision import Dropout  # noqa: F401  (nn.Dropout with a cheaper CPU mask; re-exported)
from avood_plugins._init import reference_init


def heads_divide(params: Any) -> Any:
    """The params' check that ``heads`` divides ``embed_dim`` (a pydantic after-validator)."""
    if params.embed_dim % params.heads:
        raise ValueError(f"embed_dim {params.embed_dim} is not divisible by heads {params.heads}; pick heads dividing it")
    return params


def mlp(dims: list[int], dropout: float, bn_momentum: float) -> nn.Sequential:
    """``[Linear -> BN -> ReLU -> Dropout]`` per consecutive pair of ``dims``, reference-initialised; as AVCA's
    ``EmbeddingNet``, ``bn_momentum`` goes to the last BatchNorm of a stack with a hidden layer only (else 0.1)."""
    layers: list[nn.Module] = []
    pairs = list(zip(dims[:-1], dims[1:]))
    for i, (d_in, d_out) in enumerate(pairs):
        momentum = bn_momentum if len(pairs) > 1 and i == len(pairs) - 1 else 0.1
        layers += [nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out, momentum=momentum), nn.ReLU(), Dropout(dropout)]
    return reference_init(nn.Sequential(*layers))


class CrossAttentionLayer(nn.Module):
    """One pre-LayerNorm transformer layer over a short token sequence (B, S, E)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm_attn = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), Dropout(dropout), nn.Linear(ff_dim, dim))
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, s, e = x.shape
        qkv = _wide(self.qkv(self.norm_attn(x)))  # one contiguous cast under bf16 autocast
        q, k, v = qkv.view(b, s, 3, self.heads, e // self.heads).unbind(2)
        x = x + self.drop(self.out(attention(q, k, v).reshape(b, s, e)))
        return x + self.drop(self.ff(self.norm_ff(x)))


_SHORT = 8  # sequences up to this length use the elementwise attention


def _wide(x: Tensor) -> Tensor:
    """``x`` in fp32 if it is a 16-bit float (autocast output), else unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``softmax(q kᵀ / √d) v`` per head for (B, S, H, d) tensors, returned as (B, S, H, d): for up to
    :data:`_SHORT` tokens an elementwise product-sum in fp32 (cheaper on CPU than ``scaled_dot_product_attention``,
    no bf16 round trip of the scores; docs/performance.md), else ``scaled_dot_product_attention``."""
    s, d = q.shape[1], q.shape[-1]
    if s > _SHORT:
        out = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    q, k, v = _wide(q), _wide(k), _wide(v)
    scores = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1) * (d**-0.5)  # (B, S_q, S_k, H)
    weights = scores.softmax(dim=2)
    return (weights.unsqueeze(-1) * v.unsqueeze(1)).sum(2)  # (B, S_q, H, d)


class AVCANet(nn.Module):
    """Encoders, cross-attention, projectors, decoder and reconstructors (see module docstring)."""

    def __init__(self, text_dim: int, p: Any, fusion: nn.Module) -> None:
        """``p``: the classifier's params (``proj_hidden``, ``joint_dim``, ``r_proj``, ``r_dec``, ``bn_momentum``).
        ``fusion``: a two-stream fusion plugin (``streams(a, v) -> (φa, φv, φa', φv')``, width E = ``fusion.dim // 2``;
        the paper's Fusion-5), whose parameters are registered here under their own names (A_enc, V_enc, cross,
        pos), so the saved weights and the parameter creation order are those of one network."""
        super().__init__()
        object.__setattr__(self, "fusion", fusion)  # not a child: its modules are registered below by name
        for name, child in fusion.named_children():
            self.add_module(name, child)
        for name, param in fusion.named_parameters(recurse=False):
            self.register_parameter(name, param)
        e, j, m = fusion.dim // 2, p.joint_dim, p.bn_momentum
        self.A_proj = mlp([e, p.proj_hidden, j], p.r_proj, m)
        self.V_proj = mlp([e, p.proj_hidden, j], p.r_proj, m)
        self.W_proj = mlp([text_dim, p.proj_hidden, j], p.r_proj, m)
        self.D = mlp([j, text_dim], p.r_dec, m)
        self.A_rec = mlp([j, e], p.r_dec, m)
        self.V_rec = mlp([j, e], p.r_dec, m)

    def embed_text(self, text: Tensor) -> Tensor:
        """θt = W_proj(t), (C, J)."""
        return self.W_proj(text)

    def clip_distances(self, audio: Tensor, video: Tensor, theta_t: Tensor) -> Tensor:
        """(B, C) ``‖θv − θt‖₂`` with θv = V_proj(φv + attn_v), the visual embedding (paper §3.4; reference
        ``classifier_oodgzsl.py`` ``val_gzsl``)."""
        return torch.cdist(self.V_proj(self.fusion.streams(audio, video)[3]), theta_t)

    def forward(self, audio: Tensor, video: Tensor, text: Tensor, text_rows: Tensor | None = None) -> dict[str, Tensor]:
        """All tensors the losses need: encoder outputs, projections, reconstructions, decodings. ``text``: (B, T),
        or with ``text_rows`` (B,) a (C, T) table whose row ``text_rows[i]`` is sample i's: W_proj's first Linear
        runs once per class (docs/performance.md), BatchNorm and dropout still see all B rows."""
        phi_a, phi_v, fa, fv = self.fusion.streams(audio, video)  # (φa, φv, φa + attn_a, φv + attn_v)
        theta_a, theta_v = self.A_proj(fa), self.V_proj(fv)
        if text_rows is None:
            theta_t = self.W_proj(text)
        else:
            # index_select, not ``[text_rows]``: the backward of advanced indexing (aten::_index_put_impl_
            # with accumulate) adds the rows of each class with racing threads on CPU, so two same-seed
            # runs at 2 threads differed in the last bits; index_select's backward
            # (index_add_) adds them in a fixed order.
            theta_t = self.W_proj[1:](self.W_proj[0](text).index_select(0, text_rows))
        # D runs once per modality (separate BatchNorm statistics per modality, as in AVCA).
        return {
            "phi_a": phi_a, "phi_v": phi_v,
            "a": theta_a, "v": theta_v, "t": theta_t,
            "rec_a": self.A_rec(theta_a), "rec_v": self.V_rec(theta_v),
            "dec_a": self.D(theta_a), "dec_v": self.D(theta_v), "dec_t": self.D(theta_t),
        }
