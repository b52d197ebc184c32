"""The AV-OOD pipeline: fit the components of the stage table, route each clip through the gate, evaluate.

Modules: :mod:`.core` (the :class:`Pipeline`, input checks, routing, metrics), :mod:`.fit` (scheduling; workers
in :mod:`.worker`), :mod:`.boundary` (every call into a component), :mod:`.store` (component checkpoints),
:mod:`.folder` (the run folder).
"""

from avood_core.pipeline.core import Evaluation, Pipeline, Prediction, route, scores_from_outputs

__all__ = ["Evaluation", "Pipeline", "Prediction", "route", "scores_from_outputs"]
