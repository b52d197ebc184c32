"""The paper's ablation tables as ``avood ablate NAME`` (:data:`ABLATIONS`): gates (Table 2), classifiers (Table 3),
losses (supplement Table 1), fusion (Fig. 1) and table1; each row a run config, each component fitted once per
fit hash (:class:`FitCache`), two-stage on a benchmark tree (paper §4.1; docs/reproducing.md)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from avood_core import __version__
from avood_core.config import RunConfig, finalize_config, resolve, to_toml
from avood_core.errors import AvoodError
from avood_core.eval import ablate_table1 as table1
from avood_core.eval.ablate_table1 import Row
from avood_core.eval.render import md_table
from avood_core.eval.stats import LEVEL, T_METHOD, format_interval, mean_interval
from avood_core.registry import KINDS, Registry, get_registry
from avood_core.util.io import atomic_write_json, atomic_write_text

STAGE_FUSIONS: dict[str, tuple[str, ...]] = {
    "detector": ("audio", "video", "mean", "sum", "gated", "cross_attention"),
    "seen": ("audio", "video", "mean", "sum", "gated", "cross_attention"),
    "generator": ("audio", "video"),
}


def fusion_rows() -> tuple[Row, ...]:
    """The paper's configuration, then one row per stage × fusion (the generator's with the gate's)."""
    return (Row("paper: concat (unseen: cross_attention)"),
            *(Row(f"generator + detector: {f}", params={"generator": {"fusion": f}, "detector": {"fusion": f}})
              if stage == "generator" else Row(f"{stage}: {f}", params={stage: {"fusion": f}})
              for stage, fusions in STAGE_FUSIONS.items() for f in fusions))


@dataclass(frozen=True)
class Ablation:
    name: str
    title: str
    rows: tuple[Row, ...]
    columns: tuple[str, ...]
    fit_order: tuple[int, ...] | None = None
    """Row indices in fitting order (rows are printed in table order)."""
    share_embedding: bool = False


ABLATIONS: dict[str, Ablation] = {
    "gates": Ablation(
        "gates", "Table 2: bias reduction methods (gates)",
        (Row("Calibrated Stacking", {"detector": "calibrated_stacking"}),
         Row("OOD-binary", {"detector": "binary"}),
         Row("OOD-entropy (paper)", {"detector": "entropy"})),
        ("AUC", "FPR@TPR60", "HM@TPR60", "HM@own"),
    ),
    "classifiers": Ablation(
        "classifiers", "Table 3: classifier models (seen & unseen)",
        (Row("MLP & MLP", {"seen": "mlp", "unseen": "mlp"}),
         Row("Embedding & Embedding", {"seen": "cross_attention", "unseen": "cross_attention"}),
         Row("MLP & Embedding (paper)", {"seen": "mlp", "unseen": "cross_attention"})),
        ("SC_acc", "UC_acc", "HM"),
        fit_order=(2, 0, 1),  # the shared embedding model is fitted before the row that reuses it
        share_embedding=True,
    ),
    "losses": Ablation(
        "losses", "Supplement Table 1: loss terms of the unseen classifier",
        (Row("L+", params={"unseen": {"negative_terms": []}}),
         Row("L+ + L-trip", params={"unseen": {"negative_terms": ["trip"]}}),
         Row("L+ + L-rec", params={"unseen": {"negative_terms": ["rec"]}}),
         Row("L+ + L-reg", params={"unseen": {"negative_terms": ["reg"]}}),
         Row("L+ + L- (paper)", params={"unseen": {"negative_terms": ["trip", "rec", "reg"]}})),
        ("UC_acc", "HM"),
    ),
    "fusion": Ablation("fusion", "Fusion per stage (Fig. 1, Fusion 1-5)", fusion_rows(), ("S", "U", "HM", "ZSL", "AUC")),
    "table1": Ablation("table1", "Table 1: AV-GZSL baselines and AV-OOD", table1.ROWS, table1.METRICS),
}

