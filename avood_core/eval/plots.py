"""Figures of a run: gate ROC (paper Fig. 3), threshold sweep (supplement Fig. 1), t-SNE (Fig. 2); matplotlib on
an Agg canvas (no pyplot), imported lazily; each figure written atomically as ``<stem>.png`` and ``.svg``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avood_core.eval import metrics
from avood_core.util.io import atomic_write

DPI = 130
_COLORS = {"HM": "#1f77b4", "TPR": "#2ca02c", "FPR": "#ff7f0e"}
# supplement Fig. 2 groups: seen/unseen × correctly/incorrectly classified
_TSNE_GROUPS = (
    ("Seen True", True, True, "#1f77b4", "o"),
    ("Seen False", True, False, "#9ecae1", "x"),
    ("Unseen True", False, True, "#d62728", "o"),
    ("Unseen False", False, False, "#fcae91", "x"),
)


def _figure(width: float, height: float):
    """A Figure on an explicit Agg canvas (the headless backend), with stable SVG output."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path_stem) -> tuple[Path, Path]:
    """Write ``fig`` to ``<path_stem>.png`` and ``.svg`` atomically; return both paths."""
    import matplotlib

    stem = Path(path_stem)
    with matplotlib.rc_context({"svg.hashsalt": "avood", "svg.fonttype": "path"}):
        png, svg = (atomic_write(stem.with_name(f"{stem.name}.{fmt}"),  # svg without a timestamp: same run, same bytes
                                 lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI,
                                                                  metadata={"Date": None} if fmt == "svg" else None))
                    for fmt in ("png", "svg"))
    return png, svg


def plot_roc(curves: dict, path_stem, operating_points: dict | None = None, title: str = "OOD gate ROC (seen = positive)"):
    """ROC curves (name -> ``(seen_score, is_seen)``) with their AUC and the chance diagonal;
    ``operating_points`` (name -> ``(FPR, TPR)`` in percent) are drawn as dots."""
    fig = _figure(4.9, 4.7)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance (AUC 50.00)")
    for i, (name, (seen_score, is_seen)) in enumerate(curves.items()):
        fpr, tpr, _ = metrics.roc_curve(seen_score, is_seen)
        auc = metrics.auroc(seen_score, is_seen)
        (line,) = ax.plot(fpr, tpr, lw=2, color=f"C{i}", label=f"{name} (AUC {auc:.2f})")
        if operating_points and name in operating_points:
            x, y = operating_points[name]
            ax.plot([x / 100], [y / 100], "o", color=line.get_color(), mec="k", ms=7, zorder=5, clip_on=False)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="FPR (unseen routed to the seen branch)",
           ylabel="TPR (seen routed to the seen branch)", title=title, aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path_stem)


def plot_threshold_sweep(outputs: dict, path_stem):
    """HM (left axis), TPR and FPR (right axis) against the OOD threshold (supplement Fig. 1): a red dot at
    the detector's own threshold, a grey marker at the best HM; log x when the scores span two decades."""
    sweep = metrics.threshold_sweep(outputs)
    t = sweep["threshold"]
    log_x = metrics.spans_decades(outputs["score"]) and bool((t > 0).all())
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    ax.plot(t, sweep["HM"], color=_COLORS["HM"], lw=2, label="HM")
    ax2.plot(t, sweep["TPR"], color=_COLORS["TPR"], lw=1.5, ls="--", label="TPR")
    ax2.plot(t, sweep["FPR"], color=_COLORS["FPR"], lw=1.5, ls="-.", label="FPR")
    if np.isfinite(sweep["HM"]).any():
        b = int(np.nanargmax(sweep["HM"]))
        ax.plot([t[b]], [sweep["HM"][b]], marker="^", color="0.35", ms=7, ls="none",
                label=f"best HM {sweep['HM'][b]:.2f} @ {t[b]:.3g}")
    if "threshold" in outputs:
        chosen = float(np.asarray(outputs["threshold"]))
        at = metrics.threshold_sweep(outputs, [chosen])
        hm = float(at["HM"][0])
        ax.plot([chosen], [hm], "o", color="red", ms=8, zorder=6, label=f"mean threshold {chosen:.3g}")
        ax.annotate(f"mean threshold\nHM {hm:.2f}", (chosen, hm), xytext=(8, -28), textcoords="offset points",
                    color="red", fontsize=8)
    ax.set(xscale="log" if log_x else "linear", ylim=(0, None), title="HM, TPR and FPR against the gate threshold",
           xlabel="OOD threshold (routed seen iff score < threshold)" + (", log scale" if log_x else ""))
    ax.set_ylabel("HM (%)", color=_COLORS["HM"])
    ax2.set(ylabel="TPR / FPR (%)", ylim=(0, 101))
    ax.grid(alpha=0.3)
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="outside lower center", ncol=3, fontsize=8)
    return save_figure(fig, path_stem)


