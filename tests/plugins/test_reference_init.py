"""The reference's weights_init on the MLP plugins' fresh networks (src/model_addition.py weights_init)."""

from __future__ import annotations

import pytest
import torch

from avood_plugins._init import reference_init
from avood_plugins.detectors.entropy import EntropyDetector
from avood_plugins.seen.mlp import MLPSeenClassifier
from avood_plugins.unseen.mlp import MLPUnseenClassifier


def _linears(net: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("make", [
    lambda: EntropyDetector().make_net(in_dim=1024, n_seen=42),
    lambda: MLPSeenClassifier().make_net(in_dim=1024, n_seen=42),
    lambda: MLPUnseenClassifier().make_net(in_dim=1024, n_classes=300),
], ids=["entropy detector", "seen mlp", "unseen mlp"])
def test_fresh_mlp_statistics(make):
    torch.manual_seed(0)
    net = make().requires_grad_(False)
    for m in _linears(net):
        w = m.weight
        assert abs(float(w.mean())) < 3e-3 and abs(float(w.std()) - 0.02) < 3e-3
        assert torch.count_nonzero(m.bias) == 0


def test_helper_batchnorm_and_idempotent_shapes():
    torch.manual_seed(0)
    net = reference_init(torch.nn.Sequential(torch.nn.Linear(400, 300), torch.nn.BatchNorm1d(300)))
    bn = net[1]
    assert abs(float(bn.weight.detach().mean()) - 1) < 5e-3 and abs(float(bn.weight.detach().std()) - 0.02) < 4e-3
    assert torch.count_nonzero(bn.bias) == 0 and torch.equal(bn.running_mean, torch.zeros(300))
    assert abs(float(net[0].weight.detach().std()) - 0.02) < 1e-3
