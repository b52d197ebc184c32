"""The component protocols of the AV-OOD framework (paper Fig. 1/2), one per row of the stage table: a
``kind``, a pydantic ``Params`` model (defaults = the paper) and the protocol's methods. Features are torch
tensors; class ids are global (rows of the text matrix). The pipeline seeds the global RNGs before each
``fit`` and each ``generate``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from avood_core.callbacks import CallbackList
from avood_core.errors import NotFittedError
from avood_core.stages import STAGES

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from avood_core.util.progress import ProgressFactory
    from avood_core.task import AVSamples


class NoParams(BaseModel):
    """For components without hyperparameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class FitContext:
    """What the pipeline hands every ``fit``: shared data, device, RNG seed, progress."""

    text: "Tensor"
    seen_classes: "Tensor"
    unseen_classes: "Tensor"
    device: "torch.device"
    seed: int = 0
    progress: "ProgressFactory | None" = None
    val: "AVSamples | None" = None  # the selection split (stage-1 validation); never the test split
    synthetic: "AVSamples | None" = None  # generated unseen features, once the generator has run
    fitted: dict[str, "Component"] = field(default_factory=dict)  # components already fitted, by kind
    log: Callable[[str], None] = lambda message: None
    # Where a fit reports its curves: ``on_epoch(kind, epoch, metrics)`` after each epoch,
    # ``on_step(kind, step, metrics)`` when ``callbacks.step_due(step)`` (avood_core.callbacks).
    callbacks: CallbackList = field(default_factory=CallbackList)
    # In a worker process (``jobs > 1``): an avood_core.train.exchange.Offer whose ``poll()`` a fit may
    # call between steps to take the main process's help once it is free; else None.
    assist: Any = None

    def track(self, total: int, description: str):
        """A progress tracker (``update(n, **metrics)``), silent when progress is off."""
        from avood_core.util.progress import NullProgress

        return self.progress(total, description) if self.progress else NullProgress()


@dataclass
class TrainStats:
    """What a component's last ``fit`` did (``avood bench``, the callbacks' curve replay read it); not
    part of a checkpoint: a loaded component has empty stats."""

    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: ``epoch``, mean losses, ``lr``
    steps: int = 0  # optimizer steps (for a GAN: generator steps)
    samples: int = 0  # training rows drawn over all steps

    def reset(self) -> None:
        self.history, self.steps, self.samples = [], 0, 0


class Component:
    """Base of every component: params handling, :class:`TrainStats`, its label and the state used by checkpoints."""

    kind: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    quick: ClassVar[Mapping[str, Any]] = {}  # reduced-budget param overrides of the ``quick`` profile
    uses_synthetic: ClassVar[bool] = False  # a classifier that trains on generated unseen features
    depends_on: ClassVar[tuple[str, ...]] = ()  # kinds of fitted components it uses via ``ctx.fitted``

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(params, BaseModel):
            params = params.model_dump()
        self.params = self.Params.model_validate({**(params or {}), **overrides})
        self.fitted = False
        self.stats = TrainStats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    @property
    def label(self) -> str:
        """``"<kind> <name>"`` by the registry's name of the class (e.g. ``"detector entropy"``), what log
        lines and errors name it by; settable (a component wrapped by another takes the wrapper's label)."""
        from avood_core.registry import registered_name

        return self.__dict__.get("_label") or f"{self.kind} {registered_name(type(self))}".strip()

    @label.setter
    def label(self, value: str) -> None:
        self.__dict__["_label"] = value

    def bind_fitted(self, fitted: Mapping[str, "Component"]) -> None:
        """Receive the fitted components named in ``depends_on`` (by kind), after ``fit`` (also of a
        reused component) and after loading a run folder, e.g. a calibrated-stacking gate the unseen
        classifier. The default keeps nothing."""

    def selects_on_val(self) -> bool:
        """Whether :meth:`selected_params` can be non-empty with these params (then stage 1 runs); by
        default whether the class overrides it (one whose selection depends on its params overrides this)."""
        return type(self).selected_params is not Component.selected_params

    def selected_params(self) -> dict[str, Any]:
        """Params selected on ``ctx.val`` in stage 1, fixed for stage 2 (e.g. ``{"beta": 1.2}``, ``{"epochs": 37}``)."""
        return {}

    # State for checkpoints: tensors go to model.safetensors, scalars to config.json.
    def state_tensors(self) -> dict[str, "Tensor"]:
        return {}

    def state_scalars(self) -> dict[str, Any]:
        return {}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, "Tensor"]) -> None:
        self.fitted = True


