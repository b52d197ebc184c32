"""Odd options and sweep specs: each refused where it is parsed, as one line, before anything is written.

Each row of :data:`CASES` runs the CLI in a real subprocess on one odd value (``--max-parallel 0``,
``--set seed=true``, a sweep of 10^8 trials, ``[values] seed = 5``, complex features...) and asserts
exit 2, exactly one ``avood: error:`` line naming the option or field, no traceback, every file
that existed before byte-identical, and nothing created at the ``absent`` globs (the output folder
the command was given). Adding a case is one line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fault_kit import Case, run_case
from tiny_runs import TINY, tiny_run

SETS = tuple(a for s in TINY for a in ("--set", s))
RUN = ("run", "-q", "--no-report", *SETS, "-o", "{d}/out")
SWEEP = ("sweep", "-q", "--no-report", *SETS, "--axis", "detector=entropy", "--output-dir", "{d}/out")
BENCH = ("bench", "--dataset", "ucf", "--epochs-scale", "0.001", "--data-scale", "0.02", "-o", "{d}/out")
OUT = ("out",)
HUNDRED = ",".join(str(i) for i in range(1, 101))
TEMPLATE: dict[str, Path] = {}


def nothing(d: Path, stack) -> None:
    pass


def write(rel: str, text: str):
    def make(d: Path, stack) -> None:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return make


def features(**arrays):
    """``d/x.npz`` with the given arrays ((12, 8) of each dtype named)."""
    def make(d: Path, stack) -> None:
        np.savez(d / "x.npz", **{k: np.ones((12, 8), dtype=v) for k, v in arrays.items()})
    return make


def run_folder(d: Path, stack) -> None:
    shutil.copytree(TEMPLATE["run"], d / "run")
    (d / "run" / "table.md").write_text("| my notes |\n")


def both_run(make):
    """The run folder copied to ``d/run``, then ``make``."""
    def both(d: Path, stack) -> None:
        shutil.copytree(TEMPLATE["run"], d / "run")
        make(d, stack)
    return both


def held_sweep(d: Path, stack) -> None:
    """``d/out``: a sweep folder whose lock another process holds (an flock on its lock file)."""
    (d / "out").mkdir()
    (d / "out" / "sweep.json").write_text('{"spec_hash": "x"}\n')
    fd = os.open(d / "out" / ".avood-sweep.lock", os.O_RDWR | os.O_CREAT)
    stack.callback(os.close, fd)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


CASES = [
    # -- counts and sizes of the scale-out options: refused by the option parser, no folder -----------
    Case("run-max-parallel-0", nothing, (*RUN, "--seeds", "0,1", "--max-parallel", "0"), "--max-parallel 0: must be at least 1", OUT),
    Case("run-max-parallel-neg", nothing, (*RUN, "--seeds", "0,1", "--max-parallel", "-3"), "--max-parallel -3: must be at least 1", OUT),
    Case("ablate-max-parallel-0", nothing, ("ablate", "gates", "-q", *SETS, "-o", "{d}/out", "--seeds", "0,1", "--max-parallel", "0"), "--max-parallel 0", OUT),
    Case("sweep-max-parallel-0", nothing, (*SWEEP, "--max-parallel", "0"), "--max-parallel 0: must be at least 1", OUT),
    Case("sweep-num-cpus-0", nothing, (*SWEEP, "--num-cpus", "0"), "--num-cpus 0: must be at least 1", OUT),
    Case("sweep-num-gpus-neg", nothing, (*SWEEP, "--num-gpus", "-1"), "--num-gpus -1: must be at least 0", OUT),
    Case("run-tsne-cap-neg", nothing, (*RUN, "--tsne-cap", "-1"), "--tsne-cap -1: must be at least 0", OUT),
    Case("bench-threads-0", nothing, (*BENCH, "--threads", "0"), "--threads 0: must be at least 1", OUT),
    Case("bench-threads-neg", nothing, (*BENCH, "--threads", "-2"), "--threads -2", OUT),
    Case("bench-jobs-0", nothing, (*BENCH, "--jobs", "0"), "--jobs 0: must be at least 1", OUT),
    Case("bench-dataset-empty", nothing, ("bench", "--dataset=", *BENCH[3:]), "--dataset '': give ucf, activitynet or vggsound", OUT),
    Case("run-resume-file", write("f", "hi\n"), (*RUN, "--resume", "{d}/f"), "--resume '{d}/f' is not a folder", OUT),
    Case("bench-epochs-scale-0", nothing, (*BENCH, "--epochs-scale", "0"), "--epochs-scale 0: must be greater than 0", OUT),
    Case("bench-data-scale-neg", nothing, (*BENCH, "--data-scale", "-1"), "--data-scale -1: must be greater than 0", OUT),
    # -- sweeps: a trial-count limit before expansion, no value dropped, one spelling per value ------
    Case("sweep-1e8-trials", nothing, (*SWEEP, *(a for k in ("unseen", "seen", "detector", "generator") for a in ("--axis", f"{k}.epochs={HUNDRED}"))), "100,000,000 trials", OUT, limit=60, within=15),
    Case("sweep-20001-seeds", write("s.toml", f"seeds = {list(range(20001))}\n"), (*SWEEP, "{d}/s.toml"), "20,001 trials", OUT, within=15),
    Case("sweep-values-seed", write("s.toml", "[values]\nseed = 5\n"), (*SWEEP, "{d}/s.toml"), "'seed' cannot be set in [values]", OUT),
    Case("sweep-values-output-dir", write("s.toml", '[values]\noutput_dir = "x"\n'), (*SWEEP, "{d}/s.toml"), "'output_dir' cannot be set in [values]", OUT),
    Case("sweep-axis-output-dir", nothing, (*SWEEP, "--axis", "output_dir=a,b"), "'output_dir' cannot be set in [axes]", OUT),
    Case("sweep-unknown-key", write("s.toml", "sedes = [1]\n"), (*SWEEP, "{d}/s.toml"), "sedes: Extra inputs are not permitted (got [1]); valid keys: name, config", OUT),
    Case("sweep-values-unknown-key", write("s.toml", "[values]\nnonsense = 1\n"), (*SWEEP, "{d}/s.toml"), "nonsense: Extra inputs are not permitted (got 1); valid keys: profile", OUT),
    Case("sweep-axis-two-spellings", nothing, (*SWEEP, "--axis", 'unseen.lr=[0.001, "0.001"]'), "unseen.params.lr: expected a number, got the string '0.001'", OUT),
    Case("sweep-axis-int-and-float", nothing, (*SWEEP, "--axis", "unseen.lr=[1, 1.0]"), "resolve to the same config", OUT),
    Case("sweep-seeds-bool", write("s.toml", "seeds = [true]\n"), (*SWEEP, "{d}/s.toml"), "seeds.0: expected an integer, got the boolean true", OUT),
    Case("sweep-report-int", write("s.toml", "report = 1\n"), ("sweep", "-q", *SWEEP[3:], "{d}/s.toml"), "report: expected a boolean, got 1", OUT),
    Case("sweep-retries-bool", write("s.toml", "retries = true\n"), (*SWEEP, "{d}/s.toml"), "retries: expected an integer, got the boolean true", OUT),
    Case("sweep-resources-bool", write("s.toml", "[resources]\nnum_cpus = true\n"), (*SWEEP, "{d}/s.toml"), "resources.num_cpus: expected an integer", OUT),
    Case("sweep-dir-run-folder", run_folder, (*SWEEP[:-1], "{d}/run"), "is a run folder written by 'avood run', not a sweep folder", ("run/sweep.json", "run/trials")),
    Case("sweep-dir-other-files", write("out/table.md", "| mine |\n"), SWEEP, "is not empty and holds no sweep.json", ("out/sweep.json", "out/trials")),
    Case("sweep-json-list", write("out/sweep.json", "[1, 2]\n"), SWEEP, "sweep.json' holds a list where an object belongs", ("out/trials", "out/table.md")),
    Case("sweep-json-deep", write("out/sweep.json", "[" * 100_000 + "]" * 100_000), SWEEP, "sweep.json' nests", ("out/trials", "out/table.md")),
    Case("sweep-dir-file", write("f", "hi\n"), (*SWEEP[:-1], "{d}/f"), "sweep folder '{d}/f' is a file"),
    Case("sweep-dir-locked", held_sweep, (*SWEEP, "--allow-changes"), "is being written by another avood process", ("out/trials", "out/table.md")),
    # -- config values: no boolean as a number, no string as a number, no infinity, Adam's betas --------
    Case("set-seed-true", nothing, (*RUN, "--set", "seed=true"), "seed: expected an integer, got the boolean true", OUT),
    Case("set-jobs-false", nothing, ("config", "--set", "jobs=false"), "jobs: expected an integer, got the boolean false"),
    Case("set-stage1-int", nothing, ("config", "--set", "data.stage1=1"), "data.stage1: expected a boolean, got 1"),
    Case("set-scale-string", nothing, ("config", "--set", 'data.scale="0.5"'), "data.scale: expected a number, got the string '0.5'"),
    Case("set-epochs-true", nothing, ("config", "--set", "seen.epochs=true"), "seen.params.epochs: expected an integer, got the boolean true"),
    Case("set-lr-inf", nothing, ("config", "--set", "detector.lr=inf"), "detector.params.lr: inf is not a finite number"),
    Case("set-lr-nan", nothing, ("config", "--set", "unseen.lr=nan"), "unseen.params.lr"),
    Case("set-hidden-bool", nothing, ("config", "--set", "seen.hidden=[true, 32]"), "seen.params.hidden.0: expected an integer, got the boolean true"),
    Case("set-betas-out", nothing, (*RUN, "--set", "detector.betas=[2.0, -1]"), "detector.params.betas.0: Input should be less than 1 (got 2.0)", OUT),
    Case("set-generator-beta1", nothing, ("config", "--set", "generator.beta1=1.5"), "generator.params.beta1"),
    Case("spec-seed-string", write("s.toml", '[values]\n"unseen.epochs" = "3"\n'), (*SWEEP, "{d}/s.toml"), "unseen.params.epochs: expected an integer, got the string '3'", OUT),
    # -- predict: features must be real numbers -----------------------------------------------------
    Case("predict-complex", both_run(features(audio=np.complex64, video=np.float32)), ("predict", "{d}/run", "{d}/x.npz"), "array 'audio' has dtype complex64 (complex numbers)"),
    Case("predict-strings", both_run(features(audio=np.float32, video=np.str_)), ("predict", "{d}/run", "{d}/x.npz"), "array 'video' has dtype <U1 (strings)"),
    Case("predict-bool", both_run(features(audio=np.bool_, video=np.float32)), ("predict", "{d}/run", "{d}/x.npz"), "array 'audio' has dtype bool (booleans)"),
]


@pytest.fixture(scope="module", autouse=True)
def template(tmp_path_factory):
    TEMPLATE["run"] = tiny_run(tmp_path_factory.mktemp("template")).run_dir
    yield


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_odd_option_is_one_line_and_writes_nothing(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
