"""The stage table (avood_core.stages): its content, and that everything that lists the kinds reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from avood_core import stages
from avood_core.hookspecs import hookimpl
from avood_core.pipeline import Pipeline
from avood_core.protocols import Component
from avood_core.registry import PLUGIN_KINDS, Registry
from avood_core.stages import BY_KIND, FIT_ORDER, KINDS, STAGES, Stage, fit_order, worker_kinds
from toy_components import CentroidDetector, CentroidSeen, RidgeGenerator, RidgeUnseen, ToyPlugin

CORE = Path(__file__).resolve().parents[1] / "avood_core"


def test_the_table_pins_kinds_order_inputs_and_dependencies():
    assert KINDS == ("generator", "detector", "seen", "unseen")
    assert FIT_ORDER == ("generator", "seen", "unseen", "detector")
    assert worker_kinds(3) == ["unseen", "seen"]
    assert {s.kind: s.inputs for s in STAGES} == {
        "generator": ("train", "text"), "detector": ("train", "synthetic"), "seen": ("train",), "unseen": ("train", "text")}
    assert {s.kind: s.after for s in STAGES} == {
        "generator": (), "detector": ("generator", "seen", "unseen"), "seen": ("generator",), "unseen": ("generator",)}
    assert [s.kind for s in STAGES if s.uses_synthetic] == ["detector"]
    assert stages.SYNTHETIC_FROM == "generator"
    assert stages.FIT_STEPS == ("generator", "synthesize", "seen", "unseen", "detector")
    for stage in STAGES:  # every kind comes after all it runs after
        assert all(FIT_ORDER.index(a) < FIT_ORDER.index(stage.kind) for a in stage.after)


def test_registry_protocols_config_and_cli_derive_from_the_table():
    from avood_core import protocols, registry
    from avood_core.cli.options import ConfigOptions, _OPTIONS
    from avood_core.config import DEFAULT_COMPONENTS, RunConfig
    from avood_core.pipeline import Pipeline

    assert registry.KINDS is KINDS
    assert registry.ALL_KINDS[:4] == KINDS and registry.PLUGIN_KINDS[:4] == KINDS
    assert list(registry.KIND_LABELS)[:4] == list(KINDS)
    assert protocols.PROTOCOLS == {s.kind: getattr(protocols, s.protocol_name) for s in STAGES}
    assert [p.kind for p in protocols.PROTOCOLS.values()] == list(KINDS)
    assert DEFAULT_COMPONENTS == {"generator": "wgan_gp", "detector": "entropy", "seen": "mlp", "unseen": "cross_attention"}
    # The typed per-kind fields (config, CLI options, Pipeline's constructor) follow the table's order.
    assert [f for f in RunConfig.model_fields if f in BY_KIND] == list(KINDS)
    assert list(ConfigOptions(**{k: f"{k}-name" for k in KINDS}).components().items()) == [
        (k, f"{k}-name") for k in KINDS]
    assert all(_OPTIONS[k][0] == (f"--{k}",) for k in KINDS)
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen())
    assert list(pipe.components) == list(KINDS) and pipe.detector is pipe.components["detector"]
    assert pipe.worker_kinds(1) == [] and pipe.worker_kinds(2) == ["unseen"]
    assert pipe.worker_kinds(3) == ["unseen", "seen"] and pipe.worker_kinds(3, frozenset({"unseen"})) == ["seen"]


def test_no_other_module_lists_the_four_kinds():
    """No tuple, list, set or dict literal in avood_core holds all four kind names (read the table)."""
    four = set(KINDS)
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                items = node.elts
            elif isinstance(node, ast.Dict):
                items = [k for k in node.keys if k is not None]
            else:
                continue
            names = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
            if four <= names:
                found.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert found == []


def test_pipeline_fits_in_table_order_with_table_inputs(tiny_task):
    calls: list[tuple[str, int]] = []

    def recording(cls):
        class Recording(cls):
            def fit(self, *args):
                calls.append((self.kind, len(args)))
                assert set(BY_KIND[self.kind].after) <= args[-1].fitted.keys()
                return super().fit(*args)
        return Recording

    pipe = Pipeline(*(recording(c)() for c in (RidgeGenerator, CentroidDetector, CentroidSeen, RidgeUnseen)), syn_num=5)
    pipe.fit(tiny_task, seed=0)
    assert calls == [(k, len(BY_KIND[k].inputs) + 1) for k in FIT_ORDER]
    assert list(pipe.timings) == list(stages.FIT_STEPS)


def test_fit_hashes_follow_the_table(tiny_task):
    from avood_core.config import resolve
    from avood_core.registry import get_registry
    from avood_core.run.fitting import build_pipeline, fit_hashes
    from tiny_runs import tiny_config

    registry = get_registry()
    config = resolve(tiny_config(Path(".")), registry)
    hashes = fit_hashes(config, build_pipeline(config, registry))
    assert list(hashes) == list(FIT_ORDER)
    changed = config.model_copy(update={"generator": config.generator.model_copy(update={"params": {"lr": 1e-5}})})
    other = fit_hashes(changed, build_pipeline(changed, registry))
    # the detector trains on synthetic features: it follows the generator; the mlp seen classifier does not
    assert other["generator"] != hashes["generator"] and other["detector"] != hashes["detector"]
    assert other["seen"] == hashes["seen"]


def test_route_asks_the_detectors_is_seen(tiny_task):
    from avood_core.pipeline import route

    class Inverted(CentroidDetector):
        def is_seen(self, samples):
            return ~super().is_seen(samples)

    pipe = Pipeline(RidgeGenerator(), Inverted(), CentroidSeen(), RidgeUnseen(), syn_num=5).fit(tiny_task, seed=0)
    routing = route(pipe.detector, tiny_task.test)
    assert torch.equal(routing.seen, ~(routing.score < pipe.detector.threshold))
    out, pred = pipe.evaluate(tiny_task.test).outputs, pipe.predict(tiny_task.test)
    assert torch.equal(out["routed_seen"], routing.seen) and torch.equal(pred.routed_seen, routing.seen)
    assert torch.equal(pred.labels, out["pred"])



class Shift(Component):
    """The component of a stage the table does not ship: the mean synthetic feature, after the classifiers."""

    kind = "shift"

    def fit(self, train, synthetic, ctx):
        assert {"generator", "seen", "unseen"} <= ctx.fitted.keys() and len(train) > 0
        self.mean, self.fitted = float(synthetic.x.mean()), True
        return self

    def state_scalars(self):
        return {"mean": self.mean}

    def load_state(self, scalars, tensors):
        self.mean, self.fitted = scalars["mean"], True


class ShiftPlugin:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("shift", "shift", Shift)


def test_a_row_added_to_the_table_is_a_stage(tiny_task, tmp_path):
    """One more row: the pipeline fits it in order with its inputs, offloads it by rank, saves and loads it."""
    table = (*STAGES, Stage("shift", "Component", inputs=("train", "synthetic"), after=("seen", "unseen"), worker=3,
                            noun="shift", default="shift", required=(("fit",),)))
    assert fit_order(table) == ("generator", "seen", "unseen", "detector", "shift")
    names = {"generator": "toy_ridge", "detector": "toy_centroid", "seen": "toy_centroid", "unseen": "toy_ridge",
             "shift": "shift"}
    pipe = Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), Shift(), stages=table,
                    syn_num=5, names=names)
    assert pipe.worker_kinds(9) == ["unseen", "seen", "shift"]
    pipe.fit(tiny_task, seed=0)
    assert list(pipe.timings) == [*stages.FIT_STEPS, "shift"]
    assert pipe.shift.mean == float(pipe.synthetic.x.mean())
    pipe.save(tmp_path)
    registry = Registry(discover=False, kinds=(*PLUGIN_KINDS, "shift"))
    registry.register_plugin(ToyPlugin())
    registry.register_plugin(ShiftPlugin())
    loaded = Pipeline.load(tmp_path, registry, stages=table)
    assert list(loaded.components) == [*KINDS, "shift"] and loaded.shift.mean == pipe.shift.mean
    assert torch.equal(pipe.predict(tiny_task.test).labels, pipe.evaluate(tiny_task.test).outputs["pred"])  # routed
    with pytest.raises(TypeError, match="one component per stage"):
        Pipeline(RidgeGenerator(), CentroidDetector(), CentroidSeen(), RidgeUnseen(), stages=table)
