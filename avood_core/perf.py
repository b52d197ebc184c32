"""Speed helpers shared by the training loops (see docs/performance.md for the measurements).

* :func:`adam`: ``torch.optim.Adam`` with the fused kernel (one pass over each parameter instead
  of about ten elementwise ops per tensor; on CPU this was the largest cost of the small MLPs).
* :func:`autocast`: bf16 autocast of the matmuls for ``precision = "bf16"`` (weights, optimizer
  state, normalisation statistics and losses stay fp32), a no-op for ``"fp32"``.
* :func:`dropout`: inverted dropout whose CPU mask costs a quarter of a ``torch.rand`` draw.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Literal

import torch
from torch import Tensor

Precision = Literal["fp32", "bf16"]

PRECISION_HELP = (
    "Training matmul precision: 'fp32', or 'bf16' = torch.autocast(bfloat16) around the training forward "
    "passes (master weights, Adam state, BatchNorm statistics, losses and all inference stay fp32). "
    "bf16 pays on CPUs with AVX512-BF16/AMX and on GPUs; see docs/performance.md."
)


def adam(params: Iterable[torch.nn.Parameter], **kwargs) -> torch.optim.Adam:
    """``Adam(params, **kwargs)`` with ``fused=True`` when every parameter is a float tensor on one CPU/CUDA device."""
    params = list(params)
    devices = {p.device for p in params}
    fused = (
        len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64) for p in params)
    )
    return torch.optim.Adam(params, fused=True if fused else None, **kwargs)


def autocast(device: torch.device | str, precision: str):
    """A bf16 autocast context on ``device`` for ``precision == "bf16"``, else a null context."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


_WORDS = 4  # 16-bit draws per int64 random word


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> Tensor:
    """A boolean mask with ``P(True) = 1 - p`` (p quantised to 1/65536), from 16-bit random draws.

    ``torch.rand`` on CPU draws one 32-bit Mersenne-twister word per element; slicing int64
    words into four 16-bit lanes needs a quarter of the draws (about 3x faster, measured).
    The top lane of ``random_()``'s non-negative int64 has only 15 random bits, so the
    words are drawn over the full signed range.
    """
    n = 1
    for s in shape:
        n *= int(s)
    words = torch.empty((n + _WORDS - 1) // _WORDS, dtype=torch.int64, device=device)
    words.random_(-(2**63), None)
    lanes = words.view(torch.int16)[:n].view(shape)
    threshold = int(round(p * 65536)) - 32768  # lanes are uniform on [-32768, 32767]
    return lanes >= threshold


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout; on CPU the mask comes from :func:`keep_mask` (elsewhere ``F.dropout``)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():  # compiled graphs fuse their own RNG
        return torch.nn.functional.dropout(x, p, True)
    # One float multiplier (0 or 1/(1-p)): multiplying by a bool mask and then by the scale
    # was 5x slower forward + backward in fp32 (dtype promotion of the bool operand).
    scale = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class Dropout(torch.nn.Dropout):
    """``nn.Dropout`` computed by :func:`dropout` (same module name and state, cheaper CPU mask)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
