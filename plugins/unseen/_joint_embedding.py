"""What the Table 1 baselines ``cjme`` and ``avgzslnet`` share, and with ``cross_attention`` the embedding models'
inputs and distances: ``F_A``, ``F_V``, ``F_T`` into one ``joint_dim`` space, trained on class-balanced positives and
other-class negatives as AVCA-GZSL (``src/model.py``, ``src/train.py``, ``src/sampler.py``; docs/plugins.md)."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core.errors import DataError, NotFittedError
from avood_core.limits import bounded
from avood_core.protocols import FitContext, TorchComponent, UnseenClassifier
from avood_core.task import AVSamples
from avood_core.train.loop import LoopComponent, Plateau, Training
from avood_core.train.loops import ClassBalancedSampler, other_class_samples
from avood_core.train.precision import Dropout, adam

CHUNK = 4096  # samples per inference forward pass


def embedding_net(in_dim: int, hidden: int, out_dim: int, dropout: float, use_bn: bool = True,
                  out_relu: bool = False) -> nn.Sequential:
    """``Linear -> [BatchNorm1d] -> ReLU -> Dropout -> Linear [-> ReLU]`` (AVCA-GZSL ``EmbeddingNet``)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden)]
    if use_bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(), Dropout(dropout), nn.Linear(hidden, out_dim)]
    if out_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class JointEmbeddingParams(BaseModel):
    """Params both baselines share; defaults = AVCA-GZSL's run scripts (the same for all three datasets)."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-3, gt=0, description="Adam learning rate (AVCA-GZSL run_scripts/*/{cjme,avgzslnet}.sh: --lr 0.001).")
    batch_size: int = bounded("batch", 256, low=2, description="Positive samples per step, as many negatives join them (AVCA-GZSL src/args.py --bs default 256).")
    epochs: int = bounded("epochs", 50, description="Training epochs (run scripts: --epochs 50).")
    batches_per_epoch: int = bounded("steps", 500, description="Class-balanced batches per epoch (run scripts: --n_batches 500).")
    margin: float = Field(1.0, gt=0, description="Triplet margin (src/args.py --margin default 1).")
    hidden: int = bounded("width", 1024, description="Hidden width of the audio and video embedding nets F_A, F_V (src/args.py --embeddings_hidden_size 1024).")
    text_hidden: int = bounded("width", 300, description="Hidden width of the text embedding net F_T (src/model.py: 300).")
    joint_dim: int = bounded("width", 64, description="Dimension of the joint embedding space (src/model.py: 64).")
    use_bn: bool = Field(True, description="BatchNorm after the hidden Linear of each embedding net (run scripts: --embedding_use_bn).")
    lr_scheduler: bool = Field(True, description="ReduceLROnPlateau on the selection HM (else the training loss) each epoch (run scripts: --lr_scheduler).")
    lr_patience: int = bounded("patience", 3, description="ReduceLROnPlateau patience in epochs (main.py: 3).")
    lr_factor: float = Field(0.1, gt=0, lt=1, description="ReduceLROnPlateau factor (main.py: PyTorch's default 0.1).")


class JointEmbeddingNet(nn.Module):
    """``F_A``, ``F_V``, ``F_T``; subclasses add their heads and ``clip_distances(audio, video, theta_t)``, the (N, K)
    distances of N clips to K projected class texts."""

    def __init__(self, audio_dim: int, video_dim: int, text_dim: int, p: JointEmbeddingParams, dropout: float = 0.0,
                 out_relu: bool = False) -> None:
        super().__init__()
        self.F_A = embedding_net(audio_dim, p.hidden, p.joint_dim, dropout, p.use_bn, out_relu)
        self.F_V = embedding_net(video_dim, p.hidden, p.joint_dim, dropout, p.use_bn, out_relu)
        self.F_T = embedding_net(text_dim, p.text_hidden, p.joint_dim, dropout, p.use_bn, out_relu)

    def embed_text(self, text: Tensor) -> Tensor:
        return self.F_T(text)


def embedding_inputs(comp: TorchComponent, train: AVSamples, text: Tensor,
                     ctx: FitContext) -> tuple[nn.Module, tuple[Tensor, Tensor, Tensor, Tensor], Callable[[], Any]]:
    """The checks every embedding model runs before training (one line naming ``comp`` on bad input), then its
    network built for these dims, (audio, video, labels, float32 text) on the device, and one epoch's batches:
    ``batches_per_epoch`` times ``batch_size`` class-balanced positives followed by a random clip of another
    class for each (its negative)."""
    p, dev, text = comp.params, ctx.device, torch.as_tensor(text, dtype=torch.float32)
    if len(train) == 0:
        raise DataError(f"{comp.label}: the training split is empty")
    if text.ndim != 2 or train.labels.min() < 0 or train.labels.max() >= len(text):
        raise DataError(f"{comp.label}: labels must index the rows of text {tuple(text.shape)}")
    sampler = ClassBalancedSampler(train.labels)
    if len(sampler.classes) < 2:
        raise DataError(f"{comp.label}: negative sampling needs at least two training classes")

    def pairs() -> Tensor:
        pos = sampler.sample(p.batch_size)
        return torch.cat([pos, other_class_samples(train.labels[pos], sampler)])

    net = comp.build(dev, audio_dim=train.audio_dim, video_dim=train.video_dim, text_dim=text.shape[1])
    data = (train.audio.to(dev), train.video.to(dev), train.labels.to(dev), text.to(dev))
    return net, data, lambda: (pairs() for _ in range(p.batches_per_epoch))


def embedding_distances(comp: TorchComponent, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
    """(N, K) ``net.clip_distances(audio, video, net.embed_text(text[candidates]))`` in eval mode, :data:`CHUNK`
    clips at a time, float32 on CPU; smaller = closer."""
    if comp.net is None:
        raise NotFittedError(comp.label)
    cand = torch.as_tensor(candidates, dtype=torch.long).cpu()
    comp.net.eval()
    with torch.inference_mode():
        theta_t = comp.net.embed_text(torch.as_tensor(text, dtype=torch.float32)[cand].to(comp.device))
        out = [comp.net.clip_distances(a.to(comp.device), v.to(comp.device), theta_t)
               for a, v in zip(samples.audio.split(CHUNK), samples.video.split(CHUNK))]
    if not out:
        return torch.empty(0, len(cand))
    return torch.cat(out).float().cpu()  # outside inference mode: an ordinary tensor callers may edit


class JointEmbeddingClassifier(LoopComponent, TorchComponent, UnseenClassifier):
    """Training, selection HM and distances shared by ``cjme`` and ``avgzslnet``."""

    terms: ClassVar[tuple[str, ...]] = ("loss",)
    """Names of the loss terms :meth:`batch_terms` returns, the total first."""
    quick: ClassVar[Mapping[str, Any]] = {"epochs": 4, "batches_per_epoch": 60}
    Net: ClassVar[type[JointEmbeddingNet]] = JointEmbeddingNet
    """The network, built as ``Net(audio_dim, video_dim, text_dim, params)``."""

    def make_net(self, audio_dim: int, video_dim: int, text_dim: int) -> nn.Module:  # type: ignore[override]
        return self.Net(audio_dim, video_dim, text_dim, self.params)

    def batch_terms(self, net: nn.Module, pos: tuple[Tensor, Tensor, Tensor], neg: tuple[Tensor, Tensor, Tensor],
                    class_text: Tensor) -> Tensor:
        """The stacked loss terms (:attr:`terms`, total first) of one batch: ``pos`` / ``neg`` = (audio, video, class
        text) of the positives and of their negatives; ``class_text`` = the text rows of the training classes."""
        raise NotImplementedError

    def training(self, train: AVSamples, text: Tensor, ctx: FitContext) -> Training:
        p = self.params
        net, (audio, video, labels, text), epoch = embedding_inputs(self, train, text, ctx)
        class_text = text[torch.unique(labels)]
        selection = ctx.val  # AVCA's selection HM needs clips of both seen and unseen classes
        if selection is not None and not all(len(selection.where(c)) for c in (ctx.seen_classes, ctx.unseen_classes)):
            selection = None

        def step(idx: Tensor) -> Tensor:
            pos, neg = idx.chunk(2)
            return self.batch_terms(net, (audio[pos], video[pos], text[labels[pos]]),
                                    (audio[neg], video[neg], text[labels[neg]]), class_text)

        plateau = None
        if p.lr_scheduler:
            plateau = Plateau(p.lr_factor, p.lr_patience, *(("val_HM", "max") if selection is not None else ()))
        return Training(net, adam(net.parameters(), lr=p.lr), self.terms, p.epochs, epoch, p.batches_per_epoch, step,
                        plateau=plateau, hint="lower unseen.lr", epoch_end=lambda epoch: {} if selection is None
                        else {"val_HM": self.selection_hm(selection, ctx)})

    def selection_hm(self, val: AVSamples, ctx: FitContext) -> float:
        """AVCA's validation HM: calibrated stacking over all classes at the best β of its grid (percent)."""
        from avood_plugins.detectors.calibrated_stacking import DEFAULT_GRID, beta_curve, calibrated

        seen = torch.unique(torch.as_tensor(ctx.seen_classes, dtype=torch.long).cpu())
        unseen = torch.unique(torch.as_tensor(ctx.unseen_classes, dtype=torch.long).cpu())
        nearest = calibrated(self.distances(val, torch.cat([seen, unseen]), ctx.text), seen, unseen)
        return max(c["HM"] for c in beta_curve(*nearest, val.labels.cpu(), seen, unseen, DEFAULT_GRID))

    distances = embedding_distances
