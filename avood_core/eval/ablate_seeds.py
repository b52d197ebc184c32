"""``avood ablate NAME --seeds 0,1,2``: one ablation per seed as an executor job; per cell the
mean ± std and the 95 % Student t interval of the mean, with n (docs/scaling.md "Ablations over seeds")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from avood_core.errors import AvoodError


def ablation_job(payload: dict, echo: Callable[[str], None]) -> dict:
    """Run in a worker: one seed's ablation under ``payload['run_dir']``; its rows' values."""
    from avood_core.eval.ablate import run_ablation

    data = {**payload["data"], "output_dir": payload["run_dir"]}
    result = run_ablation(payload["ablation"], data, quiet=True, echo=echo, plots=payload.get("report", True))
    return {"ablation_dir": str(result.run_dir), "rows": [{"label": r["label"], "values": r["values"]}
                                                         for r in result.results["rows"]]}


def aggregate(ablation, per_seed: dict[int, list[dict]]) -> list[dict]:
    """Per row and column: ``{"n", "mean", "std", "ci"}`` over the seeds: std with ddof = 1 (0 for one seed,
    as in ``results["seeds"]``), ci the 95 % t interval of the mean (None for one seed)."""
    from avood_core.eval.stats import mean_interval

    def cell(values) -> dict:
        stats = mean_interval(values)
        return {**stats, "std": stats["std"] or 0.0}

    return [{"label": row.label,
             "values": {col: cell(rows_[i]["values"][col] for rows_ in per_seed.values()) for col in ablation.columns}}
            for i, row in enumerate(ablation.rows)]


def markdown(ablation, rows: list[dict], seeds: list[int]) -> str:
    from avood_core.eval.stats import format_interval

    lines = [f"**{ablation.title}** — mean ± std [95 % t interval of the mean] (n) over seeds "
             f"{', '.join(map(str, seeds))}", "",
             "| Row | " + " | ".join(ablation.columns) + " |", "|---|" + "---:|" * len(ablation.columns)]
    for row in rows:
        lines.append(f"| {row['label']} | " + " | ".join(format_interval(row["values"][c]) for c in ablation.columns)
                     + " |")
    return "\n".join(lines) + "\n"


def run_ablation_seeds(name: str, data: dict, seeds: list[int], engine: str = "local", max_parallel: int = 1,
                       address: str | None = None, quiet: bool = False, echo: Callable[[str], None] = print):
    """Ablation ``name`` once per seed on ``engine``; a fresh parent folder with the mean ± std table."""
    from avood_core.config import finalize_config, resolve
    from avood_core.eval.ablate import ABLATIONS, AblationResult
    from avood_core.eval.stats import LEVEL, T_METHOD
    from avood_core.executor.jobs import Job, check_seeds, run_seeds
    from avood_core.run.folder import new_run_dir
    from avood_core.util.io import atomic_write_json, atomic_write_text

    if name not in ABLATIONS:
        raise AvoodError(f"unknown ablation '{name}'; valid: {', '.join(ABLATIONS)}")
    check_seeds(seeds)
    base = resolve(finalize_config(data))  # fail fast on a bad config, before any job starts
    parent = new_run_dir(Path(base.output_dir), f"ablate-{name}-seeds{'-'.join(map(str, seeds))}")

    def job(seed: int) -> Job:
        payload = {"ablation": name, "data": json.loads(json.dumps({**data, "seed": seed}, default=str)),
                   "run_dir": str(parent / f"seed-{seed}"), "hash": f"ablate-{name}-{seed}", "report": True}
        return Job(f"seed-{seed}", ablation_job, payload, label=f"seed {seed}")

    done = run_seeds(parent, seeds, job, engine, max_parallel, address, quiet, echo, f"ablation {name}, ")
    ablation = ABLATIONS[name]
    rows = aggregate(ablation, {s: done[s]["rows"] for s in seeds})
    table = markdown(ablation, rows, seeds)
    results = {"ablation": name, "title": ablation.title, "columns": list(ablation.columns), "seeds": seeds,
               "std_ddof": 1, "ci_level": LEVEL, "ci_method": T_METHOD, "rows": rows,
               "per_seed": {s: {"folder": str(Path(done[s]["ablation_dir"]).relative_to(parent)),
                                "rows": done[s]["rows"]} for s in seeds}}
    atomic_write_json(parent / "results.json", results)
    atomic_write_text(parent / "table.md", table)
    return AblationResult(parent, table, results)
