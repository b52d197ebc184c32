"""Loading an ActivityNet-scale tree (~20k clips, 512/512 features) from h5 takes under 10 s.

Opt-in (it writes ~150 MB and takes ~10 s): AVOOD_PERF=1 pytest tests/data/test_data_perf.py -s
"""

from __future__ import annotations

import os
import time

import pytest

from avood_core.data import load_benchmark, write_synthetic_tree

pytestmark = pytest.mark.skipif(
    os.environ.get("AVOOD_PERF") != "1", reason="set AVOOD_PERF=1 to time loading an ActivityNet-scale tree"
)


def test_activitynet_scale_h5_load_is_fast(tmp_path, shared):
    report = write_synthetic_tree(tmp_path, "activitynet", splits_dir=shared, caches=False)
    clips = sum(report.clips[s] for s in ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen",
                                          "stage_2_test_seen", "stage_2_test_unseen"))
    assert clips == 20348
    started = time.perf_counter()
    b = load_benchmark(tmp_path, "activitynet")
    seconds = time.perf_counter() - started
    print(f"\nActivityNet-scale h5 load: {clips} clips, {report.audio_dim}/{report.video_dim} dims, "
          f"{seconds:.2f} s (write {report.seconds:.1f} s)")
    assert (len(b.stage1.train), len(b.stage2.train)) == (9204, 14534)
    assert (b.stage1.train.audio_dim, b.stage1.train.video_dim) == (512, 512)
    assert seconds < 10.0
