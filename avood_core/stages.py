"""The four stages of the AV-OOD pipeline, declared once (paper Fig. 2, §3).

Every place that needs the kinds, their order or their dependencies reads :data:`STAGES`:
the pipeline's fitting order, fit arguments and worker scheduling (avood_core.pipeline.fit),
the fit hashes of ``--resume`` (avood_core.run.driver.fit_hashes), the registry's kinds
(avood_core.registry.KINDS), the protocol classes (avood_core.protocols.PROTOCOLS), the CLI's
``--generator/--detector/--seen/--unseen`` options and the run folder's ``components/<kind>``.

Fit inputs name the arguments of each protocol's ``fit`` before the :class:`FitContext`:
``train`` (real seen features), ``text`` (class embeddings) and ``synthetic`` (the generator's
unseen features: a stage with that input needs the generator first, as in the reference code
AV-OOD-GZSL ``main.py``, where the OOD detector trains on real seen vs generated unseen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # imported lazily: the CLI reads the kinds without importing pydantic or torch
    from avood_core.protocols import Component

FitInput = Literal["train", "text", "synthetic"]


@dataclass(frozen=True)
class Stage:
    """One row of the stage table."""

    kind: str
    """The component kind (a run config's table, the registry's kind, ``components/<kind>``)."""
    protocol_name: str
    """The class a component of this kind subclasses: ``avood_core.protocols.<protocol_name>``."""
    inputs: tuple[FitInput, ...]
    """What ``fit`` is given, in argument order, before the fit context."""
    after: tuple[str, ...]
    """Kinds fitted before this one when one process fits them all (the fitting order).

    A kind trained in a worker waits only for the data it needs (``synthetic``) and the kinds
    its component declares in ``depends_on``."""
    worker: int
    """0: always fitted in the main process; else its rank among the kinds ``fit(jobs=N)`` sends
    to the ``N - 1`` worker processes (1 first: the slowest, the unseen classifier)."""
    noun: str
    """How messages, listings and ``--help`` name one component of this kind."""
    default: str
    """The plugin a run config uses when it names none: the paper's choice (paper §3, Fig. 2)."""
    required: tuple[tuple[str, ...], ...]
    """The methods a component of this kind must override (any one of each tuple; testing kit)."""

    @property
    def protocol(self) -> type[Component]:
        """The protocol class (:data:`avood_core.protocols.PROTOCOLS` maps each kind to it)."""
        from avood_core import protocols

        return getattr(protocols, self.protocol_name)

    def fit_args(self, train: object, text: object, synthetic: object) -> tuple:
        """The positional arguments of this kind's ``fit`` before the context, in table order."""
        values = {"train": train, "text": text, "synthetic": synthetic}
        return tuple(values[name] for name in self.inputs)

    @property
    def uses_synthetic(self) -> bool:
        """Whether ``fit`` always takes the generator's synthetic features."""
        return "synthetic" in self.inputs


STAGES: tuple[Stage, ...] = (
    Stage("generator", "Generator", inputs=("train", "text"), after=(), worker=0, noun="generator",
          default="wgan_gp", required=(("fit",), ("generate",))),
    Stage("detector", "OODDetector", inputs=("train", "synthetic"), after=("generator", "seen", "unseen"), worker=0,
          noun="detector", default="entropy", required=(("fit",), ("score",))),
    Stage("seen", "SeenClassifier", inputs=("train",), after=("generator",), worker=2, noun="seen classifier",
          default="mlp", required=(("fit",), ("predict",))),
    Stage("unseen", "UnseenClassifier", inputs=("train", "text"), after=("generator",), worker=1,
          noun="unseen classifier", default="cross_attention", required=(("fit",), ("distances", "predict"))),
)
"""The stage table, in the canonical order of the kinds (configs, listings, run folders)."""

BY_KIND: dict[str, Stage] = {s.kind: s for s in STAGES}
KINDS: tuple[str, ...] = tuple(BY_KIND)
"""The pipeline's stages (one component each in a run config)."""


def _fit_order() -> tuple[str, ...]:
    """The kinds in fitting order: each after every kind of its ``after``, ties in table order."""
    order: list[str] = []
    while len(order) < len(STAGES):
        ready = [s.kind for s in STAGES if s.kind not in order and all(a in order for a in s.after)]
        if not ready:
            raise RuntimeError(f"the stage table has a cycle among {[s.kind for s in STAGES if s.kind not in order]}")
        order.append(ready[0])
    return tuple(order)


FIT_ORDER: tuple[str, ...] = _fit_order()
"""``generator, seen, unseen, detector``: the generator first (its output feeds the others), the
gate last so that it may use the fitted classifiers (``ctx.fitted``)."""
WORKER_KINDS: tuple[str, ...] = tuple(s.kind for s in sorted(STAGES, key=lambda s: s.worker) if s.worker)
"""The kinds that may train in a worker process, in the order they are sent there."""
SYNTHETIC_FROM = next(s.kind for s in STAGES if s.protocol_name == "Generator")
"""The stage whose ``generate`` gives the ``synthetic`` fit input, right after its own fit."""
FIT_STEPS: tuple[str, ...] = tuple(step for kind in FIT_ORDER
                                   for step in ((kind, "synthesize") if kind == SYNTHETIC_FROM else (kind,)))
"""What one process does in a fit, in order: each kind's fit, and ``synthesize`` after the generator
(the names of ``Pipeline.timings`` and of the benchmark's stage rows)."""
