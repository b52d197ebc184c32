"""A conformance test kit for avood components, for plugin authors and the built-ins alike.

One call checks that a component class honours its protocol::

    from avood_core.testing import check_component
    from my_pkg.model import MyUnseen

    def test_my_unseen_conforms():
        check_component(MyUnseen, params={"epochs": 2})   # raises AssertionError listing failures

or, with one pytest test per check, subclass :class:`ComponentContract`::

    from avood_core.testing import ComponentContract

    class TestMyUnseen(ComponentContract):
        component = MyUnseen
        params = {"epochs": 2}

The checks (:data:`CHECKS`), each also callable on its own:

``protocol``
    the class subclasses the protocol of its ``kind`` (``generator``, ``detector``, ``seen``,
    ``unseen``), overrides the methods of that kind, and declares ``quick``,
    ``uses_synthetic`` and ``depends_on`` with the right types.
``params``
    ``Params`` is a pydantic model that builds with no arguments (defaults = the paper),
    rejects unknown keys, documents every field (``Field(description=...)``), accepts the
    class's ``quick`` overrides and the caller's, and survives the JSON round trip that
    checkpoints use.
``outputs``
    on a tiny synthetic task built here (:func:`make_kit_data`), ``fit`` returns the component
    and leaves its inputs unchanged; ``generate`` / ``score`` / ``is_seen`` / ``predict`` /
    ``distances`` / ``state_scalars`` / ``selected_params`` pass the checks the pipeline applies
    to every call (:mod:`avood_core.pipeline.boundary`, the same functions): right shapes,
    dtypes and class sets (global ids of the seen classes, or of the candidates; int64 here),
    finite, detached from autograd, JSON-able learned scalars.
``score_direction``
    detectors only: the real seen training samples score lower on average than the
    synthetic unseen samples the detector was fitted on (OOD score: higher = more unseen),
    the threshold is finite and ``is_seen`` equals ``score < threshold``.
``save_load``
    a round trip through :func:`avood_core.pipeline.store.save_component` /
    :func:`~avood_core.pipeline.store.load_component` gives the same outputs: identical class ids,
    routing and thresholds, floats equal up to :data:`SAVE_LOAD_RTOL` / :data:`SAVE_LOAD_ATOL`
    (a reloaded weight may be laid out differently in memory, which can change the last bits).
``determinism``
    seeding (:func:`avood_core.train.loops.seed_everything`) and fitting a fresh instance again
    gives bit-identical outputs.

Fusion plugins (kind ``fusion``) have their own checks (:data:`FUSION_CHECKS`: protocol, params,
outputs, gradients, modalities, save_load, determinism), run by :func:`check_fusion` or by
``check_component`` given a fusion class; see :mod:`avood_core.testing.fusion`.

Budgets: the params used are the class's ``quick`` overrides plus the caller's, so a test
shrinks epochs with ``params={"epochs": 2}``. The kit runs on the CPU with one torch thread
(tiny models gain nothing from more, and a busy machine slows them down) and restores the
thread count afterwards.

The task is small (6 seen and 3 unseen classes, 16-d audio, 12-d video, 10-d text). The
detector's "synthetic unseen" samples are held-out real clips of the unseen classes drawn
from the same process (a perfect generator stands in for the real one, so a detector is
judged on its own); they are disjoint from the test clips used for outputs. Components that
declare ``depends_on`` get fitted stand-ins (:class:`StandInGenerator`, ...) in
``ctx.fitted`` unless the caller passes its own ``dependencies``.

The kit is split by concern: :mod:`~avood_core.testing.data` (the task and context),
:mod:`~avood_core.testing.standins` (the stand-in components), :mod:`~avood_core.testing.fitting`
(fitting and outputs), :mod:`~avood_core.testing.checks` (the individual checks) and
:mod:`~avood_core.testing.contract` (:func:`check_component`, its report and
:class:`ComponentContract`); every name below is importable from ``avood_core.testing`` itself.
"""

from __future__ import annotations

from avood_core.testing.checks import (
    CHECKS,
    SAVE_LOAD_ATOL,
    SAVE_LOAD_RTOL,
    check_determinism,
    check_outputs,
    check_params,
    check_protocol,
    check_save_load,
    check_score_direction,
)
from avood_core.testing.contract import ComponentContract, check_component
from avood_core.testing.data import KIT_SPEC, KitData, make_context, make_kit_data, torch_threads
from avood_core.testing.errors import CheckResult, ConformanceError, ConformanceReport
from avood_core.testing.fusion import FUSION_CHECKS, check_fusion
from avood_core.testing.fitting import N_PER_CLASS, bind, component_outputs, fit_component, kit_params
from avood_core.testing.standins import (
    STAND_INS,
    StandInDetector,
    StandInGenerator,
    StandInSeen,
    StandInUnseen,
)

__all__ = [
    "CHECKS",
    "FUSION_CHECKS",
    "KIT_SPEC",
    "CheckResult",
    "ComponentContract",
    "ConformanceError",
    "ConformanceReport",
    "KitData",
    "StandInDetector",
    "StandInGenerator",
    "StandInSeen",
    "StandInUnseen",
    "bind",
    "check_component",
    "check_determinism",
    "check_fusion",
    "check_outputs",
    "check_params",
    "check_protocol",
    "check_save_load",
    "check_score_direction",
    "component_outputs",
    "fit_component",
    "kit_params",
    "make_context",
    "make_kit_data",
    "torch_threads",
]
