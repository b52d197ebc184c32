"""``avood bench`` at tiny scale: every stage row and every column lands in bench.json and bench.md.

A smoke test (no timing assertions): tiny generated trees, a few optimizer steps per component.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from avood_core.bench.core import BenchOptions, run_bench, scale_epochs
from avood_core.bench.meter import STAGES
from avood_core.bench.report import HEADERS

COLUMNS = tuple(HEADERS)  # the columns of a stage row, in table order

TINY = dict(epochs_scale=0.002, data_scale=0.05, generated=True, audio_dim=16, video_dim=12, class_counts=(6, 3, 3),
            threads=1, breakdown_steps=2)  # the profiler's event processing is most of a breakdown's cost


def _tables(md: str, header_cells: list[str]) -> list[dict[str, list[str]]]:
    """Every markdown table whose header is ``header_cells``, as stage name -> cells."""
    lines = md.splitlines()
    head = "| stage | " + " | ".join(header_cells) + " |"
    tables = []
    for start in [i for i, line in enumerate(lines) if line == head]:
        rows = {}
        for line in lines[start + 2:]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        tables.append(rows)
    return tables


def _check_record(rec: dict) -> None:
    assert set(rec["stages"]) == set(STAGES)
    for name, row in rec["stages"].items():
        assert set(COLUMNS) <= set(row), name
        assert row["wall_s"] >= 0 and row["cpu_s"] >= 0 and row["peak_rss_mb"] > 0
    for kind in ("generator", "seen", "unseen", "detector"):
        row = rec["stages"][kind]
        assert row["steps"] > 0 and row["samples"] >= row["steps"] and row["steps_per_s"] > 0
        assert 0 < row["epochs_factor"] < 1 and row["full_wall_s"] >= row["wall_s"]
    assert {"S", "U", "HM", "ZSL"} <= set(rec["metrics"])
    # the step breakdown profiles the trained stage with the longest wall, after the timed run
    b = rec["step_breakdown"]
    assert b["stage"] == max(("generator", "seen", "unseen", "detector"), key=lambda k: rec["stages"][k]["wall_s"])
    assert b["steps"] == 2 and b["steps_per_s_timed"] == rec["stages"][b["stage"]]["steps_per_s"]
    assert sum(c["share"] for c in b["categories"].values()) == pytest.approx(1.0, abs=1e-3)
    assert b["categories"]["matmul"]["calls_per_step"] > 0


def test_bench_both_stages_json_and_markdown(tmp_path):
    result = run_bench(BenchOptions(datasets=["ucf", "activitynet"], out=tmp_path, stages="both", **TINY),
                       log=lambda m: None)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["datasets"].keys() == result["datasets"].keys() == {"ucf", "activitynet"}
    machine = saved["machine"]
    assert machine["cpus_usable"] >= 1 and machine["torch"] and len(machine["load_avg_start"]) == 3
    isa = machine["isa"]
    assert {"avx2", "avx512", "avx512_bf16", "amx", "torch_capability", "native_bf16_cpu"} <= set(isa)
    if isa["avx512"] is not None:  # flags were read: the record agrees with the flag list
        assert isa["avx512"] == ("avx512f" in machine["cpu_flags"])
        assert isa["native_bf16_cpu"] == bool({"avx512_bf16", "amx_bf16"} & set(machine["cpu_flags"]))
    md = (tmp_path / "bench.md").read_text()
    for ds, rec in saved["datasets"].items():
        _check_record(rec)
        assert f"Step breakdown of {rec['step_breakdown']['stage']}" in md
        assert set(rec["protocol"]["stage1"]["stages"]) == set(STAGES) - {"load"}
        assert f"## {ds}" in md
    tables = _tables(md, [HEADERS[c] for c in COLUMNS])
    assert len(tables) == 4  # per dataset: stage 1, stage 2
    for i, rows in enumerate(tables):
        assert set(rows) == (set(STAGES) - {"load"} if i % 2 == 0 else set(STAGES))
        assert all(len(cells) == len(COLUMNS) and cells[0] != "-" for cells in rows.values())
    # the paper preset's syn_num reaches the pipeline (ActivityNet synthesizes 1000 per unseen class)
    assert saved["datasets"]["activitynet"]["syn_num"] == 1000


def test_bench_cli_reuses_the_tree(tmp_path):
    from avood_core.cli.commands import app

    args = ["bench", "--dataset", "ucf", "--epochs-scale", "0.001", "--data-scale", "0.02", "--generated",
            "--threads", "1", "--output-dir", str(tmp_path), "--set", "unseen.enc_hidden=32", "--set", "unseen.proj_hidden=32",
            "--breakdown-steps", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    rec = json.loads((tmp_path / "bench.json").read_text())["datasets"]["ucf"]
    _check_record(rec)
    assert rec["tree"]["reused"] is False and rec["params"]["unseen"]["enc_hidden"] == 32
    assert "| evaluation |" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert json.loads((tmp_path / "bench.json").read_text())["datasets"]["ucf"]["tree"]["reused"] is True


def test_idle_core_seconds_arithmetic():
    from avood_core.bench.meter import idle_cores

    rows = {"load": {"wall_s": 1.0, "cpu_s": 1.0}, "generator": {"wall_s": 4.0, "cpu_s": 4.0},
            "seen": {"wall_s": 2.0, "cpu_s": 2.0}, "unseen": {"wall_s": 9.0, "cpu_s": 8.5, "worker_end_s": 9.5}}
    idle = idle_cores(rows, fit_wall=10.0, main_cpu=6.5, cores=2)
    assert idle["cpu_s"] == 15.0 and idle["idle_core_s"] == 5.0 and idle["idle_share"] == 0.25
    assert idle["main_wait_s"] == 4.0  # 10 s of fit, 6 s of the main process's own stages


def test_assist_line_names_the_steps_and_when_it_began():
    from avood_core.bench.report import assist_lines

    (line,) = assist_lines({"stages": {"unseen": {"assist": {"steps": 120, "start_s": 12.5, "wall_s": 30.25}},
                                       "seen": {"wall_s": 1.0}}})
    assert "assisted the unseen worker from 12.5 s" in line and "negative half of 120 steps" in line
    assert "full-epochs" not in line  # an unscaled run: nothing extrapolated
    (scaled,) = assist_lines({"stages": {"unseen": {"assist": {"steps": 1, "start_s": 1.0, "wall_s": 1.0},
                                                    "epochs_factor": 0.1}}})
    assert "alone at its measured rate until the main process's full-epochs path ends" in scaled
    assert assist_lines({"stages": {"unseen": {"wall_s": 3.0}}}) == []


def test_assisted_full_wall_joins_when_the_main_paths_full_epochs_end():
    """Scaled x0.1: the worker steps alone at 10/s until the main path's full-epochs end, then at 20/s."""
    from avood_core.bench.core import assisted_full_wall

    rows = {"load": {"wall_s": 1.0, "full_wall_s": 1.0},
            "generator": {"wall_s": 8.0, "full_wall_s": 80.0},
            "unseen": {"wall_s": 10.0, "steps": 150, "epochs_factor": 0.1, "full_wall_s": 100.0, "worker_end_s": 10.5,
                       "assist": {"steps": 50, "start_s": 8.5, "wall_s": 2.5}}}
    # alone: 100 steps in 7.5 s; together: 50 in 2.5 s. Full: 1,500 steps; the main process joins at
    # 80 + (8.5 - 8) - 0.5 = 80 s into the worker's fit, after 80 x 13.33 steps; the rest at 20/s.
    solo = 100 / 7.5
    assert assisted_full_wall(rows["unseen"], rows) == pytest.approx(80 + (1500 - 80 * solo) / 20)
    rows["generator"]["full_wall_s"] = 200.0  # a main path longer than the worker's whole fit: no assistance
    assert assisted_full_wall(rows["unseen"], rows) == pytest.approx(1500 / solo)
    rows["unseen"]["assist"] = {"steps": 150, "start_s": 0.5, "wall_s": 10.0}  # assisted throughout: no solo rate
    assert assisted_full_wall(rows["unseen"], rows) == 100.0


