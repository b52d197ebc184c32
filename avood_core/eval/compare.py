"""``avood compare A B``: is B's S / U / HM / ZSL / gate AUROC different from A's, or noise? Paired by seed or by
clip (paired stratified bootstrap); method and verdicts in docs/statistics.md, "avood compare A B"."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from avood_core.errors import AvoodError
from avood_core.eval import stats
from avood_core.eval.render import md_table
from avood_core.util.json_read import read_json
from avood_core.util.nested import get_path

METRICS = {"S": "S", "U": "U", "HM": "HM", "ZSL": "ZSL", "AUROC": "gate.AUROC"}
NO_DIFFERENCE = "no difference detected at this n"
TASK_KEYS = ("name", "classes", "seen_classes", "unseen_classes", "test")


@dataclass
class Side:
    """One side of a comparison: seed → run folder and that run's metrics."""

    label: str
    runs: dict[int, Path] = field(default_factory=dict)
    metrics: dict[int, dict] = field(default_factory=dict)
    task: dict | None = None


_read_json = functools.partial(read_json, fix="rerun the command that wrote it")


def _metric(m: dict, path: str) -> float:
    v = get_path(m, path)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def load_side(path: Path, config: str | None = None) -> Side:
    """The runs of ``path``: a sweep folder (its only config row, or ``config``), a seed set or a run."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        sweep = _read_json(path / "sweep.json")
        rows = [r for r in sweep.get("rows", []) if r.get("status") == "done"]
        labels = list(dict.fromkeys(r.get("config") for r in rows))
        if config is None and len(labels) != 1:
            raise AvoodError(f"sweep '{path}' has {len(labels)} finished configs ({', '.join(map(str, labels))}); "
                             "pick one with --config-a/--config-b")
        chosen = config if config is not None else labels[0]
        if chosen not in labels:
            raise AvoodError(f"sweep '{path}' has no finished config '{chosen}'; valid: {', '.join(map(str, labels))}")
        side = Side(f"{path} [{chosen}]")
        with _malformed(path / "sweep.json"):
            for rec in sweep.get("trials", []):
                if rec.get("label") == chosen and rec.get("status") == "done":
                    side.runs[int(rec["seed"])] = _inside(path, rec["run_dir"], path / "sweep.json")
                    side.metrics[int(rec["seed"])] = rec.get("metrics") or {}
        return side
    if config is not None:
        raise AvoodError(f"--config-a/--config-b name a row of a sweep folder; '{path}' holds no sweep.json")
    if not (path / "results.json").is_file():
        raise AvoodError(f"'{path}' holds no results.json or sweep.json; pass a folder written by 'avood run' "
                         "(with or without --seeds) or 'avood sweep'")
    results = _read_json(path / "results.json")
    with _malformed(path / "results.json"):
        if "seeds" in results:
            side = Side(str(path), task=results.get("task"))
            for entry in results["seeds"]["per_seed"]:
                seed = int(entry["seed"])
                side.runs[seed] = _inside(path, str(entry.get("run_dir", f"seed-{seed}")), path / "results.json")
                side.metrics[seed] = entry.get("metrics") or {}
            return side
        if not isinstance(results.get("metrics"), dict):
            raise AvoodError(f"'{path / 'results.json'}' holds no metrics; pass a finished run folder")
        seed = int(results.get("seed", 0))
        return Side(str(path), {seed: path}, {seed: results["metrics"]}, results.get("task"))


@contextlib.contextmanager
def _malformed(file: Path) -> Iterator[None]:
    """A missing or mistyped field of ``file`` as one error line."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AvoodError(f"'{file}' is malformed ({type(exc).__name__}: {exc}); rerun the command that wrote it") from None


