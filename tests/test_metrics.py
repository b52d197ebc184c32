import numpy as np
import pytest

from avood_core.eval import metrics

LABELS = np.array([0, 0, 1, 1, 1, 2, 2, 3])
PRED = np.array([0, 1, 1, 1, 0, 2, 3, 3])
SEEN, UNSEEN = [0, 1], [2, 3]


def test_per_class_accuracy_hand_computed():
    acc = metrics.per_class_accuracy(PRED, LABELS)
    assert acc == pytest.approx({0: 50.0, 1: 200 / 3, 2: 50.0, 3: 100.0})


def test_gzsl_scores_hand_computed():
    # S = (50 + 66.67) / 2 = 58.33, U = (50 + 100) / 2 = 75, HM = 2·58.33·75 / 133.33 = 65.625
    out = metrics.gzsl_scores(PRED, LABELS, SEEN, UNSEEN)
    assert out["S"] == pytest.approx(175 / 3)
    assert out["U"] == pytest.approx(75.0)
    assert out["HM"] == pytest.approx(65.625)


def test_harmonic_mean_zero():
    assert metrics.harmonic_mean(0.0, 0.0) == 0.0
    assert metrics.harmonic_mean(40.0, 0.0) == 0.0


def test_auroc_hand_computed_and_sklearn():
    score = np.array([0.9, 0.8, 0.4, 0.3])
    positive = np.array([1, 0, 1, 0], dtype=bool)
    # pairs (pos, neg): 0.9>0.8, 0.9>0.3, 0.4<0.8, 0.4>0.3  -> 3/4
    assert metrics.auroc(score, positive) == pytest.approx(75.0)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.4
    s = rng.normal(size=500) + y * 0.8
    s[:50] = np.round(s[:50])  # ties
    assert metrics.auroc(s, y) == pytest.approx(100 * roc_auc_score(y, s))


def test_fpr_at_tpr_hand_computed():
    score = np.array([0.9, 0.8, 0.7, 0.4, 0.3])
    positive = np.array([1, 0, 1, 1, 0], dtype=bool)
    # TPR reaches 2/3 >= 0.6 at threshold 0.7, where 1 of 2 negatives is above: FPR 50 %
    fpr, thr = metrics.fpr_at_tpr(score, positive, 0.6)
    assert fpr == pytest.approx(50.0) and thr == pytest.approx(0.7)


def test_gate_scores_direction():
    """Detectors return OOD scores (higher = unseen); the gate metrics treat seen as positive."""
    labels = np.array([0, 1, 2, 3])
    ood_score = np.array([0.1, 0.2, 0.8, 0.9])  # seen samples score low: a perfect gate
    routed = ood_score < 0.5
    out = metrics.gate_scores(ood_score, routed, labels, SEEN)
    assert out["AUROC"] == pytest.approx(100.0)
    assert out["TPR"] == pytest.approx(100.0) and out["FPR"] == pytest.approx(0.0)
    flipped = metrics.gate_scores(-ood_score, ~routed, labels, SEEN)
    assert flipped["AUROC"] == pytest.approx(0.0)


def test_routing_counts():
    out = metrics.routing_counts([True, False, True, False], [0, 1, 2, 3], SEEN)
    assert out == {"seen_to_seen": 1, "seen_to_unseen": 1, "unseen_to_seen": 1, "unseen_to_unseen": 1}
