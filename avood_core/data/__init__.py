"""The AVCA benchmark on disk (UCF, ActivityNet, VGGSound): load, write a synthetic tree, check."""

from avood_core.data.check import TreeReport, check_tree
from avood_core.data.layout import DATASETS, STAGES, DatasetInfo, dataset_info
from avood_core.data.loader import BenchmarkTasks, load_benchmark
from avood_core.data.synth import SynthReport, write_synthetic_tree

__all__ = ["BenchmarkTasks", "DATASETS", "DatasetInfo", "STAGES", "SynthReport", "TreeReport", "check_tree",
           "dataset_info", "load_benchmark", "write_synthetic_tree"]
