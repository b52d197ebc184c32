"""Binary OOD detector ``O_bin`` (paper §3.2 eq. 3, Table 2 "OOD-binary"): one logit ``z = O(a ⊕ v)``,
``L_bin = BCE(σ(z), 1)`` on real seen + ``BCE(σ(z̃), 0)`` on synthetic unseen (the entropy detector's batches);
score ``−z``, threshold ``−logit(threshold_prob)``, so seen iff ``σ(z) > threshold_prob`` (docs/plugins.md)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from avood_core.fusion import FusionParams
from avood_core.protocols import FitContext, OODDetector
from avood_core.task import AVSamples
from avood_core.train.loop import fit_loop
from avood_plugins._mlp import DetectorMLPParams, MLPComponent, detector_data, fused_mlp, infer, mlp_training


class BinaryDetector(MLPComponent, OODDetector):
    """BCE seen-vs-synthetic-unseen gate (paper eq. 3); score = negative logit of "seen"."""

    class Params(DetectorMLPParams, FusionParams):
        threshold_prob: float = Field(0.5, gt=0, lt=1,
            description="A sample is routed seen iff sigmoid(O(x)) > threshold_prob; the OOD threshold is "
            "-logit(threshold_prob) on the score -O(x) (0.5 -> threshold 0).")

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 8, "batch_size": 128, "lr": 2e-3}
    saved: ClassVar[tuple[str, ...]] = ("threshold",)

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params.threshold_prob
        self.threshold: float = math.log((1.0 - p) / p)

    def make_net(self, in_dim: int, audio_dim: int | None = None) -> nn.Module:  # type: ignore[override]
        return fused_mlp(self, in_dim, audio_dim, 1)

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "BinaryDetector":
        p = self.params
        x, batches, forward = detector_data(self, seen, synthetic_unseen, ctx)

        def step(idx: Tensor) -> Tensor:
            b = len(idx)
            z = forward(idx).squeeze(1)
            bce_seen = F.binary_cross_entropy_with_logits(z[:b], torch.ones_like(z[:b]))
            bce_unseen = F.binary_cross_entropy_with_logits(z[b:], torch.zeros_like(z[b:]))
            return torch.stack([bce_seen + bce_unseen, bce_seen, bce_unseen])

        fit_loop(self, ctx, mlp_training(self, len(x), step, ("loss", "bce_seen", "bce_unseen"), "lower the detector lr",
                                         batches, rows_per_sample=2))
        ctx.log(f"{self.label}: threshold {self.threshold:.4g} (seen iff sigmoid > {p.threshold_prob})")
        return self

    def logits(self, samples: AVSamples) -> Tensor:
        """``O(a ⊕ v)`` per sample (the seen logit), float32 on CPU."""
        return infer(self, samples.x, lambda z: z.squeeze(1)).cpu()

    def seen_probability(self, samples: AVSamples) -> Tensor:
        """``σ(O(x))``: the detector's probability that each sample is of a seen class."""
        return torch.sigmoid(self.logits(samples))

    def score(self, samples: AVSamples) -> Tensor:
        """OOD score = ``-O(x)`` (higher = more likely unseen); seen iff below ``threshold``."""
        return -self.logits(samples)
