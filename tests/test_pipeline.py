import pytest
import torch

from avood_core.eval import metrics
from avood_core.pipeline import Pipeline

from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator, RidgeUnseen


@pytest.fixture
def fitted(tiny_task):
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), syn_num=10)
    return pipe.fit(tiny_task, seed=0)


def test_fit_generates_syn_num_per_unseen_class(fitted, tiny_task):
    assert len(fitted.synthetic) == 10 * len(tiny_task.unseen_classes)
    assert set(fitted.synthetic.labels.tolist()) == set(tiny_task.unseen_classes.tolist())
    assert set(fitted.timings) >= {"generator", "synthesize", "seen", "unseen", "detector"}


def test_predict_routes_to_the_branch_class_sets(fitted, tiny_task):
    pred = fitted.predict(tiny_task.test)
    assert torch.equal(pred.routed_seen, pred.score < fitted.detector.threshold)
    assert torch.isin(pred.labels[pred.routed_seen], tiny_task.seen_classes).all()
    assert torch.isin(pred.labels[~pred.routed_seen], tiny_task.unseen_classes).all()


def test_evaluate_matches_the_metric_definitions(fitted, tiny_task):
    out = fitted.evaluate(tiny_task.test).metrics
    pred = fitted.predict(tiny_task.test)
    expect = metrics.gzsl_scores(pred.labels, tiny_task.test.labels, tiny_task.seen_classes, tiny_task.unseen_classes)
    assert out["S"] == pytest.approx(expect["S"]) and out["HM"] == pytest.approx(expect["HM"])
    # a seen sample is a hit only if routed seen and classified right
    test = tiny_task.test
    seen_mask = torch.isin(test.labels, tiny_task.seen_classes)
    hits = pred.routed_seen & (fitted.seen.predict(test) == test.labels) & seen_mask
    per_class = [hits[test.labels == c].float().mean().item() for c in tiny_task.seen_classes]
    assert out["S"] == pytest.approx(100 * sum(per_class) / len(per_class))
    unseen_test = test.where(tiny_task.unseen_classes)
    zsl = fitted.unseen.predict(unseen_test, tiny_task.unseen_classes, tiny_task.text)
    assert out["ZSL"] == pytest.approx(metrics.mean_class_accuracy(zsl, unseen_test.labels))
    assert out["gate"]["routing"]["seen_to_seen"] == int((pred.routed_seen & seen_mask).sum())
    for key in ("S", "U", "HM", "ZSL"):
        assert 0.0 <= out[key] <= 100.0
    assert set(out["baseline_no_gate"]) == {"S", "U", "HM"}


def test_same_seed_same_numbers(tiny_task):
    def run(seed):
        pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), syn_num=10)
        return pipe.fit(tiny_task, seed=seed).evaluate(tiny_task.test).metrics

    a, b = run(1), run(1)
    assert {k: a[k] for k in ("S", "U", "HM", "ZSL")} == {k: b[k] for k in ("S", "U", "HM", "ZSL")}


def test_a_selection_its_params_reject_is_a_one_line_config_error():
    """Stage 2 re-validates what a component selected on stage-1 val (here an epoch count of 0)."""
    import types

    from avood_core.config import build_config, resolve
    from avood_core.errors import ConfigError
    from avood_core.run.fitting import apply_selections, build_pipeline

    config = resolve(build_config(overrides=['device="cpu"']))
    pipe = build_pipeline(config)
    good = apply_selections(config, types.SimpleNamespace(components={**pipe.components}))
    assert good[1] == {}
    pipe.seen.selected_params = lambda: {"epochs": 7}
    cfg2, selected = apply_selections(config, pipe)
    assert selected == {"seen": {"epochs": 7}} and cfg2.seen.params["epochs"] == 7
    pipe.seen.selected_params = lambda: {"epochs": 0}
    with pytest.raises(ConfigError) as err:
        apply_selections(config, pipe)
    text = str(err.value)
    assert "\n" not in text and "seen 'mlp' selected {'epochs': 0}" in text and "seen.params.epochs" in text
