"""A conformance test kit for avood components, for plugin authors and the built-ins alike::

    from avood_core.testing import check_component, ComponentContract

    def test_my_unseen_conforms():
        check_component(MyUnseen, params={"epochs": 2})   # raises AssertionError listing failures

    class TestMyUnseen(ComponentContract):                # or one pytest test per check
        component = MyUnseen
        params = {"epochs": 2}

The checks (:data:`CHECKS`, each also callable alone): ``protocol`` (the class subclasses its
kind's protocol and declares ``quick``, ``uses_synthetic``, ``depends_on``), ``params`` (a
pydantic ``Params`` with documented defaults that rejects unknown keys and round-trips JSON),
``outputs`` (on a tiny task, every call passes the pipeline's own boundary checks,
:mod:`avood_core.pipeline.boundary`), ``score_direction`` (detectors: real seen clips score lower
than the synthetic unseen ones; ``is_seen == score < threshold``), ``save_load`` (a checkpoint
round trip gives the same outputs, floats up to :data:`SAVE_LOAD_RTOL` / :data:`SAVE_LOAD_ATOL`)
and ``determinism`` (seeded refits are bit-identical). Fusion plugins have their own
(:data:`FUSION_CHECKS`, :func:`check_fusion`).

The params are the class's ``quick`` overrides plus the caller's; the kit runs on the CPU with
one torch thread. The task has 6 seen and 3 unseen classes (16-d audio, 12-d video, 10-d text);
a detector's "synthetic unseen" clips are held-out real ones (a perfect generator), and
components with ``depends_on`` get fitted stand-ins (:class:`StandInGenerator`, ...).
"""

from __future__ import annotations

from avood_core.testing.checks import (CHECKS, SAVE_LOAD_ATOL, SAVE_LOAD_RTOL, check_determinism, check_outputs,
                                       check_params, check_protocol, check_save_load, check_score_direction)
from avood_core.testing.contract import ComponentContract, check_component
from avood_core.testing.data import KIT_SPEC, KitData, make_context, make_kit_data, torch_threads
from avood_core.testing.errors import CheckResult, ConformanceError, ConformanceReport
from avood_core.testing.fitting import N_PER_CLASS, bind, component_outputs, fit_component, kit_params
from avood_core.testing.fusion import FUSION_CHECKS, check_fusion
from avood_core.testing.standins import STAND_INS, StandInDetector, StandInGenerator, StandInSeen, StandInUnseen

__all__ = [
    "CHECKS", "FUSION_CHECKS", "KIT_SPEC", "CheckResult", "ComponentContract", "ConformanceError",
    "ConformanceReport", "KitData", "StandInDetector", "StandInGenerator", "StandInSeen", "StandInUnseen", "bind",
    "check_component", "check_determinism", "check_fusion", "check_outputs", "check_params", "check_protocol",
    "check_save_load", "check_score_direction", "component_outputs", "fit_component", "kit_params", "make_context",
    "make_kit_data", "torch_threads",
]
