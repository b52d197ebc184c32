"""The tables of a sweep folder: ``sweep.json``, ``table.md`` and ``table.csv``.

One row per config (the axis values): mean ± std over its finished seeds of S, U, HM and ZSL
(the paper's Table 1 metrics; std with ddof = 1, as ``avood run --seeds``), the number of seeds
and links to the trial folders. A failed trial is a row of its own with its error.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from avood_core.util.io import atomic_write_json, atomic_write_text

METRICS = ("S", "U", "HM", "ZSL")


def table_rows(trials: list, records: dict[str, dict]) -> list[dict]:
    """Rows in spec order: per config the aggregate over finished seeds, then its failed trials."""
    from avood_core.eval.report import seeds_section

    rows: list[dict] = []
    labels = list(dict.fromkeys(t.label for t in trials))
    for label in labels:
        mine = [records[t.id] for t in trials if t.label == label]
        ok = [r for r in mine if r.get("status") == "done"]
        row = {"config": label, "axes": mine[0]["axes"], "seeds": [r["seed"] for r in ok],
               "trials": [r["run_dir"] for r in ok], "status": "done" if ok else "pending"}
        if ok:
            section = seeds_section([{"seed": r["seed"], "metrics": r["metrics"]} for r in ok])
            row["mean"] = {k: section["mean"][k] for k in METRICS}
            row["std"] = {k: section["std"][k] for k in METRICS}
            row["n"], row["ci"] = section["n"], {k: section["ci"].get(k) for k in METRICS}
        if ok or not any(r.get("status") == "failed" for r in mine):
            rows.append(row)
        for r in mine:
            if r.get("status") == "failed":
                rows.append({"config": label, "axes": r["axes"], "seeds": [r["seed"]], "trials": [r["run_dir"]],
                             "status": "failed", "error": r.get("error", "")})
    return rows


def _cell(row: dict, key: str) -> str:
    """``26.16 ± 1.16 [23.3, 29.0] (n = 3)``: mean ± std [95 % t interval of the mean] (n seeds); one seed
    ``26.53 (n = 1)`` (:func:`avood_core.eval.stats.format_interval`)."""
    from avood_core.eval.stats import format_interval

    if "mean" not in row:
        return "–"
    n = row.get("n", len(row["seeds"]))
    return format_interval({"n": n, "mean": row["mean"][key], "std": row["std"][key],
                            "ci": (row.get("ci") or {}).get(key)})


def markdown(rows: list[dict], caption: str) -> str:
    lines = [f"**Sweep** — {caption}", "", "| Config | Seeds | " + " | ".join(METRICS) + " | Trials |",
             "|---|---|" + "---:|" * len(METRICS) + "---|"]
    for row in rows:
        links = ", ".join(f"[{Path(p).name}]({p}/)" for p in row["trials"])
        seeds = ",".join(map(str, row["seeds"])) or "–"
        if row["status"] == "failed":
            lines.append(f"| {row['config']} | {seeds} | failed: {row['error'].replace('|', '/')} |"
                         + " |" * (len(METRICS) - 1) + f" {links} |")
        else:
            lines.append(f"| {row['config']} | {seeds} | " + " | ".join(_cell(row, k) for k in METRICS) + f" | {links} |")
    lines += ["", "Mean ± std (ddof = 1) over the seeds that finished; S, U: mean per-class accuracy on the seen / "
              "unseen test clips among all classes; HM: their harmonic mean; ZSL: unseen classifier among the unseen "
              "classes (paper §4, Table 1)."]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["config", "seeds", "status", *(f"{k}_{s}" for k in METRICS for s in ("mean", "std")), "trials", "error"])
    for row in rows:
        values = [f"{row[s][k]:.4f}" if "mean" in row else "" for k in METRICS for s in ("mean", "std")]
        writer.writerow([row["config"], " ".join(map(str, row["seeds"])), row["status"], *values,
                         " ".join(row["trials"]), row.get("error", "")])
    return out.getvalue()


def write_tables(folder: Path, trials: list, records: dict[str, dict], meta: dict) -> str:
    """Write ``sweep.json``, ``table.md`` and ``table.csv`` into ``folder`` (atomically); return the markdown."""
    rows = table_rows(trials, records)
    counts = {s: sum(r.get("status") == s for r in records.values()) for s in ("done", "failed", "pending")}
    caption = (f"{len(trials)} trials ({counts['done']} done, {counts['failed']} failed, {counts['pending']} pending); "
               f"engine {meta['engine']['name']}")
    text = markdown(rows, caption)
    atomic_write_json(Path(folder) / "sweep.json", {**meta, "counts": counts, "rows": rows,
                                                    "trials": [records[t.id] for t in trials]})
    atomic_write_text(Path(folder) / "table.md", text)
    atomic_write_text(Path(folder) / "table.csv", csv_text(rows))
    return text
