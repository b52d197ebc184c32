"""The stages of the AV-OOD pipeline, declared once (paper Fig. 2, §3): a Pipeline holds one component
per row and fits, routes, saves and loads them by the rows; the registry's kinds, the protocols, the run
config, the CLI's ``--<kind>`` options and the ``--resume`` fit hashes read the table too. ``inputs``:
``train`` (real seen features), ``text`` (class embeddings), ``synthetic`` (what the ``Generator`` row
synthesizes right after its fit; as in the reference code AV-OOD-GZSL ``main.py``, the OOD detector trains
on real seen vs generated unseen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Stage:
    """One row of the stage table."""

    kind: str  # a run config's table, the registry's kind, ``components/<kind>``
    protocol_name: str  # its protocol class in avood_core.protocols (routing finds the gate, classifiers by it)
    inputs: tuple[str, ...]  # what ``fit`` is given, in argument order, before the fit context
    after: tuple[str, ...]  # kinds fitted before it in one process (a worker waits for inputs, depends_on)
    worker: int  # 0: always in the main process; else its rank among the kinds ``fit(jobs=N)`` sends to workers
    noun: str  # how messages, listings and ``--help`` name one component of this kind
    default: str  # the plugin a run config uses when it names none: the paper's choice
    required: tuple[tuple[str, ...], ...]  # methods it must override (any one of each tuple; testing kit)

    def fit_args(self, data: Mapping[str, object]) -> tuple:
        """The positional arguments of this kind's ``fit`` before the context, taken from ``data`` by input name."""
        return tuple(data[name] for name in self.inputs)

    @property
    def uses_synthetic(self) -> bool:
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


def fit_order(stages: tuple[Stage, ...] = STAGES) -> tuple[str, ...]:
    """The kinds in fitting order: each after every kind of its ``after``, ties in table order."""
    order: list[str] = []
    while len(order) < len(stages):
        ready = [s.kind for s in stages if s.kind not in order and all(a in order for a in s.after)]
        if not ready:
            raise ValueError(f"the stage table has a cycle among {[s.kind for s in stages if s.kind not in order]}")
        order.append(ready[0])
    return tuple(order)


def kind_of(protocol_name: str, stages: tuple[Stage, ...] = STAGES) -> str:
    """The kind of the row whose protocol is ``protocol_name``."""
    return next(s.kind for s in stages if s.protocol_name == protocol_name)


def worker_kinds(jobs: int, skip: frozenset[str] = frozenset(), stages: tuple[Stage, ...] = STAGES) -> list[str]:
    """The kinds ``fit(jobs=...)`` sends to its ``jobs - 1`` worker processes, by their ``worker`` rank."""
    ranked = sorted((s for s in stages if s.worker and s.kind not in skip), key=lambda s: s.worker)
    return [s.kind for s in ranked][: max(jobs - 1, 0)]


BY_KIND: dict[str, Stage] = {s.kind: s for s in STAGES}
KINDS: tuple[str, ...] = tuple(BY_KIND)
FIT_ORDER: tuple[str, ...] = fit_order()
"""``generator, seen, unseen, detector``: the generator first (its output feeds the others), the
gate last so that it may use the fitted classifiers (``ctx.fitted``)."""
SYNTHETIC_FROM = kind_of("Generator")
"""The stage whose ``generate`` gives the ``synthetic`` fit input, right after its own fit."""
FIT_STEPS: tuple[str, ...] = tuple(step for kind in FIT_ORDER
                                   for step in ((kind, "synthesize") if kind == SYNTHETIC_FROM else (kind,)))
"""Each kind's fit and ``synthesize`` after the generator: the names of ``Pipeline.timings``."""
