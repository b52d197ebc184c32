"""The AV-OOD pipeline: fit the components of the stage table, route each clip through the gate, evaluate.

Modules: :mod:`.core` (the :class:`Pipeline`, input checks), :mod:`.fit` (scheduling; workers in
:mod:`.worker`), :mod:`.route` (the gate's decision), :mod:`.scores` (metrics), :mod:`.boundary`
(every call into a component), :mod:`.store` (component checkpoints), :mod:`.folder` (the run folder).
"""

from avood_core.pipeline.core import Pipeline, Prediction
from avood_core.pipeline.route import route
from avood_core.pipeline.scores import Evaluation, scores_from_outputs

__all__ = ["Evaluation", "Pipeline", "Prediction", "route", "scores_from_outputs"]
