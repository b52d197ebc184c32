"""Across-seed statistics: mean, std and the Student t interval of the mean; paired sign-flip tests.

One seed of an AV-GZSL run moves HM by several points (the paper reports one seed, §4), so every
table that aggregates seeds (``avood run --seeds``, ``avood ablate NAME --seeds``, ``avood sweep``)
shows the mean, the sample standard deviation (ddof = 1) and the 95 % interval of the mean,

    mean ± t_{(1+level)/2, n-1} · std / √n,

with the number of seeds n; one seed has no std and no interval. The Student t quantile is
computed here (regularized incomplete beta by its continued fraction, then bisection), so
numpy is the only dependency; tests check it against ``scipy.stats.t``.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable

import numpy as np

LEVEL = 0.95
T_METHOD = "Student t interval of the mean over seeds"


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), for x < (a + 1) / (a + b + 2)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return f


def beta_inc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * beta_inc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p``-quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def mean_interval(values: Iterable[float], level: float = LEVEL) -> dict:
    """``{"n", "mean", "std", "ci"}`` of ``values`` (one per seed): std with ddof = 1 and the Student t
    interval of the mean ``[lo, hi]``; ``std`` and ``ci`` are None for one value. Values that are all
    equal give std 0 and ``ci == [mean, mean]`` exactly."""
    a = np.asarray(list(values), dtype=np.float64)
    n = len(a)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(a.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci": None}
    std = 0.0 if np.all(a == a[0]) else float(a.std(ddof=1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
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
    """Two-sided p-value of the paired sign-flip permutation test of mean(diffs) = 0.

    Under the null each paired difference is as likely negative as positive; p is the share of
    sign patterns whose |mean| is at least the observed one: all 2^n patterns for n ≤ ``max_exact``
    (so the smallest p at n seeds is 2 / 2^n), else ``draws`` random ones (seeded, +1 corrected).
    All-zero differences give p = 1.
    """
    d = np.asarray(list(diffs), dtype=np.float64)
    observed = abs(d.sum())
    if len(d) <= max_exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= observed * (1 - 1e-12)))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(draws, len(d)))
    return float((np.sum(np.abs(signs @ d) >= observed * (1 - 1e-12)) + 1) / (draws + 1))
