"""Uncertainty: the Student t interval of the mean over seeds, the per-run stratified bootstrap and
``avood compare``, checked against scipy and against textbook cases (a known accuracy, a known
difference, identical runs, a shuffled-label control)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from avood_core.errors import AvoodError
from avood_core.eval import compare, metrics, stats
from avood_core.pipeline import scores_from_outputs


def outputs(rng, n_seen=6, n_unseen=4, per_class=60, seen_acc=0.7, unseen_acc=0.5, ties=True) -> dict:
    """Per-sample arrays like ``Pipeline.outputs``: every class ``per_class`` clips, hits at the given rates."""
    classes = np.arange(n_seen + n_unseen)
    sc, uc = classes[:n_seen], classes[n_seen:]
    labels = np.repeat(classes, per_class)
    rng.shuffle(labels)
    seen = np.isin(labels, sc)
    score = rng.normal(size=len(labels)) + 1.2 * ~seen
    score = np.round(score, 1) if ties else score
    hit = rng.random(len(labels)) < np.where(seen, seen_acc, unseen_acc)
    pred = np.where(hit, labels, np.where(seen, (labels + 1) % n_seen, n_seen + (labels - n_seen + 1) % n_unseen))
    unseen_pred = np.where(seen, uc[0], pred)
    return {"labels": labels, "score": score, "routed_seen": score < 0.6, "seen_pred": np.where(seen, pred, sc[0]),
            "unseen_pred": unseen_pred, "pred": pred, "baseline_pred": unseen_pred, "seen_classes": sc,
            "unseen_classes": uc, "threshold": np.float64(0.6)}


# --- across seeds: the t interval ---------------------------------------------------------------


def test_mean_interval_matches_scipy_and_one_seed_has_none():
    values = [26.53, 27.08, 24.86]  # three seeds of one UCF-shaped configuration
    got = stats.mean_interval(values)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
    assert got["n"] == 3 and got["std"] == pytest.approx(np.std(values, ddof=1))
    assert got["ci"] == pytest.approx([lo, hi], rel=1e-10)
    assert stats.format_interval(got) == "26.16 ± 1.16 [23.3, 29.0] (n = 3)"
    one = stats.mean_interval([26.53])
    assert one == {"n": 1, "mean": 26.53, "std": None, "ci": None}
    assert stats.format_interval(one) == "26.53 (n = 1)" and "±" not in stats.format_interval(one)
    assert stats.mean_interval([5.0, 5.0, 5.0])["ci"] == [5.0, 5.0]


def test_sign_flip_p_matches_scipy_permutation_test():
    d = np.array([1.3, -0.4, 2.2, 0.9, 1.7, -0.2, 0.8])
    ref = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    assert stats.sign_flip_p(d) == pytest.approx(ref)
    assert stats.sign_flip_p([1.0, 2.0, 3.0]) == 0.25  # 2 of the 8 sign patterns reach |mean| = 2
    assert stats.sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    many = np.random.default_rng(0).normal(0.5, 1.0, 40)
    assert stats.sign_flip_p(many) == pytest.approx(sps.ttest_1samp(many, 0.0).pvalue, abs=0.01)


def test_seeds_section_and_sweep_cell_show_the_interval_and_n():
    from avood_core.eval.report import seed_stats, seeds_section
    from avood_core.sweep.table import _cell

    per = [{"seed": s, "metrics": {"HM": hm, "gate": {"AUROC": 80.0 + s}}} for s, hm in enumerate((26.53, 27.08, 24.86))]
    sec = json.loads(json.dumps(seeds_section(per)))
    lo, hi = sps.t.interval(0.95, 2, loc=sec["mean"]["HM"], scale=sps.sem([26.53, 27.08, 24.86]))
    assert sec["n"] == 3 and sec["ci"]["HM"] == pytest.approx([lo, hi]) and sec["ci_level"] == 0.95
    assert seed_stats(sec, "gate.AUROC")["ci"] == pytest.approx([81 - 4.302652729 / math.sqrt(3), 81 + 4.302652729 / math.sqrt(3)])
    one = seeds_section(per[:1])
    assert one["n"] == 1 and "HM" not in one["ci"] and seed_stats(one, "HM")["std"] is None
    row = {"seeds": [0, 1, 2], "mean": sec["mean"], "std": sec["std"], "n": 3, "ci": sec["ci"]}
    assert _cell(row, "HM") == "26.16 ± 1.16 [23.3, 29.0] (n = 3)"
    assert _cell({"seeds": [0], "mean": one["mean"], "std": one["std"], "n": 1, "ci": {}}, "HM") == "26.53 (n = 1)"


# --- per run: the stratified bootstrap ----------------------------------------------------------


def test_resampled_metrics_are_the_metrics_of_the_resampled_clips():
    """A count vector w is the data set that repeats clip i w_i times: every resampled metric equals
    metrics.py's on that data set (ties in the score included), and w = 1 is the run itself."""
    out = outputs(np.random.default_rng(1))
    layout = stats.Resampler(out["labels"], out["seen_classes"], out["unseen_classes"])
    prepared = layout.prepare(out)
    full = scores_from_outputs({k: __import__("torch").as_tensor(v) for k, v in out.items()})
    one = layout.metrics(prepared, np.ones((len(layout.labels), 1)))  # the test split itself
    for key in ("S", "U", "HM", "ZSL"):
        assert one[key][0] == pytest.approx(full[key], abs=1e-9)
    assert one["AUROC"][0] == pytest.approx(full["gate"]["AUROC"], abs=1e-9)
    counts = next(layout.counts(3, stats.rng_for(7)))
    assert (np.add.reduceat(counts, layout.starts, axis=0) == layout.sizes[:, None]).all()  # n_c draws per class
    got = layout.metrics(prepared, counts)
    for r in range(3):
        idx = layout.order[np.repeat(np.arange(len(counts)), counts[:, r].astype(int))]
        sub = {k: (v[idx] if np.ndim(v) and len(v) == len(out["labels"]) else v) for k, v in out.items()}
        s, u = (metrics.mean_class_accuracy(sub["pred"], sub["labels"], c) for c in (out["seen_classes"], out["unseen_classes"]))
        unseen = np.isin(sub["labels"], out["unseen_classes"])
        expect = {"S": s, "U": u, "HM": metrics.harmonic_mean(s, u),
                  "ZSL": metrics.mean_class_accuracy(sub["unseen_pred"][unseen], sub["labels"][unseen], out["unseen_classes"]),
                  "AUROC": metrics.auroc(-sub["score"], ~unseen)}
        for key, value in expect.items():
            assert got[key][r] == pytest.approx(value, abs=1e-9), key