def test_bench_precision_auto_reaches_only_the_components_that_take_it(tmp_path):
    from avood_core.bench.core import bench_config
    from avood_core.train.precision import resolve_precision

    config, _ = bench_config("ucf", tmp_path, BenchOptions(precision="auto"))
    assert config.generator.params["precision"] == "auto" and config.unseen.params["precision"] == "auto"
    assert config.seen.params.get("precision", "fp32") == "fp32" and config.detector.params.get("precision", "fp32") == "fp32"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")


def test_scale_epochs_exact_factor():
    from avood_core.config import build_config, resolve

    config = resolve(build_config(overrides=["profile=\"paper\""]))
    scaled, factors = scale_epochs(config, 0.1)
    assert scaled.generator.params["epochs"] * scaled.generator.params["batches_per_epoch"] == 250  # 5 x 500 x 0.1
    assert scaled.unseen.params["epochs"] == 5 and scaled.unseen.params["batches_per_epoch"] == 500
    assert scaled.seen.params["epochs"] == 20 and factors["seen"] == pytest.approx(0.1)
    assert scaled.detector.params["epochs"] == 8 and factors["generator"] == pytest.approx(0.1)


def test_bad_options(tmp_path):
    from avood_core.errors import AvoodError

    with pytest.raises(AvoodError, match="--dataset"):
        run_bench(BenchOptions(datasets=["mnist"], out=tmp_path))
    with pytest.raises(AvoodError, match="--epochs-scale"):
        run_bench(BenchOptions(datasets=["ucf"], out=tmp_path, epochs_scale=0))
    with pytest.raises(AvoodError, match="--breakdown-stage 'gate': use one of generator, seen, unseen, detector"):
        run_bench(BenchOptions(datasets=["ucf"], out=tmp_path, breakdown_stage="gate"))
    with pytest.raises(AvoodError, match="--breakdown-steps"):
        run_bench(BenchOptions(datasets=["ucf"], out=tmp_path, breakdown_steps=-1))


