"""Binary OOD detector ``O_bin`` (paper §3.2 eq. 3, Table 2 "OOD-binary"; SPEC §3).

An MLP with the entropy detector's shape but one output logit ``z = O(x)`` over the fused
feature ``x = a ⊕ v``: ``in -> 512 LeakyReLU -> 128 LeakyReLU -> 1``. ``σ(z)`` is the
probability that a sample is *seen* (in-distribution). Each step draws a batch of real seen
``x`` and as many synthetic unseen ``x̃`` and minimises (eq. 3, means over each half)

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

Hyperparameters default to UCF (those of the entropy detector, SPEC §4): Adam lr 9e-4,
betas (0.5, 0.999), batch 16, 80 epochs, ReduceLROnPlateau(0.8, 5) on the epoch loss.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core.errors import DataError
from avood_core.protocols import FitContext, OODDetector, TorchComponent
from avood_core.task import AVSamples
from avood_core.training import check_finite, shuffled_batches

_CHUNK = 65536  # rows per inference forward pass


class BinaryDetector(TorchComponent, OODDetector):
    """BCE seen-vs-synthetic-unseen gate (paper eq. 3); score = negative logit of "seen"."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        hidden: tuple[int, ...] = Field((512, 128), description="Hidden layer widths of the MLP (paper: 512, 128, as the entropy detector).")
        negative_slope: float = Field(0.01, ge=0, description="LeakyReLU negative slope of the hidden layers (torch default).")
        lr: float = Field(9e-4, gt=0, description="Adam learning rate; per dataset, default = UCF (VGGSound 1e-3, ActivityNet 5e-3).")
        betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas.")
        epochs: int = Field(80, ge=1, description="Training epochs; one epoch = one pass over the real seen samples.")
        batch_size: int = Field(16, ge=1, description="Real seen samples per step (as many synthetic unseen join them); per dataset, default = UCF (VGGSound 6900, ActivityNet 64).")
        lr_factor: float = Field(0.8, gt=0, lt=1, description="ReduceLROnPlateau factor, stepped on the epoch's mean loss.")
        lr_patience: int = Field(5, ge=0, description="ReduceLROnPlateau patience in epochs.")
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
        self.history: list[dict[str, float]] = []

    def make_net(self, in_dim: int) -> nn.Module:  # type: ignore[override]
        layers: list[nn.Module] = []
        width = in_dim
        for h in self.params.hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(self.params.negative_slope)]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "BinaryDetector":
        p = self.params
        if len(seen) == 0 or len(synthetic_unseen) == 0:
            raise DataError("binary detector: needs real seen and synthetic unseen samples; run the generator first")
        dev = ctx.device
        x, x_syn = seen.x.to(dev), synthetic_unseen.x.to(dev)
        if x.shape[1] != x_syn.shape[1]:
            raise DataError(f"binary detector: seen x has {x.shape[1]} dims but synthetic x has {x_syn.shape[1]}")
        net = self.build(dev, in_dim=x.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=p.lr, betas=p.betas)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=p.lr_factor, patience=p.lr_patience)

        n, m = len(x), len(x_syn)
        steps = math.ceil(n / p.batch_size)
        bar = ctx.track(p.epochs * steps, "detector")
        self.history = []
        try:
            for epoch in range(p.epochs):
                net.train()
                # Synthetic indices: passes over shuffled x̃, cycled (with replacement if few).
                syn_perm = torch.cat([torch.randperm(m) for _ in range(math.ceil(n / m))])[:n].to(dev)
                sums = torch.zeros(3, device=dev)
                offset = 0
                for idx in shuffled_batches(n, p.batch_size):
                    b = len(idx)
                    sidx = syn_perm[offset : offset + b]
                    offset += b
                    z = net(torch.cat([x[idx.to(dev)], x_syn[sidx]])).squeeze(1)
                    bce_seen = F.binary_cross_entropy_with_logits(z[:b], torch.ones_like(z[:b]))
                    bce_unseen = F.binary_cross_entropy_with_logits(z[b:], torch.zeros_like(z[b:]))
                    loss = bce_seen + bce_unseen
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sums += torch.stack([loss, bce_seen, bce_unseen]).detach() * b
                means = sums / n
                check_finite(means[0], "detector binary", epoch + 1, "lower the detector lr")
                loss_m, seen_m, unseen_m = means.tolist()
                sched.step(loss_m)
                self.history.append({"epoch": epoch, "loss": loss_m, "bce_seen": seen_m, "bce_unseen": unseen_m,
                                     "lr": opt.param_groups[0]["lr"]})
                bar.update(steps, loss=loss_m)
        finally:
            bar.close()
        net.eval()
        self.threshold = math.log((1.0 - p.threshold_prob) / p.threshold_prob)
        ctx.log(f"binary detector: final loss {self.history[-1]['loss']:.4g}, threshold {self.threshold:.4g} "
                f"(seen iff sigmoid > {p.threshold_prob})")
        self.fitted = True
        return self

    def logits(self, samples: AVSamples) -> Tensor:
        """``O(a ⊕ v)`` per sample (the seen logit), float32 on CPU."""
        assert self.net is not None, "binary detector is not fitted"
        self.net.eval()
        with torch.inference_mode():
            out = [self.net(c.to(self.device)).squeeze(1) for c in samples.x.split(_CHUNK)]
        return torch.cat(out).cpu() if out else torch.empty(0)

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
