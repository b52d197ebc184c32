"""The conformance kit itself: it passes working components and catches each kind of defect."""

from __future__ import annotations

import os

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from avood_core.protocols import SeenClassifier
from avood_core.testing import (
    CHECKS,
    ComponentContract,
    ConformanceError,
    StandInDetector,
    StandInGenerator,
    StandInSeen,
    StandInUnseen,
    check_component,
    make_kit_data,
)


@pytest.fixture(scope="module")
def data():
    return make_kit_data(seed=0)


@pytest.mark.parametrize("cls", [StandInGenerator, StandInDetector, StandInSeen, StandInUnseen])
def test_stand_ins_pass_every_check(cls, data):
    report = check_component(cls, task=data)
    assert report.ok and set(report.results) == set(CHECKS)
    expected = "passed" if cls is StandInDetector else "skipped"
    assert report.results["score_direction"].status == expected


class TestContractBaseClass(ComponentContract):
    """How a plugin author uses the kit: one pytest test per check."""

    component = StandInUnseen
    name = "ridge_to_text"


def _failure(cls, check, data, **kw) -> str:
    report = check_component(cls, task=data, raise_on_failure=False, **kw)
    assert report.results[check].status == "failed", str(report)
    with pytest.raises(ConformanceError, match=check):
        report.assert_ok()
    return report.results[check].message


class FlippedDetector(StandInDetector):
    """A confidence returned as the score: higher = more seen (the wrong direction)."""

    def fit(self, seen, synthetic_unseen, ctx):
        super().fit(seen, synthetic_unseen, ctx)
        self.threshold = -self.threshold
        return self

    def score(self, samples):
        return -super().score(samples)


def test_flipped_score_direction_is_caught(data):
    assert "higher = more likely unseen" in _failure(FlippedDetector, "score_direction", data)


class PositionsSeen(StandInSeen):
    """Returns positions among the seen classes instead of global class ids."""

    def predict(self, samples):
        return torch.cdist(samples.x, self.centroids).argmin(dim=1)


def test_positions_instead_of_global_ids_are_caught(data):
    assert "global class ids" in _failure(PositionsSeen, "outputs", data)


class ForgetfulSeen(SeenClassifier):
    """Keeps its centroids out of the checkpoint state."""

    def fit(self, train, ctx):
        self.classes = torch.unique(train.labels)
        self.centroids = torch.stack([train.x[train.labels == c].mean(0) for c in self.classes])
        self.fitted = True
        return self

    def predict(self, samples):
        centroids = getattr(self, "centroids", None)
        if centroids is None:
            return torch.zeros(len(samples), dtype=torch.long)
        return self.classes[torch.cdist(samples.x, centroids).argmin(dim=1)]


def test_state_missing_from_the_checkpoint_is_caught(data):
    msg = _failure(ForgetfulSeen, "save_load", data)
    assert "state_tensors" in msg


class UnseededGenerator(StandInGenerator):
    """Draws its noise from a generator seeded by the OS, ignoring the global seed."""

    def generate(self, class_ids, text, n_per_class):
        g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        out = super().generate(class_ids, text, n_per_class)
        out.audio = out.audio + torch.randn(out.audio.shape, generator=g)
        return out


def test_nondeterminism_is_caught(data):
    msg = _failure(UnseededGenerator, "determinism", data)
    assert "generated.audio' differs" in msg


class LooseParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    lam: float = Field(0.1, description="Ridge weight.")


class LooseUnseen(StandInUnseen):
    Params = LooseParams


class UndocumentedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lam: float = 0.1


class UndocumentedUnseen(StandInUnseen):
    Params = UndocumentedParams


class BadQuickUnseen(StandInUnseen):
    quick = {"epochs": 2}  # NoParams has no such field


def test_params_defects_are_caught(data):
    assert "unknown keys" in _failure(LooseUnseen, "params", data)
    assert "without a description" in _failure(UndocumentedUnseen, "params", data)
    assert "not fields" in _failure(BadQuickUnseen, "params", data)
    # params problems do not hide the behavioural checks
    report = check_component(UndocumentedUnseen, task=data, raise_on_failure=False)
    assert report.results["outputs"].status == "passed"


def test_wrong_kind_is_caught(data):
    report = check_component(StandInSeen, kind="unseen", task=data, raise_on_failure=False)
    assert "declares kind 'seen'" in report.failures["protocol"]
    assert report.results["outputs"].message == "not run: the 'protocol' check failed"


class MutatingUnseen(StandInUnseen):
    """Standardises its training features in place (corrupting the pipeline's shared data)."""

    def fit(self, train, text, ctx):
        train.audio.sub_(train.audio.mean(0))
        return super().fit(train, text, ctx)


def test_in_place_edits_of_inputs_are_caught():
    assert "in place" in _failure(MutatingUnseen, "outputs", make_kit_data(seed=1))


def test_a_failing_fit_reports_the_exception(data):
    class Broken(StandInUnseen):
        def fit(self, train, text, ctx):
            raise RuntimeError("boom")

    msg = _failure(Broken, "outputs", data)
    assert "RuntimeError: boom" in msg
