"""Every registered component passes the plugin-author conformance kit (avood_core.testing).

Parametrized over the registry's entries at collection time, so a new built-in (or any
installed third-party plugin) is covered without touching this file. ``BUDGETS`` shrinks the
known plugins to tiny networks and a few steps, with each plugin's real ``Params`` names; a
plugin missing from it runs with its own ``quick`` params.
"""

from __future__ import annotations

from typing import Any

import pytest

from avood_core.registry import get_registry, set_registry
from avood_core.testing import CHECKS, FUSION_CHECKS, ConformanceReport, check_component

_CROSS_ATTENTION = dict(
    embed_dim=24, enc_hidden=32, proj_hidden=32, joint_dim=16, heads=2, ff_dim=16,
    batch_size=32, epochs=1, batches_per_epoch=12,
)
_JOINT_EMBEDDING = dict(hidden=32, text_hidden=16, joint_dim=8, batch_size=16, epochs=1, batches_per_epoch=6)

BUDGETS: dict[tuple[str, str], dict[str, Any]] = {
    ("generator", "wgan_gp"): dict(epochs=1, batches_per_epoch=15, critic_iters=2, noise_dim=16, hidden=32,
                                   batch_size=32),
    ("detector", "entropy"): dict(epochs=10, batch_size=32, hidden=(32,)),
    ("detector", "binary"): dict(epochs=10, batch_size=32, hidden=(32,)),
    ("detector", "calibrated_stacking"): {},  # no training; runs on the kit's stand-in unseen classifier
    ("seen", "mlp"): dict(epochs=5, batch_size=32, hidden=(32,)),
    ("seen", "cross_attention"): dict(_CROSS_ATTENTION),
    ("unseen", "cross_attention"): dict(_CROSS_ATTENTION),
    ("unseen", "mlp"): dict(epochs=5, batch_size=32, hidden=(32,)),
    ("unseen", "cjme"): dict(_JOINT_EMBEDDING),
    ("unseen", "avgzslnet"): dict(_JOINT_EMBEDDING, decoder_hidden=16),
    ("fusion", "cross_attention"): dict(embed_dim=12, enc_hidden=16, heads=2, ff_dim=8),
}


def _entries() -> list[tuple[str, str]]:
    registry = get_registry()
    entries = [(e.kind, e.name) for e in registry]
    set_registry(None)  # collection must not leave a registry behind for the tests
    return entries


ENTRIES = [e for e in _entries() if e[0] != "fusion"]
FUSIONS = [e for e in _entries() if e[0] == "fusion"]
_reports: dict[tuple[str, str], ConformanceReport] = {}


def _report(kind: str, name: str) -> ConformanceReport:
    """The kit's report for one registered component, computed once for all of its checks."""
    key = (kind, name)
    if key not in _reports:
        cls = get_registry().component_class(kind, name)
        _reports[key] = check_component(cls, kind, BUDGETS.get(key, {}), name=name, raise_on_failure=False)
    return _reports[key]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("kind,name", ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_registered_component_conforms(kind: str, name: str, check: str):
    report = _report(kind, name)
    result = report.results[check]
    if result.status == "skipped":
        pytest.skip(result.message)
    report.assert_ok(check)


@pytest.mark.parametrize("check", FUSION_CHECKS)
@pytest.mark.parametrize("kind,name", FUSIONS, ids=[f"{k}-{n}" for k, n in FUSIONS])
def test_registered_fusion_conforms(kind: str, name: str, check: str):
    """Every registered fusion (built-in or third-party) passes the fusion contract (avood_core.testing.check_fusion)."""
    _report(kind, name).assert_ok(check)


def test_every_builtin_is_covered():
    """The paper's components are among the entries (discovery works); BUDGETS names no stale plugin."""
    builtins = {(e.kind, e.name) for e in get_registry() if e.provider.dist == "avood"}
    assert {("generator", "wgan_gp"), ("detector", "entropy"), ("seen", "mlp"), ("unseen", "cross_attention")} <= builtins
    assert {("fusion", n) for n in ("concat", "audio", "video", "mean", "sum", "gated", "cross_attention")} <= builtins
    assert builtins <= set(ENTRIES) | set(FUSIONS)
    stale = sorted(set(BUDGETS) - builtins)
    assert not stale, f"BUDGETS names components that are not registered any more: {stale}"
