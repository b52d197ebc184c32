"""Statistics (docs/statistics.md): over seeds, mean, std (ddof = 1), Student t interval and paired sign-flip tests;
per run, stratified percentile-bootstrap intervals of S, U, HM, ZSL and gate AUROC (Efron & Tibshirani 1993,
ch. 13), each resample a column of per-clip counts ``w`` that every metric takes as weights."""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Iterator

import numpy as np

from avood_core.eval.metrics import _np, hm_array

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


RESAMPLES = 1000
CHUNK = 200  # resamples per block: bounds memory at clips x CHUNK float64 matrices
KEYS = ("S", "U", "HM", "ZSL", "AUROC")
METHOD = "stratified percentile bootstrap (test clips resampled within each class)"


def rng_for(seed: int) -> np.random.Generator:
    """The bootstrap's generator for a run seed (any 64-bit integer, negatives included)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed) % 2**64))


class Resampler:
    """The class layout of one test split: clips sorted by class, and the stratified count draws."""

    def __init__(self, labels, seen_classes, unseen_classes) -> None:
        labels = _np(labels).astype(np.int64)
        self.order = np.argsort(labels, kind="stable")
        self.labels = labels[self.order]
        classes, self.starts, self.sizes = np.unique(self.labels, return_index=True, return_counts=True)
        self.seen_cols = np.isin(classes, _np(seen_classes))
        self.unseen_cols = np.isin(classes, _np(unseen_classes))
        self.is_seen = np.isin(self.labels, _np(seen_classes))

    def counts(self, resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Blocks of at most :data:`CHUNK` columns of counts (rows: clips in class order; columns: resamples)."""
        for start in range(0, resamples, CHUNK):
            b = min(CHUNK, resamples - start)
            block = np.empty((len(self.labels), b))
            for s, n in zip(self.starts, self.sizes):
                draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
                block[s:s + n] = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).T
            yield block

    def prepare(self, outputs: dict) -> dict:
        """The per-clip arrays of ``outputs`` (``Pipeline.outputs`` / predictions.npz) in class order."""
        if not np.array_equal(_np(outputs["labels"]).astype(np.int64)[self.order], self.labels):
            raise ValueError("outputs of another test split")
        take = lambda k: _np(outputs[k])[self.order]  # noqa: E731
        seen_score = -take("score").astype(np.float64)
        seen, unseen = np.flatnonzero(self.is_seen), np.flatnonzero(~self.is_seen)
        unseen = unseen[np.argsort(seen_score[unseen], kind="stable")]
        ordered = seen_score[unseen]
        return {"hit": take("pred") == self.labels, "zsl_hit": take("unseen_pred") == self.labels,
                "seen": seen, "unseen": unseen,  # unseen clips by ascending seen-score
                "lo": np.searchsorted(ordered, seen_score[seen], side="left"),  # unseen clips below each seen one
                "hi": np.searchsorted(ordered, seen_score[seen], side="right")}  # ... below or tied

    def _class_accuracy(self, weights: np.ndarray, hit: np.ndarray) -> np.ndarray:
        """acc_c(w) in percent: rows classes, columns resamples."""
        return 100.0 * np.add.reduceat(weights * hit[:, None], self.starts, axis=0) / self.sizes[:, None]

    @staticmethod
    def _mean_over(acc: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return acc[cols].mean(axis=0) if cols.any() else np.full(acc.shape[1], np.nan)

    def metrics(self, prepared: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
        """S, U, HM, ZSL and AUROC (percent) for every column of ``weights``."""
        acc = self._class_accuracy(weights, prepared["hit"])
        s, u = self._mean_over(acc, self.seen_cols), self._mean_over(acc, self.unseen_cols)
        zsl = self._mean_over(self._class_accuracy(weights, prepared["zsl_hit"]), self.unseen_cols)
        return {"S": s, "U": u, "HM": hm_array(s, u), "ZSL": zsl, "AUROC": _weighted_auroc(weights, prepared)}


def _weighted_auroc(weights: np.ndarray, prepared: dict) -> np.ndarray:
    """AUROC (percent) per column of ``weights``: Σ_i w_i·(W_below(i) + ½·W_tied(i)) / (W_seen·W_unseen)
    over the seen clips i, W_below / W_tied the unseen weight below / at s_i (cumulative sums)."""
    below = np.zeros((len(prepared["unseen"]) + 1, weights.shape[1]))
    np.cumsum(weights[prepared["unseen"]], axis=0, out=below[1:])
    seen = weights[prepared["seen"]]
    total = seen.sum(axis=0) * below[-1]
    pairs = np.einsum("ir,ir->r", seen, below[prepared["lo"]] + below[prepared["hi"]]) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * pairs / total, np.nan)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The central ``level`` percentile interval of the finite ``values``; None if there are none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [50.0 * (1 - level), 50.0 * (1 + level)])
    return [float(lo), float(hi)]


def bootstrap_intervals(outputs: dict, seed: int, resamples: int = RESAMPLES, level: float = LEVEL) -> dict:
    """``results["metrics_ci"]``: ``{"S": [lo, hi], "U", "HM", "ZSL", "AUROC", "method", "level",
    "resamples", "seed"}`` for a run's per-sample ``outputs``; same seed, same bits."""
    layout = Resampler(outputs["labels"], outputs["seen_classes"], outputs["unseen_classes"])
    prepared = layout.prepare(outputs)
    blocks = [layout.metrics(prepared, w) for w in layout.counts(resamples, rng_for(seed))]
    values = {k: np.concatenate([b[k] for b in blocks]) for k in KEYS}
    return {**{k: percentile_interval(values[k], level) for k in KEYS},
            "method": METHOD, "level": level, "resamples": resamples, "seed": int(seed)}