def _inside(folder: Path, relative: str, file: Path) -> Path:
    """``folder / relative``, refused when it leads outside ``folder`` (a hand-edited ``file``)."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise AvoodError(f"'{file}' names the run folder '{relative}' outside '{folder}'; rerun the command that wrote it")
    return folder / relative


def _task_of(side: Side, seed: int) -> dict:
    results = side.runs[seed] / "results.json"
    return (_read_json(results).get("task") if results.is_file() else side.task) or {}


def _check_same_task(a: Side, b: Side, pairs: list[tuple[int, int]]) -> None:
    """Each pair's runs name the same task and test split (results.json's ``task``)."""
    for sa, sb in pairs:
        ta, tb = _task_of(a, sa), _task_of(b, sb)
        for key in TASK_KEYS:
            if key in ta and key in tb and ta[key] != tb[key]:
                raise AvoodError(f"A and B are runs of different tasks (task.{key}: {ta[key]} vs {tb[key]}); "
                                 "compare runs of the same dataset and split")


def _row(a: float, b: float, diff: float, ci: list | None, p: float, level: float) -> dict:
    """One metric's comparison. Verdict: no difference when the interval spans 0; a difference when the test
    agrees (p < 1 − level); else the interval's direction with the test's p (3 seeds cannot bring the exact
    sign-flip test below 0.25)."""
    direction = f"B {'higher' if diff > 0 else 'lower'} than A"
    if ci is None or not np.isfinite(p) or ci[0] <= 0.0 <= ci[1]:
        verdict = NO_DIFFERENCE
    else:
        verdict = (direction if p < 1.0 - level
                   else f"{direction} by the interval only (test p = {p:.2g}: too few pairs for the test)")
    return {"a": a, "b": b, "diff": diff, "ci": ci, "p": p, "verdict": verdict}


def _by_seed(a: Side, b: Side, seeds: list[int], level: float) -> dict:
    out = {}
    for name, path in METRICS.items():
        va = np.array([_metric(a.metrics[s], path) for s in seeds])
        vb = np.array([_metric(b.metrics[s], path) for s in seeds])
        if not (np.isfinite(va).all() and np.isfinite(vb).all()):
            continue
        d = stats.mean_interval(vb - va, level)
        out[name] = _row(float(va.mean()), float(vb.mean()), d["mean"], d["ci"], stats.sign_flip_p(vb - va), level)
    return out


def _pair_layout(a: Side, b: Side, sa: int, sb: int) -> tuple[stats.Resampler, dict, dict]:
    """The class layout of one pair's test clips and both runs' arrays, after checking they are the same clips."""
    from avood_core.run.files import read_predictions

    pa, pb = (read_predictions(run) for run in (a.runs[sa], b.runs[sb]))
    for run, out in ((a.runs[sa], pa), (b.runs[sb], pb)):
        if out is None:
            raise AvoodError(f"'{run / 'predictions.npz'}' not found; pairing by clip needs the per-clip predictions "
                             "of both runs (written by 'avood run')")
    if not np.array_equal(pa["labels"], pb["labels"]) or any(
            not np.array_equal(np.sort(pa[k]), np.sort(pb[k])) for k in ("seen_classes", "unseen_classes")):
        raise AvoodError(f"'{b.runs[sb] / 'predictions.npz'}' holds other test clips than "
                         f"'{a.runs[sa] / 'predictions.npz'}'; pairing by clip needs both runs evaluated on the same "
                         "test split")
    layout = stats.Resampler(pa["labels"], pa["seen_classes"], pa["unseen_classes"])
    return layout, layout.prepare(pa), layout.prepare(pb)


def _by_clip(a: Side, b: Side, pairs: list[tuple[int, int]], level: float, resamples: int, seed: int) -> dict:
    """Each pair's clips resampled with one set of counts for A and B; the differences averaged over the pairs."""
    triples = [_pair_layout(a, b, sa, sb) for sa, sb in pairs]

    def values(blocks: list[np.ndarray]) -> tuple[dict, dict]:
        per = [(lay.metrics(qa, w), lay.metrics(qb, w)) for (lay, qa, qb), w in zip(triples, blocks)]
        return ({k: np.mean([ma[k] for ma, _ in per], axis=0) for k in METRICS},
                {k: np.mean([mb[k] for _, mb in per], axis=0) for k in METRICS})

    va, vb = values([np.ones((len(lay.labels), 1)) for lay, _, _ in triples])  # the test splits themselves
    rng = stats.rng_for(seed)
    resampled = [values(list(blocks)) for blocks in zip(*(lay.counts(resamples, rng) for lay, _, _ in triples))]
    out = {}
    for name in METRICS:
        d = np.concatenate([rb[name] - ra[name] for ra, rb in resampled])
        diff = float(vb[name][0] - va[name][0])
        if not np.isfinite(diff) or not np.isfinite(d).all():
            continue
        p = min(1.0, 2.0 * (min(int((d <= 0).sum()), int((d >= 0).sum())) + 1) / (len(d) + 1))
        out[name] = _row(float(va[name][0]), float(vb[name][0]), diff, stats.percentile_interval(d, level), p, level)
    return out


