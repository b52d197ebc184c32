"""MLP seen classifier (paper §3.3, §4.2; reference ``src/classifier.py`` ``CLASS_S``): ``CE(O(a ⊕ v), y)``;
the last epoch, or with ``select_on_val`` the best on ``ctx.val``, never test (defect 3; docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from pydantic import Field
from torch import Tensor, nn

from avood_core.errors import DataError
from avood_core.eval import metrics
from avood_core.fusion import FusionParams
from avood_core.protocols import FitContext, SeenClassifier
from avood_core.task import AVSamples
from avood_core.train.loop import fit_loop
from avood_plugins._mlp import (ClassifierMLPParams, MLPComponent, ce_training, class_positions, fused_mlp, infer,
                                seen_positions)


class MLPSeenClassifier(MLPComponent, SeenClassifier):
    """Seen-class MLP classifier (paper §3.3); returns global class ids."""

    class Params(ClassifierMLPParams, FusionParams):
        select_on_val: bool = Field(False,
            description="Keep the epoch with the best mean per-class accuracy on the seen-class samples of ctx.val "
            "(the selection split, never test); False = keep the last epoch. The reference's best-on-test epoch "
            "(defect 3 in docs/defects.md, test leakage) is deliberately not offered as a compat switch.")

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 12, "batch_size": 128, "lr": 2e-3}
    seen_classes: Tensor = torch.empty(0, dtype=torch.long)  # set at fit (global ids of the logits' columns)
    best_epoch: int | None = None
    saved: ClassVar[tuple[str, ...]] = ("seen_classes", "best_epoch")

    def make_net(self, in_dim: int, n_seen: int, audio_dim: int | None = None) -> nn.Module:  # type: ignore[override]
        return fused_mlp(self, in_dim, audio_dim, n_seen, dropout=self.params.dropout)

    def fit(self, train: AVSamples, ctx: FitContext) -> "MLPSeenClassifier":
        p = self.params
        if len(train) == 0:
            raise DataError(f"{self.label}: the training split is empty")
        self.seen_classes, pos = seen_positions(self, ctx, train.labels)
        dev = ctx.device
        x, y = train.x.to(dev), pos.to(dev)
        net = self.build(dev, in_dim=x.shape[1], n_seen=len(self.seen_classes), audio_dim=train.audio_dim)

        val = ctx.val.where(self.seen_classes) if p.select_on_val and ctx.val is not None else None
        val_pos = class_positions(self.seen_classes, val.labels)[0] if val is not None and len(val) else None
        if p.select_on_val and val_pos is None:
            ctx.log(f"{self.label}: select_on_val set but no val samples of seen classes; keeping the last epoch")
        self.best_epoch, best = None, {"acc": -1.0, "state": None}

        def epoch_end(epoch: int) -> dict[str, float]:
            if val_pos is None:
                return {}
            # the mean over classes of the recall of argmax O(x), as a fraction
            acc = metrics.mean_class_accuracy(infer(self, val.x).argmax(dim=1), val_pos) / 100.0
            if acc > best["acc"]:
                best.update(acc=acc, state={k: v.detach().clone() for k, v in net.state_dict().items()})
                self.best_epoch = epoch
            return {"val_acc": acc}

        fit_loop(self, ctx, ce_training(self, x, y, "lower the seen classifier lr", epoch_end=epoch_end))
        if best["state"] is not None:
            net.load_state_dict(best["state"])
            ctx.log(f"{self.label}: kept epoch {self.best_epoch} (val per-class acc {best['acc']:.4f})")
        return self

    def predict(self, samples: AVSamples) -> Tensor:
        """Global class ids (LongTensor on CPU) of the most likely seen class."""
        return self.seen_classes[self.logits(samples).argmax(dim=1)]

    def selects_on_val(self) -> bool:
        """``select_on_val`` picks an epoch count on the selection split, which stage 1 must carry."""
        return bool(self.params.select_on_val)

    def selected_params(self) -> dict:
        """With ``select_on_val``: the epoch count chosen on the validation split, for stage 2."""
        if self.params.select_on_val and self.best_epoch is not None:
            return {"epochs": int(self.best_epoch) + 1, "select_on_val": False}  # best_epoch is 0-based
        return {}