class TorchComponent(Component):
    """A component backed by one ``nn.Module`` (``self.net``) built from a dims dict."""

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.dims: dict[str, int] = {}
        self.net: "nn.Module | None" = None
        self.device = None

    def make_net(self, **dims: int) -> "nn.Module":
        raise NotImplementedError

    def build(self, device: "torch.device | str | None" = None, **dims: int) -> "nn.Module":
        self.dims = {k: int(v) for k, v in dims.items()}
        self.net = self.make_net(**self.dims)
        if device is not None:
            self.net.to(device)
        self.device = next(self.net.parameters()).device
        return self.net

    def extra_scalars(self) -> dict[str, Any]:
        """Learned scalars beyond the weights (e.g. a threshold, class ids)."""
        return {}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        pass

    def state_tensors(self) -> dict[str, "Tensor"]:
        if self.net is None:
            raise NotFittedError(self.label)
        return {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def state_scalars(self) -> dict[str, Any]:
        return {"dims": self.dims, **self.extra_scalars()}

    def load_state(self, scalars: Mapping[str, Any], tensors: Mapping[str, "Tensor"]) -> None:
        net = self.build(**scalars["dims"])
        net.load_state_dict(dict(tensors))
        net.eval()
        self.load_extra(scalars)
        self.fitted = True


class Generator(Component):
    """Learns p(x | t) on seen classes and synthesizes fused features ``x̃ = ã ⊕ ṽ``."""

    kind: ClassVar[str] = "generator"

    def fit(self, train: "AVSamples", text: "Tensor", ctx: FitContext) -> "Generator":
        raise NotImplementedError

    def generate(self, class_ids: "Tensor", text: "Tensor", n_per_class: int) -> "AVSamples":
        """``n_per_class`` synthetic samples for each id in ``class_ids`` (text rows by id)."""
        raise NotImplementedError


class OODDetector(Component):
    """Seen/unseen gate, trained on real seen (in-distribution) and synthetic unseen (OOD): ``score`` is an OOD
    score, **higher = more likely unseen** (the entropy detector: the predictive entropy, as in the paper);
    ``threshold`` is learned in ``fit``; a clip goes to the seen branch iff ``is_seen`` (``score < threshold``)."""

    kind: ClassVar[str] = "detector"
    threshold: float = float("nan")

    def fit(self, seen: "AVSamples", synthetic_unseen: "AVSamples", ctx: FitContext) -> "OODDetector":
        raise NotImplementedError

    def score(self, samples: "AVSamples") -> "Tensor":
        raise NotImplementedError

    def is_seen(self, samples: "AVSamples") -> "Tensor":
        """True where a sample goes to the seen classifier (the pipeline routes by this)."""
        return self.seen_by_score(self.score(samples))

    def seen_by_score(self, score: "Tensor") -> "Tensor":
        """:meth:`is_seen` on scores already computed: ``score < threshold``."""
        return score < self.threshold


class SeenClassifier(Component):
    """Classifies among the seen (training) classes; returns global class ids."""

    kind: ClassVar[str] = "seen"

    def fit(self, train: "AVSamples", ctx: FitContext) -> "SeenClassifier":
        raise NotImplementedError

    def predict(self, samples: "AVSamples") -> "Tensor":
        raise NotImplementedError


class UnseenClassifier(Component):
    """Classifies among any candidate class set given by text embeddings (zero-shot)."""

    kind: ClassVar[str] = "unseen"

    def fit(self, train: "AVSamples", text: "Tensor", ctx: FitContext) -> "UnseenClassifier":
        raise NotImplementedError

    def distances(self, samples: "AVSamples", candidates: "Tensor", text: "Tensor") -> "Tensor":
        """(N, K) distances to each candidate class (smaller = closer); embedding models only."""
        raise NotImplementedError(f"{type(self).__name__} does not provide class distances")

    def predict(self, samples: "AVSamples", candidates: "Tensor", text: "Tensor") -> "Tensor":
        """Global ids from ``candidates`` (``text``: the full (C, T) matrix); by default the nearest by :meth:`distances`."""
        d = self.distances(samples, candidates, text)
        return candidates.to(d.device)[d.argmin(dim=1)].cpu()


PROTOCOLS: dict[str, type[Component]] = {s.kind: globals()[s.protocol_name] for s in STAGES}


def move_components(components: Iterable[Component], device: "torch.device") -> None:
    """Move the ``net`` of every :class:`TorchComponent` among ``components`` (and those they hold)."""
    done: set[int] = set()

    def move(obj: object) -> None:
        if id(obj) in done:
            return
        done.add(id(obj))
        if isinstance(obj, TorchComponent) and obj.net is not None:
            obj.net.to(device)
            obj.device = device
        for value in vars(obj).values():
            if isinstance(value, Component):
                move(value)

    for comp in components:
        move(comp)
