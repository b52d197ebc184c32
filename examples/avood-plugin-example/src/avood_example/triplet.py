"""A triplet joint-embedding unseen classifier written against avood's training loop.

Clips ``x = a ⊕ v`` and class texts ``t`` are mapped into one space by ``f`` and ``g``
(Linear-BatchNorm-ReLU-Linear); a step draws two halves of random clips and pulls each clip
towards its own class text and away from the other half's class text (a symmetric triplet
loss, as the AVCA-style baselines of the avood paper's Table 1 train).
The component only describes its network and its step as two halves: avood's loop runs the
epochs, progress, callbacks, statistics and precision, and with ``--jobs 2`` the main process
computes the second half of each step once it is free (the same bits as one process).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core import AVSamples, FitContext, Halves, LoopComponent, NotFittedError, TorchComponent, Training, UnseenClassifier


class TripletParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=1, le=4096, description="Width of the joint space (and of the hidden layers).")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    margin: float = Field(1.0, gt=0, description="Triplet margin.")
    epochs: int = Field(10, ge=1, le=10_000, description="Training epochs.")
    steps: int = Field(100, ge=1, le=100_000, description="Steps per epoch.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Positives per step (as many negatives join them).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training matmul precision (bf16: autocast).")


def tower(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU(), nn.Linear(o, o))


class TripletEmbedding(LoopComponent, TorchComponent, UnseenClassifier):
    """Nearest class text in a learned joint space."""

    Params: ClassVar[type[BaseModel]] = TripletParams
    quick: ClassVar[Mapping[str, Any]] = {"epochs": 3, "steps": 40}

    def make_net(self, x_dim: int, text_dim: int) -> nn.Module:  # type: ignore[override]
        return nn.ModuleDict({"f": tower(x_dim, self.params.dim), "g": tower(text_dim, self.params.dim)})

    def training(self, train: AVSamples, text: Tensor, ctx: FitContext) -> Training:
        p, dev = self.params, ctx.device
        text = torch.as_tensor(text, dtype=torch.float32).to(dev)
        x, labels = train.x.to(dev), train.labels.to(dev)
        net = self.build(dev, x_dim=x.shape[1], text_dim=text.shape[1])

        def forward(net: nn.Module, rows: Tensor) -> dict[str, Tensor]:  # one half: its own BatchNorm batch
            with t.autocast():
                return {"x": net["f"](x[rows]).float(), "t": net["g"](text[labels[rows]]).float()}

        def losses(pos: dict, _: Tensor, neg: dict, __: Tensor) -> Tensor:
            loss = F.triplet_margin_loss(pos["x"], pos["t"], neg["t"], margin=p.margin) \
                + F.triplet_margin_loss(neg["x"], neg["t"], pos["t"], margin=p.margin)
            return loss.unsqueeze(0)

        def batch() -> Tensor:  # positives, then as many random clips whose class texts are the negatives
            return torch.randint(len(x), (2 * p.batch_size,))

        t = Training(net, torch.optim.Adam(net.parameters(), lr=p.lr), ("loss",), p.epochs,
                     lambda: (batch() for _ in range(p.steps)), p.steps,
                     halves=Halves(forward, lambda rows: rows, losses), precision=p.precision)
        return t

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        """(N, K) Euclidean distances between the clips and the candidate classes' texts in the joint space."""
        if self.net is None:
            raise NotFittedError(self.label)
        net = self.net.eval()
        with torch.inference_mode():
            classes = net["g"](torch.as_tensor(text, dtype=torch.float32)[torch.as_tensor(candidates).cpu()].to(self.device))
            return torch.cdist(net["f"](samples.x.to(self.device)), classes).cpu().clone()
