"""The component boundary (avood_core.pipeline.boundary): the pipeline and the conformance kit refuse the
same misbehaving components with the same one-line message, from one shared check."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from avood_core.errors import ComponentError, PluginError
from avood_core.pipeline import Pipeline, boundary
from avood_core.task import AVSamples
from avood_core.testing import (
    StandInDetector,
    StandInGenerator,
    StandInSeen,
    StandInUnseen,
    check_component,
    make_kit_data,
)


class NaNScore(StandInDetector):
    def score(self, samples):
        return torch.full((len(samples),), float("nan"))


class HalfInfScore(StandInDetector):
    def score(self, samples):
        s = super().score(samples).clone()
        s[: len(s) // 2] = float("inf")
        return s


class ShortScore(StandInDetector):
    def score(self, samples):
        return super().score(samples)[:-3] if len(samples) > 3 else super().score(samples)[:0]


class WideScore(StandInDetector):
    def score(self, samples):
        return super().score(samples).unsqueeze(1).repeat(1, 2)


class NaNThreshold(StandInDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        super().fit(seen, synthetic_unseen, ctx)
        self.threshold = float("nan")
        return self


class HugeIdSeen(StandInSeen):
    def predict(self, samples):
        return torch.full((len(samples),), 10**6, dtype=torch.long)


class FloatIdSeen(StandInSeen):
    def predict(self, samples):
        return super().predict(samples).float()


class ShortSeen(StandInSeen):
    def predict(self, samples):
        return super().predict(samples)[:-1]


class OutsideUnseen(StandInUnseen):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text) + 1000


class ShortUnseen(StandInUnseen):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text)[:0]


class NaNDistances(StandInUnseen):
    def distances(self, samples, candidates, text):
        return torch.full((len(samples), len(candidates)), float("nan"))


class NaNGenerator(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(torch.full_like(out.audio, float("nan")), out.video, out.labels)


class NarrowGenerator(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio[:, :-2], out.video, out.labels)


class CountGenerator(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        labels = out.labels.clone()
        labels[0] = labels[-1]  # one class gets a sample too many, another one too few
        return AVSamples(out.audio, out.video, labels)


class ObjectScalars(StandInSeen):
    def state_scalars(self):
        return {**super().state_scalars(), "model": object()}


class StrScalars(StandInSeen):
    def state_scalars(self):
        return "classes=6"


class ListSelection(StandInSeen):
    def selected_params(self):
        return ["epochs", 3]


# (the component class, a regex of the problem its one-line refusal names); adding a case is one line
CASES = [
    (NaNScore, r"score\(\).* returned \d+ NaN values of \d+: an OOD score must be finite"),
    (HalfInfScore, r"score\(\).* returned \d+ \+inf values of \d+: an OOD score must be finite"),
    (ShortScore, r"score\(\).* returned shape \(\d+,\) for \d+ samples: return one OOD score per sample"),
    (WideScore, r"score\(\).* returned shape \(\d+, 2\) for \d+ samples: return one OOD score per sample"),
    (NaNThreshold, r"threshold is nan: fit\(\) must set a finite self.threshold"),
    (HugeIdSeen, r"predict\(\).* returned \d+ ids outside the task's seen classes \(e.g. \[1000000\]"),
    (FloatIdSeen, r"predict\(\).* returned torch.float32 ids: return integer class ids"),
    (ShortSeen, r"predict\(\).* returned shape \(\d+,\) for \d+ samples: return one class id per sample"),
    (OutsideUnseen, r"predict\(\).* returned \d+ ids outside the candidates"),
    (ShortUnseen, r"predict\(\).* returned shape \(0,\) for \d+ samples: return one class id per sample"),
    (NaNDistances, r"distances\(\) returned \d+ NaN values of \d+: distances must be finite"),
    (NaNGenerator, r"generate\(\).* returned \d+ NaN values of \d+: generated audio features must be finite"),
    (NarrowGenerator, r"generate\(\).* returned audio of shape \(\d+, \d+\): return n_per_class=\d+ samples"),
    (CountGenerator, r"generate\(\).* returned per-class counts \{.*\}: return n_per_class=\d+ samples of each"),
    (ObjectScalars, r"state_scalars\(\) holds a builtins.object at 'model': learned scalars are numbers"),
    (StrScalars, r"state_scalars\(\) returned a str: return a dict of learned scalars"),
    (ListSelection, r"selected_params\(\) returned a list: return a dict of param names"),
]
STAND_INS = {c.kind: c for c in (StandInGenerator, StandInDetector, StandInSeen, StandInUnseen)}


@pytest.fixture(scope="module")
def data():
    return make_kit_data(seed=0)


def _who(cls) -> str:
    return f"{cls.kind} '{cls.__name__}' "


@pytest.mark.parametrize("cls, problem", CASES, ids=[c.__name__ for c, _ in CASES])
def test_the_kit_flags_the_component(cls, problem, data):
    report = check_component(cls, task=data, raise_on_failure=False, checks=("outputs", "score_direction"))
    failures = "\n".join(report.failures.values())
    assert re.search(re.escape(_who(cls)) + problem, failures), str(report)


@pytest.mark.parametrize("cls, problem", CASES, ids=[c.__name__ for c, _ in CASES])
def test_the_pipeline_refuses_it_with_the_same_line(cls, problem, data, tmp_path):
    """Fit, evaluate, save and select as a run does: the same check refuses it, in one line."""
    pipe = Pipeline(**{kind: (cls if kind == cls.kind else base)() for kind, base in STAND_INS.items()}, syn_num=5)
    with pytest.raises(ComponentError) as err:
        pipe.fit(data.task, seed=0)
        pipe.evaluate(data.task.test)
        pipe.save(tmp_path / "run")
        for comp in pipe.components.values():
            boundary.selected_params(comp)
    text = str(err.value)
    assert "\n" not in text and re.search(re.escape(_who(cls)) + problem, text), text


def test_numpy_scalars_become_python_numbers():
    value = {"threshold": np.float32(0.5), "count": np.int64(3), "ids": np.arange(3), "nested": [{"f": np.float64(2)}]}
    out = boundary.check_scalars(StandInSeen(), value)
    assert out == {"threshold": 0.5, "count": 3, "ids": [0, 1, 2], "nested": [{"f": 2.0}]}
    assert type(out["threshold"]) is float and type(out["count"]) is int


def test_a_tensor_scalar_is_refused():
    with pytest.raises(ComponentError, match=r"holds a torch.Tensor at 'w': .*tensors go in state_tensors"):
        boundary.check_scalars(StandInSeen(), {"w": torch.zeros(2)})


class Raising(StandInSeen):
    exc: BaseException = ValueError("bad hidden size")

    def fit(self, train, ctx):
        raise self.exc


@pytest.mark.parametrize("exc, expect", [
    (ValueError("bad hidden size"), r"^seen 'Raising' fit\(\) raised ValueError: bad hidden size; fix the plugin"),
    (SystemExit(0), r"^seen 'Raising' fit\(\) called sys.exit\(0\): a component must raise an exception"),
    (SystemExit(3), r"^seen 'Raising' fit\(\) called sys.exit\(3\)"),
    (RuntimeError("multi\nline"), r"^seen 'Raising' fit\(\) raised RuntimeError: multi line;"),
])
def test_what_a_fit_raises_becomes_one_line(exc, expect, data):
    comp = Raising()
    comp.exc = exc
    pipe = Pipeline(StandInGenerator(), StandInDetector(), comp, StandInUnseen(), syn_num=5)
    with pytest.raises(ComponentError, match=expect) as err:
        pipe.fit(data.task, seed=0)
    assert "\n" not in str(err.value)


def test_keyboard_interrupt_stays_an_interrupt(data):
    comp = Raising()
    comp.exc = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        Pipeline(StandInGenerator(), StandInDetector(), comp, StandInUnseen(), syn_num=5).fit(data.task, seed=0)


def test_an_avood_error_keeps_its_class_and_gains_the_plugin_name():
    from avood_core.errors import DataError

    with pytest.raises(DataError, match=r"^seen 'StandInSeen' fit\(\): no clip of class 7$"):
        with boundary.calling(StandInSeen(), "fit()"):
            raise DataError("no clip of class 7")


def test_a_plugin_that_exits_at_import_is_broken_not_fatal(tmp_path, monkeypatch):
    """``SystemExit(3)`` while the entry point loads: listed as broken, the rest of the registry works."""
    import importlib.metadata as md

    from avood_core.registry import Registry

    (tmp_path / "avood_exits_here.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = md.EntryPoint(name="exits_here", value="avood_exits_here", group="avood")
    real = md.entry_points

    def entry_points(**kw):
        return [*real(**kw), fake] if kw.get("group") == "avood" else real(**kw)

    monkeypatch.setattr(md, "entry_points", entry_points)
    reg = Registry()
    assert [(b.provider.plugin, b.error) for b in reg.broken] == [("exits_here", "called sys.exit(3)")]
    assert "entropy" in reg.names("detector")
    sys.modules.pop("avood_exits_here", None)


def test_a_component_class_that_exits_at_import_is_a_plugin_error(tmp_path, monkeypatch):
    import types

    from avood_core.hookspecs import hookimpl
    from avood_core.registry import Registry

    (tmp_path / "avood_exits_lazily.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    @hookimpl
    def register_components(register):
        register("seen", "lazy_exit", "avood_exits_lazily:Seen")

    reg = Registry(discover=False)
    reg.register_plugin(types.SimpleNamespace(register_components=register_components), name="lazy")
    with pytest.raises(PluginError, match=r"seen 'lazy_exit' .* failed to import 'avood_exits_lazily:Seen': "
                                          r"called sys.exit\(3\); reinstall or fix that plugin"):
        reg.component_class("seen", "lazy_exit")