COLUMN_HELP = {
    "AUC": "area under the gate's ROC (seen = positive), %",
    "FPR@TPR60": "unseen clips routed seen at the threshold giving TPR = 60 %, %",
    "HM@TPR60": "HM of the routed pipeline at that threshold (the paper's Table 2 HM), %",
    "HM@own": "HM of the routed pipeline at the gate's own threshold, %",
    "SC_acc": "seen classifier alone on the seen test clips (mean per-class accuracy), %",
    "UC_acc": "unseen classifier alone on the unseen test clips among the unseen classes (= ZSL), %",
    "HM": "HM of the routed pipeline at the gate's own threshold, %",
    "S": "mean per-class accuracy on the seen test clips of the final prediction, %",
    "U": "mean per-class accuracy on the unseen test clips of the final prediction, %",
    "ZSL": "unseen classifier alone on the unseen test clips among the unseen classes, %",
}


@dataclass
class AblationResult:
    run_dir: Path
    markdown: str
    results: dict


def row_config(data: dict, row: Row, registry: Registry) -> RunConfig:
    """The resolved run config of one row, from an assembled config dict."""
    cfg = resolve(finalize_config(data, swap=row.swap), registry)
    if not row.params:
        return cfg
    update = {}
    for kind, params in row.params.items():
        spec = cfg.component(kind)
        known = registry.component_class(kind, spec.name).Params.model_fields
        missing = [p for p in params if p not in known]
        if missing:
            raise AvoodError(f"ablation row '{row.label}' sets {kind}.{missing[0]}, which {kind} '{spec.name}' "
                             f"does not have; choose a {kind} plugin with it (e.g. --{kind} cross_attention)")
        update[kind] = spec.model_copy(update={"params": {**spec.params, **params}})
    return resolve(cfg.model_copy(update=update), registry)


class FitCache:
    """Fitted components of one task, keyed by kind and fit hash; fits what is missing."""

    def __init__(self, task, stage: str, registry: Registry, device, progress=None,
                 log: Callable[[str], None] = lambda m: None) -> None:
        self.task, self.stage, self.registry, self.device = task, stage, registry, device
        self.progress, self.log = progress, log
        self.fitted: dict[tuple[str, str], Any] = {}
        self.fits: Counter = Counter()
        self.shared: list[str] = []

    def pipeline(self, config: RunConfig, share_embedding: bool = False):
        """A fitted pipeline for ``config``, reusing every component already fitted here."""
        from avood_core.run.fitting import build_pipeline, fit_hashes

        pipe = build_pipeline(config, self.registry)
        hashes = fit_hashes(config, pipe, self.stage)
        if share_embedding:
            self._share_embedding(config, hashes)
        reuse = {kind for kind in KINDS if (kind, hashes[kind]) in self.fitted}
        for kind in reuse:
            setattr(pipe, kind, self.fitted[(kind, hashes[kind])])
        pipe.fit(self.task, device=self.device, seed=config.seed, progress=self.progress, log=self.log,
                 skip=frozenset(reuse), jobs=config.jobs)
        for kind in KINDS:
            if kind not in reuse:
                self.fitted[(kind, hashes[kind])] = pipe.components[kind]
                self.fits[kind] += 1
        return pipe

    def _share_embedding(self, config: RunConfig, hashes: dict[str, str]) -> None:
        """Seen ``cross_attention`` = the fitted unseen ``cross_attention`` when both have the same params."""
        seen, unseen = config.seen, config.unseen
        if ((seen.name, unseen.name) != ("cross_attention", "cross_attention") or seen.params != unseen.params
                or ("seen", hashes["seen"]) in self.fitted):
            return
        model = self.fitted.get(("unseen", hashes["unseen"]))
        cls = self.registry.component_class("seen", seen.name)
        if model is None or not hasattr(cls, "from_unseen"):
            return
        self.fitted[("seen", hashes["seen"])] = cls.from_unseen(model, self.task.seen_classes, self.task.text)
        self.shared.append("seen cross_attention = the fitted unseen cross_attention model, restricted to the seen classes")


