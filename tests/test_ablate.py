"""``avood ablate gates|classifiers|losses`` on tiny tasks: every row and column, components
fitted once, the embedded default and a benchmark tree (stage-1 selection), the CLI."""

from __future__ import annotations

import json
from pathlib import Path
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from avood_core.eval.ablate import ABLATIONS, run_ablation
from avood_core.cli.commands import app
from avood_core.config import assemble_config, finalize_config
from avood_core.errors import AvoodError

# Minimum budgets and narrow networks; slot params for the base plugins, plugin-keyed params
# (params.<kind>.<plugin>) for the plugins the rows put in a slot.
TINY = [
    "data.scale=0.05", 'device="cpu"', "syn_num=5",
    "generator.epochs=1", "generator.batches_per_epoch=3", "generator.critic_iters=1",
    "generator.noise_dim=16", "generator.hidden=32", "generator.batch_size=16",
    "detector.epochs=2", "detector.hidden=[32]", "detector.batch_size=64",
    "params.detector.binary.epochs=2", "params.detector.binary.hidden=[32]", "params.detector.binary.batch_size=64",
    "seen.epochs=2", "seen.hidden=[32]", "seen.batch_size=64",
    "params.seen.mlp.epochs=2", "params.seen.mlp.hidden=[32]", "params.seen.mlp.batch_size=64",
    "params.unseen.mlp.epochs=2", "params.unseen.mlp.hidden=[32]",
    "unseen.epochs=1", "unseen.batches_per_epoch=3", "unseen.batch_size=16",
    "unseen.embed_dim=30", "unseen.enc_hidden=32", "unseen.proj_hidden=32", "unseen.joint_dim=8", "unseen.ff_dim=8",
]
for _kv in ("epochs=1", "batches_per_epoch=3", "batch_size=16", "embed_dim=30", "enc_hidden=32",
            "proj_hidden=32", "joint_dim=8", "ff_dim=8"):
    TINY += [f"params.unseen.cross_attention.{_kv}", f"params.seen.cross_attention.{_kv}"]
for _name in ("cjme", "avgzslnet"):  # the Table 1 baselines (rows of table1)
    TINY += [f"params.unseen.{_name}.{kv}" for kv in ("epochs=1", "batches_per_epoch=3", "batch_size=16", "hidden=32",
                                                       "text_hidden=32", "joint_dim=8")]

ROWS = {
    "gates": ["Calibrated Stacking", "OOD-binary", "OOD-entropy (paper)"],
    "classifiers": ["MLP & MLP", "Embedding & Embedding", "MLP & Embedding (paper)"],
    "losses": ["L+", "L+ + L-trip", "L+ + L-rec", "L+ + L-reg", "L+ + L- (paper)"],
    "table1": ["CJME", "AVGZSLNet", "AVCA", "AV-OOD (paper)", "AV-OOD + CJME", "AV-OOD + AVGZSLNet"],
    "fusion": ["paper: concat (unseen: cross_attention)",
               *(f"{stage}: {f}" for stage in ("detector", "seen")
                 for f in ("audio", "video", "mean", "sum", "gated", "cross_attention")),
               "generator + detector: audio", "generator + detector: video"],
}
COLUMNS = {"gates": ["AUC", "FPR@TPR60", "HM@TPR60", "HM@own"], "classifiers": ["SC_acc", "UC_acc", "HM"],
           "losses": ["UC_acc", "HM"], "table1": ["S", "U", "HM", "ZSL"], "fusion": ["S", "U", "HM", "ZSL", "AUC"]}

runner = CliRunner()


def _data(tmp, *extra):
    return assemble_config(overrides=[*TINY, f"output_dir={json.dumps(str(tmp))}", *extra])


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate")
    return {name: run_ablation(name, _data(tmp), quiet=True) for name in ABLATIONS}


