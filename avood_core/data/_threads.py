"""A context that runs torch on one intra-op thread (restored afterwards).

The data code makes many small torch calls (per-class feature generation, the task's validation
scans); on a 2-core machine that is busy, torch's thread pool only adds hand-off stalls.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
