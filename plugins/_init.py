"""The reference code's weight initialisation (``src/model_addition.py: weights_init``; docs/fidelity.md row 7):
``Linear`` weights ~ N(0, 0.02), bias 0; ``BatchNorm`` γ ~ N(1, 0.02), β = 0; the rest keep PyTorch's defaults."""

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
