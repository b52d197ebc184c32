"""One self-contained report of a run folder (``report.md``, ``report.html``, ``figures/``) from its files, a missing
optional one said in the report; :func:`seeds_section` is ``results["seeds"]`` (docs/statistics.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from avood_core.eval import metrics, stats
from avood_core.callbacks import read_metrics
from avood_core.errors import AvoodError
from avood_core.eval.render import ci_cell, finite, interval, num, render
from avood_core.util.io import atomic_write, atomic_write_text
from avood_core.util.nested import flat, get_path
from avood_core.util.paths import check_name, contained

FIGURES = "figures"
FIGURE_NAMES = ("roc", "threshold_sweep", "tsne")


def _aggregate(items: list, how) -> Any:
    """Apply ``how`` to the numeric leaves shared by every dict in ``items`` (recursively)."""
    first = items[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(d, dict) and k in d for d in items)]
        out = {k: _aggregate([d[k] for d in items], how) for k in keys}
        return {k: v for k, v in out.items() if v is not None}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return how(np.asarray(items, dtype=np.float64))
    return None


def seeds_section(per_seed: list[dict]) -> dict:
    """The ``results["seeds"]`` section from ``[{"seed": s, "metrics": {...}, ...}, ...]`` (module docstring)."""
    if not per_seed:
        raise AvoodError("seeds_section needs at least one seed's results")
    ms = [p["metrics"] for p in per_seed]
    return {
        "seeds": [p.get("seed") for p in per_seed],
        "per_seed": per_seed,
        "n": len(per_seed),
        "mean": _aggregate(ms, lambda a: float(a.mean())),
        "std": _aggregate(ms, lambda a: stats.mean_interval(a)["std"] or 0.0),
        "ci": _aggregate(ms, lambda a: stats.mean_interval(a)["ci"]),
        "std_ddof": 1,
        "ci_level": stats.LEVEL,
        "ci_method": stats.T_METHOD,
    }


def seed_stats(section: dict, path: str) -> dict:
    """``{"n", "mean", "std", "ci"}`` of one metric (``"gate.AUROC"``) of a seeds section (std, ci None for one seed)."""
    n = section.get("n") or len(section.get("per_seed") or section.get("seeds") or [])
    return {"n": n, "mean": get_path(section.get("mean"), path),
            "std": get_path(section.get("std"), path) if n > 1 else None,
            "ci": interval(get_path(section.get("ci"), path)) if n > 1 else None}


def _tsne_groups(out: dict, idx: np.ndarray) -> dict:
    """Per t-SNE point: a seen class?, classified right? (and by the no-gate baseline, when ``out`` has it)."""
    labels = out["labels"][idx]
    return {"is_seen": np.isin(labels, out["seen_classes"]), "correct": out["pred"][idx] == labels,
            **({"baseline_correct": out["baseline_pred"][idx] == labels} if "baseline_pred" in out else {})}


def save_tsne(run_dir, x, outputs: dict, cap: int = 1500, seed: int = 0) -> Path:
    """Embed ``cap`` random test samples (features ``x``, rows aligned with ``outputs``) with
    t-SNE and save ``run_dir/tsne.npz`` for :func:`write_report`; returns its path."""
    from avood_core.eval.plots import tsne_embed

    start = time.perf_counter()
    coords, idx = tsne_embed(x, cap=cap, seed=seed)
    seconds = time.perf_counter() - start
    out = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    arrays = {"coords": coords, "indices": idx, **_tsne_groups(out, idx),
              "seed": np.int64(seed), "cap": np.int64(cap), "seconds": np.float64(seconds)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    return atomic_write(Path(run_dir) / "tsne.npz", write)


def _check_note(recomputed: dict, stored: dict) -> str:
    """Whether S, U, HM recomputed from predictions.npz match results.json (up to 1e-6; NaN/inf never match)."""
    if not stored:
        return "results.json holds no single-run metrics to check against predictions.npz."
    pairs = [(recomputed.get(k), stored.get(k)) for k in ("S", "U", "HM")]
    if not all(finite(a) and finite(b) for a, b in pairs):
        return ("WARNING: S, U or HM is NaN, inf or absent in predictions.npz or results.json; "
                "the metrics cannot be checked against each other.")
    if all(abs(a - b) < 1e-6 for a, b in pairs):
        return "S, U and HM recomputed from predictions.npz match results.json."
    return "WARNING: S, U or HM recomputed from predictions.npz differ from results.json."


def _gzsl_rows(m: dict, op: dict | None, best: dict | None, ci: dict) -> list[list[str]]:
    b = m.get("baseline_no_gate") or {}
    rows = [["AV-OOD (gated, detector's own threshold)", *(ci_cell(m.get(k), ci.get(k)) for k in ("S", "U", "HM"))],
            ["unseen classifier alone, no gate (all classes)", *(num(b.get(k)) for k in ("S", "U", "HM"))]]
    for label, at in (("gated at TPR = 60 % (threshold {:.4g}; Table 2 protocol)", op),
                      ("best HM of the sweep (threshold {:.4g}; test-set oracle, not a result)", best)):
        if at:
            rows.append([label.format(at["threshold"]), *(num(at[k]) for k in ("S", "U", "HM"))])
    return rows


def _ci_note(ci: dict) -> str:
    if not ci:
        return "results.json holds no bootstrap intervals (metrics_ci) for this run."
    level = ci.get("level")
    return (f"[lo, hi]: {num(100 * level if finite(level) else None, '.0f')} % confidence interval by "
            f"{ci.get('method')}, {ci.get('resamples')} resamples, seed {ci.get('seed')}; HM's interval is that of "
            "the resampled HM.")


_SEED_METRICS = (
    ("S", "S"), ("U", "U"), ("HM", "HM"), ("ZSL", "ZSL"), ("seen classifier acc", "seen_classifier_acc"),
    ("no-gate S", "baseline_no_gate.S"), ("no-gate U", "baseline_no_gate.U"), ("no-gate HM", "baseline_no_gate.HM"),
    ("gate AUROC", "gate.AUROC"), ("gate TPR", "gate.TPR"), ("gate FPR", "gate.FPR"),
    ("gate FPR@TPR60", "gate.FPR@TPR60"), ("gate threshold", "gate.threshold"),
)


def _seed_blocks(seeds: dict) -> list:
    per = seeds.get("per_seed") or []
    n = seeds.get("n") or len(per) or len(seeds.get("seeds") or [])
    blocks = [("h2", f"Across seeds (n = {n})"),
              ("p", f"Seeds {', '.join(str(s) for s in seeds.get('seeds') or [p.get('seed') for p in per])}; "
                    f"mean ± sample standard deviation (ddof = {seeds.get('std_ddof', 1)}) [{stats.T_METHOD}, "
                    f"{100 * seeds.get('ci_level', stats.LEVEL):.0f} %], in percent except the threshold; one seed "
                    "has no std and no interval.")]
    fmts = lambda path: (".4g", ".4g") if path.endswith("threshold") else (".2f", ".1f")  # noqa: E731  (value, ci)
    entries = [(name, path, seed_stats(seeds, path)) for name, path in _SEED_METRICS]
    blocks.append(("table", ["metric", "mean ± std [95 % interval of the mean] (n)"],
                   [[name, stats.format_interval(e, *fmts(path))] for name, path, e in entries
                    if e["mean"] is not None]))
    if per:
        cols = [c for c in _SEED_METRICS if any(get_path(p.get("metrics"), c[1]) is not None for p in per)][:9]
        blocks += [("h3", "Per seed"), ("table", ["seed", *(c[0] for c in cols)],
                                        [[str(p.get("seed")), *(num(get_path(p.get("metrics"), path), fmts(path)[0])
                                                                for _, path in cols)] for p in per])]
    return blocks


def write_report(run_dir) -> tuple[Path, Path]:
    """Write ``figures/``, ``report.md`` and ``report.html`` into ``run_dir`` (locked meanwhile); return the
    two report paths. Every input is read and checked first, so a bad one changes nothing."""
    from avood_core.run.folder import lock

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AvoodError(f"'{run_dir}' is not a folder; pass a run folder written by 'avood run'")
    with lock(run_dir, "report"):
        return _write_report(run_dir)


def _write_report(run_dir: Path) -> tuple[Path, Path]:
    from avood_core.eval import plots
    from avood_core.run.files import read_predictions, read_results, read_tsne

    started = time.perf_counter()
    results = read_results(run_dir)
    seeds = results.get("seeds")
    m = results.get("metrics") or (seeds or {}).get("mean") or {}
    gate = m.get("gate") or {}
    ci = (results.get("metrics_ci") or {}) if results.get("metrics") else {}  # the intervals of that run
    out = read_predictions(run_dir)
    tsne = read_tsne(run_dir, None if out is None else len(out["labels"]))
    curves = read_metrics(run_dir / "metrics")  # written by the run's callbacks; read before anything is written
    fig_dir = contained(run_dir, FIGURES, "the report's figures")
    comps = results.get("components") or {}
    made: dict[str, str] = {}
    check, missing = [], []  # the predictions check (under Results); notes of missing files (under Figures)
    op = best = None

    if out is not None:
        labels = out["labels"]
        is_seen = np.isin(labels, out["seen_classes"])
        name, thr = comps.get("detector", "gate"), float(out["threshold"])
        at = (metrics.fpr_at_threshold(out["score"], is_seen, thr),
              metrics.tpr_at_threshold(out["score"], is_seen, thr))
        plots.plot_roc({name: (-out["score"].astype(np.float64), is_seen)}, fig_dir / "roc", {name: at})
        made["roc"] = (f"ROC of the gate '{name}' over all thresholds (seen = positive); the dot is its own "
                       f"threshold (FPR {at[0]:.2f} %, TPR {at[1]:.2f} %).")
        plots.plot_threshold_sweep(out, fig_dir / "threshold_sweep")
        made["threshold_sweep"] = ("HM (left axis), TPR and FPR (right axis) as the gate threshold is swept over "
                                   "the test scores; red dot: the detector's own (mean) threshold.")
        op = metrics.operating_point(out, 0.6)
        sweep = metrics.threshold_sweep(out)
        if np.isfinite(sweep["HM"]).any():
            i = int(np.nanargmax(sweep["HM"]))
            best = {k: float(v[i]) for k, v in sweep.items()}
        recomputed = metrics.gzsl_scores(out["pred"], labels, out["seen_classes"], out["unseen_classes"])
        check.append(_check_note(recomputed, results.get("metrics") or {}))
    else:
        missing.append("predictions.npz is missing: no ROC, threshold sweep or TPR = 60 % operating point for "
                       "this run.")

    if tsne is not None and "coords" in tsne:
        idx = tsne["indices"]
        g = tsne if out is None else _tsne_groups(out, idx)  # from the predictions, where there are some
        plots.plot_tsne(tsne["coords"], g["is_seen"], g["correct"], fig_dir / "tsne",
                        baseline_correct=g.get("baseline_correct"))
        made["tsne"] = (f"t-SNE of {len(idx)} random test samples (fused audio-visual features), coloured by "
                        "seen/unseen class × classified right (True) or wrong (False).")
    else:
        missing.append("No t-SNE figure: tsne.npz was not saved with this run (it is computed at run time by "
                       "report.save_tsne, while the test features are in memory).")
    for kind, records in curves.items():
        name = check_name(f"curves_{kind}", f"figure of '{run_dir / 'metrics' / kind}.jsonl'")
        if plots.plot_training_curves(records, fig_dir / name, f"{kind}: training curves"):
            made[f"curves_{kind}"] = (f"Training curves of the {kind} ({comps.get(kind, kind)}): each loss term and "
                                      f"the learning rate, from metrics/{kind}.jsonl.")
    for stale in set(FIGURE_NAMES) - set(made):
        for ext in ("png", "svg"):
            (fig_dir / f"{stale}.{ext}").unlink(missing_ok=True)

    title = f"avood run report: {run_dir.name}"
    blocks: list = [("h1", title), ("p", "All metrics in percent (paper §4.1); seen = positive for the gate. "
                                        "Generated by avood_core.eval.report from the files of this run folder.")]
    blocks.append(("table", ["run", "value"], [
        ["components", ", ".join(f"{k}: {v}" for k, v in comps.items()) or "n/a"],
        *([k, str(results[k])] for k in ("seed", "device", "created", "avood_version", "python") if k in results),
    ]))
    blocks += [("h2", "Results"), ("h3", "Generalized zero-shot (S, U, HM)"),
               ("table", ["", "S", "U", "HM"], _gzsl_rows(m, op, best, ci)),
               ("table", ["other", "value"], [
                   ["ZSL (unseen classifier on unseen test samples, unseen classes only)",
                    ci_cell(m.get("ZSL"), ci.get("ZSL"))],
                   ["seen classifier accuracy (seen test samples, seen classes only)",
                    num(m.get("seen_classifier_acc"))]])]
    blocks += [("p", text) for text in (_ci_note(ci), *check)]
    blocks += [("h3", "OOD gate"), ("table", ["gate", "value"], [
        ["AUROC", ci_cell(gate.get("AUROC"), ci.get("AUROC"))], ["TPR at its threshold", num(gate.get("TPR"))],
        ["FPR at its threshold", num(gate.get("FPR"))], ["FPR at TPR = 60 %", num(gate.get("FPR@TPR60"))],
        ["threshold (routed seen iff score < threshold)", num(gate.get("threshold"), ".6g")]])]
    r = gate.get("routing")
    if r:
        blocks += [("p", "Routing (true branch → routed branch):"),
                   ("table", ["true \\ routed", "seen", "unseen", "total"],
                    [[b, r[f"{b}_to_seen"], r[f"{b}_to_unseen"], r[f"{b}_to_seen"] + r[f"{b}_to_unseen"]]
                     for b in ("seen", "unseen")])]
    if seeds:
        blocks += _seed_blocks(seeds)
    blocks += [("h2", "Figures"), *(("figure", f"{FIGURES}/{key}", caption) for key, caption in made.items()),
               *(("p", note) for note in missing)]
    task = results.get("task")
    blocks.append(("h2", "Data"))
    if task:
        splits = [s for s in ("train", "val", "test") if s in task]
        blocks.append(("table", ["split", "samples", "classes"],
                       [[s, *((str(task[s].get(k, "n/a")) for k in ("samples", "classes")) if task[s] else ("none", ""))]
                        for s in splits]))
        rest = {k: v for k, v in task.items() if k not in splits}
        blocks.append(("table", ["task", "value"], [[k, str(v)] for k, v in flat(rest).items()]))
    else:
        blocks.append(("p", "results.json holds no task summary."))
    if results.get("splits"):
        blocks.append(("p", "Splits: " + ", ".join(f"{k} = {v}" for k, v in results["splits"].items()) + "."))
    blocks.append(("h2", "Resolved config"))
    cfg = run_dir / "config.toml"
    blocks.append(("code", cfg.read_text(encoding="utf-8", errors="replace"), "toml") if cfg.is_file()
                  else ("p", "config.toml is missing from the run folder."))
    timings = dict(results.get("timings_s") or {})
    total = timings.get("total")
    rows = [[k, num(v, ".3f"), num(100 * v / total, ".1f") if total and k != "total" else ""]
            for k, v in timings.items()]
    if tsne is not None and "seconds" in tsne:
        rows.append(["t-SNE (save_tsne, after the run)", num(float(tsne["seconds"]), ".3f"), ""])
    rows.append(["report figures and tables (this report)", num(time.perf_counter() - started, ".3f"), ""])
    blocks += [("h2", "Timings"), ("table", ["stage", "seconds", "% of total"], rows)]

    md, page = render(blocks, run_dir, title)
    md_path = atomic_write_text(run_dir / "report.md", md)
    html_path = atomic_write_text(run_dir / "report.html", page)
    return md_path, html_path