def compare(path_a: Path, path_b: Path, config_a: str | None = None, config_b: str | None = None,
            pairing: str = "auto", level: float = 0.95, resamples: int = stats.RESAMPLES, seed: int = 0) -> dict:
    """The paired comparison of B against A (the ``--json`` document of ``avood compare``)."""
    if pairing not in ("auto", "seed", "clip"):
        raise AvoodError(f"--pair '{pairing}': valid: auto, seed, clip")
    a, b = load_side(path_a, config_a), load_side(path_b, config_b)
    common = sorted(set(a.runs) & set(b.runs))
    if pairing == "seed" and len(common) < 2:
        raise AvoodError(f"--pair seed needs at least 2 seeds in both A and B (common: {common or 'none'}); "
                         "use --pair clip")
    by_seed = pairing == "seed" or (pairing == "auto" and len(common) >= 2)
    if common:
        pairs = [(s, s) for s in common]
    elif len(a.runs) == 1 and len(b.runs) == 1:
        pairs = [(next(iter(a.runs)), next(iter(b.runs)))]
    else:
        raise AvoodError(f"A (seeds {sorted(a.runs)}) and B (seeds {sorted(b.runs)}) share no seed; compare "
                         "seed sets with the same seeds, or one run folder of each")
    _check_same_task(a, b, pairs)
    if by_seed:
        how, result = "seed", _by_seed(a, b, common, level)
        interval = f"Student t interval of the mean paired difference over {len(common)} seeds"
        p_method = (f"exact two-sided sign-flip permutation test over the {2 ** len(common)} sign patterns "
                    f"(smallest attainable p: {2 / 2 ** len(common):.3g})" if len(common) <= stats.EXACT_FLIPS else
                    f"two-sided sign-flip permutation test, {stats.FLIP_DRAWS} random sign patterns (seed 0)")
    else:
        how, result = "clip", _by_clip(a, b, pairs, level, resamples, seed)
        interval = (f"percentile interval of {resamples} paired stratified bootstrap resamples of the test clips "
                    f"(seed {seed})" + (f", difference averaged over {len(pairs)} seed pairs" if len(pairs) > 1 else ""))
        p_method = "paired bootstrap: twice the share of resampled differences on the far side of 0 (+1 corrected)"
    return {"a": a.label, "b": b.label, "pairing": how, "pairs": [list(p) for p in pairs], "level": level,
            "interval_method": interval, "p_method": p_method, "metrics": result}


def markdown(doc: dict) -> str:
    """The comparison as a markdown table with its methods underneath."""
    n = len(doc["pairs"])
    unit = f"{n} seed{'s' if n > 1 else ''}" if doc["pairing"] == "seed" else f"{n} run pair{'s' if n > 1 else ''}"
    signed = lambda x: f"{round(x, 2) + 0.0:+.2f}"  # noqa: E731  (no "-0.00")
    body = [[name, f"{r['a']:.2f}", f"{r['b']:.2f}", signed(r["diff"]),
             f"[{signed(r['ci'][0])}, {signed(r['ci'][1])}]" if r["ci"] else "–", f"{r['p']:.3g}", r["verdict"]]
            for name, r in doc["metrics"].items()]
    lines = [f"**avood compare** — B: {doc['b']} against A: {doc['a']}; paired by {doc['pairing']} ({unit})", "",
             md_table(["Metric", "A", "B", "B − A", f"{100 * doc['level']:.0f} % interval", "p", "Verdict"], body,
                      "lrrrrrl"),
             "", f"Interval: {doc['interval_method']}. p: {doc['p_method']}. \"No difference detected\" when the "
             f"interval spans 0; a difference when it excludes 0 and p < {1 - doc['level']:.2g}. Metrics in percent "
             "(paper §4.1); AUROC is the gate's (seen = positive)."]
    return "\n".join(lines) + "\n"
