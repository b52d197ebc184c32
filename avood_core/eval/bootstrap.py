"""Per-run 95 % confidence intervals of S, U, HM, ZSL and the gate's AUROC by a stratified bootstrap.

S, U and ZSL are means of per-class accuracies (paper §4.1; :mod:`avood_core.eval.metrics`), so a
resample redraws the test clips *within each class*: class c keeps its n_c clips, drawn with
replacement. A resample is a matrix of counts w (how often each clip was drawn); every metric is
then a weighted version of the :mod:`~avood_core.eval.metrics` formula, computed for all resamples
at once:

* acc_c(w) = Σ_{i: y_i = c} w_i·[ŷ_i = c] / n_c, and S, U, ZSL their means over the classes;
* HM(w) = 2·S(w)·U(w) / (S(w) + U(w)) per resample (its interval is that of these values, not a
  combination of the intervals of S and U);
* AUROC(w) = Σ_{i seen, j unseen} w_i·w_j·([s_i > s_j] + ½·[s_i = s_j]) / (W_seen·W_unseen) for the
  seen-score s = -score, from one sort of the scores and cumulative sums over tie groups.

With w = 1 everywhere these are the metrics of the run. The interval is the percentile interval of
``RESAMPLES`` resamples (Efron & Tibshirani 1993, ch. 13), seeded by the run's seed. The paired
version (:func:`avood_core.eval.compare`) applies the same counts to two runs' predictions.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
CHUNK = 200  # resamples per block: bounds memory at CHUNK x clips float64 matrices
KEYS = ("S", "U", "HM", "ZSL", "AUROC")
METHOD = "stratified percentile bootstrap (test clips resampled within each class)"


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


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
        """Blocks of at most :data:`CHUNK` rows of counts (rows: resamples; columns: clips in class order)."""
        for start in range(0, resamples, CHUNK):
            b = min(CHUNK, resamples - start)
            block = np.empty((b, len(self.labels)))
            for s, n in zip(self.starts, self.sizes):
                draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
                block[:, s:s + n] = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
            yield block

    def ones(self) -> np.ndarray:
        """The one "resample" that is the test split itself."""
        return np.ones((1, len(self.labels)))

    def prepare(self, outputs: dict) -> dict:
        """The per-clip arrays of ``outputs`` (``Pipeline.outputs`` / predictions.npz) in class order."""
        if not np.array_equal(_np(outputs["labels"]).astype(np.int64)[self.order], self.labels):
            raise ValueError("outputs of another test split")
        take = lambda k: _np(outputs[k])[self.order]  # noqa: E731
        seen_score = -take("score").astype(np.float64)
        by_score = np.argsort(seen_score, kind="stable")
        ties = np.r_[0, np.nonzero(np.diff(seen_score[by_score]))[0] + 1]
        return {"hit": take("pred") == self.labels, "zsl_hit": take("unseen_pred") == self.labels,
                "by_score": by_score, "ties": ties, "pos": self.is_seen[by_score]}

    def _class_mean(self, weights: np.ndarray, hit: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if not cols.any():
            return np.full(len(weights), np.nan)
        acc = np.add.reduceat(weights * hit, self.starts, axis=1) / self.sizes
        return 100.0 * acc[:, cols].mean(axis=1)

    def metrics(self, prepared: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
        """S, U, HM, ZSL and AUROC (percent) for every row of ``weights``."""
        s = self._class_mean(weights, prepared["hit"], self.seen_cols)
        u = self._class_mean(weights, prepared["hit"], self.unseen_cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            hm = np.where(s + u > 0, 2.0 * s * u / (s + u), 0.0)
        hm = np.where(np.isnan(s) | np.isnan(u), np.nan, hm)
        return {"S": s, "U": u, "HM": hm, "ZSL": self._class_mean(weights, prepared["zsl_hit"], self.unseen_cols),
                "AUROC": _weighted_auroc(weights[:, prepared["by_score"]], prepared["pos"], prepared["ties"])}


def _weighted_auroc(w: np.ndarray, pos: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """AUROC (percent) per row of weights ``w`` over clips sorted by seen-score (tie groups start at ``ties``)."""
    wp = np.add.reduceat(w * pos, ties, axis=1)
    wn = np.add.reduceat(w * ~pos, ties, axis=1)
    below = np.cumsum(wn, axis=1) - wn  # unseen weight strictly below each tie group
    total = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * (wp * (below + 0.5 * wn)).sum(axis=1) / total, np.nan)


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


def format_metric(value: float, interval: list[float] | None) -> str:
    """``30.31 [27.9, 32.6]`` (the interval to one decimal), or the value alone without one."""
    return f"{value:.2f}" + (f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else "")
