"""The AV-OOD pipeline: fit the four components, route each clip through the gate, evaluate.

Fit order (paper Fig. 2; the stage table avood_core.stages): the generator learns p(x | t) on
seen classes and synthesizes ``syn_num`` features per unseen class; the seen classifier and the
unseen classifier train on real seen features (classifiers with ``uses_synthetic`` also see the
synthetic ones); the OOD detector trains last on real seen vs synthetic unseen, so a gate may use
the fitted classifiers (``ctx.fitted``). At test time a clip the detector's ``is_seen`` accepts
goes to the seen classifier, the rest to the unseen classifier (among the unseen classes).

Modules: :mod:`.core` (the :class:`Pipeline`), :mod:`.fit` (scheduling, workers in :mod:`.worker`),
:mod:`.route` (the gate's decision), :mod:`.scores` (metrics), :mod:`.validate` (input checks),
:mod:`.store` (component checkpoints) and :mod:`.folder` (the run folder).
"""

from avood_core.pipeline.core import Pipeline, Prediction
from avood_core.pipeline.route import route
from avood_core.pipeline.scores import Evaluation, scores_from_outputs

__all__ = ["Evaluation", "Pipeline", "Prediction", "route", "scores_from_outputs"]
