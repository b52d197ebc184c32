"""Binary OOD detector ``O_bin`` (paper §3.2 eq. 3, Table 2 "OOD-binary").

An MLP with the entropy detector's shape but one output logit ``z = O(x)`` over the fused
feature ``x = a ⊕ v`` (``fusion`` param, :mod:`avood_core.fusion`): ``in -> 512 LeakyReLU -> 128 LeakyReLU -> 1``. ``σ(z)`` is the
probability that a sample is *seen* (in-distribution). Each step draws ``batch_size // 2`` real
seen ``x`` and as many synthetic unseen ``x̃`` (the entropy detector's loop; the reference code
has no binary gate) and minimises (eq. 3, means over each half)

    L_bin = BCE(σ(O(x)), 1) + BCE(σ(O(x̃)), 0).

Score and threshold (the pipeline routes a sample seen iff ``score < threshold``):

* ``score(x) = -z = -O(x)``, the negative logit: an OOD score, higher = more likely unseen.
  The logit is used rather than ``1 - σ(z)`` because it keeps the ranking of confident
  samples that the sigmoid would saturate to ties (the ROC and AUC are otherwise the same:
  ``1 - σ(z)`` is a monotone function of ``-z``).
* ``threshold = -logit(threshold_prob) = log((1 - p) / p)``, so that
  ``score < threshold ⇔ z > logit(p) ⇔ σ(z) > p``: seen iff the seen probability exceeds
  ``threshold_prob``. The default ``p = 0.5`` gives ``threshold = 0``, the plain decision
  rule of a binary classifier; the paper tunes nothing else for this gate.

Hyperparameters default to UCF (those of the entropy detector, paper §4.2): Adam lr 9e-4,
betas (0.5, 0.999), batch 16, 80 epochs, ReduceLROnPlateau(0.8, 5) on the epoch loss.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from avood_core.errors import DataError
from avood_core.fusion import FusionParams, build_fused_mlp, input_x
from avood_core.train.precision import autocast
from avood_core.protocols import FitContext, OODDetector, TorchComponent
from avood_core.task import AVSamples
from avood_core.train.loop import fit_loop
from avood_plugins._mlp import DetectorBatches, DetectorMLPParams, build_mlp, infer, mlp_training


class BinaryDetector(TorchComponent, OODDetector):
    """BCE seen-vs-synthetic-unseen gate (paper eq. 3); score = negative logit of "seen"."""

    class Params(DetectorMLPParams, FusionParams):
        threshold_prob: float = Field(
            0.5, gt=0, lt=1,
            description="A sample is routed seen iff sigmoid(O(x)) > threshold_prob; the OOD threshold is "
            "-logit(threshold_prob) on the score -O(x) (0.5 -> threshold 0).",
        )

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 8, "batch_size": 128, "lr": 2e-3}

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params.threshold_prob
        self.threshold: float = math.log((1.0 - p) / p)

    def make_net(self, in_dim: int, audio_dim: int | None = None) -> nn.Module:  # type: ignore[override]
        p = self.params
        return build_fused_mlp(p, in_dim, audio_dim, lambda d: build_mlp(d, p.hidden, 1, p.negative_slope), "detector")

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "BinaryDetector":
        p = self.params
        if len(seen) == 0 or len(synthetic_unseen) == 0:
            raise DataError(f"{self.label}: needs real seen and synthetic unseen samples; run the generator first")
        dev = ctx.device
        x = seen.x.to(dev)
        x_syn = input_x(synthetic_unseen, p.fusion, seen.audio_dim, seen.video_dim, self.label).to(dev)
        if x.shape[1] != x_syn.shape[1]:
            raise DataError(f"{self.label}: seen x has {x.shape[1]} dims but synthetic x has {x_syn.shape[1]}")
        net = self.build(dev, in_dim=x.shape[1], audio_dim=seen.audio_dim)
        batches = DetectorBatches(len(x), len(x_syn), p.batch_size, dev, p.row_sampling)

        def step(idx: Tensor) -> Tensor:
            b = len(idx)
            with autocast(dev, p.precision):
                z = net(torch.cat([x[idx], x_syn[batches.take_synthetic(b)]]))
            z = z.float().squeeze(1)
            bce_seen = F.binary_cross_entropy_with_logits(z[:b], torch.ones_like(z[:b]))
            bce_unseen = F.binary_cross_entropy_with_logits(z[b:], torch.zeros_like(z[b:]))
            return torch.stack([bce_seen + bce_unseen, bce_seen, bce_unseen])

        fit_loop(self, ctx, mlp_training(self, len(x), step, ("loss", "bce_seen", "bce_unseen"), "lower the detector lr",
                                         batches, rows_per_sample=2))
        self.threshold = math.log((1.0 - p.threshold_prob) / p.threshold_prob)
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

    def extra_scalars(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        self.threshold = float(scalars["threshold"])
