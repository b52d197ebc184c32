"""The real AV-GZSL benchmark on disk (AVCA: UCF, ActivityNet, VGGSound): load, write, check.

* :func:`load_benchmark` reads ``avgzsl_benchmark_datasets/<DS>/`` (per-class h5 tree or the
  ``_features_processed`` pkl caches, read without executing pickled code) into the stage-1
  (selection) and stage-2 (report) :class:`~avood_core.task.AVGZSLTask` of the protocol.
* :func:`write_synthetic_tree` writes a complete tree in the same format, from the real class
  splits and word2vec vectors or from generated ones, with learnable synthetic features.
* :func:`check_tree` validates a tree and renders a table per split.
"""

from avood_core.data.check import TreeReport, check_tree
from avood_core.data.layout import DATASETS, STAGES, DatasetInfo, dataset_info
from avood_core.data.loader import BenchmarkTasks, load_benchmark
from avood_core.data.synth import SynthReport, write_synthetic_tree

__all__ = ["BenchmarkTasks", "DATASETS", "DatasetInfo", "STAGES", "SynthReport", "TreeReport", "check_tree",
           "dataset_info", "load_benchmark", "write_synthetic_tree"]