def plot_tsne(features_2d, is_seen, correct, path_stem, baseline_correct=None):
    """2-D embedding coloured by seen/unseen × classified right/wrong (supplement Fig. 2); with
    ``baseline_correct`` (the no-gate baseline) a second panel beside it, as the paper compares them."""
    xy = np.asarray(features_2d, dtype=np.float64)
    is_seen = np.asarray(is_seen, dtype=bool)
    panels = [("AV-OOD (gated)", np.asarray(correct, dtype=bool))]
    if baseline_correct is not None:
        panels.insert(0, ("no-gate baseline", np.asarray(baseline_correct, dtype=bool)))
    fig = _figure(5.0 * len(panels), 4.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, ok) in zip(axes, panels):
        for label, seen, right, color, marker in _TSNE_GROUPS:
            m = (is_seen == seen) & (ok == right)
            ax.scatter(xy[m, 0], xy[m, 1], s=9, c=color, marker=marker, linewidths=0.8,
                       alpha=0.85, label=f"{label} ({int(m.sum())})")
        acc = 100.0 * ok.mean() if len(ok) else float("nan")
        ax.set_title(f"{name}: {acc:.1f} % of {len(ok)} samples right", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=7, markerscale=1.5,
                  frameon=False, handletextpad=0.2, columnspacing=0.8)
    fig.suptitle("t-SNE of the test features", fontsize=11)
    return save_figure(fig, path_stem)


def tsne_embed(x, cap: int = 1500, seed: int = 0, threads: int | None = 1):
    """``(coords, indices)``: sklearn's t-SNE (perplexity 30) after a 50-dim PCA of at most ``cap`` random rows;
    ``threads`` caps OpenMP/BLAS."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    n = len(x)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(cap, n), replace=False)).astype(np.int64)
    if len(idx) < 4:  # too few points for t-SNE; lay them on a line
        return np.c_[np.arange(len(idx)), np.zeros(len(idx))].astype(np.float32), idx
    with threadpool_limits(limits=threads):
        z = x[idx]
        if z.shape[1] > 50 and len(idx) > 50:
            z = PCA(50, random_state=seed).fit_transform(z)
        tsne = TSNE(n_components=2, init="pca", learning_rate="auto", random_state=seed,
                    perplexity=min(30.0, (len(idx) - 1) / 3.0), n_jobs=threads, max_iter=1000)
        coords = tsne.fit_transform(z).astype(np.float32)
    return coords, idx


def plot_training_curves(records: list[dict], path_stem, title: str) -> bool:
    """One panel per metric (loss terms, lr) of ``metrics/<kind>.jsonl`` over epochs (steps with fewer
    than two epochs); False, nothing written, when there is nothing to draw."""
    from matplotlib.ticker import MaxNLocator

    skip = {"kind", "stage", "event", "epoch", "step", "time"}
    epochs = [r for r in records if r.get("event") == "epoch"]
    steps = [r for r in records if r.get("event") == "step"]
    rows, axis = (epochs, "epoch") if len(epochs) >= 2 or not steps else (steps, "step")
    names = sorted({k for r in rows for k, v in r.items() if k not in skip and isinstance(v, (int, float))},
                   key=lambda k: (k == "lr", k))
    if not rows or not names:
        return False
    cols = min(3, len(names))
    nrows = -(-len(names) // cols)
    fig = _figure(3.2 * cols, 2.4 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        pts = [(r[axis], r[name]) for r in rows if isinstance(r.get(name), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None, markersize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(axis, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if name == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path_stem)
    return True
