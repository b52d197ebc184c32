"""The headline metrics of a routed pipeline (paper §4.1) from its per-sample outputs."""

from __future__ import annotations

import torch
from torch import Tensor

from avood_core.eval import metrics


class Evaluation(dict):
    """What :meth:`Pipeline.evaluate <avood_core.pipeline.Pipeline.evaluate>` returns: the metrics dict
    (``result["HM"]``, JSON as it is) plus ``outputs``, the per-sample arrays they came from."""

    def __init__(self, scores: dict, outputs: dict[str, Tensor]) -> None:
        super().__init__(scores)
        self.outputs = outputs

    @property
    def metrics(self) -> dict:
        """The metrics alone, as a plain dict (what ``results.json`` stores)."""
        return dict(self)


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
