"""Tests of the low-rank bilinear fusion: avood's fusion conformance kit plus its own properties."""

from __future__ import annotations

import importlib.metadata as md

import pytest
import torch

from avood_core.testing import FUSION_CHECKS, check_component
from avood_example.bilinear import LowRankBilinear


@pytest.mark.parametrize("params", [{}, {"rank": 7}])
def test_bilinear_passes_the_fusion_kit(params):
    report = check_component(LowRankBilinear, params=params, name="bilinear")
    assert set(report.results) == set(FUSION_CHECKS) and report.ok


def test_bilinear_takes_unequal_dims_and_is_multiplicative():
    fusion = LowRankBilinear(10, 6, rank=5)
    audio, video = torch.randn(4, 10), torch.randn(4, 6)
    out = fusion(audio, video)
    assert out.shape == (4, 5) and out.abs().max() <= 1
    with torch.no_grad():
        fusion.W.weight.zero_()
        fusion.W.bias.zero_()
    assert not fusion(audio, video).any()  # a zero visual factor zeroes the product


def test_bilinear_registered_through_the_entry_point():
    try:
        md.distribution("avood-plugin-example")
    except md.PackageNotFoundError:
        pytest.skip("avood-plugin-example is not installed (pip install -e .)")
    from avood_core import Registry

    assert Registry().component_class("fusion", "bilinear") is LowRankBilinear
