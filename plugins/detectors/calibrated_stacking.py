"""Calibrated stacking as a seen/unseen gate (AVCA's bias reduction; paper Table 2).

AVCA classifies a clip among all classes by the embedding model's distances ``d(x, t_c)``
after adding a constant ``β`` to the distances of the seen classes:
``ŷ = argmin_c d(x, t_c) + β·[c seen]``. Used as the gate of the AV-OOD pipeline, a clip is
routed to the seen branch iff that argmin is a seen class. With
``m(x) = min_{c seen} d(x, t_c) − min_{c unseen} d(x, t_c)``:

    argmin is seen  ⇔  min_seen + β < min_unseen  ⇔  m(x) < −β.

So the OOD score is ``score(x) = m(x)`` (higher = farther from every seen class relative to
the nearest unseen one = more likely unseen) and ``threshold = −β``; the pipeline's rule
``score < threshold`` is exactly calibrated stacking, and the ROC over the score is the sweep
over β. A tie ``min_seen + β = min_unseen`` routes unseen (measure zero for real features).
The distances come from the fitted unseen classifier (``ctx.fitted["unseen"]``, which must
implement ``distances``, e.g. ``cross_attention``), over ``ctx.seen_classes`` and
``ctx.unseen_classes``; the gate keeps a reference to it (``depends_on = ("unseen",)``, given
back by the pipeline after loading a run folder) and the task's text matrix.

Choosing β (``beta = None``): from ``beta_grid`` (default ``linspace(0, 3, 16)``) by the
harmonic mean HM = 2SU/(S+U) of the calibrated argmin prediction above (AVCA's criterion: the
embedding model's own GZSL accuracy), first maximum on ties. S is the mean per-class accuracy
over seen-class clips and U over unseen-class clips of a *selection set*; the test split is
never read (the pipeline does not hand it to ``fit``). The selection set is:

* **benchmark stage 1**: ``ctx.val`` = the stage-1 validation split, whose clips belong to
  the stage-1 training classes (``ctx.seen_classes``) and to the validation unseen classes
  (``ctx.unseen_classes`` of stage 1). β is reported by :meth:`selected_params`, so stage 2
  (refit on train_val, no val split) reuses it as a fixed ``beta``, as in AVCA's protocol.
* **embedded task** (``ctx.val`` = held-out clips of the *seen* classes only): S on those
  held-out real seen clips, U on the generator's synthetic unseen features (``ctx.synthetic``,
  the same stand-in for unseen data that the OOD detectors train on). Nothing is refitted, so
  the choice costs one distance pass. Rejected alternatives: pretending a random subset of the
  seen classes is unseen inside ``ctx.val`` is unsound, because the embedding model was trained
  on those classes and their distances lack the very seen bias β exists to offset (β would
  come out too small); truly holding classes out would mean refitting the embedding model.
* without a selection split (``ctx.val`` is None): S on the training clips (optimistic: the
  model was fitted on them) and U on the synthetic features; a log line says so.

A given ``beta`` (a number) is used as is and nothing is selected.
"""

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


def stacking_margin(d_seen: Tensor, d_unseen: Tensor) -> Tensor:
    """``min_seen d − min_unseen d`` per row: calibrated stacking routes seen iff it is < −β."""
    return d_seen.min(dim=1).values - d_unseen.min(dim=1).values


def calibrated_predictions(margin: Tensor, seen_pred: Tensor, unseen_pred: Tensor, beta: float) -> Tensor:
    """AVCA's calibrated argmin: the nearest seen class where ``margin < −β``, else the nearest unseen."""
    return torch.where(margin < -beta, seen_pred, unseen_pred)


def beta_curve(margin: Tensor, seen_pred: Tensor, unseen_pred: Tensor, labels: Tensor,
               seen_classes: Tensor, unseen_classes: Tensor, grid: list[float]) -> list[dict[str, float]]:
    """S, U, HM (percent) of the calibrated prediction at each β of ``grid``."""
    return [{"beta": float(b), **metrics.gzsl_scores(calibrated_predictions(margin, seen_pred, unseen_pred, b),
                                                     labels, seen_classes, unseen_classes)}
            for b in grid]