def test_bootstrap_interval_of_a_known_accuracy_covers_it_with_the_normal_width():
    """Class-balanced accuracy with a known p per clip: the 95 % interval covers p in about 95 % of
    simulated test sets and is as wide as the normal approximation 2·1.96·√(Σ_c p̂_c(1-p̂_c)/n_c)/K."""
    rng = np.random.default_rng(0)
    covered, ratios = 0, []
    for trial in range(60):
        out = outputs(rng, n_seen=10, n_unseen=10, per_class=40, seen_acc=0.6, unseen_acc=0.3, ties=False)
        ci = stats.bootstrap_intervals(out, seed=trial, resamples=400)
        covered += ci["S"][0] <= 60.0 <= ci["S"][1]
        seen = np.isin(out["labels"], out["seen_classes"])
        acc = np.array([np.mean(out["pred"][out["labels"] == c] == c) for c in out["seen_classes"]])
        normal = 2 * 1.96 * 100 * math.sqrt(np.sum(acc * (1 - acc) / 40)) / 10
        ratios.append((ci["S"][1] - ci["S"][0]) / normal)
        assert seen.sum() == 400
    assert 0.85 <= covered / 60 <= 1.0
    assert 0.9 < np.median(ratios) < 1.1


def test_bootstrap_is_deterministic_and_brackets_the_run():
    out = outputs(np.random.default_rng(2), n_seen=30, n_unseen=21, per_class=36)
    a, b = stats.bootstrap_intervals(out, 5), stats.bootstrap_intervals(out, 5)
    assert a == b and a["resamples"] == 1000 and a["method"] == stats.METHOD
    assert stats.bootstrap_intervals(out, 6)["HM"] != a["HM"]
    assert stats.bootstrap_intervals(out, -3) == stats.bootstrap_intervals(out, -3)  # any 64-bit seed
    for key in stats.KEYS:
        assert a[key][0] < a[key][1]
    full = scores_from_outputs({k: __import__("torch").as_tensor(v) for k, v in out.items()})
    assert a["HM"][0] < full["HM"] < a["HM"][1]


# --- avood compare ------------------------------------------------------------------------------


