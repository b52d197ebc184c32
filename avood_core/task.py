"""Typed containers for AV-GZSL data: a set of audio-visual samples and a whole task."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from avood_core.errors import DataError


@dataclass
class AVSamples:
    """Paired audio (N, Da) and video (N, Dv) float32 features with (N,) int64 global class ids (rows of
    the task's text matrix); ``x`` is the fused ``a ⊕ v``."""

    audio: Tensor
    video: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        self.audio = torch.as_tensor(self.audio, dtype=torch.float32)
        self.video = torch.as_tensor(self.video, dtype=torch.float32)
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        if self.audio.ndim != 2 or self.video.ndim != 2 or self.labels.ndim != 1:
            raise DataError(f"AVSamples needs audio (N, Da), video (N, Dv), labels (N,); got shapes "
                            f"{tuple(self.audio.shape)}, {tuple(self.video.shape)}, {tuple(self.labels.shape)}")
        if not (len(self.audio) == len(self.video) == len(self.labels)):
            raise DataError(f"AVSamples rows differ: audio {len(self.audio)}, video {len(self.video)}, "
                            f"labels {len(self.labels)}; pass one row per clip in each")

    def __len__(self) -> int:
        return len(self.labels)

    def __reduce__(self):
        """Pickle through NumPy arrays: with protocol 5 a streamed pickle writes them without a copy."""
        arrays = (t.detach().cpu().contiguous().numpy() for t in (self.audio, self.video, self.labels))
        return (AVSamples, tuple(arrays))

    @property
    def x(self) -> Tensor:
        """The fused feature ``a ⊕ v`` of shape (N, Da + Dv)."""
        return torch.cat([self.audio, self.video], dim=1)

    @property
    def audio_dim(self) -> int:
        return self.audio.shape[1]

    @property
    def video_dim(self) -> int:
        return self.video.shape[1]

    @property
    def classes(self) -> Tensor:
        return torch.unique(self.labels)

    @classmethod
    def from_x(cls, x: Tensor, labels: Tensor, audio_dim: int) -> "AVSamples":
        """Split a fused feature back into audio and video."""
        return cls(x[:, :audio_dim], x[:, audio_dim:], labels)

    def subset(self, index: Tensor) -> "AVSamples":
        return AVSamples(self.audio[index], self.video[index], self.labels[index])

    def where(self, class_ids: Tensor) -> "AVSamples":
        """The samples whose label is one of ``class_ids``."""
        return self.subset(torch.isin(self.labels, torch.as_tensor(class_ids)))

    def to(self, device: torch.device | str) -> "AVSamples":
        return AVSamples(self.audio.to(device), self.video.to(device), self.labels.to(device))

    @staticmethod
    def concat(*parts: "AVSamples") -> "AVSamples":
        return AVSamples(*(torch.cat([getattr(p, k) for p in parts]) for k in ("audio", "video", "labels")))


@dataclass
class AVGZSLTask:
    """One AV-GZSL problem: train on seen classes, test on seen ∪ unseen. ``text`` (C, T): row ``c`` embeds
    class ``c``, named ``class_names[c]``; ``val``: an optional selection split (stage 1), never ``test``."""

    train: AVSamples
    test: AVSamples
    text: Tensor
    seen_classes: Tensor
    unseen_classes: Tensor
    class_names: list[str]
    val: AVSamples | None = None
    val_seen_classes: Tensor | None = None
    val_unseen_classes: Tensor | None = None
    name: str = "task"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.text = torch.as_tensor(self.text, dtype=torch.float32)
        self.seen_classes = torch.as_tensor(self.seen_classes, dtype=torch.long).sort().values
        self.unseen_classes = torch.as_tensor(self.unseen_classes, dtype=torch.long).sort().values
        self.validate()

    @property
    def n_classes(self) -> int:
        return self.text.shape[0]

    @property
    def all_classes(self) -> Tensor:
        return torch.cat([self.seen_classes, self.unseen_classes]).sort().values

    def validate(self) -> None:
        where = f"task '{self.name}'"
        if self.text.ndim != 2 or self.text.shape[0] != len(self.class_names):
            raise DataError(f"{where}: text is {tuple(self.text.shape)} but there are {len(self.class_names)} "
                            f"class names; give one text row per class")
        if not torch.isfinite(self.text).all():
            rows = torch.nonzero(~torch.isfinite(self.text).all(dim=1)).flatten().tolist()
            raise DataError(f"{where}: text rows {rows[:5]} hold NaN or inf; fix the class embeddings")
        for kind, ids in (("seen", self.seen_classes), ("unseen", self.unseen_classes)):
            if len(ids) == 0:
                raise DataError(f"{where}: there are no {kind} classes; GZSL needs seen and unseen classes (paper Sec. 3)")
            if ids.min() < 0 or ids.max() >= self.n_classes:
                raise DataError(f"{where}: class id out of range 0..{self.n_classes - 1}")
        if torch.isin(self.seen_classes, self.unseen_classes).any():
            raise DataError(f"{where}: a class is both seen and unseen; make the two sets disjoint")
        if not torch.isin(self.train.labels, self.seen_classes).all():
            raise DataError(f"{where}: the train split holds a sample of a class that is not seen")
        if not torch.isin(self.test.labels, self.all_classes).all():
            raise DataError(f"{where}: the test split holds a sample of a class outside seen ∪ unseen")
        if self.train.audio_dim != self.test.audio_dim or self.train.video_dim != self.test.video_dim:
            raise DataError(f"{where}: train and test feature dims differ")
        for split_name, split in (("train", self.train), ("test", self.test), ("val", self.val)):
            if split is not None and not (torch.isfinite(split.audio).all() and torch.isfinite(split.video).all()):
                raise DataError(f"{where}: the {split_name} split holds NaN or inf features")

    def summary(self) -> dict:
        def split(s: AVSamples | None) -> dict | None:
            return None if s is None else {"samples": len(s), "classes": int(len(s.classes))}

        return {"name": self.name, "classes": self.n_classes, "seen_classes": int(len(self.seen_classes)),
                "unseen_classes": int(len(self.unseen_classes)), "audio_dim": self.train.audio_dim,
                "video_dim": self.train.video_dim, "text_dim": int(self.text.shape[1]), "train": split(self.train),
                "val": split(self.val), "test": split(self.test), **({"meta": self.meta} if self.meta else {})}
