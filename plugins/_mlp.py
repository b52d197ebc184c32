"""What the MLP plugins share (seen and unseen ``mlp``, ``entropy``, ``binary``; paper §3.2-3.3, reference
``src/classifier.py`` ``CLASS_S`` / ``CLASS_U``, ``src/classifier_oodgzsl.py`` ``OOD_Detector``): params, the
fused network, its training, the detectors' batches and chunked inference (docs/plugins.md)."""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from avood_core.errors import DataError, NotFittedError
from avood_core.fusion import build_fused_mlp, input_x
from avood_core.limits import AdamBeta, Widths, bounded, widths
from avood_core.protocols import FitContext, TorchComponent
from avood_core.task import AVSamples
from avood_core.train.precision import PRECISION_HELP, Dropout, Precision, adam, autocast
from avood_core.train.loop import Plateau, Training
from avood_core.train.loops import shuffled_batches
from avood_plugins._init import reference_init

CHUNK = 65536  # rows per inference forward pass
RowSampling = Literal["reference", "passes"]
ROW_SAMPLING_HELP = (
    "How the detector draws its rows (real seen and synthetic unseen each on their own). 'reference' "
    "(reference src/classifier_oodgzsl.py next_batch / next_batch_syn): a first pass through the rows in their "
    "stored order in consecutive batches, ending while at least one batch is left (rows [k*b, (k+1)*b) while "
    "(k+2)*b <= m); the reference never resets its index, so from then on every batch is b distinct rows drawn "
    "afresh at random. 'passes': consecutive batches from reshuffled passes that continue across epochs, a new "
    "pass when fewer than b rows of the current one are left.")


class MLPParams(BaseModel):
    """Params of an MLP plugin (with :class:`FusionParams`); the defaults are the seen classifier's (paper §4.2, UCF)."""

    hidden: Widths = widths((512, 256), "Hidden layer widths of the MLP (paper: 512, 256).")
    negative_slope: float = Field(0.2, ge=0, description="LeakyReLU negative slope of the hidden layers.")
    lr: float = Field(6e-4, gt=0, description="Adam learning rate; per dataset, default = UCF (VGGSound 8e-3, ActivityNet 8e-3).")
    betas: tuple[AdamBeta, AdamBeta] = Field((0.5, 0.999), description="Adam betas, each in [0, 1).")
    epochs: int = bounded("epochs", 200, "Training epochs (passes over the training samples).")
    batch_size: int = bounded("batch", 32, "Batch size; per dataset, default = UCF (VGGSound 1024, ActivityNet 128).")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="ReduceLROnPlateau factor, stepped on the epoch's mean loss.")
    lr_patience: int = bounded("patience", 10, "ReduceLROnPlateau patience in epochs.")
    precision: Precision = Field("fp32", description=PRECISION_HELP)


class ClassifierMLPParams(MLPParams):
    """A classifier MLP: the hidden layers also have dropout."""

    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each hidden layer.")


class DetectorMLPParams(MLPParams):
    """An OOD-detector MLP (paper §3.2): ``in -> 512 -> 128 -> out``, the reference's UCF config."""

    hidden: Widths = widths((512, 128), "Hidden layer widths of the MLP (paper: 512, 128).")
    negative_slope: float = Field(
        0.2, ge=0, description="LeakyReLU negative slope of the hidden layers (reference OOD_Detector: 0.2).")
    lr: float = Field(9e-4, gt=0, description="Adam learning rate; per dataset, default = UCF (reference config 9e-4; VGGSound 1e-3, ActivityNet 5e-3).")
    epochs: int = bounded("epochs", 80, "Training epochs; one epoch = ceil(n / batch_size) steps, drawing about half "
                                       "as many real seen rows as there are (reference OOD training).")
    batch_size: int = bounded("batch", 16, "Rows per step: batch_size // 2 real seen + batch_size // 2 synthetic unseen (reference OOD training); per dataset, default = UCF (VGGSound 6900, ActivityNet 64).", low=2)
    lr_factor: float = Field(0.8, gt=0, lt=1, description="ReduceLROnPlateau factor, stepped on the epoch's mean loss.")
    lr_patience: int = bounded("patience", 5, "ReduceLROnPlateau patience in epochs.")
    row_sampling: RowSampling = Field("reference", description=ROW_SAMPLING_HELP + " (docs/fidelity.md row 8)")


