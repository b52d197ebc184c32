"""The component boundary (avood_core.pipeline.boundary): the pipeline and the conformance kit refuse the
same misbehaving components with the same one-line message, from one shared check.

The components are those of the faulty plugin package of tests/faults (``avood_faulty.components``:
the kit's stand-ins, each with one method broken), imported here from its source folder.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avood_core.errors import ComponentError, DataError, PluginError
from avood_core.pipeline import Pipeline, boundary
from avood_core.testing import STAND_INS, StandInSeen, check_component, make_kit_data

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults" / "faulty_plugin" / "src"))
from avood_faulty import components as faulty  # noqa: E402

# (the faulty class's name in avood_faulty.components, a regex of the problem its one line names);
# adding a case is one line
CASES = [
    ("Detector_nan_score", r"score\(\).* returned \d+ NaN values of \d+: an OOD score must be finite"),
    ("Detector_half_inf_score", r"score\(\).* returned \d+ \+inf values of \d+: an OOD score must be finite"),
    ("Detector_short_score", r"score\(\).* returned shape \(\d+,\) for \d+ samples: return one OOD score per sample"),
    ("Detector_wide_score", r"score\(\).* returned shape \(\d+, 2\) for \d+ samples: return one OOD score per sample"),
    ("Detector_nan_threshold", r"threshold is nan: fit\(\) must set a finite self.threshold"),
    ("Detector_int_is_seen", r"is_seen\(\).* returned dtype torch.int64: return a bool tensor"),
    ("Seen_huge_id", r"predict\(\).* returned \d+ ids outside the task's seen classes \(e.g. \[1000000\]"),
    ("Seen_float_ids", r"predict\(\).* returned torch.float32 ids: return integer class ids"),
    ("Seen_short_pred", r"predict\(\).* returned shape \(\d+,\) for \d+ samples: return one class id per sample"),
    ("Seen_list_pred", r"predict\(\).* returned a list, not a torch.Tensor: return a tensor"),
    ("Seen_list_selection", r"selected_params\(\) returned a list: return a dict of param names"),
    ("Unseen_outside_ids", r"predict\(\).* returned \d+ ids outside the candidates"),
    ("Unseen_short_pred", r"predict\(\).* returned shape \(2,\) for \d+ samples: return one class id per sample"),
    ("Unseen_nan_distances", r"distances\(\).* returned \d+ NaN values of \d+: distances must be finite"),
    ("Unseen_wide_distances", r"distances\(\).* returned shape \(\d+, \d+\) for \d+ samples: return one distance"),
    ("Generator_nan_features", r"generate\(\).* returned \d+ NaN values of \d+: generated audio features must be finite"),
    ("Generator_short_rows", r"generate\(\).* returned audio of shape \(\d+, \d+\): return n_per_class=\d+ samples"),
    ("Generator_wrong_dim", r"generate\(\).* returned audio of shape \(\d+, \d+\): return n_per_class=\d+ samples"),
    ("Generator_wrong_labels", r"generate\(\).* returned \d+ ids outside the requested classes"),
    ("Generator_uneven_counts", r"generate\(\).* returned per-class counts \{\d+: [14], \d+: [36]\}: return n_per_class"),
    ("Generator_not_samples", r"generate\(\) returned a tuple: return avood_core.task.AVSamples"),
    ("Detector_str_scalars", r"state_scalars\(\) returned a str: return a dict of learned scalars"),
    ("Detector_object_scalars", r"state_scalars\(\) holds a builtins.object at 'net': learned scalars are numbers"),
]


@pytest.fixture(scope="module")
def data():
    return make_kit_data(seed=0)


def _who(cls) -> str:
    return re.escape(f"{cls.kind} '{cls.__name__}' ")


@pytest.mark.parametrize("name, problem", CASES, ids=[n for n, _ in CASES])
def test_the_kit_flags_the_component(name, problem, data):
    cls = getattr(faulty, name)
    report = check_component(cls, task=data, raise_on_failure=False, checks=("outputs", "score_direction"))
    failures = "\n".join(report.failures.values())
    assert re.search(_who(cls) + problem, failures), str(report)


@pytest.mark.parametrize("name, problem", CASES, ids=[n for n, _ in CASES])
def test_the_pipeline_refuses_it_with_the_same_line(name, problem, data, tmp_path):
    """Fit, evaluate, save and read the selections as a run does: the same check refuses it, in one line."""
    cls = getattr(faulty, name)
    pipe = Pipeline(**{kind: (cls if kind == cls.kind else base)() for kind, base in STAND_INS.items()}, syn_num=5)
    with pytest.raises(ComponentError) as err:
        pipe.fit(data.task, seed=0)
        pipe.evaluate(data.task.test)
        pipe.save(tmp_path / "run")
        for comp in pipe.components.values():
            boundary.selected_params(comp)
    text = str(err.value)
    assert "\n" not in text and re.search(_who(cls) + problem, text), text


def test_numpy_scalars_become_python_numbers():
    value = {"threshold": np.float32(0.5), "count": np.int64(3), "ids": np.arange(3), "nested": [{"f": np.float64(2)}]}
    out = boundary.check_scalars(StandInSeen(), value)
    assert out == {"threshold": 0.5, "count": 3, "ids": [0, 1, 2], "nested": [{"f": 2.0}]}
    assert type(out["threshold"]) is float and type(out["count"]) is int


def test_numpy_scalars_pass_the_kit(data):
    assert check_component(faulty.Detector_numpy_scalars, task=data, checks=("outputs", "save_load")).ok


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
    pipe = Pipeline(STAND_INS["generator"](), STAND_INS["detector"](), comp, STAND_INS["unseen"](), syn_num=5)
    with pytest.raises(ComponentError, match=expect) as err:
        pipe.fit(data.task, seed=0)
    assert "\n" not in str(err.value)


def test_keyboard_interrupt_stays_an_interrupt(data):
    comp = Raising()
    comp.exc = KeyboardInterrupt()
    pipe = Pipeline(STAND_INS["generator"](), STAND_INS["detector"](), comp, STAND_INS["unseen"](), syn_num=5)
    with pytest.raises(KeyboardInterrupt):
        pipe.fit(data.task, seed=0)


def test_an_avood_error_keeps_its_class_and_gains_the_plugin_name():
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


class _NonTensorState(STAND_INS["detector"]):
    def state_tensors(self):
        return {**super().state_tensors(), "w": [1.0, 2.0]}


class _LoadStateRaises(STAND_INS["detector"]):
    def load_state(self, state, tensors):
        raise AttributeError("'_LoadStateRaises' object has no attribute 'net'")


class _OneClass:
    """A registry that knows one component class (what loading a component folder looks up)."""

    def __init__(self, cls):
        self.cls = cls

    def component_class(self, kind, name):
        return self.cls


def _fitted(cls, data):
    pipe = Pipeline(**{kind: (cls if kind == cls.kind else base)() for kind, base in STAND_INS.items()}, syn_num=5)
    pipe.fit(data.task, seed=0)
    return pipe.components[cls.kind]


def test_state_tensors_of_other_types_is_one_line_at_saving(data, tmp_path):
    from avood_core.pipeline.store import save_component

    comp = _fitted(_NonTensorState, data)
    with pytest.raises(ComponentError, match=r"state_tensors\(\) returned non-tensor entries \('w': list\)") as err:
        save_component(comp, tmp_path / "c", "odd")
    assert "\n" not in str(err.value) and not (tmp_path / "c").exists()


def test_what_load_state_raises_is_one_line_naming_the_plugin(data, tmp_path):
    from avood_core.pipeline.store import load_component, save_component

    save_component(_fitted(_LoadStateRaises, data), tmp_path / "c", "raises")
    with pytest.raises(ComponentError, match=r"load_state\(\) raised AttributeError: '_LoadStateRaises' object") as err:
        load_component(tmp_path / "c", registry=_OneClass(_LoadStateRaises))
    assert "\n" not in str(err.value)