def test_bench_with_two_jobs_reports_the_worker_and_the_overlap(tmp_path):
    """jobs=2: the unseen row is the worker's own measurement; the total counts the longer process path."""
    result = run_bench(BenchOptions(datasets=["ucf"], out=tmp_path, jobs=2, **TINY), log=lambda m: None)
    rec = result["datasets"]["ucf"]
    _check_record(rec)
    unseen = rec["stages"]["unseen"]
    assert unseen["process"].startswith("worker") and unseen["worker_end_s"] >= unseen["wall_s"]
    main = sum(rec["stages"][k]["full_wall_s"] for k in ("generator", "synthesize", "seen", "detector"))
    outer = rec["stages"]["load"]["full_wall_s"] + rec["stages"]["evaluation"]["full_wall_s"]
    worker_path = unseen["worker_end_s"] - unseen["wall_s"] + unseen["full_wall_s"]
    # the overlap is counted once: the longer path, plus the measured time outside load, fit and evaluation
    outside = rec["total_wall_s"] - (rec["stages"]["load"]["wall_s"] + rec["fit_wall_s"] + rec["stages"]["evaluation"]["wall_s"])
    assert rec["full_epochs_total_wall_s"] == pytest.approx(outer + max(main, worker_path) + outside, abs=1e-6)
    assert rec["full_epochs_total_wall_s"] < outer + main + unseen["full_wall_s"] + outside
    assert rec["jobs"] == 2 and rec["peak_rss_workers_mb"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "| unseen (worker, 1 thread(s)) |" in md and "jobs = 2" in md
    # idle core-seconds: cores x fit wall - CPU of both processes; the main process waited for the worker
    idle = rec["idle"]
    assert idle["cores"] == result["machine"]["cpus_usable"] and idle["cpu_s"] >= unseen["cpu_s"] > 0
    assert idle["idle_core_s"] == pytest.approx(max(0.0, idle["cores"] * rec["fit_wall_s"] - idle["cpu_s"]), abs=1e-2)
    assert 0 <= idle["main_wait_s"] <= rec["fit_wall_s"]
    assert "idle core-seconds" in md
    assert rec["precision"] == {k: "fp32" for k in ("generator", "seen", "unseen", "detector")}


def test_a_failed_breakdown_keeps_the_timed_record(tmp_path, monkeypatch):
    """The breakdown runs after the timed run: if profiling fails, the record keeps its stages and says why."""
    import avood_core.bench.breakdown as breakdown

    def broken(*args, **kwargs):
        raise RuntimeError("profiler unavailable")

    monkeypatch.setattr(breakdown, "step_breakdown", broken)
    result = run_bench(BenchOptions(datasets=["ucf"], out=tmp_path, **TINY), log=lambda m: None)
    rec = result["datasets"]["ucf"]
    assert set(rec["stages"]) == set(STAGES) and {"S", "U", "HM", "ZSL"} <= set(rec["metrics"])
    assert rec["step_breakdown"]["skipped"].endswith("failed: RuntimeError: profiler unavailable")
    assert "Step breakdown: none (profiling " in (tmp_path / "bench.md").read_text()