def row_values(name: str, scores: dict, outputs: dict) -> dict[str, float]:
    """Every number of one row: the table's columns plus the details kept in the JSON."""
    from avood_core.eval import metrics

    gate = scores["gate"]
    values = {
        "SC_acc": scores["seen_classifier_acc"], "UC_acc": scores["ZSL"], "HM": scores["HM"],
        "S": scores["S"], "U": scores["U"], "ZSL": scores["ZSL"],
        "AUC": gate["AUROC"], "FPR@TPR60": gate["FPR@TPR60"], "HM@own": scores["HM"],
        "TPR@own": gate["TPR"], "FPR@own": gate["FPR"], "threshold": gate["threshold"],
    }
    if name == "gates":
        op = metrics.operating_point(outputs, 0.6)
        values.update({"HM@TPR60": op["HM"], "S@TPR60": op["S"], "U@TPR60": op["U"], "TPR@TPR60": op["TPR"],
                       "threshold@TPR60": op["threshold"]})
    return values


def markdown_table(ablation: Ablation, rows: list[dict], caption: str, paper_note: str | None = None) -> str:
    """The table of one ablation; with ``paper_note`` (table1) the paper's figures beside the measured ones."""
    if paper_note is not None:
        head, body, notes = table1.table(rows, paper_note)
    else:
        head = [{"classifiers": "Classifiers (Seen & Unseen)", "losses": "Loss", "fusion": "Stage: fusion"}.get(
            ablation.name, "Gate"), *ablation.columns]
        body = [[r["label"], *(table1.fmt(r["values"][c]) for c in ablation.columns)] for r in rows]
        notes = [f"{c}: {COLUMN_HELP[c]}" for c in ablation.columns]
    return "\n".join([f"**{ablation.title}** — {caption}", "", md_table(head, body), "",
                      *(f"- {n}" for n in notes)]) + "\n"


def _ablation(name: str) -> Ablation:
    if name not in ABLATIONS:
        raise AvoodError(f"unknown ablation '{name}'; valid: {', '.join(ABLATIONS)}")
    return ABLATIONS[name]


