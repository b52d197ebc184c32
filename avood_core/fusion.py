"""Fusion: how a component combines the audio and visual features before its own network.

The paper lets "different modality fusion methods (Fusion 1-5) be implemented at various stages"
(Fig. 1, §1): concatenation ``x = a ⊕ v`` for the generator, the OOD detector and the seen classifier
(Fig. 2, §3.1), a transformer cross-attention (Fusion-5) in the unseen classifier (§3.4). A fusion is a
plugin of kind ``fusion`` (docs/writing-a-plugin.md §10); components hand each other ``x = a ⊕ v`` and
:func:`input_x` gives each consumer what it reads, or a one-line error.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import Tensor, nn

from avood_core.errors import ConfigError, DataError, PluginError
from avood_core.protocols import NoParams


class Fusion(nn.Module):
    """Base of every fusion plugin: ``out_dim(audio_dim, video_dim)`` and ``forward(audio, video)``; ``modalities``:
    the inputs it reads; ``splittable``: it outputs those concatenated, audio first (a generator may use it)."""

    kind: ClassVar[str] = "fusion"
    Params: ClassVar[type[BaseModel]] = NoParams
    modalities: ClassVar[tuple[str, ...]] = ("audio", "video")
    splittable: ClassVar[bool] = False

    def __init__(self, audio_dim: int, video_dim: int, params: BaseModel | Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        super().__init__()
        if isinstance(params, BaseModel):
            params = params.model_dump()
        self.params = self.Params.model_validate({**(params or {}), **overrides})
        self.audio_dim, self.video_dim = int(audio_dim), int(video_dim)
        self.dim = self.out_dim(self.audio_dim, self.video_dim)

    def out_dim(self, audio_dim: int, video_dim: int) -> int:
        """Width of the fused feature for these input dims (raise ``ConfigError`` if they do not fit)."""
        raise NotImplementedError

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:  # type: ignore[override]
        raise NotImplementedError

    def fuse_x(self, x: Tensor) -> Tensor:
        """The fusion of ``x = a ⊕ v`` (split at ``audio_dim``)."""
        return self(x[:, : self.audio_dim], x[:, self.audio_dim :])


def require_equal_dims(name: str, audio_dim: int, video_dim: int) -> int:
    """The common dim, or a one-line error naming the fusion and the fix."""
    if audio_dim != video_dim:
        raise ConfigError(f"fusion '{name}' needs equal audio and video dims, got {audio_dim} and {video_dim}; "
                          "use fusion = 'concat' or 'gated'")
    return audio_dim


class FusionParams(BaseModel):
    """The ``fusion`` / ``fusion_params`` fields of a component that consumes features."""

    model_config = ConfigDict(extra="forbid")

    fusion: str = Field("concat", description=(
        "How this component combines the audio and visual features before its network: a fusion plugin "
        "(see 'avood plugins'; built-ins concat, audio, video, mean, sum, gated, cross_attention)."))
    fusion_params: dict[str, Any] = Field(default_factory=dict, description=(
        "Params of the fusion plugin (its Params model), e.g. {dim = 256} for gated."))

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, v: str) -> str:
        from avood_core.registry import get_registry

        names = get_registry().names("fusion")
        if names and v not in names:
            raise ValueError(f"unknown fusion '{v}'; valid fusions: {', '.join(names)}")
        return v

    @model_validator(mode="after")
    def _fusion_params_fit(self) -> "FusionParams":
        """Non-empty ``fusion_params`` are checked against the fusion's ``Params`` at config time."""
        if self.fusion_params:
            try:
                fusion_class(self.fusion).Params.model_validate(self.fusion_params)
            except PluginError:
                pass  # an unregistered fusion (custom registry): checked when it is built
            except ValidationError as exc:
                raise ValueError(_params_error(self.fusion, exc)) from None
        return self


def _params_error(name: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"fusion_params.{'.'.join(map(str, err['loc']))} of fusion '{name}': {err['msg']}"


def fusion_class(name: str) -> type[Fusion]:
    from avood_core.registry import get_registry

    return get_registry().component_class("fusion", name)


def make_fusion(name: str, audio_dim: int, video_dim: int, params: Mapping[str, Any] | None = None,
                who: str = "component") -> Fusion:
    """An instance of fusion plugin ``name`` for these dims; bad params give a one-line error naming ``who``."""
    cls = fusion_class(name)
    try:
        return cls(audio_dim, video_dim, dict(params or {}))
    except ValidationError as exc:
        raise ConfigError(f"{who}: {_params_error(name, exc)}") from None


class FusedMLP(nn.Sequential):
    """``mlp(fusion(a, v))`` on ``x = a ⊕ v``; the MLP layers keep the names and indices of a plain
    ``nn.Sequential`` (``0.weight``, ...), a learned fusion's parameters are ``fusion.*``."""

    def __init__(self, fusion: Fusion, mlp: nn.Sequential) -> None:
        super().__init__(*mlp)
        self.fusion = fusion

    def layers(self) -> list[nn.Module]:
        """The MLP's layers (indexing, ``len`` and iteration see these only, as on a plain MLP)."""
        return [m for name, m in self._modules.items() if name != "fusion"]

    def __getitem__(self, idx):  # type: ignore[override]
        return nn.Sequential(*self.layers()[idx]) if isinstance(idx, slice) else self.layers()[idx]

    def __len__(self) -> int:
        return len(self.layers())

    def __iter__(self):
        return iter(self.layers())

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(self.fusion.fuse_x(x))  # through the MLP's layers (__iter__)


def build_fused_mlp(params: Any, in_dim: int, audio_dim: int | None, make_mlp, who: str) -> FusedMLP:
    """The fusion named by ``params.fusion`` (built first; ``audio_dim`` None: the whole input as
    audio), then ``make_mlp(fused_dim)`` behind it."""
    a = in_dim if audio_dim is None else int(audio_dim)
    fusion = make_fusion(params.fusion, a, in_dim - a, params.fusion_params, who)
    return FusedMLP(fusion, make_mlp(fusion.dim))


def input_x(samples: Any, fusion: str, audio_dim: int, video_dim: int, who: str) -> Tensor:
    """``samples.x`` laid out as ``a ⊕ v`` with the given dims for a consumer of ``fusion``: a modality
    missing from ``samples`` (video (N, 0) from an audio-only generator) is zeros when ``fusion`` does
    not read it, else a one-line error naming the consumer and the fix."""
    reads = fusion_class(fusion).modalities
    parts = []
    for modality, have, want in (("audio", samples.audio, audio_dim), ("video", samples.video, video_dim)):
        if have.shape[1] == want:
            parts.append(have)
        elif have.shape[1] == 0 and modality not in reads:
            parts.append(torch.zeros(len(have), want, dtype=have.dtype, device=have.device))
        else:
            hint = (f"set {who.split()[0]}.fusion to one reading only what the generator synthesizes, or "
                    "generator.fusion = 'concat'") if have.shape[1] == 0 else "use features of the same dims"
            raise DataError(f"{who}: fusion '{fusion}' reads {modality} ({want} dims) but these features have "
                            f"{have.shape[1]}; {hint}")
    return torch.cat(parts, dim=1)

