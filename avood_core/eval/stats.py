"""Across-seed statistics: mean, std (ddof = 1), Student t interval of the mean; paired sign-flip tests
(docs/statistics.md).
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable

import numpy as np

LEVEL = 0.95
T_METHOD = "Student t interval of the mean over seeds"


def mean_interval(values: Iterable[float], level: float = LEVEL) -> dict:
    """``{"n", "mean", "std", "ci"}`` of ``values`` (one per seed); ``std`` and ``ci`` are None for one
    value, and equal values give std 0 and ``ci == [mean, mean]`` exactly."""
    from scipy.stats import t

    a = np.asarray(list(values), dtype=np.float64)
    n = len(a)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(a.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci": None}
    std = 0.0 if np.all(a == a[0]) else float(a.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2.0, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half]}


def format_interval(stats: dict, fmt: str = ".2f", ci_fmt: str = ".1f") -> str:
    """``26.16 ± 1.16 [23.3, 29.0] (n = 3)``; one seed: ``26.53 (n = 1)``, never ``± 0.00``."""
    mean = format(stats["mean"], fmt)
    if stats.get("n", 1) < 2 or stats.get("std") is None:
        return f"{mean} (n = {stats.get('n', 1)})"
    ci = f" [{format(stats['ci'][0], ci_fmt)}, {format(stats['ci'][1], ci_fmt)}]" if stats.get("ci") else ""
    return f"{mean} ± {format(stats['std'], fmt)}{ci} (n = {stats['n']})"


EXACT_FLIPS = 16  # up to this many pairs the sign-flip test enumerates all 2^n patterns
FLIP_DRAWS = 100_000  # random sign patterns beyond that


def sign_flip_p(diffs: Iterable[float], max_exact: int = EXACT_FLIPS, draws: int = FLIP_DRAWS, seed: int = 0) -> float:
    """Two-sided paired sign-flip p of mean(diffs) = 0: all 2^n patterns up to ``max_exact``, else seeded draws."""
    d = np.asarray(list(diffs), dtype=np.float64)
    observed = abs(d.sum())
    if len(d) <= max_exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= observed * (1 - 1e-12)))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(draws, len(d)))
    return float((np.sum(np.abs(signs @ d) >= observed * (1 - 1e-12)) + 1) / (draws + 1))
