"""Entropy OOD detector ``O_ent`` (paper §3.2, supplement §2.2; reference ``src/classifier_oodgzsl.py``):
``L = mean H(p(x)) − mean H(p(x̃)) + CE(O(x), y)`` on half real seen, half synthetic unseen batches; score = the
predictive entropy, seen iff below the threshold (by default the seen training clips' mean; docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from avood_core.errors import AvoodError
from avood_core.fusion import FusionParams
from avood_core.protocols import FitContext, OODDetector
from avood_core.task import AVSamples
from avood_core.train.loop import fit_loop
from avood_plugins._mlp import (DetectorMLPParams, MLPComponent, detector_data, entropy_from_logits, fused_mlp, infer,
                                mlp_training, seen_positions)


class EntropyDetector(MLPComponent, OODDetector):
    """Entropy-based seen/unseen gate (paper §3.2); score = predictive entropy."""

    class Params(DetectorMLPParams, FusionParams):
        threshold_rule: Literal["mean", "val_mean", "quantile", "reference_half"] = Field("mean",
            description="'mean': mean entropy of all seen training samples after training (paper supplement §2.2). "
            "'val_mean' (not in the paper): mean entropy of the seen-class clips of the selection split "
            "(ctx.val, never test); the detector fits its training clips closely, so their entropy "
            "understates that of unseen-during-training seen clips. Under the benchmark protocol it is "
            "selected in stage 1 and carried to stage 2 as 'quantile' (the share of seen training clips "
            "below it). 'quantile': the threshold_quantile quantile of the seen training entropies. "
            "'reference_half': compat switch reproducing reference defect 5 (docs/defects.md): the summed "
            "entropy of the seen clips drawn in the last epoch (about half of them) divided by their total "
            "count, about half the mean.")
        threshold_quantile: float | None = Field(None, ge=0, le=1,
            description="With threshold_rule 'quantile': the share of seen training clips routed seen "
            "(set by stage 1 from 'val_mean'; required with 'quantile').")

        @model_validator(mode="after")
        def _quantile_given(self) -> "EntropyDetector.Params":
            if self.threshold_rule == "quantile" and self.threshold_quantile is None:
                raise ValueError("threshold_rule 'quantile' needs threshold_quantile (0..1), e.g. 0.95")
            return self

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 8, "batch_size": 128, "lr": 2e-3}
    seen_classes: Tensor = torch.empty(0, dtype=torch.long)  # set at fit
    val_quantile: float | None = None  # val_mean: share of seen training clips below the threshold
    saved: ClassVar[tuple[str, ...]] = ("threshold", "seen_classes", "val_quantile")

    def make_net(self, in_dim: int, n_seen: int, audio_dim: int | None = None) -> nn.Module:  # type: ignore[override]
        return fused_mlp(self, in_dim, audio_dim, n_seen)

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "EntropyDetector":
        p = self.params
        self.seen_classes, pos = seen_positions(self, ctx, seen.labels)
        x, batches, forward = detector_data(self, seen, synthetic_unseen, ctx, n_seen=len(self.seen_classes))
        y, n = pos.to(x.device), len(x)
        last_epoch_seen = torch.zeros((), device=x.device)  # Σ H over the real rows drawn in the epoch

        def epoch() -> list[Tensor]:
            last_epoch_seen.zero_()
            return batches()

        def step(idx: Tensor) -> Tensor:
            b = len(idx)
            logits = forward(idx)
            h = entropy_from_logits(logits)
            last_epoch_seen.add_(h[:b].detach().sum())
            h_seen, h_unseen = h[:b].mean(), h[b:].mean()
            ce = F.cross_entropy(logits[:b], y[idx])
            return torch.stack([h_seen - h_unseen + ce, ce, h_seen, h_unseen])

        fit_loop(self, ctx, mlp_training(self, n, step, ("loss", "ce", "h_seen", "h_unseen"), "lower the detector lr",
                                         epoch, rows_per_sample=2, plateau=lambda rec, steps: -rec["h_unseen"] * steps))
        h_train = infer(self, x, entropy_from_logits)
        self.val_quantile = None
        if p.threshold_rule == "mean":
            self.threshold = float(h_train.double().mean())
        elif p.threshold_rule == "val_mean":
            val = ctx.val.where(self.seen_classes) if ctx.val is not None else None
            if val is None or len(val) == 0:
                raise AvoodError(f"{self.label}: threshold_rule 'val_mean' needs seen-class clips in the "
                                 "validation split (stage 1 of the benchmark protocol, or the embedded task's val); "
                                 "use threshold_rule = 'mean' or provide a val split")
            self.threshold = float(infer(self, val.x.to(x.device), entropy_from_logits).double().mean())
            self.val_quantile = float((h_train < self.threshold).double().mean())
        elif p.threshold_rule == "quantile":
            self.threshold = float(torch.quantile(h_train.double(), float(p.threshold_quantile)))
        else:  # reference_half: Σ H over the ~n/2 seen rows of the last epoch / n (reference defect 5)
            self.threshold = float(last_epoch_seen.double() / n)
        ctx.log(f"{self.label}: threshold ({p.threshold_rule}) = {self.threshold:.6g}")
        return self

    def selects_on_val(self) -> bool:
        """``val_mean`` reads the selection split, so stage 1 must run to carry it (as a quantile)."""
        return self.params.threshold_rule == "val_mean"

    def selected_params(self) -> dict[str, Any]:
        """``val_mean`` in stage 1 -> ``quantile`` with the share of seen training clips below the val mean."""
        if self.params.threshold_rule == "val_mean" and self.val_quantile is not None:
            return {"threshold_rule": "quantile", "threshold_quantile": self.val_quantile}
        return {}

    def entropy(self, samples: AVSamples) -> Tensor:
        """``H(softmax(O(a ⊕ v)))`` per sample, float32 on CPU: the OOD score (higher = more likely unseen)."""
        return infer(self, samples.x, entropy_from_logits).cpu()

    score = entropy