def run_ablation(name: str, data: dict, registry: Registry | None = None, quiet: bool = False,
                 echo: Callable[[str], None] = print, tasks: tuple | None = None, plots: bool = True) -> AblationResult:
    """Fit every row of ablation ``name`` from an assembled config dict and write a fresh run folder;
    ``tasks``: ``(stage-1 task or None, reported task)`` instead of building them from the config."""
    from avood_core.util.progress import progress_factory
    from avood_core.util.paths import check_output_dir
    from avood_core.pipeline.boundary import selected_params
    from avood_core.run.fitting import apply_selections, build_tasks, stage1_decision
    from avood_core.run.folder import OUTPUT_OPTION, new_run_dir, save_outputs
    from avood_core.train.loops import resolve_device, run_threads

    ablation = _ablation(name)
    registry = registry or get_registry()
    base = resolve(finalize_config(data), registry)
    check_output_dir(base.output_dir, OUTPUT_OPTION)  # before the data is read and anything trains
    configs = [row_config(data, row, registry) for row in ablation.rows]
    paper = table1.paper_dataset(base) if name == "table1" else None  # (dataset key, footnote)
    with run_threads():
        device = resolve_device(base.device)
        started = time.perf_counter()
        stage1_task, task = tasks if tasks is not None else build_tasks(base)
        run_dir = new_run_dir(Path(base.output_dir), f"ablate-{name}-s{base.seed}")
        atomic_write_text(run_dir / "config.toml", to_toml(base.model_dump(mode="json")))
        progress = progress_factory(quiet)
        log = (lambda m: None) if quiet else echo
        cache1 = FitCache(stage1_task, "stage1", registry, device, progress, log) if stage1_task is not None else None
        cache2 = FitCache(task, "stage2" if stage1_task is not None else "", registry, device, progress, log)
        caches = [c for c in (cache1, cache2) if c is not None]
        fitted = lambda: sum(sum(c.fits.values()) for c in caches)  # noqa: E731

        done: dict[int, dict] = {}
        curves, points = {}, {}
        for i in ablation.fit_order or range(len(ablation.rows)):
            row, cfg = ablation.rows[i], configs[i]
            log(f"ablate {name}: {row.label}")
            row_start, fits_before = time.perf_counter(), fitted()
            selected: dict = {}
            run_stage1, why = stage1_decision(cfg, stage1_task is not None, registry)
            if cache1 is not None:
                log(f"ablate {name}: {row.label}: {why}")
            if run_stage1:
                cfg, selected = apply_selections(cfg, cache1.pipeline(cfg, ablation.share_embedding))
            pipe = cache2.pipeline(cfg, ablation.share_embedding)
            if cache1 is None:
                selected = {k: v for k, c in pipe.components.items() if (v := selected_params(c))}
            evaluation = pipe.evaluate(task.test)
            scores, outputs = evaluation.metrics, evaluation.outputs
            if row.calibrated:
                scores, outputs = table1.calibrated_protocol(pipe, task.test, scores, outputs)
            slug = re.sub(r"[^a-z0-9]+", "-", row.label.lower()).strip("-")
            save_outputs(run_dir / "rows" / slug / "predictions.npz", outputs)
            done[i] = {"label": row.label, "components": dict(pipe.names), "selected": selected,
                       "stage1": {"ran": run_stage1, "reason": why},
                       "config": {k: cfg.component(k).model_dump(mode="json") for k in KINDS},
                       "values": row_values(name, scores, outputs), "metrics": scores,
                       "wall_s": time.perf_counter() - row_start, "components_fitted": fitted() - fits_before}
            if paper:
                figures = table1.PAPER_TABLE1.get(paper[0], {}).get(row.label)
                done[i]["paper"] = None if figures is None else dict(zip(table1.METRICS, figures))
            if name == "gates":
                import numpy as np

                labels = outputs["labels"].numpy()
                curves[row.label] = (-outputs["score"].numpy(), np.isin(labels, outputs["seen_classes"].numpy()))
                points[row.label] = (scores["gate"]["FPR"], scores["gate"]["TPR"])
        rows = [done[i] for i in range(len(ablation.rows))]
        source = (f"benchmark {base.data.dataset} ({base.data.path})" + (
            ", selections on stage-1 val, report on test" if cache1 is not None else ", single stage (data.stage1 off)")
            if base.data.source == "benchmark" else f"embedded synthetic task (scale {base.data.scale})")
        caption = f"{source}; profile {base.profile}; seed {base.seed}; task '{task.name}'"
        table = markdown_table(ablation, rows, caption, paper[1] if paper else None)
        trained = {"stage1": dict(cache1.fits), "stage2": dict(cache2.fits)} if cache1 is not None else {"run": dict(cache2.fits)}
        results = {
            "avood_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ablation": name, "title": ablation.title, "columns": list(ablation.columns),
            "column_help": {c: COLUMN_HELP[c] for c in ablation.columns},
            "seed": base.seed, "profile": base.profile, "device": str(device), "task": task.summary(),
            "protocol": "two-stage (select on stage-1 val, report on test)" if cache1 is not None else "single stage",
            "trained": trained, "shared": sorted({s for c in caches for s in c.shared}),
            "rows": rows, "timings_s": {"total": time.perf_counter() - started},
            **({"paper_figures": paper[1]} if paper else {}),
        }
        atomic_write_json(run_dir / "results.json", results)
        atomic_write_text(run_dir / "table.md", table)
        if plots and curves:
            from avood_core.eval.plots import plot_roc

            plot_roc(curves, run_dir / "roc", points, title="Gate ROC (seen = positive); dots: own thresholds")
        return AblationResult(run_dir, table, results)