class CalibratedStacking(OODDetector):
    """AVCA's calibrated stacking over the unseen classifier's distances, as a gate."""

    depends_on: ClassVar[tuple[str, ...]] = ("unseen",)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        beta: float | None = Field(
            None,
            description="Calibration β added to the seen classes' distances. None = choose it from beta_grid by HM on "
            "the selection split (stage-1 val; embedded task: held-out seen clips + synthetic unseen), and report "
            "it so stage 2 reuses it; a number = use it as is.",
        )
        beta_grid: list[float] = Field(
            default_factory=lambda: list(DEFAULT_GRID), max_length=LIMITS["grid"].high,
            description=f"Candidate β values (AVCA: linspace(0, 3, 16)); the first one with the best HM wins. {note('grid')}",
        )

        @field_validator("beta_grid")
        @classmethod
        def _grid(cls, v: list[float]) -> list[float]:
            if not v:
                raise ValueError("beta_grid is empty; give at least one β, e.g. [0.0, 0.2, 0.4]")
            return v

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.beta: float = float("nan")
        self.threshold: float = float("nan")
        self.seen_classes: Tensor = torch.empty(0, dtype=torch.long)
        self.unseen_classes: Tensor = torch.empty(0, dtype=torch.long)
        self.text: Tensor | None = None
        self.selection: dict[str, Any] | None = None
        self._unseen: Component | None = None

    # -- wiring -------------------------------------------------------------------------------
    def bind_fitted(self, fitted: Mapping[str, Component]) -> None:
        if fitted.get("unseen") is not None:
            self._unseen = fitted["unseen"]

    @property
    def candidates(self) -> Tensor:
        """Distance columns: the seen classes, then the unseen classes (global ids)."""
        return torch.cat([self.seen_classes, self.unseen_classes])

    def _split_distances(self, samples: AVSamples) -> tuple[Tensor, Tensor]:
        if self.text is None:
            raise NotFittedError(self.label, "fit it in a pipeline or load it with Pipeline.load")
        if self._unseen is None:
            raise AvoodError(f"{self.label} has no fitted unseen classifier bound; fit it in a pipeline "
                             "or load it with Pipeline.load (which binds the run's unseen classifier)")
        try:
            d = self._unseen.distances(samples, self.candidates, self.text)  # type: ignore[attr-defined]
        except NotImplementedError:
            name = type(self._unseen).__name__
            raise AvoodError(f"calibrated_stacking needs class distances from the unseen classifier, but {name} "
                             f"provides none; use an embedding unseen classifier such as cross_attention") from None
        d = torch.as_tensor(d, dtype=torch.float32).cpu()
        k = len(self.seen_classes)
        return d[:, :k], d[:, k:]

    # -- protocol -----------------------------------------------------------------------------
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

    def _selection_set(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> tuple[AVSamples, str]:
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
        parts = [seen_part, unseen_part]
        return AVSamples.concat(*[AVSamples(p.audio.cpu(), p.video.cpu(), p.labels.cpu()) for p in parts]), \
            f"{seen_src} + {unseen_src}"

    def _select(self, seen: AVSamples, synthetic_unseen: AVSamples, ctx: FitContext) -> tuple[float, dict]:
        samples, source = self._selection_set(seen, synthetic_unseen, ctx)
        d_seen, d_unseen = self._split_distances(samples)
        margin = stacking_margin(d_seen, d_unseen)
        seen_pred = self.seen_classes[d_seen.argmin(dim=1)]
        unseen_pred = self.unseen_classes[d_unseen.argmin(dim=1)]
        curve = beta_curve(margin, seen_pred, unseen_pred, samples.labels, self.seen_classes, self.unseen_classes,
                           list(self.params.beta_grid))
        best = max(range(len(curve)), key=lambda i: (curve[i]["HM"], -i))  # first maximum
        return float(curve[best]["beta"]), {"source": source, "samples": len(samples), "curve": curve,
                                            "best_HM": curve[best]["HM"]}

    def margin(self, samples: AVSamples) -> Tensor:
        """``min_seen d − min_unseen d`` per sample (float32, CPU)."""
        d_seen, d_unseen = self._split_distances(samples)
        return stacking_margin(d_seen, d_unseen)

    def score(self, samples: AVSamples) -> Tensor:
        """OOD score = stacking margin; seen iff ``score < threshold = −β`` (see the module docstring)."""
        return self.margin(samples)

    def predict_calibrated(self, samples: AVSamples) -> Tensor:
        """AVCA's calibrated GZSL prediction over all classes (global ids, CPU)."""
        d_seen, d_unseen = self._split_distances(samples)
        return calibrated_predictions(stacking_margin(d_seen, d_unseen), self.seen_classes[d_seen.argmin(dim=1)],
                                      self.unseen_classes[d_unseen.argmin(dim=1)], self.beta)

    def selects_on_val(self) -> bool:
        """β = None is chosen on the selection split, so stage 1 must run to carry it."""
        return self.params.beta is None

    def selected_params(self) -> dict[str, Any]:
        """The β chosen on the selection split (stage 1), to fix for stage 2; nothing when β was given."""
        if self.params.beta is None and self.selection is not None:
            return {"beta": float(self.beta)}
        return {}

    # -- checkpoint ---------------------------------------------------------------------------
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
