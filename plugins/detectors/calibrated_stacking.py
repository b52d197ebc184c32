"""Calibrated stacking as a seen/unseen gate (AVCA's bias reduction; paper Table 2): ``ŷ = argmin_c d(x, t_c) +
β·[c seen]`` over the unseen classifier's distances routes seen iff ``m(x) = min_seen d − min_unseen d < −β``:
score ``m(x)``, threshold ``−β``; ``beta = None`` picks β by HM on the selection set, never test (docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor

from avood_core.eval import metrics
from avood_core.errors import AvoodError, DataError, NotFittedError
from avood_core.limits import LIMITS, note
from avood_core.protocols import Component, FitContext, OODDetector
from avood_core.task import AVSamples

DEFAULT_GRID = [round(0.2 * i, 10) for i in range(16)]  # linspace(0, 3, 16)


def calibrated(d: Tensor, seen: Tensor, unseen: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Of (N, S + U) distances to ``seen`` then ``unseen`` classes: the margin ``min_seen d − min_unseen d``
    (calibrated stacking routes seen iff it is < −β), the nearest seen and the nearest unseen class."""
    d_seen, d_unseen = d[:, : len(seen)], d[:, len(seen):]
    margin = d_seen.min(dim=1).values - d_unseen.min(dim=1).values
    return margin, seen[d_seen.argmin(dim=1)], unseen[d_unseen.argmin(dim=1)]


def beta_curve(margin: Tensor, seen_pred: Tensor, unseen_pred: Tensor, labels: Tensor, seen: Tensor, unseen: Tensor,
               grid: list[float]) -> list[dict[str, float]]:
    """S, U, HM (percent) at each β of ``grid`` of AVCA's calibrated argmin (the nearest seen class where
    ``margin < −β``, else the nearest unseen)."""
    return [{"beta": float(b), **metrics.gzsl_scores(torch.where(margin < -b, seen_pred, unseen_pred), labels, seen,
                                                     unseen)} for b in grid]