# ``avood ablate NAME --seeds 0,1,2``: one ablation per seed as an executor job; per cell the mean ± std and the
# 95 % Student t interval of the mean, with n (docs/scaling.md "Ablations over seeds").


def ablation_job(payload: dict, echo: Callable[[str], None]) -> dict:
    """Run in a worker: one seed's ablation under ``payload['run_dir']``; its rows' values."""
    data = {**payload["data"], "output_dir": payload["run_dir"]}
    result = run_ablation(payload["ablation"], data, quiet=True, echo=echo, plots=payload.get("report", True))
    return {"ablation_dir": str(result.run_dir), "rows": [{"label": r["label"], "values": r["values"]}
                                                         for r in result.results["rows"]]}


def aggregate(ablation, per_seed: dict[int, list[dict]]) -> list[dict]:
    """Per row and column: ``{"n", "mean", "std", "ci"}`` over the seeds: std with ddof = 1 (0 for one seed,
    as in ``results["seeds"]``), ci the 95 % t interval of the mean (None for one seed)."""
    def cell(values) -> dict:
        cell_stats = mean_interval(values)
        return {**cell_stats, "std": cell_stats["std"] or 0.0}

    return [{"label": row.label,
             "values": {col: cell(rows_[i]["values"][col] for rows_ in per_seed.values()) for col in ablation.columns}}
            for i, row in enumerate(ablation.rows)]


def seeds_markdown(ablation, rows: list[dict], seeds: list[int]) -> str:
    body = [[row["label"], *(format_interval(row["values"][c]) for c in ablation.columns)] for row in rows]
    return (f"**{ablation.title}** — mean ± std [95 % t interval of the mean] (n) over seeds "
            f"{', '.join(map(str, seeds))}\n\n" + md_table(["Row", *ablation.columns], body) + "\n")


def run_ablation_seeds(name: str, data: dict, seeds: list[int], engine: str = "local", max_parallel: int = 1,
                       address: str | None = None, quiet: bool = False, echo: Callable[[str], None] = print):
    """Ablation ``name`` once per seed on ``engine``; a fresh parent folder with the mean ± std table."""
    from avood_core.executor.jobs import Job, check_seeds, run_seeds
    from avood_core.run.folder import new_run_dir

    ablation = _ablation(name)
    check_seeds(seeds)
    base = resolve(finalize_config(data))  # fail fast on a bad config, before any job starts
    parent = new_run_dir(Path(base.output_dir), f"ablate-{name}-seeds{'-'.join(map(str, seeds))}")

    def job(seed: int) -> Job:
        payload = {"ablation": name, "data": json.loads(json.dumps({**data, "seed": seed}, default=str)),
                   "run_dir": str(parent / f"seed-{seed}"), "hash": f"ablate-{name}-{seed}", "report": True}
        return Job(f"seed-{seed}", ablation_job, payload, label=f"seed {seed}")

    done = run_seeds(parent, seeds, job, engine, max_parallel, address, quiet, echo, f"ablation {name}, ")
    rows = aggregate(ablation, {s: done[s]["rows"] for s in seeds})
    table = seeds_markdown(ablation, rows, seeds)
    results = {"ablation": name, "title": ablation.title, "columns": list(ablation.columns), "seeds": seeds,
               "std_ddof": 1, "ci_level": LEVEL, "ci_method": T_METHOD, "rows": rows,
               "per_seed": {s: {"folder": str(Path(done[s]["ablation_dir"]).relative_to(parent)),
                                "rows": done[s]["rows"]} for s in seeds}}
    atomic_write_json(parent / "results.json", results)
    atomic_write_text(parent / "table.md", table)
    return AblationResult(parent, table, results)
