"""The cross-attention embedding model as a *seen* classifier (paper Table 3, "Embedding" seen): the unseen
``cross_attention`` model trained on the seen clips, predicting the nearest seen class; :meth:`from_unseen`
shares a fitted unseen model (docs/plugins.md)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import torch
from pydantic import BaseModel
from torch import Tensor

from avood_core.errors import AvoodError, DataError, NotFittedError
from avood_core.protocols import FitContext, SeenClassifier
from avood_core.task import AVSamples
from avood_plugins._mlp import seen_positions
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier


class CrossAttentionSeenClassifier(SeenClassifier):
    """Nearest seen-class text in the cross-attention joint space; returns global class ids."""

    Params: ClassVar[type[BaseModel]] = CrossAttentionClassifier.Params
    quick: ClassVar[Mapping[str, Any]] = CrossAttentionClassifier.quick
    seen_classes: Tensor = torch.empty(0, dtype=torch.long)  # set at fit, sorted
    seen_text: Tensor | None = None  # their text rows

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.model = CrossAttentionClassifier(self.params)
        self.model.label = self.label  # its log lines and errors name this seen classifier
        self.stats = self.model.stats

    @classmethod
    def from_unseen(cls, model: CrossAttentionClassifier, seen_classes: Tensor, text: Tensor) -> "CrossAttentionSeenClassifier":
        """A seen classifier sharing a fitted embedding model (no copy, no training)."""
        if not getattr(model, "fitted", False) or model.net is None:
            raise AvoodError("seen cross_attention: from_unseen needs a fitted cross_attention unseen classifier")
        seen = cls(model.params)
        seen.model, seen.stats = model, model.stats
        seen._set_classes(seen_classes, text)
        seen.fitted = True
        return seen

    def _set_classes(self, seen_classes: Tensor, text: Tensor) -> None:
        self.seen_classes = torch.unique(torch.as_tensor(seen_classes, dtype=torch.long).cpu())
        text = torch.as_tensor(text, dtype=torch.float32).cpu()
        if len(self.seen_classes) == 0 or self.seen_classes.max() >= len(text):
            raise DataError(f"{self.label}: seen class ids must index the rows of text {tuple(text.shape)}")
        self.seen_text = text[self.seen_classes].contiguous()

    def fit(self, train: AVSamples, ctx: FitContext) -> "CrossAttentionSeenClassifier":
        self._set_classes(seen_positions(self, ctx, train.labels.cpu())[0], ctx.text)
        progress = ctx.progress
        inner = dataclasses.replace(ctx, progress=(lambda total, description: progress(total, "seen")) if progress else None)
        self.model.fit(train, ctx.text, inner)
        self.fitted = True
        return self

    def distances(self, samples: AVSamples) -> Tensor:
        """(N, n_seen) distances to the seen classes (column k = ``seen_classes[k]``), CPU."""
        if self.seen_text is None:
            raise NotFittedError(self.label)
        return self.model.distances(samples, torch.arange(len(self.seen_classes)), self.seen_text)

    def predict(self, samples: AVSamples) -> Tensor:
        """Global ids of the nearest seen class (LongTensor on CPU)."""
        return self.seen_classes[self.distances(samples).argmin(dim=1)]

    # -- checkpoint: the wrapped model's tensors under "model.", the seen texts, the class ids ----
    def state_tensors(self) -> dict[str, Tensor]:
        if self.seen_text is None:
            raise NotFittedError(self.label)
        return {**{f"model.{k}": v for k, v in self.model.state_tensors().items()}, "seen_text": self.seen_text}

    def state_scalars(self) -> dict[str, Any]:
        return {"model": self.model.state_scalars(), "seen_classes": self.seen_classes.tolist()}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        inner = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state(scalars["model"], inner)
        self.seen_classes = torch.as_tensor(scalars["seen_classes"], dtype=torch.long)
        self.seen_text = torch.as_tensor(tensors["seen_text"], dtype=torch.float32)
        self.fitted = True
