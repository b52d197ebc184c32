"""Speed helpers shared by the training loops (docs/performance.md has the measurements): fused
:func:`adam`, bf16 :func:`autocast`, a cheaper CPU :func:`dropout` mask, :func:`resolve_precision`.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterable, Literal

import torch
from torch import Tensor

Precision = Literal["fp32", "bf16"]
AutoPrecision = Literal["fp32", "bf16", "auto"]

PRECISION_HELP = (
    "Training matmul precision: 'fp32', or 'bf16' = torch.autocast(bfloat16) around the training forward "
    "passes (master weights, Adam state, BatchNorm statistics, losses and all inference stay fp32). "
    "bf16 pays on CPUs with AVX512-BF16/AMX and on GPUs; see docs/performance.md."
)
AUTO_PRECISION_HELP = PRECISION_HELP + (
    " 'auto' = bf16 where the device computes bf16 natively (CPU flags avx512_bf16 or amx_bf16; CUDA with "
    "torch.cuda.is_bf16_supported()), fp32 elsewhere; resolved once at fit time and saved with the component "
    "('precision' in its state). Not the default: the full-epoch rule of docs/performance.md ('bf16 autocast': "
    "the 95 % interval of the paired HM difference to fp32 over 5 seeds above -1 point) did not pass; the "
    "interval spans 0, too wide to call bf16 better or worse."
)

# /proc/cpuinfo flag names of the ISA levels that matter for the matmuls (Linux spelling).
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str] | None:
    """The CPU's ISA flags among :data:`ISA_FLAGS`: ``/proc/cpuinfo`` on Linux, else torch's cpuinfo probes;
    ``None`` when neither answers (then nothing is assumed about the CPU)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                found = set(line.split(":", 1)[1].split())
                return {f for f in ISA_FLAGS if f in found}
    # macOS, Windows: torch's own CPU probes (private helpers of torch >= 2.3; absent = unknown)
    probes = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
              "avx512_bf16": "_is_avx512_bf16_supported", "avx512_vnni": "_is_avx512_vnni_supported",
              "amx_tile": "_is_amx_tile_supported", "amx_bf16": "_is_amx_tile_supported"}
    found = {flag: getattr(getattr(torch._C, "_cpu", None), name, None) for flag, name in probes.items()}
    flags = set()
    for flag, fn in found.items():
        with contextlib.suppress(RuntimeError):
            if fn is not None and fn():
                flags.add(flag)
    return flags if any(fn is not None for fn in found.values()) else None


def torch_cpu_capability() -> str | None:
    """``torch.backends.cpu.get_cpu_capability()`` (e.g. ``AVX512``, ``AVX2``), or ``None`` where torch lacks it."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


def native_bf16(device: torch.device | str, flags: set[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (CPU: AVX512-BF16 or AMX-BF16; CUDA: ``is_bf16_supported``)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    flags = cpu_flags() if flags is None else flags
    return bool(flags) and any(f in flags for f in NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device | str, flags: set[str] | None = None) -> Precision:
    """The precision a fit uses: ``"fp32"`` / ``"bf16"`` as given, ``"auto"`` per :func:`native_bf16`."""
    if precision == "auto":
        return "bf16" if native_bf16(device, flags) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision '{precision}': use fp32, bf16 or auto")
    return precision  # type: ignore[return-value]


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


def shared_casts(device: torch.device | str, precision: str):
    """A context around one training step of several bf16 forward calls (a two-half step) in which every forward
    reuses the bf16 copies of the weights the first one cast: torch.autocast keeps its cast cache while any
    autocast context is open and clears it when the outermost one exits, so an outer context with autocast
    disabled keeps the cache for the step and changes nothing else (backward and losses stay outside autocast).
    The copies are the same bits as fresh casts (the weights change only at the optimizer step, after the
    step), and the gradients reach the fp32 weights through the shared cast as before: each backward call
    converts its own bf16 gradient and accumulates it. A null context for fp32."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, enabled=False)
    return contextlib.nullcontext()


_WORDS = 4  # 16-bit draws per int64 random word
_drawn = 0  # int64 words the dropout draws (_lanes) have taken in this process (see words_drawn)


def words_drawn() -> int:
    """How many int64 random words the dropout draws (:func:`keep_scale`, :func:`keep_mask`) have taken from the
    CPU generator so far (a split step, avood_core.train.strategy, counts a forward's draws so the other process
    can :func:`skip_words` as many)."""
    return _drawn


def skip_words(n: int) -> None:
    """Advance the CPU generator past ``n`` of the dropout draws' words (bit-exact: the draws are serial)."""
    if n > 0:
        torch.empty(n, dtype=torch.int64).random_(-(2**63), None)


def _lanes(shape: torch.Size | tuple[int, ...], device: torch.device | str) -> Tensor:
    """``shape`` uniform int16 lanes on [-32768, 32767], four per int64 word drawn (counted in :func:`words_drawn`)."""
    n = math.prod(int(s) for s in shape)
    global _drawn
    words = torch.empty((n + _WORDS - 1) // _WORDS, dtype=torch.int64, device=device)
    if words.device.type == "cpu":
        _drawn += words.numel()
    words.random_(-(2**63), None)
    return words.view(torch.int16)[:n].view(shape)


def _threshold(p: float) -> int:
    """The lane value from which a lane is kept: ``P(lane >= threshold) = 1 - p``, p quantised to 1/65536."""
    return int(round(p * 65536)) - 32768  # lanes are uniform on [-32768, 32767]


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> Tensor:
    """A boolean mask with ``P(True) = 1 - p`` (p quantised to 1/65536) from four 16-bit lanes per int64
    word: a quarter of ``torch.rand``'s draws (about 3x faster). Words span the full signed range (the top
    lane of a non-negative int64 has only 15 random bits)."""
    return _lanes(shape, device) >= _threshold(p)


def keep_scale(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype,
               device: torch.device | str = "cpu") -> Tensor:
    """Inverted dropout's multiplier: ``keep_mask(shape, p).to(dtype) * (1 / (1 - p))``, the same bits from the
    same draws. The 0/1 keep values come from an int16 clamp (``clamp(lane, t - 1, t) - (t - 1)``) instead of
    the boolean compare, whose CPU kernels (compare into bool, bool to float) are not vectorised (docs/performance.md)."""
    t = _threshold(p)
    lanes = _lanes(shape, device)
    if -32768 < t <= 32767:  # t - 1 and t are int16 values
        keep = lanes.clamp(t - 1, t).sub_(t - 1)
    else:  # nothing dropped (t = -32768) or everything (t = 32768)
        keep = lanes >= t
    return keep.to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout; on CPU the multiplier comes from :func:`keep_scale` (elsewhere ``F.dropout``)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():  # compiled graphs fuse their own RNG
        return torch.nn.functional.dropout(x, p, True)
    # One float multiplier (0 or 1/(1-p)): multiplying by a bool mask and then by the scale
    # was 5x slower forward + backward in fp32 (dtype promotion of the bool operand).
    return x * keep_scale(x.shape, p, x.dtype, x.device)


class Dropout(torch.nn.Dropout):
    """``nn.Dropout`` computed by :func:`dropout` (same module name and state, cheaper CPU mask)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
