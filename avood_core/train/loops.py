"""Shared training utilities: seeding, devices, threads, vectorised batch sampling."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random

import numpy as np
import torch
from torch import Tensor

from avood_core.errors import AvoodError
from avood_core.util.threads import torch_threads, usable_cores


def derive_seed(seed: int, *names: str) -> int:
    """A stable sub-seed for one component, independent of the order components are fitted."""
    digest = hashlib.sha256(":".join([str(seed), *names]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` (fails clearly without one) or ``auto`` (cuda when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AvoodError(f"device '{device}' requested but no CUDA device is available; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise AvoodError(f"invalid device '{device}': {exc}; use cpu, cuda or auto") from None


@contextlib.contextmanager
def run_threads():
    """:func:`set_threads` for the duration of a run; the previous torch thread count afterwards."""
    with torch_threads(None):
        set_threads()
        yield


INFERENCE_THREADS = 1
"""Torch threads of every pipeline inference (``with inference_threads():``, the count restored after): a float32
matmul's last bits can depend on the thread count, so a run's evaluation, ``avood evaluate`` and
``Pipeline.load(...)`` give the same scores whatever the caller's threads (docs/performance.md, "Reproducibility")."""
inference_threads = functools.partial(torch_threads, INFERENCE_THREADS)


def set_threads() -> None:
    """Use every core the process may run on (no oversubscription), unless the user set it."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    torch.set_num_threads(max(1, usable_cores()))


class ClassBalancedSampler:
    """Draws index batches with classes uniform, then samples uniform within the class (vectorised:
    samples are grouped by class once; a batch is two random draws)."""

    def __init__(self, labels: Tensor) -> None:
        labels = labels.cpu()
        self.order = torch.argsort(labels, stable=True)
        self.classes, self.counts = torch.unique_consecutive(labels[self.order], return_counts=True)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts

    def sample(self, batch_size: int) -> Tensor:
        k = torch.randint(len(self.classes), (batch_size,))
        within = (torch.rand(batch_size) * self.counts[k]).long()
        return self.order[self.offsets[k] + within]


def shuffled_batches(n: int, batch_size: int, drop_last: bool = False) -> list[Tensor]:
    """One epoch of random index batches covering ``range(n)``."""
    perm = torch.randperm(n)
    batches = list(perm.split(batch_size))
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def other_class_samples(labels: Tensor, sampler: ClassBalancedSampler) -> Tensor:
    """For each label, the index of a random sample of a different class (vectorised)."""
    n_cls = len(sampler.classes)
    if n_cls < 2:
        raise AvoodError("negative sampling needs at least two classes in the training split")
    pos = torch.searchsorted(sampler.classes, labels.cpu())
    shift = torch.randint(1, n_cls, (len(labels),))
    k = (pos + shift) % n_cls
    within = (torch.rand(len(labels)) * sampler.counts[k]).long()
    return sampler.order[sampler.offsets[k] + within]

