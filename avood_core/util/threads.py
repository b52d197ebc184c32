"""The one save/restore of torch's intra-op thread count, and the cores this process may use."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the enclosed code at ``n`` intra-op torch threads (None or 0: unchanged), then restore the count."""
    import torch

    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
