"""The reference code's weight initialisation, shared by every plugin network that uses it.

The reference code (liuyuan-wen/AV-OOD-GZSL, ``src/model_addition.py: weights_init``) applies
one rule to the generator G, the critic D, the decoder Dec, the OOD detector, the seen (and
unseen) MLP classifiers and every ``EmbeddingNet`` of the cross-attention model: each
``Linear`` gets weights ~ N(0, 0.02) and bias 0, each ``BatchNorm`` gets γ ~ N(1, 0.02) and
β = 0. The paper's text is silent on initialisation, so this is the default. The transformer
layer and the position embeddings keep PyTorch's defaults, as in the reference.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def reference_init(module: nn.Module) -> nn.Module:
    """Re-initialise every ``Linear`` and ``BatchNorm`` inside ``module`` in place; returns it."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.weight.normal_(0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
    return module