def _check_table(result, name):
    rows = result.results["rows"]
    assert [r["label"] for r in rows] == ROWS[name] and result.results["columns"] == COLUMNS[name]
    for r in rows:
        for c in COLUMNS[name]:
            assert math.isfinite(r["values"][c]) and 0.0 <= r["values"][c] <= 100.0, (r["label"], c)
    lines = result.markdown.splitlines()
    header = next(line for line in lines if line.startswith("| "))
    assert all(f" {c} " in header for c in COLUMNS[name])
    for label in ROWS[name]:
        assert sum(line.startswith(f"| {label} |") for line in lines) == 1
    folder = result.run_dir
    assert (folder / "table.md").read_text() == result.markdown
    saved = json.loads((folder / "results.json").read_text())
    assert saved["ablation"] == name and len(saved["rows"]) == len(ROWS[name])
    assert (folder / "config.toml").is_file()
    for label in ROWS[name]:
        slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower())
        files = [p for p in (folder / "rows").iterdir() if p.name == "-".join(filter(None, slug.split("-")))]
        assert files and (files[0] / "predictions.npz").is_file()


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_row_and_column_on_the_embedded_task(embedded, name):
    _check_table(embedded[name], name)


def test_gates_fit_the_classifiers_once(embedded):
    res = embedded["gates"].results
    assert res["trained"] == {"run": {"generator": 1, "seen": 1, "unseen": 1, "detector": 3}}
    rows = res["rows"]
    assert [r["components"]["detector"] for r in rows] == ["calibrated_stacking", "binary", "entropy"]
    assert {r["components"]["seen"] for r in rows} == {"mlp"} and {r["components"]["unseen"] for r in rows} == {"cross_attention"}
    # shared classifiers: the same SC_acc and UC_acc in every row
    assert len({r["values"]["SC_acc"] for r in rows}) == 1 and len({r["values"]["UC_acc"] for r in rows}) == 1
    beta = rows[0]["selected"]["detector"]["beta"]
    assert rows[0]["values"]["threshold"] == -beta
    assert (embedded["gates"].run_dir / "roc.png").is_file()


def test_gate_row_equals_avood_run(embedded, tmp_path):
    """The entropy row is fitted exactly as ``avood run`` fits the same config."""
    from avood_core.run.driver import RunOptions, execute

    run = execute(finalize_config(_data(tmp_path)), RunOptions(report=False, quiet=True, echo=lambda m: None))
    row = embedded["gates"].results["rows"][2]
    assert row["metrics"]["HM"] == run.results["metrics"]["HM"]
    assert row["metrics"]["gate"]["AUROC"] == run.results["metrics"]["gate"]["AUROC"]
    with np.load(run.run_dir / "predictions.npz") as a, \
            np.load(embedded["gates"].run_dir / "rows" / "ood-entropy-paper" / "predictions.npz") as b:
        assert np.array_equal(a["score"], b["score"]) and np.array_equal(a["pred"], b["pred"])


def test_classifiers_share_generator_gate_and_embedding(embedded):
    res = embedded["classifiers"].results
    assert res["trained"] == {"run": {"generator": 1, "detector": 1, "seen": 1, "unseen": 2}}
    assert any("restricted to the seen classes" in s for s in res["shared"])
    mm, ee, me = (r["values"] for r in res["rows"])
    assert mm["SC_acc"] == me["SC_acc"] and ee["UC_acc"] == me["UC_acc"]
    assert [tuple(r["components"][k] for k in ("seen", "unseen")) for r in res["rows"]] == [
        ("mlp", "mlp"), ("cross_attention", "cross_attention"), ("mlp", "cross_attention")]


def test_fusion_rows_refit_only_their_stage(embedded):
    """Each row changes one stage's fusion; the others are the paper row's, fitted once and shared."""
    res = embedded["fusion"].results
    # generator: paper + audio + video; detector: paper + 6 + 2 (the generator rows); seen: paper + 6
    assert res["trained"] == {"run": {"generator": 3, "detector": 9, "seen": 7, "unseen": 1}}
    rows = {r["label"]: r for r in res["rows"]}
    paper = rows["paper: concat (unseen: cross_attention)"]
    assert paper["config"]["detector"]["params"].get("fusion", "concat") == "concat"
    assert rows["seen: gated"]["config"]["seen"]["params"]["fusion"] == "gated"
    gen = rows["generator + detector: audio"]["config"]
    assert gen["generator"]["params"]["fusion"] == gen["detector"]["params"]["fusion"] == "audio"
    # the seen rows share the paper's gate and unseen classifier: identical gate AUC and ZSL
    for f in ("audio", "video", "mean", "sum", "gated", "cross_attention"):
        assert rows[f"seen: {f}"]["values"]["AUC"] == paper["values"]["AUC"]
        assert rows[f"seen: {f}"]["values"]["ZSL"] == paper["values"]["ZSL"]


