"""Data code runs torch on one intra-op thread: it makes many small torch calls (per-class feature
generation, the task's validation scans), and on a busy 2-core machine torch's thread pool only
adds hand-off stalls."""

from avood_core.util.threads import torch_threads


def one_torch_thread():
    """One torch thread for the enclosed code, the previous count afterwards."""
    return torch_threads(1)
