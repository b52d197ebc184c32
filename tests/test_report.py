"""The run report: figures (PNG + SVG), report.md and a self-contained report.html."""

import base64
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from avood_core.eval import plots
from avood_core.config import to_toml
from avood_core.errors import AvoodError
from avood_core.util.io import atomic_write_json, atomic_write_text
from avood_core.pipeline import Pipeline
from avood_core.eval.report import save_tsne, seeds_section, write_report
from avood_core.run.folder import save_outputs

from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator, RidgeUnseen

FIGS = ("roc", "threshold_sweep", "tsne")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_task):
    """A run folder as ``avood run`` writes it, from the closed-form toy components, plus tsne.npz."""
    run_dir = tmp_path_factory.mktemp("run")
    names = {"generator": "toy_ridge", "detector": "toy_centroid", "seen": "toy_centroid", "unseen": "toy_ridge"}
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), syn_num=10, names=names)
    pipe.fit(tiny_task, seed=0)
    scores = pipe.evaluate(tiny_task.test)
    config = {"profile": "quick", "seed": 0, "syn_num": 10, **{k: {"name": v, "params": {}} for k, v in names.items()}}
    atomic_write_text(run_dir / "config.toml", to_toml(config))
    results = {
        "avood_version": "test", "created": "2024-01-01T00:00:00+00:00", "components": names, "seed": 0,
        "device": "cpu", "python": "3.11", "task": tiny_task.summary(),
        "splits": {"fit": "train", "select": "val", "report": "test"}, "metrics": scores.metrics,
        "timings_s": {**pipe.timings, "total": sum(pipe.timings.values())},
    }
    save_outputs(run_dir / "predictions.npz", scores.outputs)
    atomic_write_json(run_dir / "results.json", results)
    save_tsne(run_dir, tiny_task.test.x, scores.outputs, cap=80, seed=0)
    return run_dir


@pytest.fixture(scope="module")
def report(run_folder):
    return write_report(run_folder)


def _copy(run_folder, tmp_path, drop=()):
    dst = tmp_path / "run"
    shutil.copytree(run_folder, dst, ignore=shutil.ignore_patterns("figures", "report.*", *drop))
    return dst


def _check_png(path):
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    h, w = img.shape[:2]
    assert 300 <= h <= 2500 and 300 <= w <= 3000, img.shape
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_report_and_every_figure_written(run_folder, report):
    md_path, html_path = report
    assert md_path == run_folder / "report.md" and html_path == run_folder / "report.html"
    for name in FIGS:
        png, svg = run_folder / "figures" / f"{name}.png", run_folder / "figures" / f"{name}.svg"
        assert png.stat().st_size > 5000 and svg.stat().st_size > 5000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:2000]
        _check_png(png)
    assert not list(run_folder.glob("**/*.tmp"))  # atomic writes leave no temp files


def test_markdown_holds_the_tables_config_and_relative_links(run_folder, report):
    md = report[0].read_text()
    results = json.loads((run_folder / "results.json").read_text())
    m = results["metrics"]
    for name in FIGS:
        assert f"](figures/{name}.png)" in md and f"(figures/{name}.svg)" in md
    for value in (m["S"], m["U"], m["HM"], m["ZSL"], m["seen_classifier_acc"], m["baseline_no_gate"]["HM"],
                  m["gate"]["AUROC"], m["gate"]["TPR"], m["gate"]["FPR"], m["gate"]["FPR@TPR60"]):
        assert f"{value:.2f}" in md
    r = m["gate"]["routing"]
    assert f"| seen | {r['seen_to_seen']} | {r['seen_to_unseen']} |" in md
    assert "TPR = 60 %" in md and "test-set oracle" in md
    assert "match results.json" in md  # S/U/HM recomputed from predictions.npz
    assert 'name = "toy_centroid"' in md  # the resolved config, verbatim
    assert f"| test | {results['task']['test']['samples']} |" in md
    for stage in ("generator", "detector", "total", "t-SNE"):
        assert f"| {stage}" in md


def test_html_is_self_contained(report):
    page = report[1].read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3
    assert all(base64.b64decode(u)[:4] == b"\x89PNG" for u in uris)
    assert "figures/" not in re.sub(r"<figcaption>.*?</figcaption>", "", page)  # no external image links
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_report_without_tsne_says_so(run_folder, tmp_path):
    run = _copy(run_folder, tmp_path, drop=("tsne.npz",))
    md, html = write_report(run)
    assert "No t-SNE figure" in md.read_text()
    assert (run / "figures" / "roc.png").is_file() and not (run / "figures" / "tsne.png").exists()
    assert html.read_text().count("data:image/png;base64,") == 2


def test_report_with_only_results_json(run_folder, tmp_path):
    run = _copy(run_folder, tmp_path, drop=("tsne.npz", "predictions.npz", "config.toml"))
    md, html = write_report(run)
    text = md.read_text()
    assert "predictions.npz is missing" in text and "config.toml is missing" in text and "No t-SNE" in text
    assert not list((run / "figures").glob("*.png")) if (run / "figures").exists() else True
    assert "data:image" not in html.read_text()


