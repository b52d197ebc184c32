"""The component conventions every plugin shares: ``label`` (registry kind and name), ``stats``
(:class:`TrainStats`), :class:`NotFittedError` before fit, and the stage hooks a fit emits."""

from __future__ import annotations

import pytest
import torch

from avood_core.callbacks import Callback
from avood_core.errors import AvoodError, NotFittedError
from avood_core.protocols import Component, TorchComponent, TrainStats
from avood_core.registry import KINDS, get_registry
from avood_core.task import AVSamples


def _samples(n: int = 3, audio_dim: int = 4, video_dim: int = 5) -> AVSamples:
    return AVSamples(torch.randn(n, audio_dim), torch.randn(n, video_dim), torch.zeros(n, dtype=torch.long))


def _every_component():
    registry = get_registry()
    return [(kind, name) for kind in KINDS for name in registry.names(kind)]


@pytest.mark.parametrize(("kind", "name"), _every_component())
def test_label_is_the_registry_kind_and_name(kind, name):
    comp = get_registry().component_class(kind, name)()
    assert comp.label == f"{kind} {name}"


def test_label_of_a_class_not_from_the_registry_is_kind_and_class_name():
    class HandMade(TorchComponent):
        kind = "seen"

    assert HandMade().label == "seen HandMade"
    comp = HandMade()
    comp.label = "seen wrapped"
    assert comp.label == "seen wrapped" and HandMade().label == "seen HandMade"


@pytest.mark.parametrize(("kind", "name"), _every_component())
def test_unfitted_component_raises_not_fitted_error_naming_its_label(kind, name):
    comp = get_registry().component_class(kind, name)()
    samples, text = _samples(), torch.randn(6, 7)
    use = {
        "generator": lambda: comp.generate(torch.tensor([0, 1]), text, 2),
        "detector": lambda: comp.score(samples),
        "seen": lambda: comp.predict(samples),
        "unseen": lambda: comp.predict(samples, torch.tensor([0, 1]), text),
    }[kind]
    with pytest.raises(NotFittedError, match=rf"^{kind} {name} is not fitted; "):
        use()
    with pytest.raises(NotFittedError, match=rf"^{kind} {name} is not fitted; "):
        comp.state_tensors()


def test_not_fitted_error_is_an_avood_error_and_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(NotFittedError("seen mlp", "load the run folder first")))
    assert isinstance(err, AvoodError) and str(err) == "seen mlp is not fitted; load the run folder first"


def test_seen_cross_attention_wrapped_model_speaks_with_the_wrappers_label():
    seen = get_registry().component_class("seen", "cross_attention")()
    assert seen.model.label == "seen cross_attention"
    with pytest.raises(NotFittedError, match="^seen cross_attention is not fitted"):
        seen.model.distances(_samples(), torch.tensor([0]), torch.randn(2, 7))
    assert seen.stats is seen.model.stats  # the wrapper reports the wrapped model's training


def test_stats_live_on_every_component():
    comp = Component()
    assert comp.stats == TrainStats()
    comp.stats.history, comp.stats.steps, comp.stats.samples = [{"epoch": 0, "loss": 1.0}], 3, 12
    assert comp.stats == TrainStats([{"epoch": 0, "loss": 1.0}], 3, 12)
    comp.stats.reset()
    assert comp.stats == TrainStats() and not hasattr(comp, "history")


class _Hooks(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_stage_start(self, kind, info):
        self.calls.append(("start", kind))

    def on_stage_end(self, kind, info):
        self.calls.append(("end", kind))

    def on_synthesis_start(self, info):
        self.calls.append(("synthesis_start", info["n_per_class"]))

    def on_synthesis_end(self, info):
        assert info["wall_s"] >= 0
        self.calls.append(("synthesis_end", info["n_per_class"]))


def test_fit_emits_the_synthesis_between_the_generator_and_the_classifiers(tiny_task):
    from avood_core.pipeline import Pipeline
    from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator, RidgeUnseen

    hooks = _Hooks()
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), syn_num=10)
    pipe.fit(tiny_task, callbacks=[hooks])
    assert hooks.calls == [("start", "generator"), ("end", "generator"), ("synthesis_start", 10), ("synthesis_end", 10),
                           ("start", "seen"), ("end", "seen"), ("start", "unseen"), ("end", "unseen"),
                           ("start", "detector"), ("end", "detector")]
