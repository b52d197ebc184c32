"""Tests of the cross-attention embedding model used as the seen classifier."""

from __future__ import annotations

import json

import pytest
import torch

from avood_core.pipeline.store import load_component, save_component
from avood_core.protocols import FitContext, SeenClassifier
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_plugins.seen.cross_attention import CrossAttentionSeenClassifier
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

SMALL = dict(embed_dim=24, enc_hidden=32, proj_hidden=32, joint_dim=16, heads=2, ff_dim=16, batch_size=32,
             epochs=4, batches_per_epoch=15, lr=3e-3, r_enc=0.1, r_proj=0.1, r_dec=0.1)


@pytest.fixture(scope="module")
def task():
    """10 classes (0-6 seen, 7-9 unseen); a, v = fixed nonlinear maps of the class text + noise."""
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(10, 4, generator=g) @ torch.randn(4, 20, generator=g), dim=1)
    wa, wv = torch.randn(20, 16, generator=g), torch.randn(20, 12, generator=g)

    def samples(classes, n_per):
        y = classes.repeat_interleave(n_per)
        t = text[y]
        return AVSamples(torch.tanh(t @ wa) + 0.1 * torch.randn(len(y), 16, generator=g),
                         torch.tanh(t @ wv) + 0.1 * torch.randn(len(y), 12, generator=g), y)

    seen = torch.arange(7)
    return {"text": text, "seen": seen, "unseen": torch.arange(7, 10), "train": samples(seen, 30),
            "test": samples(seen, 20)}


class Recorder:
    def __call__(self, total, description):
        self.description = description
        return self

    def update(self, n=1, **metrics):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def fitted(task):
    torch.manual_seed(0)
    progress, log = Recorder(), []
    ctx = FitContext(text=task["text"], seen_classes=task["seen"], unseen_classes=task["unseen"],
                     device=torch.device("cpu"), progress=progress, log=log.append)
    return CrossAttentionSeenClassifier(SMALL).fit(task["train"], ctx), progress, log


def test_protocol_params_registration():
    clf = CrossAttentionSeenClassifier()
    assert isinstance(clf, SeenClassifier) and clf.kind == "seen" and not clf.uses_synthetic
    assert clf.Params is CrossAttentionClassifier.Params and clf.quick == CrossAttentionClassifier.quick
    assert clf.params == CrossAttentionClassifier().params  # same (UCF) defaults as the unseen classifier
    assert get_registry().component_class("seen", "cross_attention") is CrossAttentionSeenClassifier


def test_predicts_nearest_seen_class(fitted, task):
    clf, progress, log = fitted
    assert progress.description == "seen" and any(m.startswith("seen cross_attention") for m in log)
    pred = clf.predict(task["test"])
    assert pred.dtype == torch.long and torch.isin(pred, task["seen"]).all()
    d = clf.model.distances(task["test"], task["seen"], task["text"])
    assert torch.equal(pred, task["seen"][d.argmin(dim=1)])
    acc = (pred == task["test"].labels).float().mean()
    assert acc > 3 / 7  # well above chance (1/7) on this easy task


def test_from_unseen_shares_the_model(fitted, task):
    clf = fitted[0]
    shared = CrossAttentionSeenClassifier.from_unseen(clf.model, task["seen"], task["text"])
    assert shared.model is clf.model and shared.fitted
    assert torch.equal(shared.predict(task["test"]), clf.model.predict(task["test"], task["seen"], task["text"]))
    with pytest.raises(Exception, match="fitted"):
        CrossAttentionSeenClassifier.from_unseen(CrossAttentionClassifier(SMALL), task["seen"], task["text"])


def test_checkpoint_round_trip(fitted, task, tmp_path):
    clf = fitted[0]
    save_component(clf, tmp_path / "seen", "cross_attention")
    again = load_component(tmp_path / "seen", kind="seen")
    assert isinstance(again, CrossAttentionSeenClassifier)
    assert torch.equal(again.predict(task["test"]), clf.predict(task["test"]))
    assert json.loads(json.dumps(clf.state_scalars()))["seen_classes"] == task["seen"].tolist()


def test_conformance_kit():
    from avood_core.testing import check_component

    tiny = dict(epochs=1, batches_per_epoch=3, batch_size=16, embed_dim=12, heads=2, enc_hidden=16, proj_hidden=16,
                joint_dim=8, ff_dim=8)
    check_component(CrossAttentionSeenClassifier, "seen", tiny, name="cross_attention")


def test_no_seen_classes_is_a_data_error_not_an_index_error(task):
    """An empty ``ctx.seen_classes`` finds no training label: one DataError, never a raw IndexError."""
    from avood_core.errors import DataError

    ctx = FitContext(text=task["text"], seen_classes=torch.tensor([], dtype=torch.long), unseen_classes=task["unseen"],
                     device=torch.device("cpu"), progress=Recorder(), log=lambda _: None)
    with pytest.raises(DataError, match="not among ctx.seen_classes"):
        CrossAttentionSeenClassifier(SMALL).fit(task["train"], ctx)