def _run_folder(path, out: dict, seed: int = 0, name: str = "ucf-like"):
    """A run folder with the results.json and predictions.npz that compare reads."""
    import torch

    path.mkdir(parents=True)
    np.savez(path / "predictions.npz", **{k: np.asarray(v) for k, v in out.items()})
    m = scores_from_outputs({k: torch.as_tensor(v) for k, v in out.items()})
    task = {"name": name, "test": {"samples": len(out["labels"]), "classes": 10}}
    (path / "results.json").write_text(json.dumps({"seed": seed, "metrics": m, "task": task}))
    return path


def test_compare_by_clip_detects_a_known_difference_and_not_identical_runs(tmp_path):
    a = outputs(np.random.default_rng(3), per_class=150, seen_acc=0.5, unseen_acc=0.4)
    b = {**a, "pred": np.where(np.random.default_rng(4).random(len(a["labels"])) < 0.3, a["labels"], a["pred"])}
    ra, rb = _run_folder(tmp_path / "a", a), _run_folder(tmp_path / "b", b)
    doc = compare.compare(ra, rb, resamples=500)
    assert doc["pairing"] == "clip"
    hm = doc["metrics"]["HM"]
    assert hm["diff"] > 5 and hm["ci"][0] > 0 and hm["p"] < 0.01 and hm["verdict"] == "B higher than A"
    same = compare.compare(ra, ra, resamples=200)
    assert all(r["diff"] == 0.0 and r["ci"] == [0.0, 0.0] and r["p"] == 1.0 and r["verdict"] == compare.NO_DIFFERENCE
               for r in same["metrics"].values())
    assert "| HM |" in compare.markdown(doc) and "paired bootstrap" in compare.markdown(doc)


def test_compare_shuffled_label_control_finds_no_difference(tmp_path):
    """Two runs whose predictions are shuffled against the labels (chance level) do not differ."""
    rng = np.random.default_rng(5)
    base = outputs(rng, per_class=120)
    a = {**base, "pred": rng.permutation(base["pred"])}
    b = {**base, "pred": rng.permutation(base["pred"])}
    doc = compare.compare(_run_folder(tmp_path / "a", a), _run_folder(tmp_path / "b", b), resamples=500)
    for key in ("S", "U", "HM"):
        r = doc["metrics"][key]
        assert r["ci"][0] <= 0.0 <= r["ci"][1] and r["verdict"] == compare.NO_DIFFERENCE, key


def _seed_set(path, hms: list[float], name: str = "ucf-like"):
    path.mkdir(parents=True)
    per = [{"seed": s, "run_dir": f"seed-{s}", "metrics": {"S": 50.0, "U": 40.0, "HM": hm, "ZSL": 45.0,
                                                            "gate": {"AUROC": 80.0}}} for s, hm in enumerate(hms)]
    (path / "results.json").write_text(json.dumps({"task": {"name": name}, "seeds": {"per_seed": per}}))
    return path


def test_compare_by_seed_is_the_paired_t_interval_and_the_exact_sign_flip(tmp_path):
    a = _seed_set(tmp_path / "a", [26.53, 27.08, 24.86, 25.9, 26.2])
    b = _seed_set(tmp_path / "b", [28.1, 29.0, 26.0, 27.5, 26.9])
    doc = compare.compare(a, b)
    d = np.array([28.1, 29.0, 26.0, 27.5, 26.9]) - np.array([26.53, 27.08, 24.86, 25.9, 26.2])
    r = doc["metrics"]["HM"]
    assert doc["pairing"] == "seed" and r["diff"] == pytest.approx(d.mean())
    assert r["ci"] == pytest.approx(list(sps.t.interval(0.95, 4, loc=d.mean(), scale=sps.sem(d))))
    assert r["p"] == pytest.approx(2 / 32) and r["ci"][0] > 0  # 5 seeds: p >= 1/16, the test cannot reach 0.05
    assert r["verdict"] == "B higher than A by the interval only (test p = 0.062: too few pairs for the test)"
    assert doc["metrics"]["S"]["diff"] == 0.0 and doc["metrics"]["S"]["verdict"] == compare.NO_DIFFERENCE
    assert "smallest attainable p: 0.0625" in compare.markdown(doc)
    with pytest.raises(AvoodError, match="different tasks"):
        compare.compare(a, _seed_set(tmp_path / "c", [1.0] * 5, name="other"))
    with pytest.raises(AvoodError, match="predictions.npz' not found"):
        compare.compare(a, b, pairing="clip")


