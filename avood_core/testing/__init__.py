"""A conformance test kit for avood components: :func:`check_component` or the pytest base class
:class:`ComponentContract`; the checks (:data:`CHECKS`, :data:`FUSION_CHECKS`) and the kit's
task are described in docs/writing-a-plugin.md §6 and §10."""

from __future__ import annotations

from avood_core.testing.checks import (CHECKS, FUSION_CHECKS, SAVE_LOAD_ATOL, SAVE_LOAD_RTOL, check_determinism,
                                       check_outputs, check_params, check_protocol, check_save_load,
                                       check_score_direction)
from avood_core.testing.contract import ComponentContract, check_component, check_fusion
from avood_core.testing.errors import CheckResult, ConformanceError, ConformanceReport
from avood_core.testing.fitting import (KIT_SPEC, N_PER_CLASS, STAND_INS, KitData, StandInDetector, StandInGenerator,
                                        StandInSeen, StandInUnseen, bind, component_outputs, fit_component, kit_params,
                                        make_context, make_kit_data)
from avood_core.util.threads import torch_threads

__all__ = [
    "CHECKS", "FUSION_CHECKS", "KIT_SPEC", "CheckResult", "ComponentContract", "ConformanceError",
    "ConformanceReport", "KitData", "StandInDetector", "StandInGenerator", "StandInSeen", "StandInUnseen", "bind",
    "check_component", "check_determinism", "check_fusion", "check_outputs", "check_params", "check_protocol",
    "check_save_load", "check_score_direction", "component_outputs", "fit_component", "kit_params", "make_context",
    "make_kit_data", "torch_threads",
]