class CalibratedStacking(OODDetector):
    """AVCA's calibrated stacking over the unseen classifier's distances, as a gate."""

    depends_on: ClassVar[tuple[str, ...]] = ("unseen",)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        beta: float | None = Field(None,
            description="Calibration β added to the seen classes' distances. None = choose it from beta_grid by HM on "
            "the selection split (stage-1 val; embedded task: held-out seen clips + synthetic unseen), and report "
            "it so stage 2 reuses it; a number = use it as is.")
        beta_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_GRID), max_length=LIMITS["grid"].high,
            description=f"Candidate β values (AVCA: linspace(0, 3, 16)); the first one with the best HM wins. {note('grid')}")

        @field_validator("beta_grid")
        @classmethod
        def _grid(cls, v: list[float]) -> list[float]:
            if not v:
                raise ValueError("beta_grid is empty; give at least one β, e.g. [0.0, 0.2, 0.4]")
            return v

    beta: float = float("nan")
    seen_classes: Tensor = torch.empty(0, dtype=torch.long)  # set at fit, sorted
    unseen_classes: Tensor = torch.empty(0, dtype=torch.long)
    text: Tensor | None = None
    selection: dict[str, Any] | None = None  # how beta was chosen (None: given)
    _unseen: Component | None = None

    def bind_fitted(self, fitted: Mapping[str, Component]) -> None:
        if fitted.get("unseen") is not None:
            self._unseen = fitted["unseen"]

    def _calibrated(self, samples: AVSamples) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`calibrated` on the unseen classifier's distances of ``samples`` (float32, CPU)."""
        if self.text is None:
            raise NotFittedError(self.label, "fit it in a pipeline or load it with Pipeline.load")
        if self._unseen is None:
            raise AvoodError(f"{self.label} has no fitted unseen classifier bound; fit it in a pipeline "
                             "or load it with Pipeline.load (which binds the run's unseen classifier)")
        try:
            d = self._unseen.distances(samples, torch.cat([self.seen_classes, self.unseen_classes]),  # type: ignore
                                       self.text)
        except NotImplementedError:
            name = type(self._unseen).__name__
            raise AvoodError(f"calibrated_stacking needs class distances from the unseen classifier, but {name} "
                             f"provides none; use an embedding unseen classifier such as cross_attention") from None
        return calibrated(torch.as_tensor(d, dtype=torch.float32).cpu(), self.seen_classes, self.unseen_classes)

    def fit(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> "CalibratedStacking":
        unseen_clf = ctx.fitted.get("unseen")
        if unseen_clf is None:
            raise AvoodError("calibrated_stacking needs the fitted unseen classifier in ctx.fitted['unseen'] "
                             "(the pipeline fits it before the detector)")
        self._unseen = unseen_clf
        self.seen_classes = torch.unique(torch.as_tensor(ctx.seen_classes, dtype=torch.long).cpu())
        self.unseen_classes = torch.unique(torch.as_tensor(ctx.unseen_classes, dtype=torch.long).cpu())
        if len(self.seen_classes) == 0 or len(self.unseen_classes) == 0:
            raise DataError("calibrated_stacking: needs at least one seen and one unseen class")
        self.text = torch.as_tensor(ctx.text, dtype=torch.float32).cpu()
        if self.params.beta is not None:
            self.beta, self.selection = float(self.params.beta), None
        else:
            self.beta, self.selection = self._select(seen, synthetic_unseen, ctx)
        self.threshold = -self.beta
        ctx.log(f"calibrated_stacking: beta = {self.beta:g}"
                + (f" (HM {self.selection['best_HM']:.2f} on {self.selection['source']})" if self.selection else " (given)"))
        self.fitted = True
        return self

    def _select(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> tuple[float, dict]:
        """β of ``beta_grid`` with the best HM on the selection set (docs/plugins.md), and how it was chosen."""
        val = ctx.val
        val_seen = val.where(self.seen_classes) if val is not None else None
        val_unseen = val.where(self.unseen_classes) if val is not None else None
        if val_seen is not None and len(val_seen):
            seen_part, seen_src = val_seen, "val seen-class clips"
        else:
            seen_part, seen_src = seen, "training clips"
            ctx.log("calibrated_stacking: no seen-class clips in the selection split; S is measured on the "
                    "training clips (optimistic)")
        if val_unseen is not None and len(val_unseen):
            unseen_part, unseen_src = val_unseen, "val unseen-class clips"
        else:
            unseen_part, unseen_src = synthetic_unseen, "synthetic unseen features"
        if len(unseen_part) == 0:
            raise DataError("calibrated_stacking: no unseen-class samples to choose beta on (neither val nor synthetic)")
        samples = AVSamples.concat(*[AVSamples(p.audio.cpu(), p.video.cpu(), p.labels.cpu())
                                     for p in (seen_part, unseen_part)])
        curve = beta_curve(*self._calibrated(samples), samples.labels, self.seen_classes, self.unseen_classes,
                           list(self.params.beta_grid))
        best = max(range(len(curve)), key=lambda i: (curve[i]["HM"], -i))  # first maximum
        return float(curve[best]["beta"]), {"source": f"{seen_src} + {unseen_src}", "samples": len(samples),
                                            "curve": curve, "best_HM": curve[best]["HM"]}

    def score(self, samples: AVSamples) -> Tensor:
        """OOD score = the stacking margin ``min_seen d − min_unseen d`` (float32, CPU); seen iff below ``−β``."""
        return self._calibrated(samples)[0]

    def predict_calibrated(self, samples: AVSamples) -> Tensor:
        """AVCA's calibrated GZSL prediction over all classes (global ids, CPU)."""
        margin, seen_pred, unseen_pred = self._calibrated(samples)
        return torch.where(margin < -self.beta, seen_pred, unseen_pred)

    def selects_on_val(self) -> bool:
        """β = None is chosen on the selection split, so stage 1 must run to carry it."""
        return self.params.beta is None

    def selected_params(self) -> dict[str, Any]:
        """The β chosen on the selection split (stage 1), to fix for stage 2; nothing when β was given."""
        if self.params.beta is None and self.selection is not None:
            return {"beta": float(self.beta)}
        return {}

    def state_tensors(self) -> dict[str, Tensor]:
        if self.text is None:
            raise NotFittedError(self.label)
        return {"text": self.text.contiguous()}

    def state_scalars(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold, "seen_classes": self.seen_classes.tolist(),
                "unseen_classes": self.unseen_classes.tolist(), "selection": self.selection}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.beta = float(scalars["beta"])
        self.threshold = float(scalars["threshold"])
        self.seen_classes = torch.as_tensor(scalars["seen_classes"], dtype=torch.long)
        self.unseen_classes = torch.as_tensor(scalars["unseen_classes"], dtype=torch.long)
        self.selection = scalars.get("selection")
        self.text = torch.as_tensor(tensors["text"], dtype=torch.float32)
        self.fitted = True
