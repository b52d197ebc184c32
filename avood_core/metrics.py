"""AV-GZSL metrics (SPEC §5), in percent, as the paper reports them.

Notation: ``pred`` and ``labels`` are global class ids of the test samples.

* per-class accuracy of class c:  acc_c = |{i : y_i = c, ŷ_i = c}| / |{i : y_i = c}|
* S  = mean of acc_c over the seen classes present in the test set
* U  = mean of acc_c over the unseen classes present in the test set
* HM = 2·S·U / (S + U)  (0 when S + U = 0)
* ZSL = mean per-class accuracy of the unseen classifier on the unseen test samples alone,
  predicting among the unseen classes only, with no gate.

A routed sample is a hit only if it is routed to the right branch *and* classified right;
since each branch predicts only among its own classes, that is ``ŷ_i = y_i`` on the final
prediction.

Gate metrics treat **seen as positive** (in-distribution). Detectors return an OOD score
(higher = more unseen), so the positive-class score is ``-score``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


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
    tps = np.cumsum(pos)[distinct]
    fps = np.cumsum(~pos)[distinct]
    n_pos, n_neg = max(pos.sum(), 1), max((~pos).sum(), 1)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thr = np.r_[np.inf, score[distinct]]
    return fpr, tpr, thr


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
    return {
        "seen_to_seen": int(np.sum(truly_seen & routed)),
        "seen_to_unseen": int(np.sum(truly_seen & ~routed)),
        "unseen_to_seen": int(np.sum(~truly_seen & routed)),
        "unseen_to_unseen": int(np.sum(~truly_seen & ~routed)),
    }


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