def test_losses_refit_only_the_unseen_classifier(embedded):
    res = embedded["losses"].results
    assert res["trained"] == {"run": {"generator": 1, "detector": 1, "seen": 1, "unseen": 5}}
    terms = [r["config"]["unseen"]["params"]["negative_terms"] for r in res["rows"]]
    assert terms == [[], ["trip"], ["rec"], ["reg"], ["trip", "rec", "reg"]]
    assert len({r["values"]["SC_acc"] for r in res["rows"]}) == 1


def test_losses_rows_keep_the_decoder_triplet_switch(tmp_path):
    """``avood ablate losses --set unseen.decoder_triplets=false``: every row drops l_ct."""
    from avood_core.eval.ablate import row_config
    from avood_core.registry import get_registry

    data = _data(tmp_path, "unseen.decoder_triplets=false")
    for row in ABLATIONS["losses"].rows:
        params = row_config(data, row, get_registry()).unseen.params
        assert params["decoder_triplets"] is False and params["negative_terms"] == row.params["unseen"]["negative_terms"]
    assert row_config(_data(tmp_path), ABLATIONS["losses"].rows[0], get_registry()).unseen.params["decoder_triplets"]


def test_losses_need_an_unseen_classifier_with_negative_terms(tmp_path):
    data = _data(tmp_path)
    data["unseen"] = {"name": "mlp", "params": {}}
    with pytest.raises(AvoodError, match="negative_terms"):
        run_ablation("losses", data, quiet=True)


def test_gates_on_a_benchmark_tree_select_beta_in_stage1(tmp_path):
    from avood_core.data import write_synthetic_tree

    write_synthetic_tree(tmp_path / "bench", "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    data = _data(tmp_path, "data.source=\"benchmark\"", f"data.path={json.dumps(str(tmp_path / 'bench'))}",
                 'data.dataset="ucf"')
    result = run_ablation("gates", data, quiet=True)
    _check_table(result, "gates")
    res = result.results
    assert res["protocol"].startswith("two-stage")
    # only the calibrated-stacking row selects on val (β): the other rows skip stage 1
    assert res["trained"] == {"stage1": {"generator": 1, "seen": 1, "unseen": 1, "detector": 1},
                              "stage2": {"generator": 1, "seen": 1, "unseen": 1, "detector": 3}}
    assert [r["stage1"]["ran"] for r in res["rows"]] == [True, False, False]
    cs = res["rows"][0]
    beta = cs["selected"]["detector"]["beta"]
    assert cs["config"]["detector"]["params"]["beta"] == beta and cs["values"]["threshold"] == -beta
    assert "benchmark ucf" in result.markdown


def _cli(name, *options):
    """``avood ablate NAME --quiet OPTIONS`` at the TINY budget; it succeeds and prints every row."""
    res = runner.invoke(app, ["ablate", name, "--quiet", *options, *(a for s in TINY for a in ("--set", s))])
    assert res.exit_code == 0, res.output
    for label in ROWS[name]:
        assert f"| {label} |" in res.output
    return res


def test_cli_ablate_prints_the_table_and_writes_the_folder(tmp_path):
    res = _cli("gates", "-o", str(tmp_path), "--seed", "1")
    folder = next(tmp_path.glob("*-ablate-gates-s1"))
    assert f"run folder: {folder}" in res.output
    assert json.loads((folder / "results.json").read_text())["seed"] == 1
    res = runner.invoke(app, ["ablate", "gates", "--preset", "nope"])
    assert res.exit_code != 0 and "valid presets" in str(res.exception)