class MLPComponent(TorchComponent):
    """An MLP plugin: ``logits`` (N, K) on CPU, column k the global class ``classes[k]`` (or ``seen_classes[k]``); the
    learned scalars named in ``saved`` go to the checkpoint, read back as their class default's type (a tensor: class
    ids; ``None``: optional, absent in older states)."""

    saved: ClassVar[tuple[str, ...]] = ()

    def logits(self, samples: AVSamples) -> Tensor:
        return infer(self, samples.x).cpu()

    def extra_scalars(self) -> dict[str, Any]:
        values = {k: getattr(self, k) for k in self.saved}
        return {k: v.tolist() if isinstance(v, Tensor) else v for k, v in values.items()}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        for k in self.saved:
            default = getattr(type(self), k)
            if default is None:
                setattr(self, k, scalars.get(k))
            elif isinstance(default, Tensor):
                setattr(self, k, torch.as_tensor(scalars[k], dtype=torch.long))
            else:
                setattr(self, k, type(default)(scalars[k]))


def fused_mlp(comp: TorchComponent, in_dim: int, audio_dim: int | None, out_dim: int,
              hidden: Sequence[int] | None = None, dropout: float | None = None) -> nn.Module:
    """``comp``'s fusion, then ``[Linear -> LeakyReLU (-> Dropout)]`` per hidden width (``hidden``, default
    ``params.hidden``) and ``Linear(out_dim)``, reference-initialised. ``dropout=None`` adds no Dropout
    module (the detectors); a number adds one even at 0, so a classifier's weight names do not depend on it."""
    p = comp.params

    def mlp(width: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for h in p.hidden if hidden is None else hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(p.negative_slope)]
            if dropout is not None:
                layers.append(Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_dim))
        return reference_init(nn.Sequential(*layers))

    return build_fused_mlp(p, in_dim, audio_dim, mlp, comp.label)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """``H(softmax(z)) = -Σ_i p_i log p_i`` per row, natural log, exact for ``p_i = 0``."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def class_positions(classes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of ``labels`` in the sorted ``classes`` and a mask of the labels found there."""
    if not len(classes):  # no classes: no label is found (searchsorted has no position to give)
        return torch.zeros_like(labels), torch.zeros_like(labels, dtype=torch.bool)
    pos = torch.searchsorted(classes, labels).clamp(max=len(classes) - 1)
    return pos, classes[pos] == labels


def seen_positions(comp: TorchComponent, ctx: FitContext, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``ctx.seen_classes`` (sorted, CPU) and the position of each training label among them."""
    classes = torch.unique(torch.as_tensor(ctx.seen_classes, dtype=torch.long).cpu())
    pos, known = class_positions(classes, labels)
    if not known.all():
        raise DataError(f"{comp.label}: a training sample's label is not among ctx.seen_classes")
    return classes, pos


def mlp_training(comp: TorchComponent, n: int, step: Callable[[Tensor], Tensor], terms: tuple[str, ...], hint: str,
                 batches: Callable[[], Sequence[Tensor]] | None = None, **options: Any) -> Training:
    """The loop's :class:`Training` of ``comp.net``: Adam (``lr``, ``betas``) and ``ReduceLROnPlateau`` on the
    epoch's mean loss (``lr_factor``, ``lr_patience``), an epoch being ``batches()`` (default: a shuffled
    pass over ``n`` rows in ``batch_size`` batches); epoch means weighted by the batch rows.
    ``options``: further :class:`Training` fields (``rows_per_sample``, ``epoch_end``, ``plateau``)."""
    p = comp.params
    plateau = Plateau(p.lr_factor, p.lr_patience, options.pop("plateau", "loss"))
    return Training(comp.net, adam(comp.net.parameters(), lr=p.lr, betas=p.betas), terms, p.epochs,
                    batches or (lambda: shuffled_batches(n, p.batch_size)), math.ceil(n / p.batch_size), step,
                    plateau=plateau, hint=hint, weighted=True, precision=p.precision, **options)


def ce_training(comp: TorchComponent, x: Tensor, y: Tensor, hint: str, **options: Any) -> Training:
    """The classifiers' :func:`mlp_training`, a step being ``CE(net(x[idx]), y[idx])`` (forward under the
    precision, loss in fp32)."""
    def step(idx: Tensor) -> Tensor:
        with autocast(x.device, comp.params.precision):
            logits = comp.net(x[idx])
        return F.cross_entropy(logits.float(), y[idx]).unsqueeze(0)

    return mlp_training(comp, len(x), step, ("loss",), hint, **options)


def infer(comp: TorchComponent, x: Tensor, head: Callable[[Tensor], Tensor] = lambda out: out) -> Tensor:
    """``head(net(x))`` in eval mode without gradients, in chunks of :data:`CHUNK` rows, on the net's device."""
    if comp.net is None:
        raise NotFittedError(comp.label)
    comp.net.eval()
    with torch.inference_mode():
        return torch.cat([head(comp.net(c.to(comp.device))) for c in x.split(CHUNK)])


