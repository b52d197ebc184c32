"""Gate metrics at a threshold, threshold sweeps, and agreement with sklearn."""

import numpy as np
import pytest
import torch

from avood_core.eval import metrics

SEEN, UNSEEN = [0, 1], [2, 3]


def _toy_outputs():
    """Six test samples; hand-computed sweep values in test_threshold_sweep_hand_computed."""
    return {
        "labels": np.array([0, 0, 1, 2, 3, 3]),
        "score": np.array([0.1, 0.6, 0.3, 0.8, 0.2, 0.9]),
        "seen_pred": np.array([0, 0, 0, 0, 1, 1]),  # right on samples 0, 1
        "unseen_pred": np.array([2, 2, 2, 2, 3, 3]),  # right on samples 3, 4, 5
        "seen_classes": np.array(SEEN),
        "unseen_classes": np.array(UNSEEN),
        "threshold": np.array(0.5),
    }


def _random_outputs(seed=0, n=400, n_seen=6, n_unseen=4, sep=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_seen + n_unseen, n)
    seen = labels < n_seen
    score = np.round(rng.normal(size=n) + sep * ~seen, 1)  # rounded: many ties
    seen_pred = np.where(rng.random(n) < 0.7, labels, rng.integers(0, n_seen, n))
    seen_pred = np.where(seen_pred < n_seen, seen_pred, 0)
    unseen_pred = np.where(rng.random(n) < 0.5, labels, rng.integers(n_seen, n_seen + n_unseen, n))
    unseen_pred = np.where(unseen_pred >= n_seen, unseen_pred, n_seen)
    return {
        "labels": labels, "score": score, "seen_pred": seen_pred, "unseen_pred": unseen_pred,
        "seen_classes": np.arange(n_seen), "unseen_classes": np.arange(n_seen, n_seen + n_unseen),
        "threshold": np.array(0.5),
    }


def test_tpr_fpr_at_threshold_hand_computed():
    ood = np.array([0.1, 0.4, 0.5, 0.2, 0.7, 0.9])
    is_seen = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    # seen with score < 0.5: 0.1, 0.4 (0.5 itself is not: strict) -> 2/3; unseen: 0.2 -> 1/3
    assert metrics.tpr_at_threshold(ood, is_seen, 0.5) == pytest.approx(200 / 3)
    assert metrics.fpr_at_threshold(ood, is_seen, 0.5) == pytest.approx(100 / 3)
    assert metrics.tpr_at_threshold(ood, is_seen, 0.0) == 0.0
    assert metrics.fpr_at_threshold(ood, is_seen, 1.0) == 100.0
    assert np.isnan(metrics.fpr_at_threshold(ood, np.ones(6, dtype=bool), 0.5))