def test_table1_rows_protocols_and_paper_figures(embedded):
    """Baselines under the AVCA protocol (calibrated argmin over all classes), AV-OOD rows routed by the
    entropy gate; shared components fitted once; the paper's UCF figures beside them, marked as the paper's."""
    from avood_core.eval import metrics
    from avood_core.eval.ablate_table1 import PAPER_TABLE1

    result = embedded["table1"]
    res = result.results
    rows = {r["label"]: r for r in res["rows"]}
    # generator and seen MLP once; entropy gate once; one calibrated-stacking gate per baseline;
    # four unseen classifiers (cjme, avgzslnet, AVCA = L+ only, the paper's L+ + L-), each fitted once
    assert res["trained"] == {"run": {"generator": 1, "seen": 1, "detector": 4, "unseen": 4}}
    for label in ("CJME", "AVGZSLNet", "AVCA"):
        r = rows[label]
        assert r["components"]["detector"] == "calibrated_stacking" and "calibrated" in r["metrics"]["protocol"]
        with np.load(result.run_dir / "rows" / label.lower() / "predictions.npz") as f:
            labels, seen, unseen, pred = f["labels"], f["seen_classes"], f["unseen_classes"], f["pred"]
            assert np.array_equal(f["routed_seen"], np.isin(pred, seen)) and np.array_equal(f["routed_seen"], f["score"] < f["threshold"])
        assert r["values"]["HM"] == pytest.approx(metrics.gzsl_scores(pred, labels, seen, unseen)["HM"])
        assert r["paper"] == dict(zip(("S", "U", "HM", "ZSL"), PAPER_TABLE1["ucf"][label]))
    assert rows["AVCA"]["config"]["unseen"]["params"]["negative_terms"] == []
    for label in ("AV-OOD (paper)", "AV-OOD + CJME", "AV-OOD + AVGZSLNet"):
        assert rows[label]["components"]["detector"] == "entropy" and "protocol" not in rows[label]["metrics"]
    assert rows["AV-OOD (paper)"]["paper"]["HM"] == 37.89 and rows["AV-OOD + CJME"]["paper"] is None
    assert [rows[k]["components"]["unseen"] for k in ("AV-OOD + CJME", "AV-OOD + AVGZSLNet")] == ["cjme", "avgzslnet"]
    # the same unseen classifier gives the same ZSL with either gate
    assert rows["CJME"]["values"]["ZSL"] == rows["AV-OOD + CJME"]["values"]["ZSL"]
    assert all(r["wall_s"] > 0 for r in res["rows"]) and rows["CJME"]["components_fitted"] >= 4
    assert rows["AV-OOD + CJME"]["components_fitted"] == 0  # everything shared with earlier rows
    lines = result.markdown.splitlines()
    assert "paper HM" in next(line for line in lines if line.startswith("| Model"))
    assert any("Table 1 of the paper on the real UCF-GZSL features" in line for line in lines)
    assert any("calibrated for the AV-OOD row only" in line and "linear map of its word vector" in line for line in lines)
    assert next(line for line in lines if line.startswith("| AV-OOD (paper) |")).count("37.89") == 1


def test_table1_on_a_benchmark_tree_and_cli(tmp_path):
    """Two stages: β of each baseline chosen on stage-1 val and fixed for stage 2; the dataset's own paper
    figures; ``avood ablate table1`` prints the table."""
    from avood_core.data import write_synthetic_tree

    write_synthetic_tree(tmp_path / "bench", "ucf", scale=0.1, seed=3, audio_dim=6, video_dim=5, class_counts=(6, 3, 2))
    res = _cli("table1", "-o", str(tmp_path / "out"), "--data", str(tmp_path / "bench"), "--dataset", "ucf")
    assert "paper = Table 1 of the paper on the real UCF-GZSL features;" in res.output
    folder = next((tmp_path / "out").glob("*-ablate-table1-s0"))
    saved = json.loads((folder / "results.json").read_text())
    assert saved["protocol"].startswith("two-stage")
    for row in saved["rows"][:3]:
        beta = row["selected"]["detector"]["beta"]
        assert row["config"]["detector"]["params"]["beta"] == beta and row["values"]["threshold"] == -beta


def test_every_ablation_command_runs_through_the_cli(tmp_path):
    """Each ``avood ablate NAME`` is wired to its ablation with the same options (a wrong call shows here)."""
    from avood_core.cli.ablate import ablate_app

    names = sorted(c.name for c in ablate_app.registered_commands)
    assert names == sorted(ABLATIONS), names
    res = _cli("fusion", "-o", str(tmp_path), "--json")
    doc = json.loads(res.stdout)
    assert doc["ablation"] == "fusion" and Path(doc["run_dir"]).is_dir()
