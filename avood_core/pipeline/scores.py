"""The headline metrics of a routed pipeline (paper §4.1) from its per-sample outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avood_core.eval import metrics


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`Pipeline.evaluate <avood_core.pipeline.Pipeline.evaluate>` returns."""

    metrics: dict
    """The metrics, as ``results.json`` stores them (``evaluation.metrics["HM"]``)."""
    outputs: dict[str, Tensor]
    """The per-sample arrays they came from (``predictions.npz``)."""


def scores_from_outputs(out: dict) -> dict:
    """Every headline metric from the arrays of :meth:`Pipeline.outputs` (see avood_core.eval.metrics)."""
    labels, seen_c, unseen_c = out["labels"], out["seen_classes"], out["unseen_classes"]
    is_unseen = torch.isin(torch.as_tensor(labels), torch.as_tensor(unseen_c))
    is_seen = ~is_unseen
    return {
        **metrics.gzsl_scores(out["pred"], labels, seen_c, unseen_c),
        "ZSL": metrics.mean_class_accuracy(out["unseen_pred"][is_unseen], labels[is_unseen], unseen_c),
        "seen_classifier_acc": metrics.mean_class_accuracy(out["seen_pred"][is_seen], labels[is_seen], seen_c),
        "gate": {
            **metrics.gate_scores(out["score"], out["routed_seen"], labels, seen_c),
            "threshold": float(out["threshold"]),
            "routing": metrics.routing_counts(out["routed_seen"], labels, seen_c),
        },
        "baseline_no_gate": metrics.gzsl_scores(out["baseline_pred"], labels, seen_c, unseen_c),
    }
