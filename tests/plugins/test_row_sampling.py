"""The OOD detectors' row draws (``row_sampling``): each mode draws exactly the rows its description says.

'reference' is the reference's ``next_batch`` (src/classifier_oodgzsl.py): a first pass in stored
order that ends one batch early, then b fresh random distinct rows on every call (its index is never
reset); 'passes' cycles reshuffled passes across epochs."""

from __future__ import annotations

import pytest
import torch

from avood_plugins._mlp import RowDraws, detector_data

CPU = torch.device("cpu")


def _draws(mode: str, m: int, b: int, calls: int, seed: int = 0) -> list[list[int]]:
    torch.manual_seed(seed)
    rows = RowDraws(m, CPU, mode)
    return [rows.take(b).tolist() for _ in range(calls)]


def test_reference_first_pass_in_stored_order_then_fresh_rows_each_call():
    got = _draws("reference", m=10, b=2, calls=7)
    # index 0, 2, 4, 6: index + 2b <= 10, so rows [index, index + 2); at index 8 the reference reshuffles
    assert got[:4] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    torch.manual_seed(0)
    fresh = [torch.randperm(10)[:2].tolist() for _ in range(3)]  # one permutation per call, its first b rows
    assert got[4:] == fresh
    assert all(len(set(r)) == 2 for r in got)


def _reference_next_batch(m: int, b: int, calls: int, seed: int) -> list[list[int]]:
    """The reference's algorithm on row ids, written from its description: ``start = index;
    index += b; end = index; if end > m - b: permute the rows, start = 0, end = b`` (index kept)."""
    torch.manual_seed(seed)
    order, index, out = list(range(m)), 0, []
    for _ in range(calls):
        start = index
        index += b
        end = index
        if end > m - b:
            perm = torch.randperm(m).tolist()
            order = [order[i] for i in perm]
            start, end = 0, b
        out.append(order[start:end])
    return out


@pytest.mark.parametrize("m, b", [(10, 2), (11, 3), (7, 4), (5, 1)])
def test_reference_mode_draws_the_reference_rows_up_to_the_permutation(m, b):
    """Same first pass; after it the reference returns the first b of a cumulatively permuted order,
    avood the first b of a fresh permutation: both are b distinct uniform rows. Same count of draws
    in the first pass and the same set sizes after it."""
    ours, ref = _draws("reference", m, b, 12), _reference_next_batch(m, b, 12, 0)
    first = max(0, (m - b) // b)  # calls before the first reshuffle
    assert ours[:first] == ref[:first] == [list(range(k * b, (k + 1) * b)) for k in range(first)]
    assert all(len(set(r)) == b for r in ours[first:] + ref[first:])


def test_reference_mode_after_the_first_pass_is_uniform():
    """Every row is about equally likely after the first pass (no pass structure): 6000 draws of 3 of 8 rows."""
    torch.manual_seed(1)
    rows = RowDraws(8, CPU, "reference")
    for _ in range(2):  # the first pass: rows 0-5
        rows.take(3)
    counts = torch.bincount(torch.cat([rows.take(3) for _ in range(6000)]), minlength=8).float()
    assert counts.sum() == 18000 and (counts / counts.mean() - 1).abs().max() < 0.06


def test_passes_mode_cycles_reshuffled_passes_across_calls():
    got = _draws("passes", m=10, b=3, calls=7)
    torch.manual_seed(0)
    p1, p2, p3 = (torch.randperm(10).tolist() for _ in range(3))
    # three batches per pass (9 rows); the 10th row of each pass is skipped, a new pass starts
    assert got == [p1[0:3], p1[3:6], p1[6:9], p2[0:3], p2[3:6], p2[6:9], p3[0:3]]


def test_batch_larger_than_the_rows_spans_permutations():
    for mode in ("reference", "passes"):
        torch.manual_seed(0)
        batch = RowDraws(3, CPU, mode).take(5)
        torch.manual_seed(0)
        expected = torch.cat([torch.randperm(3), torch.randperm(3)])[:5]
        assert torch.equal(batch, expected)


def test_detector_epoch_draws_half_real_half_synthetic_rows_in_the_mode(monkeypatch):
    from avood_plugins.detectors.binary import BinaryDetector

    from blobs import SEEN, UNSEEN, blobs, fit_context

    seen, synthetic = blobs(SEEN[:3], 4, 1), blobs(UNSEEN[:2], 10, 2)  # n = 12 real, m = 20 synthetic rows
    detector = BinaryDetector(batch_size=4, row_sampling="reference")
    torch.manual_seed(0)
    x, batches, forward = detector_data(detector, seen, synthetic, fit_context())
    epoch = batches()  # ceil(12 / 4) steps of 4 // 2 real rows, stored order first
    assert len(x) == 12 and [r.tolist() for r in epoch] == [[0, 1], [2, 3], [4, 5]]
    drawn: list[list[int]] = []
    real_take = RowDraws.take

    def spy(self, b):
        rows = real_take(self, b)
        drawn.append(rows.tolist())
        return rows

    monkeypatch.setattr(RowDraws, "take", spy)
    assert forward(epoch[0]).shape == (4, 1) and forward(epoch[1]).shape == (4, 1)
    assert drawn == [[0, 1], [2, 3]]  # the synthetic side: its own first pass in stored order


@pytest.mark.parametrize("mode", ["reference", "passes"])
def test_detectors_pass_the_switch_through(mode, monkeypatch):
    """``row_sampling`` of both detectors reaches their batches (and 'passes' is the earlier avood behaviour)."""
    from avood_plugins import _mlp
    from avood_plugins.detectors.binary import BinaryDetector
    from avood_plugins.detectors.entropy import EntropyDetector

    from blobs import SEEN, UNSEEN, blobs, fit_detector

    seen_modes: list[str] = []
    real_init = _mlp.RowDraws.__init__

    def spy(self, m, device, mode="reference"):
        seen_modes.append(mode)
        real_init(self, m, device, mode)

    monkeypatch.setattr(_mlp.RowDraws, "__init__", spy)
    data = {"seen": blobs(SEEN, 10, 1), "synthetic": blobs(UNSEEN, 10, 2)}
    for cls in (EntropyDetector, BinaryDetector):
        fit_detector(cls, {"epochs": 1, "batch_size": 8, "row_sampling": mode}, data, 0)
    assert seen_modes == [mode] * 4
