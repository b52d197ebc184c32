"""The tables of a sweep folder (``sweep.json``, ``table.md``, ``table.csv``): one row per config,
per metric (a dotted key of the trials' ``results.json``) the statistic over its finished seeds."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from avood_core.errors import AvoodError
from avood_core.util.io import atomic_write_json, atomic_write_text
from avood_core.util.nested import flat, get_path

METRICS = ("S", "U", "HM", "ZSL")
"""The paper's Table 1 metrics: the columns of every sweep unless ``--metrics`` says otherwise."""
GATE_METRICS = ("gate.AUROC", "gate.FPR@TPR60")
"""The paper's Table 2 gate metrics: added by default when the sweep varies the detector."""

# What each column is, for the footnote (paper §4, Tables 1-2; avood_core/eval/metrics.py).
_MEANING = {
    "S": "mean per-class accuracy on the seen test clips among all classes",
    "U": "the same on the unseen test clips",
    "HM": "each seed's harmonic mean of its S and U, then averaged over the seeds (not the HM of the mean S and U)",
    "ZSL": "unseen classifier among the unseen classes only",
    "gate.AUROC": "area under the gate's ROC curve (seen vs unseen test clips)",
    "gate.FPR@TPR60": "the gate's false-positive rate at 60 % true-positive rate",
    "gate.TPR": "the gate's true-positive rate at its own threshold",
    "gate.FPR": "the gate's false-positive rate at its own threshold",
}


def default_metrics(trials: list) -> list[str]:
    """S, U, HM, ZSL; plus the gate's AUROC and FPR@TPR60 when the trials differ in their detector (a gates sweep)."""
    detectors = {t.config.detector.name for t in trials}
    return [*METRICS, *(GATE_METRICS if len(detectors) > 1 else ())]


def check_metrics(metrics: list[str], records: dict[str, dict]) -> None:
    """Refuse a column no finished trial has (one line, with the keys there are)."""
    done = [r["metrics"] for r in records.values() if r.get("status") == "done" and isinstance(r.get("metrics"), dict)]
    if not done:
        return
    unknown = [k for k in metrics if all(get_path(m, k) is None for m in done)]
    if unknown:
        known = ", ".join(k for k, v in flat(done[0]).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise AvoodError(f"--metrics: no trial has {', '.join(unknown)}; the metrics of results.json are: {known}")


def table_rows(trials: list, records: dict[str, dict], metrics: list[str]) -> list[dict]:
    """Rows in spec order: per config the aggregate over finished seeds, then its failed trials."""
    from avood_core.eval.report import seeds_section  # numpy: loaded once trials have finished

    rows: list[dict] = []
    labels = list(dict.fromkeys(t.label for t in trials))
    for label in labels:
        mine = [records[t.id] for t in trials if t.label == label]
        ok = [r for r in mine if r.get("status") == "done"]
        row = {"config": label, "axes": mine[0]["axes"], "seeds": [r["seed"] for r in ok],
               "trials": [r["run_dir"] for r in ok], "status": "done" if ok else "pending"}
        if ok:
            section = seeds_section([{"seed": r["seed"], "metrics": r["metrics"]} for r in ok])
            row.update({s: {k: get_path(section[s], k) for k in metrics} for s in ("mean", "std")})
            row["n"], row["ci"] = section["n"], {k: get_path(section["ci"], k) for k in metrics}
        if ok or not any(r.get("status") == "failed" for r in mine):
            rows.append(row)
        for r in mine:
            if r.get("status") == "failed":
                rows.append({"config": label, "axes": r["axes"], "seeds": [r["seed"]], "trials": [r["run_dir"]],
                             "status": "failed", "error": r.get("error", "")})
    return rows


def _cell(row: dict, key: str) -> str:
    """``26.16 ± 1.16 [23.3, 29.0] (n = 3)``: mean ± std [95 % t interval of the mean] (n) of ``key``."""
    if row.get("mean", {}).get(key) is None:
        return "–"
    from avood_core.eval.stats import format_interval

    n = row.get("n", len(row["seeds"]))
    return format_interval({"n": n, "mean": row["mean"][key], "std": row["std"][key],
                            "ci": (row.get("ci") or {}).get(key)})


def _header(key: str) -> str:
    return key.replace("gate.", "gate ", 1)


def markdown(rows: list[dict], caption: str, metrics: list[str]) -> str:
    """The table, then what the cells are and what each column means."""
    lines = [f"**Sweep** — {caption}", "", "| Config | Seeds | " + " | ".join(map(_header, metrics)) + " | Trials |",
             "|---|---|" + "---:|" * len(metrics) + "---|"]
    for row in rows:
        links = ", ".join(f"[{Path(p).name}]({p}/)" for p in row["trials"])
        seeds = ",".join(map(str, row["seeds"])) or "–"
        if row["status"] == "failed":
            lines.append(f"| {row['config']} | {seeds} | failed: {row['error'].replace('|', '/')} |"
                         + " |" * (len(metrics) - 1) + f" {links} |")
        else:
            lines.append(f"| {row['config']} | {seeds} | " + " | ".join(_cell(row, k) for k in metrics) + f" | {links} |")
    meanings = "".join(f"; {_header(k)}: {_MEANING[k]}" for k in metrics if k in _MEANING)
    lines += ["", "Mean ± std (ddof = 1) [95 % Student t interval of the mean] (n seeds) over the seeds that finished, "
              f"in results.json's units (percent for accuracies and rates){meanings} (paper §4, Tables 1-2)."]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict], metrics: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["config", "seeds", "status", *(f"{k}_{s}" for k in metrics for s in ("mean", "std")), "trials", "error"])
    for row in rows:
        values = [f"{row[s][k]:.4f}" if row.get(s, {}).get(k) is not None else ""
                  for k in metrics for s in ("mean", "std")]
        writer.writerow([row["config"], " ".join(map(str, row["seeds"])), row["status"], *values,
                         " ".join(row["trials"]), row.get("error", "")])
    return out.getvalue()


def write_tables(folder: Path, trials: list, records: dict[str, dict], meta: dict, metrics: list[str]) -> str:
    """Write ``sweep.json``, ``table.md`` and ``table.csv`` into ``folder`` (atomically); return the markdown."""
    rows = table_rows(trials, records, metrics)
    counts = {s: sum(r.get("status") == s for r in records.values()) for s in ("done", "failed", "pending")}
    caption = (f"{len(trials)} trials ({counts['done']} done, {counts['failed']} failed, {counts['pending']} pending); "
               f"engine {meta['engine']['name']}")
    text = markdown(rows, caption, metrics)
    atomic_write_json(Path(folder) / "sweep.json", {**meta, "metrics": list(metrics), "counts": counts, "rows": rows,
                                                    "trials": [records[t.id] for t in trials]})
    atomic_write_text(Path(folder) / "table.md", text)
    atomic_write_text(Path(folder) / "table.csv", csv_text(rows, metrics))
    return text
