"""ESZSL: "An embarrassingly simple approach to zero-shot learning" (Romera-Paredes & Torr, ICML 2015).

A bilinear compatibility ``F(x, c) = x V s_c`` between a clip's fused feature ``x = a ⊕ v``
(d-dim, optionally standardised) and the text embedding ``s_c`` of class c (T-dim). With
``X`` (N, d) the training features, ``Y`` (N, z) the targets over the z seen classes (+1 for
the true class, -1 for the others, as in the paper; or one-hot) and ``S`` (z, T) the seen
classes' text rows, ESZSL minimises (the paper's objective in this row-major notation)

    ‖X V Sᵀ − Y‖²_F + γ ‖V Sᵀ‖²_F + λ ‖X V‖²_F + γλ ‖V‖²_F

whose minimiser is closed form:

    V = (XᵀX + γ I_d)⁻¹ Xᵀ Y S (SᵀS + λ I_T)⁻¹        (d, T)

No epochs, no learning rate: fitting is two linear solves (float64), milliseconds on the
UCF-sized task. Zero-shot prediction among candidate classes takes the class of highest
compatibility. As the framework's unseen classifier it plugs into the paper's pipeline as an
alternative to the cross-attention embedding model.

``distances(samples, candidates, text)`` returns the *negative compatibility*
``−x V s_c`` (smaller = closer), so the framework's nearest-candidate rule is ESZSL's
arg-max. It is a score, not a metric: it can be negative and is not symmetric.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from avood_core import AvoodError, AVSamples, DataError, FitContext, NotFittedError, TorchComponent, UnseenClassifier

_CHUNK = 65536  # rows per inference pass


class ESZSLParams(BaseModel):
    """Hyperparameters of :class:`ESZSL`.

    Defaults: chosen by zero-shot accuracy on the embedded synthetic task at task seeds 100 and 101
    (not the demo's seed 0); ZSL plateaus for γ ≥ 3e4 there, because for large γ
    ``V → Xᵀ Y S (SᵀS + λI)⁻¹ / γ`` and the arg-max no longer depends on γ.
    """

    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(
        3e4, gt=0,
        description="Ridge weight γ on the feature side, (XᵀX + γI)⁻¹; absolute, so compare it with the number "
                    "of training clips (standardised features: XᵀX has diagonal N). The ESZSL paper picks γ and λ "
                    "from 10^-3..10^3 on held-out classes.",
    )
    lam: float = Field(
        0.1, gt=0,
        description="Ridge weight λ on the text side, (SᵀS + λI)⁻¹, with S the seen classes' text rows.",
    )
    standardize: bool = Field(
        True,
        description="z-score each feature dimension with the training mean and std before fitting and "
                    "predicting (audio and video features have different scales).",
    )
    targets: Literal["signed", "onehot"] = Field(
        "signed",
        description="Y: 'signed' = +1 for the true class and -1 for the others (the ESZSL paper); "
                    "'onehot' = 1 and 0.",
    )


class BilinearCompatibility(nn.Module):
    """Holds ESZSL's learned tensors: the feature mean and scale and the bilinear map V (d, T)."""

    def __init__(self, x_dim: int, text_dim: int) -> None:
        super().__init__()
        # Parameters (not buffers) so TorchComponent finds the device; never trained by gradient.
        self.mean = nn.Parameter(torch.zeros(x_dim), requires_grad=False)
        self.scale = nn.Parameter(torch.ones(x_dim), requires_grad=False)
        self.V = nn.Parameter(torch.zeros(x_dim, text_dim), requires_grad=False)

    def project(self, x: Tensor) -> Tensor:
        """``x̂ V``: features mapped into the text space, (N, T)."""
        return ((x - self.mean) / self.scale) @ self.V

    def forward(self, x: Tensor, class_text: Tensor) -> Tensor:
        """Compatibility ``x̂ V s_cᵀ`` of each sample with each class row, (N, K)."""
        return self.project(x) @ class_text.T


class ESZSL(TorchComponent, UnseenClassifier):
    """ESZSL closed-form bilinear compatibility classifier (zero-shot, any candidate class set)."""

    Params: ClassVar[type[BaseModel]] = ESZSLParams
    quick: ClassVar[Mapping[str, Any]] = {}  # closed form: nothing to shorten

    def make_net(self, x_dim: int, text_dim: int) -> nn.Module:  # type: ignore[override]
        return BilinearCompatibility(x_dim, text_dim)

    def fit(self, train: AVSamples, text: Tensor, ctx: FitContext) -> "ESZSL":
        p = self.params
        text = torch.as_tensor(text, dtype=torch.float32)
        if len(train) == 0:
            raise DataError("unseen eszsl: the training split is empty")
        if text.ndim != 2 or int(train.labels.min()) < 0 or int(train.labels.max()) >= len(text):
            raise DataError(f"unseen eszsl: labels must index the rows of text {tuple(text.shape)}")
        dev = ctx.device
        net = self.build(dev, x_dim=train.x.shape[1], text_dim=text.shape[1])
        x = train.x.to(dev, torch.float64)
        if p.standardize:
            mean = x.mean(0)
            scale = x.std(0, correction=0).clamp_min(1e-6)
        else:
            mean, scale = torch.zeros(x.shape[1], dtype=x.dtype, device=dev), torch.ones(x.shape[1], dtype=x.dtype, device=dev)
        x = (x - mean) / scale

        classes, position = torch.unique(train.labels, return_inverse=True)
        s = text[classes].to(dev, torch.float64)  # (z, T)
        y = torch.full((len(x), len(classes)), -1.0 if p.targets == "signed" else 0.0, dtype=torch.float64, device=dev)
        y[torch.arange(len(x), device=dev), position.to(dev)] = 1.0

        d, t_dim = x.shape[1], s.shape[1]
        left = x.T @ x + p.gamma * torch.eye(d, dtype=x.dtype, device=dev)   # (d, d)
        right = s.T @ s + p.lam * torch.eye(t_dim, dtype=x.dtype, device=dev)  # (T, T), symmetric
        a = torch.linalg.solve(left, x.T @ (y @ s))                          # (XᵀX + γI)⁻¹ Xᵀ Y S
        v = torch.linalg.solve(right, a.T).T                                 # · (SᵀS + λI)⁻¹
        if not torch.isfinite(v).all():
            raise AvoodError("unseen eszsl: the solution holds NaN/inf; raise gamma or lam")
        with torch.no_grad():
            net.mean.copy_(mean.float())
            net.scale.copy_(scale.float())
            net.V.copy_(v.float())
        net.eval()
        train_acc = float((self._compat(train.x, s.float()).argmax(1).cpu() == position).float().mean())
        ctx.log(f"unseen eszsl: closed-form fit on {len(x)} clips, {len(classes)} classes; "
                f"train accuracy among seen classes {100 * train_acc:.1f}%")
        self.fitted = True
        return self

    def _compat(self, x: Tensor, class_text: Tensor) -> Tensor:
        net = self.net
        if net is None:
            raise NotFittedError(self.label)
        with torch.inference_mode():
            ct = class_text.to(self.device, torch.float32)
            parts = [net(chunk.to(self.device), ct) for chunk in x.split(_CHUNK)]
        return torch.cat(parts).cpu() if parts else torch.empty(0, len(class_text))

    def compatibility(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        """(N, K) ``x̂ V s_c`` for each candidate class c (higher = more compatible), float32 on CPU."""
        cand = torch.as_tensor(candidates, dtype=torch.long).cpu()
        return self._compat(samples.x, torch.as_tensor(text, dtype=torch.float32)[cand])

    def distances(self, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
        """(N, K) negative compatibility ``−x̂ V s_c`` (smaller = closer; a score, not a metric)."""
        return (-self.compatibility(samples, candidates, text)).clone()  # an ordinary tensor callers may edit