def test_missing_results_json_is_a_clear_error(tmp_path):
    with pytest.raises(AvoodError, match="results.json"):
        write_report(tmp_path)


def test_save_tsne_file(run_folder, tiny_task):
    with np.load(run_folder / "tsne.npz") as z:
        coords, idx, is_seen = z["coords"], z["indices"], z["is_seen"]
        assert coords.shape == (80, 2) and np.isfinite(coords).all()
        assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < len(tiny_task.test)
        expect = np.isin(tiny_task.test.labels.numpy()[idx], tiny_task.seen_classes.numpy())
        assert np.array_equal(is_seen, expect) and z["correct"].shape == (80,) and float(z["seconds"]) > 0


def test_seeds_section_and_its_rendering(run_folder, tmp_path):
    base = json.loads((run_folder / "results.json").read_text())
    m = base["metrics"]
    per = [{"seed": s, "metrics": {**m, "HM": hm, "gate": {**m["gate"], "AUROC": auc}}}
           for s, hm, auc in ((0, 40.0, 80.0), (1, 44.0, 90.0), (2, 48.0, 85.0))]
    sec = seeds_section(per)
    assert sec["seeds"] == [0, 1, 2] and sec["std_ddof"] == 1
    assert sec["mean"]["HM"] == pytest.approx(44.0) and sec["std"]["HM"] == pytest.approx(4.0)
    assert sec["mean"]["gate"]["AUROC"] == pytest.approx(85.0) and sec["std"]["gate"]["AUROC"] == pytest.approx(5.0)
    assert sec["std"]["S"] == 0.0 and sec["mean"]["gate"]["routing"]["seen_to_seen"] == m["gate"]["routing"]["seen_to_seen"]
    assert seeds_section(per[:1])["std"]["HM"] == 0.0 and seeds_section(per[:1])["n"] == 1
    run = _copy(run_folder, tmp_path, drop=("tsne.npz",))
    atomic_write_json(run / "results.json", {**base, "seeds": json.loads(json.dumps(sec))})
    text = write_report(run)[0].read_text()
    assert "Across seeds (n = 3)" in text and "| HM | 44.00 ± 4.00 [34.1, 53.9] (n = 3) |" in text  # t(2) = 4.303
    assert "| gate AUROC | 85.00 ± 5.00 [72.6, 97.4] (n = 3) |" in text
    assert "| 2 |" in text  # the per-seed table


def test_report_shows_the_bootstrap_intervals(run_folder, tmp_path):
    from avood_core.eval.stats import bootstrap_intervals

    run = _copy(run_folder, tmp_path, drop=("tsne.npz",))
    base = json.loads((run / "results.json").read_text())
    with np.load(run / "predictions.npz") as z:
        ci = bootstrap_intervals({k: z[k] for k in z.files}, seed=0, resamples=200)
    atomic_write_json(run / "results.json", {**base, "metrics_ci": ci})
    md = write_report(run)[0].read_text()
    m = base["metrics"]
    assert f"{m['HM']:.2f} [{ci['HM'][0]:.1f}, {ci['HM'][1]:.1f}]" in md
    assert f"| AUROC | {m['gate']['AUROC']:.2f} [{ci['AUROC'][0]:.1f}, {ci['AUROC'][1]:.1f}] |" in md
    assert "200 resamples, seed 0" in md
    atomic_write_json(run / "results.json", {**base, "metrics_ci": {"HM": "broken", "level": "x"}})
    assert f"| {m['HM']:.2f} |" in write_report(run)[0].read_text()  # a malformed interval is left out


def test_plots_directly(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    curves = {"good": (rng.normal(size=200) + 2 * y, y), "chance": (rng.normal(size=200), y)}
    png, svg = plots.plot_roc(curves, tmp_path / "roc2", {"good": (20.0, 70.0)})
    assert png.name == "roc2.png" and svg.name == "roc2.svg"
    _check_png(png)
    labels = rng.integers(0, 4, 300)
    seen = labels < 2
    out = {"labels": labels, "score": np.where(seen, 10 ** rng.uniform(-4, -1, 300), 10 ** rng.uniform(-2, 0, 300)),
           "seen_pred": np.where(seen, labels, 0), "unseen_pred": np.where(seen, 2, labels),
           "seen_classes": np.array([0, 1]), "unseen_classes": np.array([2, 3]), "threshold": np.array(0.01)}
    _check_png(plots.plot_threshold_sweep(out, tmp_path / "sweep_log")[0])  # entropies spanning decades: log x
    x = rng.normal(size=(40, 8))
    coords, idx = plots.tsne_embed(x, cap=25, seed=1)
    assert coords.shape == (25, 2) and len(np.unique(idx)) == 25 and idx.max() < 40
    again, idx2 = plots.tsne_embed(x, cap=25, seed=1)
    assert np.array_equal(idx, idx2) and np.allclose(coords, again)  # seeded: reproducible


def test_cli_and_report_imports_do_not_load_matplotlib():
    code = ("import sys, avood_core.cli.commands, avood_core.eval.report, avood_core.eval.plots; "
            "assert 'matplotlib' not in sys.modules and 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
