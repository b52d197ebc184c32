"""AV-GZSL metrics in percent (paper §4.1, as in AVCA-GZSL; docs/architecture.md, "Routing and metrics").

S, U: mean per-class accuracy over seen / unseen classes, HM = 2SU/(S+U). The gate: seen is positive,
the seen-score is ``-score``, a clip is routed seen iff ``score < t``; :func:`threshold_sweep` gives
supplement Fig. 1, HM at TPR = 60 % is Table 2's HM.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def hm_array(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """HM per element: 0 where S + U = 0, NaN where S or U is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        hm = np.where(s + u > 0, 2.0 * s * u / (s + u), 0.0)
    return np.where(np.isnan(s) | np.isnan(u), np.nan, hm)


def per_class_accuracy(pred, labels, classes: Iterable[int] | None = None) -> dict[int, float]:
    """Recall of each class (in percent) among the classes present in ``labels``."""
    pred, labels = _np(pred), _np(labels)
    present = np.unique(labels)
    if classes is not None:
        present = np.intersect1d(present, _np(classes))
    return {int(c): 100.0 * float(np.mean(pred[labels == c] == c)) for c in present}


def mean_class_accuracy(pred, labels, classes=None) -> float:
    accs = per_class_accuracy(pred, labels, classes)
    return float(np.mean(list(accs.values()))) if accs else float("nan")


def harmonic_mean(s: float, u: float) -> float:
    return 0.0 if s + u <= 0 else 2.0 * s * u / (s + u)


def gzsl_scores(pred, labels, seen_classes, unseen_classes) -> dict[str, float]:
    """S, U and HM of final GZSL predictions."""
    s = mean_class_accuracy(pred, labels, seen_classes)
    u = mean_class_accuracy(pred, labels, unseen_classes)
    return {"S": s, "U": u, "HM": harmonic_mean(s, u)}


def roc_curve(seen_score, is_seen) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and thresholds, sweeping ``seen_score >= thr`` from the highest score down."""
    score, pos = _np(seen_score).astype(np.float64), _np(is_seen).astype(bool)
    order = np.argsort(-score, kind="mergesort")
    score, pos = score[order], pos[order]
    distinct = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]
    tps, fps = np.cumsum(pos)[distinct], np.cumsum(~pos)[distinct]
    n_pos, n_neg = max(pos.sum(), 1), max((~pos).sum(), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, score[distinct]]


def auroc(seen_score, is_seen) -> float:
    """Area under the ROC curve in percent (seen = positive), by the trapezoid rule."""
    fpr, tpr, _ = roc_curve(seen_score, is_seen)
    return 100.0 * float(_trapezoid(tpr, fpr))


def fpr_at_tpr(seen_score, is_seen, tpr_target: float = 0.6) -> tuple[float, float]:
    """(FPR in percent, seen-score threshold) at the first operating point with TPR ≥ target."""
    fpr, tpr, thr = roc_curve(seen_score, is_seen)
    i = int(np.argmax(tpr >= tpr_target))
    return 100.0 * float(fpr[i]), float(thr[i])


def routing_counts(routed_seen, labels, seen_classes) -> dict[str, int]:
    """Confusion of the gate: true branch → routed branch."""
    routed = _np(routed_seen).astype(bool)
    truly_seen = np.isin(_np(labels), _np(seen_classes))
    return {f"{a}_to_{b}": int(np.sum(true & to)) for a, true in (("seen", truly_seen), ("unseen", ~truly_seen))
            for b, to in (("seen", routed), ("unseen", ~routed))}


def gate_scores(ood_score, routed_seen, labels, seen_classes) -> dict[str, float]:
    """AUROC, TPR/FPR at the detector's own threshold and FPR at TPR = 60 %, in percent."""
    truly_seen = np.isin(_np(labels), _np(seen_classes))
    seen_score = -_np(ood_score).astype(np.float64)
    routed = _np(routed_seen).astype(bool)
    fpr60, _ = fpr_at_tpr(seen_score, truly_seen, 0.6)
    return {
        "AUROC": auroc(seen_score, truly_seen),
        "TPR": 100.0 * float(routed[truly_seen].mean()) if truly_seen.any() else float("nan"),
        "FPR": 100.0 * float(routed[~truly_seen].mean()) if (~truly_seen).any() else float("nan"),
        "FPR@TPR60": fpr60,
    }


def tpr_at_threshold(ood_score, is_seen, threshold: float) -> float:
    """TPR(t) = |{seen i : score_i < t}| / |{seen i}|, in percent (nan if none): seen samples routed seen."""
    score, mask = _np(ood_score).astype(np.float64), _np(is_seen).astype(bool)
    return 100.0 * float(np.mean(score[mask] < threshold)) if mask.any() else float("nan")


