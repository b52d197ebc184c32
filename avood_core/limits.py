"""Upper bounds on every size, count and budget param (the run config's and every plugin's ``Params``),
one to two orders of magnitude above the paper's configs (§4.2, the supplement; liuyuan-wen/AV-OOD-GZSL
``config/*.yaml``), so ``hidden = 1e8`` is one pydantic line instead of an OOM. Plugins use
:func:`bounded` and :data:`Widths`; tests/faults/test_input_faults.py checks every integer param."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import Field


class Limit(NamedTuple):
    low: int | float
    high: int | float
    why: str


LIMITS: dict[str, Limit] = {
    "width": Limit(1, 16_384, "a 16384-wide square layer is 1 GiB of weights + 2 GiB of Adam state"),
    "epochs": Limit(1, 10_000, "the paper trains at most 200 epochs"),
    "patience": Limit(0, 10_000, "epochs are at most 10000"),
    "steps": Limit(1, 100_000, "the paper takes 500 batches per epoch"),
    "batch": Limit(1, 65_536, "the paper's largest batch is 6900 (VGGSound detector)"),
    "iters": Limit(1, 100, "the paper takes 5 critic iterations"),
    "syn_num": Limit(1, 10_000, "the paper's largest is 1000 (ActivityNet); 10000 x 69 classes x 1024 floats is 2.8 GB"),
    "layers": Limit(0, 16, "the paper's MLPs have 2 hidden layers"),
    "grid": Limit(1, 1_000, "AVCA's grid has 16 values"),
}
MAX_FEATURE_DIM = 16_384  # feature widths of a written tree (the download's: 512, 128 and 4096)
MAX_DATA_SCALE = 100.0  # clip counts of the embedded task / a written tree times this (UCF x 100: ~1 GB of features)
MAX_TRIALS = 10_000  # trials of one sweep (axes x seeds): the paper's tables are at most a few hundred runs
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # what torch.manual_seed takes


def note(kind: str) -> str:
    """The sentence a bounded field's description ends with."""
    lim = LIMITS[kind]
    return f"At most {lim.high} ({lim.why})."


def bounded(kind: str, default: Any, description: str, low: int | float | None = None, **extra: Any) -> Any:
    """A pydantic ``Field`` with the bounds of ``LIMITS[kind]`` (``low``: a higher lower bound), stated in its description."""
    lim = LIMITS[kind]
    return Field(default, ge=lim.low if low is None else low, le=lim.high, description=f"{description} {note(kind)}", **extra)


Width = Annotated[int, Field(ge=LIMITS["width"].low, le=LIMITS["width"].high)]
"""One layer width (1..16384)."""

Widths = Annotated[tuple[Width, ...], Field(max_length=LIMITS["layers"].high)]
"""Hidden-layer widths of an MLP: at most 16 layers of at most 16384 units."""


AdamBeta = Annotated[float, Field(ge=0, lt=1)]
"""One of Adam's two betas: a decay rate in [0, 1) (torch.optim.Adam refuses anything else)."""


def widths(default: tuple[int, ...], description: str) -> Any:
    """A :data:`Widths` field, its bounds stated in its description."""
    layers, width = LIMITS["layers"], LIMITS["width"]
    return Field(default, description=f"{description} At most {layers.high} layers ({layers.why}) of at most "
                                      f"{width.high} units ({width.why}).")

