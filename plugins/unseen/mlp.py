"""MLP unseen classifier on generated unseen features (paper Table 3 "MLP"; reference ``src/classifier.py``
``CLASS_U``): ``CE(O(a ⊕ v), y)`` over ``ctx.synthetic`` only; candidates it never saw get ``-inf``
(docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import torch
from pydantic import Field
from torch import Tensor, nn

from avood_core.errors import DataError, NotFittedError
from avood_core.fusion import FusionParams, input_x
from avood_core.limits import LIMITS, Width
from avood_core.protocols import FitContext, UnseenClassifier
from avood_core.task import AVSamples
from avood_core.train.loop import fit_loop
from avood_plugins._mlp import ClassifierMLPParams, MLPComponent, ce_training, class_positions, fused_mlp


class MLPUnseenClassifier(MLPComponent, UnseenClassifier):
    """MLP over ``a ⊕ v`` trained on synthetic unseen features; predicts among the known candidates."""

    uses_synthetic: ClassVar[bool] = True

    class Params(ClassifierMLPParams, FusionParams):
        """The seen MLP's params and UCF defaults (one epoch = one pass over the synthetic features)."""

        hidden: tuple[Width | Literal["n_classes/2"], ...] = Field(  # type: ignore[assignment]
            ("n_classes/2", 256), max_length=LIMITS["layers"].high,
            description="Hidden layer widths; 'n_classes/2' = half the number of synthesized classes, "
            f"rounded down (reference CLASS_U: n_classes/2, 256). At most {LIMITS['layers'].high} layers of at "
            f"most {LIMITS['width'].high} units.",
        )
        dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each hidden layer (reference CLASS_U: none).")

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 30, "batch_size": 64, "lr": 2e-3}
    classes: Tensor = torch.empty(0, dtype=torch.long)  # set at fit (global ids of the logits' columns)
    saved: ClassVar[tuple[str, ...]] = ("classes",)

    def make_net(self, in_dim: int, n_classes: int, audio_dim: int | None = None) -> nn.Module:  # type: ignore[override]
        widths = [max(1, n_classes // 2) if h == "n_classes/2" else int(h) for h in self.params.hidden]
        return fused_mlp(self, in_dim, audio_dim, n_classes, widths, self.params.dropout)

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "MLPUnseenClassifier":
        p = self.params
        syn = ctx.synthetic
        if syn is None or len(syn) == 0:
            raise DataError(f"{self.label}: trains on generated unseen features but ctx.synthetic is empty; "
                            "fit it inside a pipeline (the generator runs first)")
        self.classes = torch.unique(syn.labels.cpu())
        if len(self.classes) < 2:
            raise DataError(f"{self.label}: the synthetic features cover fewer than two classes; nothing to classify")
        dev = ctx.device
        x = input_x(syn, p.fusion, train.audio_dim, train.video_dim, self.label).to(dev)  # real clips' layout
        y = torch.searchsorted(self.classes, syn.labels.cpu()).to(dev)
        self.build(dev, in_dim=x.shape[1], n_classes=len(self.classes), audio_dim=train.audio_dim)
        fit_loop(self, ctx, ce_training(self, x, y, "lower the unseen classifier lr"))
        return self

    def predict(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        """Global ids from ``candidates``; candidates the MLP never saw get logit ``-inf``."""
        if self.net is None:
            raise NotFittedError(self.label)
        cand = torch.as_tensor(candidates, dtype=torch.long).cpu()
        pos, known = class_positions(self.classes, cand)
        if not known.any():
            raise DataError(f"{self.label}: none of the {len(cand)} candidate classes was among the "
                            f"{len(self.classes)} synthesized classes it was trained on")
        logits = self.logits(samples)
        full = torch.full((len(logits), len(cand)), float("-inf"))
        full[:, known] = logits[:, pos[known]]
        return cand[full.argmax(dim=1)]