def fpr_at_threshold(ood_score, is_seen, threshold: float) -> float:
    """FPR(t) = |{unseen i : score_i < t}| / |{unseen i}|, in percent: unseen routed seen."""
    return tpr_at_threshold(ood_score, ~_np(is_seen).astype(bool), threshold)


def spans_decades(values, decades: float = 2.0) -> bool:
    """True when ``values`` are all ≥ 0 and their positive part spans ≥ ``decades`` decades
    (e.g. entropies from 1e-4 to 1): such thresholds are best swept and drawn on a log axis."""
    v = _np(values).astype(np.float64)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    return bool(len(pos) > 1 and (v >= 0).all() and pos.max() >= pos.min() * 10.0**decades)


def sweep_thresholds(ood_score, n: int = 200, include: Iterable[float] = ()) -> np.ndarray:
    """``n`` OOD thresholds spanning the scores (geometric if :func:`spans_decades`, else
    linear), plus one just above the largest score (everything routed seen) and ``include``."""
    s = _np(ood_score).astype(np.float64)
    s = s[np.isfinite(s)]
    extra = [float(x) for x in include if np.isfinite(x)]
    if len(s) == 0:
        return np.unique(np.asarray(extra, dtype=np.float64))
    pos = s[s > 0]
    grid = np.geomspace(pos.min(), pos.max(), n) if spans_decades(s) else np.linspace(s.min(), s.max(), n)
    return np.unique(np.r_[grid, np.nextafter(s.max(), np.inf), extra])


def _branch_accuracy(labels, group, score, hit_if_seen, hit_if_unseen, thresholds):
    """Mean per-class accuracy (percent) of ``group`` at every threshold: with w_i = 1 / (|classes| · n_{y_i}),
    acc(t) = Σ_{score_i < t} w_i·hs_i + Σ_{score_i ≥ t} w_i·hu_i, a prefix plus a suffix sum (a branch
    without a hit scores exactly 0)."""
    if not group.any():
        return np.full(len(thresholds), np.nan)
    y = labels[group]
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    w = 1.0 / (len(classes) * counts[inverse])
    hs, hu, sc = hit_if_seen[group], hit_if_unseen[group], score[group]
    order = np.argsort(sc, kind="mergesort")
    seen_hits = np.r_[0.0, np.cumsum((w * hs)[order])]  # of the first k (score < t: seen branch)
    unseen_hits = np.r_[np.cumsum((w * hu)[order][::-1])[::-1], 0.0]  # of the rest (unseen branch)
    k = np.searchsorted(sc[order], thresholds, side="left")  # how many have score < t
    return 100.0 * (seen_hits[k] + unseen_hits[k])


def threshold_sweep(outputs: dict, thresholds=None) -> dict[str, np.ndarray]:
    """S, U, HM, TPR, FPR (percent) of ``Pipeline.outputs`` routed at each OOD threshold; exact, O((N + T) log N)."""
    labels = _np(outputs["labels"]).astype(np.int64)
    score = _np(outputs["score"]).astype(np.float64)
    is_seen = np.isin(labels, _np(outputs["seen_classes"]))
    is_unseen = np.isin(labels, _np(outputs["unseen_classes"]))
    if thresholds is None:
        chosen = [float(_np(outputs["threshold"]))] if "threshold" in outputs else []
        thresholds = sweep_thresholds(score, include=chosen)
    t = np.atleast_1d(_np(thresholds).astype(np.float64))
    hs = _np(outputs["seen_pred"]) == labels
    hu = _np(outputs["unseen_pred"]) == labels
    s = _branch_accuracy(labels, is_seen, score, hs, hu, t)
    u = _branch_accuracy(labels, is_unseen, score, hs, hu, t)

    def rate(mask):
        if not mask.any():
            return np.full(len(t), np.nan)
        return 100.0 * np.searchsorted(np.sort(score[mask]), t, side="left") / mask.sum()

    return {"threshold": t, "S": s, "U": u, "HM": hm_array(s, u), "TPR": rate(is_seen), "FPR": rate(~is_seen)}


def operating_point(outputs: dict, tpr_target: float = 0.6) -> dict[str, float]:
    """The routed pipeline at the OOD threshold where TPR first reaches ``tpr_target``
    (Table 2: FPR and HM at TPR = 60 %): ``{"threshold", "S", "U", "HM", "TPR", "FPR"}``. The ROC point of
    :func:`fpr_at_tpr` keeps ``score ≤ -thr``, so the routing ``score < t`` takes t the next float above ``-thr``."""
    is_seen = np.isin(_np(outputs["labels"]), _np(outputs["seen_classes"]))
    _, thr = fpr_at_tpr(-_np(outputs["score"]).astype(np.float64), is_seen, tpr_target)
    t = float(np.nextafter(-thr, np.inf))
    return {k: float(v[0]) for k, v in threshold_sweep(outputs, [t]).items()}
