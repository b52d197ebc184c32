"""Full-epoch figures of a scaled ``avood bench`` run: a stage's full wall is its measured wall over its
exact epochs factor (steps run / full steps), except an assisted worker stage (:func:`assisted_full_wall`)."""

from __future__ import annotations

from typing import Any

from avood_core.bench.meter import main_rows
from avood_core.stages import FIT_ORDER


def scale_epochs(config, factor: float):
    """Scale each component's epochs (at least 1) by ``factor``, and its ``batches_per_epoch`` to bring the
    total steps closest to ``factor`` times; return (config, exact factor = steps run / full steps, per kind)."""
    from avood_core.config import resolve

    factors: dict[str, float] = {}
    if factor == 1.0:
        return config, {k: 1.0 for k in FIT_ORDER}
    update = {}
    for kind in FIT_ORDER:
        spec = config.component(kind)
        params = dict(spec.params)
        if "epochs" not in params:
            factors[kind] = 1.0
            continue
        epochs = int(params["epochs"])
        new_epochs = max(1, round(epochs * factor))
        if "batches_per_epoch" in params:
            bpe = int(params["batches_per_epoch"])
            new_bpe = max(1, round(epochs * bpe * factor / new_epochs))
            params["batches_per_epoch"] = new_bpe
            factors[kind] = new_epochs * new_bpe / (epochs * bpe)
        else:
            factors[kind] = new_epochs / epochs
        params["epochs"] = new_epochs
        update[kind] = spec.model_copy(update={"params": params})
    return resolve(config.model_copy(update=update)), factors


def span(rows: dict[str, dict[str, Any]], fit_wall: float) -> tuple[float, float]:
    """(measured, full-epochs) wall of load + fit + evaluation; the fit's full wall is the longest of the main
    process's chain and each worker's path (start offset and overhead + its extrapolated fit)."""
    outer = [r for n, r in rows.items() if n in ("load", "evaluation")]
    workers = [r for r in rows.values() if "worker_end_s" in r]
    main = main_rows(rows)
    full_fit = max([sum(r["full_wall_s"] for r in main)]
                   + [r["worker_end_s"] - r["wall_s"] + r["full_wall_s"] for r in workers])
    measured = sum(r["wall_s"] for r in outer) + fit_wall
    return measured, sum(r["full_wall_s"] for r in outer) + full_fit


def assisted_full_wall(row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> float:
    """Full-epochs wall of an assisted worker stage (jobs = 2, avood_core.train.strategy): its solo rate until the main process's full chain ends, then
    the assisted rate (dividing by the factor would keep the scaled run's share of assisted steps)."""
    a, f, steps = row["assist"], row["epochs_factor"], row["steps"]
    solo_steps, solo_s = (steps or 0) - a["steps"], row["wall_s"] - a["wall_s"]
    if solo_steps <= 0 or solo_s <= 0 or a["steps"] <= 0 or a["wall_s"] <= 0:
        return row["full_wall_s"]  # no rate to extrapolate one of the phases from
    main = main_rows(rows)
    fit_start = row["worker_end_s"] - row["wall_s"]
    join = sum(r["full_wall_s"] for r in main) + a["start_s"] - sum(r["wall_s"] for r in main) - fit_start
    solo_rate, pair_rate, total = solo_steps / solo_s, a["steps"] / a["wall_s"], steps / f
    if total <= solo_rate * join:
        return total / solo_rate
    join = max(join, 0.0)
    return join + (total - solo_rate * join) / pair_rate