def test_compare_cli_json_and_one_line_errors(tmp_path):
    from typer.testing import CliRunner

    from avood_core.cli.commands import app
    from avood_core.cli.jsonio import JSON_KEYS

    out = outputs(np.random.default_rng(6))
    ra = _run_folder(tmp_path / "a", out)
    res = CliRunner().invoke(app, ["compare", str(ra), str(ra), "--json", "--resamples", "200"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert list(doc) == list(JSON_KEYS["compare"]) and doc["metrics"]["HM"]["diff"] == 0.0
    other = _run_folder(tmp_path / "b", {**out, "labels": np.roll(out["labels"], 1)})
    with pytest.raises(AvoodError, match="other test clips"):
        compare.compare(ra, other)
    with pytest.raises(AvoodError, match="holds no results.json or sweep.json"):
        compare.compare(ra, tmp_path)


def test_compare_sweep_rows_and_malformed_folders(tmp_path):
    sweep = tmp_path / "sweep"
    trials = [{"label": label, "status": "done", "seed": s, "run_dir": f"trials/{label}_{s}",
               "metrics": {"S": 50.0, "U": 40.0 + s + (2.0 if label == "b" else 0.0), "HM": 44.0, "ZSL": 40.0}}
              for label in ("a", "b") for s in range(3)]
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"rows": [{"config": "a", "status": "done"},
                                                            {"config": "b", "status": "done"}], "trials": trials}))
    doc = compare.compare(sweep, sweep, config_a="a", config_b="b")
    assert doc["pairing"] == "seed" and doc["pairs"] == [[0, 0], [1, 1], [2, 2]]
    assert doc["metrics"]["U"]["diff"] == pytest.approx(2.0) and doc["metrics"]["U"]["ci"] == pytest.approx([2.0, 2.0])
    assert doc["metrics"]["U"]["verdict"].startswith("B higher than A by the interval only (test p = 0.25")
    with pytest.raises(AvoodError, match="has 2 finished configs"):
        compare.compare(sweep, sweep)
    (sweep / "sweep.json").write_text(json.dumps({"rows": [{"config": "a", "status": "done"}],
                                                  "trials": [{**trials[0], "run_dir": "../../elsewhere"}]}))
    with pytest.raises(AvoodError, match="outside"):
        compare.compare(sweep, sweep)
    (sweep / "sweep.json").write_text(json.dumps({"rows": [{"config": "a", "status": "done"}],
                                                  "trials": [{**trials[0], "seed": "zero"}]}))
    with pytest.raises(AvoodError, match="malformed"):
        compare.compare(sweep, sweep)


def test_ablate_seeds_cells_use_the_same_interval():
    from types import SimpleNamespace

    from avood_core.eval.ablate import aggregate, seeds_markdown as markdown

    ablation = SimpleNamespace(rows=[SimpleNamespace(label="entropy")], columns=["HM"], title="Table 2")
    three = aggregate(ablation, {s: [{"values": {"HM": hm}}] for s, hm in enumerate((26.53, 27.08, 24.86))})
    assert three[0]["values"]["HM"]["ci"] == pytest.approx(stats.mean_interval([26.53, 27.08, 24.86])["ci"])
    assert "| entropy | 26.16 ± 1.16 [23.3, 29.0] (n = 3) |" in markdown(ablation, three, [0, 1, 2])
    one = aggregate(ablation, {0: [{"values": {"HM": 26.53}}]})
    assert "| entropy | 26.53 (n = 1) |" in markdown(ablation, one, [0])


def test_printed_summary_shows_intervals_and_n():
    from avood_core.eval.report import seeds_section
    from avood_core.cli.jsonio import format_summary

    out = outputs(np.random.default_rng(8))
    m = scores_from_outputs({k: __import__("torch").as_tensor(v) for k, v in out.items()})
    m["gate"]["threshold"] = 0.6
    ci = stats.bootstrap_intervals(out, 0, resamples=200)
    text = format_summary({"metrics": m, "metrics_ci": ci})
    assert f"{m['HM']:.2f} [{ci['HM'][0]:.1f}, {ci['HM'][1]:.1f}]" in text
    assert f"gate AUROC {m['gate']['AUROC']:.2f} [{ci['AUROC'][0]:.1f}, {ci['AUROC'][1]:.1f}]" in text
    assert "200 resamples, seed 0" in text
    assert "[" not in format_summary({"metrics": m})  # no intervals stored: none printed
    one = format_summary({"seeds": seeds_section([{"seed": 0, "metrics": m}])})
    assert f"HM         {m['HM']:.2f} (n = 1)" in one and "±" not in one
    two = format_summary({"seeds": seeds_section([{"seed": 0, "metrics": m}, {"seed": 1, "metrics": {**m, "HM": 0.0}}])})
    assert "(n = 2)" in two and "±" in two