def test_a_branch_with_no_correct_clip_scores_exactly_zero_not_minus_rounding():
    """Every clip routed to the branch that misses it: the running sum cancels to 0, never below."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 68)
    out = {"labels": labels, "score": rng.random(68), "seen_pred": labels + 100, "unseen_pred": labels,
           "seen_classes": np.arange(3), "unseen_classes": np.arange(3, 7)}
    sweep = metrics.threshold_sweep(out, [2.0])  # every clip to the seen branch, which misses all
    assert sweep["U"][0] == 0.0 and sweep["S"][0] == 0.0 and sweep["HM"][0] == 0.0


def test_threshold_sweep_hand_computed():
    sweep = metrics.threshold_sweep(_toy_outputs(), [0.0, 0.5, 1.0])
    # t = 0: all routed unseen -> S = 0, U = (100 + 100) / 2, TPR = FPR = 0
    # t = 0.5: samples 0, 2, 4 routed seen -> preds [0, 2, 0, 2, 1, 3]:
    #   S = (1/2 + 0) / 2 = 25, U = (1 + 1/2) / 2 = 75, HM = 2·25·75/100 = 37.5, TPR 2/3, FPR 1/3
    # t = 1: all routed seen -> S = (100 + 0) / 2 = 50, U = 0
    assert sweep["threshold"] == pytest.approx([0.0, 0.5, 1.0])
    assert sweep["S"] == pytest.approx([0.0, 25.0, 50.0])
    assert sweep["U"] == pytest.approx([100.0, 75.0, 0.0])
    assert sweep["HM"] == pytest.approx([0.0, 37.5, 0.0])
    assert sweep["TPR"] == pytest.approx([0.0, 200 / 3, 100.0])
    assert sweep["FPR"] == pytest.approx([0.0, 100 / 3, 100.0])


def test_threshold_sweep_matches_brute_force_routing():
    out = _random_outputs(seed=3)
    thresholds = np.r_[-np.inf, np.unique(out["score"]), np.linspace(-3, 4, 17), np.inf]  # on and between ties
    sweep = metrics.threshold_sweep(out, thresholds)
    is_seen = np.isin(out["labels"], out["seen_classes"])
    for j, t in enumerate(thresholds):
        routed = out["score"] < t
        pred = np.where(routed, out["seen_pred"], out["unseen_pred"])
        ref = metrics.gzsl_scores(pred, out["labels"], out["seen_classes"], out["unseen_classes"])
        for key in ("S", "U", "HM"):
            assert sweep[key][j] == pytest.approx(ref[key], abs=1e-9), (key, t)
        assert sweep["TPR"][j] == pytest.approx(100 * routed[is_seen].mean())
        assert sweep["FPR"][j] == pytest.approx(100 * routed[~is_seen].mean())


def test_sweep_at_the_detector_threshold_equals_the_pipeline_metrics():
    out = _random_outputs(seed=5)
    routed = out["score"] < out["threshold"]
    pred = np.where(routed, out["seen_pred"], out["unseen_pred"])
    gate = metrics.gate_scores(out["score"], routed, out["labels"], out["seen_classes"])
    ref = metrics.gzsl_scores(pred, out["labels"], out["seen_classes"], out["unseen_classes"])
    at = metrics.threshold_sweep(out, [float(out["threshold"])])
    assert at["TPR"][0] == pytest.approx(gate["TPR"]) and at["FPR"][0] == pytest.approx(gate["FPR"])
    assert at["HM"][0] == pytest.approx(ref["HM"])
    # the default grid includes the detector's own threshold and ends with everything routed seen
    full = metrics.threshold_sweep(out)
    assert float(out["threshold"]) in full["threshold"]
    assert full["TPR"][-1] == 100.0 and full["FPR"][-1] == 100.0
    assert np.all(np.diff(full["TPR"]) >= 0) and np.all(np.diff(full["FPR"]) >= 0)


def test_sweep_over_every_score_traces_the_roc_curve():
    out = _random_outputs(seed=7)
    is_seen = np.isin(out["labels"], out["seen_classes"])
    t = np.r_[-np.inf, np.nextafter(np.unique(out["score"]), np.inf)]  # keep score <= s, for each s
    sweep = metrics.threshold_sweep(out, t)
    fpr, tpr, _ = metrics.roc_curve(-out["score"], is_seen)
    assert sweep["FPR"] / 100 == pytest.approx(fpr) and sweep["TPR"] / 100 == pytest.approx(tpr)
    area = 100 * np.trapezoid(sweep["TPR"] / 100, sweep["FPR"] / 100)
    assert area == pytest.approx(metrics.auroc(-out["score"], is_seen))


def test_operating_point_at_tpr60_matches_fpr_at_tpr():
    out = _random_outputs(seed=11)
    is_seen = np.isin(out["labels"], out["seen_classes"])
    fpr60, _ = metrics.fpr_at_tpr(-out["score"], is_seen, 0.6)
    op = metrics.operating_point(out, 0.6)
    assert op["FPR"] == pytest.approx(fpr60)
    assert op["TPR"] >= 60.0
    # the threshold just below it no longer reaches TPR 60 % (it is the first such point)
    below = np.max(out["score"][out["score"] < op["threshold"]])
    assert metrics.tpr_at_threshold(out["score"], is_seen, below) < 60.0
    assert metrics.gate_scores(out["score"], out["score"] < op["threshold"], out["labels"],
                               out["seen_classes"])["FPR@TPR60"] == pytest.approx(op["FPR"])


def test_sweep_thresholds_and_log_spread():
    entropies = np.array([0.0, 1e-4, 3e-3, 0.05, 0.7, 1.2])
    assert metrics.spans_decades(entropies)
    assert not metrics.spans_decades(np.array([3.9, 5.0, 7.2]))
    assert not metrics.spans_decades(np.array([-1.0, 1e-4, 1.0]))  # negatives: no log axis
    grid = metrics.sweep_thresholds(entropies, n=50, include=[0.0123])
    assert 0.0123 in grid and grid[-1] > entropies.max() and np.all(np.diff(grid) > 0)
    ratios = grid[1:20] / grid[:19]
    assert np.ptp(ratios[ratios > 1.0001]) < 0.2  # geometric spacing at the low end
    lin = metrics.sweep_thresholds(np.array([3.9, 5.0, 7.2]), n=10)
    assert np.diff(lin[:10]) == pytest.approx(np.full(9, (7.2 - 3.9) / 9))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_roc_curve_agree_with_sklearn(seed):
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.45
    s = np.round(rng.normal(size=300) + 0.7 * y, 1)  # one decimal: heavy ties
    assert metrics.auroc(s, y) == pytest.approx(100 * roc_auc_score(y, s))
    fpr, tpr, thr = metrics.roc_curve(s, y)
    sk_fpr, sk_tpr, sk_thr = roc_curve(y, s, drop_intermediate=False)
    assert fpr == pytest.approx(sk_fpr) and tpr == pytest.approx(sk_tpr)
    assert thr[1:] == pytest.approx(sk_thr[1:]) and np.isinf(thr[0])


def _gate_outputs(n=200, seed=0):
    """Seen samples get low OOD scores (a good gate, AUROC ≈ 97 %); both classifiers right."""
    rng = np.random.default_rng(seed)
    labels = np.r_[rng.integers(0, 2, n // 2), rng.integers(2, 4, n // 2)]
    seen = labels < 2
    score = np.where(seen, rng.normal(0.0, 1.0, n), rng.normal(2.5, 1.0, n))
    return {
        "labels": labels, "score": torch.as_tensor(score),  # tensors work as in Pipeline.outputs
        "routed_seen": torch.as_tensor(score < 1.25), "seen_pred": np.where(seen, labels, 0),
        "unseen_pred": np.where(seen, 2, labels), "seen_classes": np.array(SEEN),
        "unseen_classes": np.array(UNSEEN), "threshold": torch.tensor(1.25),
    }


def _gate_path(out):
    """AUROC from gate_scores and from the threshold sweep's own ROC, and the best swept HM."""
    gate = metrics.gate_scores(out["score"], out["routed_seen"], out["labels"], out["seen_classes"])
    sweep = metrics.threshold_sweep(out, np.r_[-np.inf, np.sort(np.asarray(out["score"])), np.inf])
    order = np.lexsort((sweep["TPR"], sweep["FPR"]))
    swept_auc = 100 * np.trapezoid(sweep["TPR"][order] / 100, sweep["FPR"][order] / 100)
    return gate["AUROC"], swept_auc, np.nanmax(sweep["HM"])


def test_score_direction_through_the_full_gate_path():
    """Regression: OOD score means higher = unseen, all the way through gate_scores and sweeps.

    A detector that returned a seen-score (or a metric that forgot the minus sign) would give
    AUROC < 10 here, which is what the flipped half asserts.
    """
    out = _gate_outputs()
    auc, swept_auc, best_hm = _gate_path(out)
    assert auc > 90 and swept_auc == pytest.approx(auc)
    assert best_hm > 85
    flipped = {**out, "score": -out["score"], "routed_seen": ~out["routed_seen"], "threshold": -out["threshold"]}
    f_auc, f_swept_auc, f_best_hm = _gate_path(flipped)
    assert f_auc < 10 and f_swept_auc == pytest.approx(f_auc)
    assert f_best_hm < best_hm - 30