class RowDraws:
    """Batches of row indices over ``m`` rows, drawn as ``mode`` says (:data:`ROW_SAMPLING_HELP`; reference
    ``src/classifier_oodgzsl.py`` ``next_batch`` / ``next_batch_syn``); a batch of ``b > m`` rows spans
    ``ceil(b / m)`` permutations."""

    def __init__(self, m: int, device: torch.device, mode: RowSampling = "reference") -> None:
        self.m, self.device, self.mode = m, device, mode
        # 'reference' starts with a pass in stored order; 'passes' draws its first pass at the first take
        self.perm, self.offset = torch.arange(m if mode == "reference" else 0).to(device), 0

    def _permutation(self, b: int) -> Tensor:
        reps = max(1, math.ceil(b / self.m))
        return torch.cat([torch.randperm(self.m) for _ in range(reps)])

    def take(self, b: int) -> Tensor:
        if self.mode == "reference" and self.offset + 2 * b > len(self.perm):
            self.perm = self.perm[:0]  # the first pass is over: b fresh rows on every later call
            return self._permutation(b)[:b].to(self.device)
        if self.offset + b > len(self.perm):
            self.perm, self.offset = self._permutation(b).to(self.device), 0
        rows = self.perm[self.offset : self.offset + b]
        self.offset += b
        return rows


def detector_data(comp: TorchComponent, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext,
                  **dims: int) -> tuple[Tensor, Callable[[], list[Tensor]], Callable[[Tensor], Tensor]]:
    """The detectors' net built (``dims`` beyond ``in_dim``, ``audio_dim``), real seen ``x`` on the device, one epoch's
    real-row batches (reference ``fit``: ``ceil(n / batch_size)`` steps of ``batch_size // 2`` rows, :class:`RowDraws`)
    and ``forward(idx)``: the fp32 outputs on the rows ``idx`` of ``x`` followed by as many synthetic rows."""
    p, dev = comp.params, ctx.device
    if len(seen) == 0 or len(synthetic_unseen) == 0:
        raise DataError(f"{comp.label}: needs real seen and synthetic unseen samples; run the generator first")
    x = seen.x.to(dev)
    x_syn = input_x(synthetic_unseen, p.fusion, seen.audio_dim, seen.video_dim, comp.label).to(dev)
    if x.shape[1] != x_syn.shape[1]:
        raise DataError(f"{comp.label}: seen x has {x.shape[1]} dims but synthetic x has {x_syn.shape[1]}")
    real, synthetic = RowDraws(len(x), dev, p.row_sampling), RowDraws(len(x_syn), dev, p.row_sampling)
    comp.build(dev, in_dim=x.shape[1], audio_dim=seen.audio_dim, **dims)

    def forward(idx: Tensor) -> Tensor:
        with autocast(dev, p.precision):
            out = comp.net(torch.cat([x[idx], x_syn[synthetic.take(len(idx))]]))
        return out.float()

    return x, lambda: [real.take(p.batch_size // 2) for _ in range(math.ceil(len(x) / p.batch_size))], forward
