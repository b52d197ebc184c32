"""``avood ablate fusion``: the framework's fusion axis (paper Fig. 1, "Fusion 1-5"), one stage at a time.

The paper fixes concatenation ``a ⊕ v`` for the generator, the OOD detector and the seen
classifier and cross-attention (Fusion-5) in the unseen classifier (Fig. 2); its Fig. 1 leaves
each stage's fusion open. Each row here changes the fusion of one stage from the paper's
configuration (first row) and keeps the others (see :data:`STAGE_FUSIONS`):

* **detector** / **seen**: every built-in fusion besides ``concat``; ``mean`` and ``sum`` need
  equal audio and video dims (512 and 512 on the benchmarks and the embedded task).
* **generator**: ``audio`` and ``video`` (a generator models a splittable fusion only), with the
  detector on the same modality, since it trains on what the generator synthesizes.
* **unseen**: only a two-stream fusion fits the cross-attention embedding network, and
  ``cross_attention`` is the only built-in one, so it has no row of its own.

Columns: S, U, HM (routed at the gate's own threshold), ZSL and the gate's AUROC. Components a
row does not change are fitted once and shared (:class:`avood_core.eval.ablate.FitCache`).
"""

from __future__ import annotations

COLUMNS = ("S", "U", "HM", "ZSL", "AUC")
PAPER_LABEL = "paper: concat (unseen: cross_attention)"
STAGE_FUSIONS: dict[str, tuple[str, ...]] = {
    "detector": ("audio", "video", "mean", "sum", "gated", "cross_attention"),
    "seen": ("audio", "video", "mean", "sum", "gated", "cross_attention"),
    "generator": ("audio", "video"),
}


def rows():
    """The table's rows (``Row`` objects of :mod:`avood_core.eval.ablate`): the paper's, then one per stage × fusion."""
    from avood_core.eval.ablate import Row

    out = [Row(PAPER_LABEL)]
    for stage, fusions in STAGE_FUSIONS.items():
        for fusion in fusions:
            params = {stage: {"fusion": fusion}}
            if stage == "generator":  # the gate must read what the generator synthesizes
                params["detector"] = {"fusion": fusion}
                label = f"generator + detector: {fusion}"
            else:
                label = f"{stage}: {fusion}"
            out.append(Row(label, params=params))
    return tuple(out)
