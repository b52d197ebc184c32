"""The kit's tiny synthetic task, the FitContext handed to ``fit``, and the torch thread budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from avood_core.protocols import Component, FitContext
from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.testing.errors import _fail
from avood_core.util.threads import torch_threads  # noqa: F401  (exported by avood_core.testing)

KIT_SPEC = SyntheticSpec(
    n_seen=6, n_unseen=3, audio_dim=16, video_dim=12, text_dim=10, latent_dim=6,
    train_samples=240, test_seen_samples=60, test_unseen_samples=180,
    class_noise=0.3, latent_noise=0.5, audio_noise=0.5, video_noise=0.4,
)
"""The kit's task: small dims, 40 training clips per seen class, lower noise than the demo task."""


@dataclass
class KitData:
    """The kit's task plus the held-out unseen clips a detector is fitted on as "synthetic" ones."""

    task: AVGZSLTask
    synthetic: AVSamples

    @classmethod
    def from_task(cls, task: AVGZSLTask) -> "KitData":
        """Split ``task``'s unseen test clips: every other clip of each class becomes ``synthetic``."""
        test = task.test
        unseen = torch.isin(test.labels, task.unseen_classes)
        order = torch.argsort(test.labels, stable=True)
        rank = torch.empty(len(test), dtype=torch.long)
        sorted_labels = test.labels[order]
        starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
        rank[order] = torch.arange(len(test)) - starts
        to_synthetic = unseen & (rank % 2 == 0)
        if int(to_synthetic.sum()) == 0 or int((unseen & ~to_synthetic).sum()) == 0:
            _fail("the kit's task needs at least two test clips per unseen class")
        kept = AVGZSLTask(
            train=task.train, test=test.subset(~to_synthetic), text=task.text,
            seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
            class_names=list(task.class_names), val=task.val, name=f"{task.name}-kit", meta=dict(task.meta),
        )
        return cls(kept, test.subset(to_synthetic))


def make_kit_data(seed: int = 0, spec: SyntheticSpec | None = None) -> KitData:
    """The kit's tiny synthetic task (:data:`KIT_SPEC` by default) from ``seed``."""
    return KitData.from_task(make_synthetic_task(seed, spec or KIT_SPEC))


def _as_kit_data(task: "KitData | AVGZSLTask | None", seed: int) -> KitData:
    if task is None:
        return make_kit_data(seed)
    if isinstance(task, KitData):
        return task
    if isinstance(task, AVGZSLTask):
        return KitData.from_task(task)
    raise TypeError(f"task must be a KitData, an AVGZSLTask or None, not {type(task).__name__}")


def make_context(data: KitData, seed: int = 0, fitted: Mapping[str, Component] | None = None,
                 device: str = "cpu") -> FitContext:
    """The :class:`FitContext` the pipeline would hand ``fit`` on the kit's task."""
    task = data.task
    return FitContext(
        text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
        device=torch.device(device), seed=seed, val=task.val, synthetic=data.synthetic,
        fitted=dict(fitted or {}),
    )


