"""MLP unseen classifier trained on generated unseen features (paper Table 3, "MLP" unseen).

The seen classifier's MLP shape over the fused feature ``x = a ⊕ v``:
``in -> 512 LeakyReLU(0.2) Dropout(0.1) -> 256 LeakyReLU(0.2) Dropout(0.1) -> K`` with one
output per class of the generator's synthetic features, trained with cross-entropy on
``ctx.synthetic`` only (``uses_synthetic = True``: the pipeline hands it the ``syn_num``
generated features per unseen class). The real seen clips are not used: the output layer
is fixed to the synthesized classes, which is the limitation the paper points out.

Prediction among ``candidates``: the logits of the candidate classes the MLP was trained on;
candidates it never saw (e.g. the seen classes, when the no-gate baseline asks for all
classes) get ``-inf`` and so are never predicted. ``candidates`` without any known class is
an error. The text embeddings are not used (``text`` is accepted for the protocol).

Defaults are the seen MLP's UCF values (the paper gives none for this ablation).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core.errors import DataError
from avood_core.protocols import FitContext, TorchComponent, UnseenClassifier
from avood_core.task import AVSamples
from avood_core.training import check_finite, shuffled_batches

_CHUNK = 65536  # rows per inference forward pass


class MLPUnseenClassifier(TorchComponent, UnseenClassifier):
    """MLP over ``a ⊕ v`` trained on synthetic unseen features; predicts among the known candidates."""

    uses_synthetic: ClassVar[bool] = True

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        hidden: tuple[int, ...] = Field((512, 256), description="Hidden layer widths of the MLP (the seen classifier's: 512, 256).")
        negative_slope: float = Field(0.2, ge=0, description="LeakyReLU negative slope of the hidden layers.")
        dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each hidden layer.")
        lr: float = Field(6e-4, gt=0, description="Adam learning rate (default: the seen MLP's UCF value).")
        betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas.")
        epochs: int = Field(200, ge=1, description="Training epochs (passes over the synthetic unseen features).")
        batch_size: int = Field(32, ge=1, description="Batch size (default: the seen MLP's UCF value).")
        lr_factor: float = Field(0.5, gt=0, lt=1, description="ReduceLROnPlateau factor, stepped on the epoch's mean loss.")
        lr_patience: int = Field(10, ge=0, description="ReduceLROnPlateau patience in epochs.")

    quick: ClassVar[Mapping[str, Any]] = {"epochs": 30, "batch_size": 64, "lr": 2e-3}

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.classes: Tensor = torch.empty(0, dtype=torch.long)
        self.history: list[dict[str, float]] = []

    def make_net(self, in_dim: int, n_classes: int) -> nn.Module:  # type: ignore[override]
        p = self.params
        layers: list[nn.Module] = []
        width = in_dim
        for h in p.hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(p.negative_slope), nn.Dropout(p.dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        return nn.Sequential(*layers)

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "MLPUnseenClassifier":
        p = self.params
        syn = ctx.synthetic
        if syn is None or len(syn) == 0:
            raise DataError("unseen mlp: trains on generated unseen features but ctx.synthetic is empty; "
                            "fit it inside a pipeline (the generator runs first)")
        self.classes = torch.unique(syn.labels.cpu())
        if len(self.classes) < 2:
            raise DataError("unseen mlp: the synthetic features cover fewer than two classes; nothing to classify")
        dev = ctx.device
        x = syn.x.to(dev)
        y = torch.searchsorted(self.classes, syn.labels.cpu()).to(dev)
        net = self.build(dev, in_dim=x.shape[1], n_classes=len(self.classes))
        opt = torch.optim.Adam(net.parameters(), lr=p.lr, betas=p.betas)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=p.lr_factor, patience=p.lr_patience)
        n = len(x)
        steps = math.ceil(n / p.batch_size)
        bar = ctx.track(p.epochs * steps, "unseen")
        self.history = []
        try:
            for epoch in range(p.epochs):
                net.train()
                total = torch.zeros((), device=dev)
                for idx in shuffled_batches(n, p.batch_size):
                    idx = idx.to(dev)
                    loss = F.cross_entropy(net(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(idx)
                mean = total / n
                check_finite(mean, "unseen mlp", epoch + 1, "lower the unseen classifier lr")
                loss_m = mean.item()
                sched.step(loss_m)
                self.history.append({"epoch": epoch, "loss": loss_m, "lr": opt.param_groups[0]["lr"]})
                bar.update(steps, loss=loss_m)
        finally:
            bar.close()
        net.eval()
        ctx.log(f"unseen mlp: final loss {self.history[-1]['loss']:.4g} on {n} synthetic features of "
                f"{len(self.classes)} classes")
        self.fitted = True
        return self

    def logits(self, samples: AVSamples) -> Tensor:
        """(N, K) logits on CPU; column k is global class ``classes[k]``."""
        assert self.net is not None, "unseen mlp is not fitted"
        self.net.eval()
        with torch.inference_mode():
            out = [self.net(c.to(self.device)) for c in samples.x.split(_CHUNK)]
        return torch.cat(out).cpu() if out else torch.empty(0, len(self.classes))

    def predict(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        """Global ids from ``candidates``; candidates the MLP never saw get logit ``-inf``."""
        cand = torch.as_tensor(candidates, dtype=torch.long).cpu()
        pos = torch.searchsorted(self.classes, cand).clamp(max=len(self.classes) - 1)
        known = self.classes[pos] == cand
        if not known.any():
            raise DataError(f"unseen mlp: none of the {len(cand)} candidate classes was among the "
                            f"{len(self.classes)} synthesized classes it was trained on")
        logits = self.logits(samples)
        full = torch.full((len(logits), len(cand)), float("-inf"))
        full[:, known] = logits[:, pos[known]]
        return cand[full.argmax(dim=1)]

    def extra_scalars(self) -> dict[str, Any]:
        return {"classes": self.classes.tolist()}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        self.classes = torch.as_tensor(scalars["classes"], dtype=torch.long)
