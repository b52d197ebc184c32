"""Components that misbehave: each is one `avood: error:` line naming the plugin, the method and the fix.

The components come from a real third-party package, ``tests/faults/faulty_plugin`` (``avood-faulty``),
installed into a throwaway environment the way ``tests/test_third_party.py`` installs the example
plugin; each subclasses one of the kit's closed-form stand-ins (fast: no training loop) and breaks
one protocol method (``avood_faulty.components``); the other three kinds are the stand-ins as they are.
The package also ships a plugin module that raises ``SystemExit(3)`` when imported: every case
runs with it installed, so each one also shows that such a plugin no longer ends every command.

Each row of :data:`CASES` runs ``avood run`` on the tiny task of tests/tiny_runs.py with one faulty
component and asserts: the exit status, stderr is exactly one line matching the row's regex,
no traceback anywhere, every file under the output folder that existed before is byte-identical, and
no run folder looks finished (no ``results.json``, ``predictions.npz`` or report). A component whose
outputs fail only at evaluation leaves its fitted pipeline saved (``pipeline.json``, to resume from);
loading that folder meets the same check (:func:`test_a_saved_faulty_pipeline_is_refused_again`).
Adding a case is one line of :data:`CASES`.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_third_party import ThrowawayEnv, _install
from tiny_runs import TINY, file_digests

from avood_core.cli import options
from avood_core.stages import KINDS

PACKAGE = Path(__file__).resolve().parent / "faulty_plugin"
SETS = tuple(a for s in TINY if "." not in s.split("=")[0] or s.startswith("data.") for a in ("--set", s))
FINISHED = ("results.json", "predictions.npz", "report.md")  # what a finished run writes after evaluating
WHO = r"^avood: error: "
ERROR = getattr(options, "EXIT_ERROR", 2)  # the CLI's exit status of a one-line error


@dataclass(frozen=True)
class Case:
    id: str
    option: str  # --<kind>=<registered name> of the faulty component
    line: str  # regex of the one stderr line
    jobs: int = 1
    code: int = ERROR


CASES = [
    Case("score-all-nan", "--detector=nan_score", r"detector 'nan_score' score\(\) returned 105 NaN values of 105: an OOD score must be finite"),
    Case("score-half-inf", "--detector=half_inf_score", r"detector 'half_inf_score' score\(\) returned 52 \+inf values of 105: an OOD score must be finite"),
    Case("score-n-minus-3", "--detector=short_score", r"detector 'short_score' score\(\) returned shape \(102,\) for 105 samples: return one OOD score per sample, shape \(105,\)"),
    Case("score-n-by-2", "--detector=wide_score", r"detector 'wide_score' score\(\) returned shape \(105, 2\) for 105 samples: return one OOD score"),
    Case("threshold-nan", "--detector=nan_threshold", r"detector 'nan_threshold' threshold is nan: fit\(\) must set a finite self.threshold"),
    Case("is-seen-int", "--detector=int_is_seen", r"detector 'int_is_seen' is_seen\(\) returned dtype torch.int64: return a bool tensor"),
    Case("score-raises", "--detector=score_raises", r"detector 'score_raises' score\(\) raised RuntimeError: CUDA kernel failed; fix the plugin"),
    Case("seen-id-1e6", "--seen=huge_id", r"seen 'huge_id' predict\(\) returned 105 ids outside the task's seen classes \(e.g. \[1000000\]"),
    Case("seen-float-ids", "--seen=float_ids", r"seen 'float_ids' predict\(\) returned torch.float32 ids: return integer class ids"),
    Case("seen-short", "--seen=short_pred", r"seen 'short_pred' predict\(\) returned shape \(104,\) for 105 samples: return one class id per sample"),
    Case("seen-a-list", "--seen=list_pred", r"seen 'list_pred' predict\(\) returned a list, not a torch.Tensor: return a tensor"),
    Case("unseen-2-ids", "--unseen=short_pred", r"unseen 'short_pred' predict\(\) returned shape \(2,\) for 105 samples: return one class id per sample"),
    Case("unseen-outside", "--unseen=outside_ids", r"unseen 'outside_ids' predict\(\) returned 105 ids outside the candidates \(e.g. \[\d+"),
    Case("unseen-nan-distances", "--unseen=nan_distances", r"unseen 'nan_distances' distances\(\) returned 945 NaN values of 945: distances must be finite"),
    Case("unseen-wide-distances", "--unseen=wide_distances", r"unseen 'wide_distances' distances\(\) returned shape \(105, 18\) for 105 samples"),
    Case("generate-nan", "--generator=nan_features", r"generator 'nan_features' generate\(\) returned \d+ NaN values of \d+: generated audio features must be finite"),
    Case("generate-short", "--generator=short_rows", r"generator 'short_rows' generate\(\) returned audio of shape \(44, 512\): return n_per_class=5 samples of each of the 9 classes"),
    Case("generate-dim", "--generator=wrong_dim", r"generator 'wrong_dim' generate\(\) returned audio of shape \(45, 510\): return n_per_class=5"),
    Case("generate-labels", "--generator=wrong_labels", r"generator 'wrong_labels' generate\(\) returned 45 ids outside the requested classes \(e.g. \[0\]"),
    Case("generate-counts", "--generator=uneven_counts", r"generator 'uneven_counts' generate\(\) returned per-class counts \{\d+: 4, \d+: 6\}: return n_per_class=5 samples of each"),
    Case("generate-tuple", "--generator=not_samples", r"generator 'not_samples' generate\(\) returned a tuple: return avood_core.task.AVSamples"),
    Case("fit-value-error", "--detector=fit_value_error", r"detector 'fit_value_error' fit\(\) raised ValueError: bad hidden size; fix the plugin"),
    Case("fit-value-error-jobs2", "--unseen=fit_value_error", r"unseen 'fit_value_error' fit\(\) raised ValueError: bad hidden size; fix the plugin", jobs=2),
    Case("seen-fit-value-error-jobs2", "--seen=fit_value_error", r"seen 'fit_value_error' fit\(\) raised ValueError: bad hidden size", jobs=2),
    Case("fit-sys-exit-0", "--detector=fit_exit0", r"detector 'fit_exit0' fit\(\) called sys.exit\(0\): a component must raise an exception"),
    Case("fit-sys-exit-0-jobs2", "--unseen=fit_exit0", r"unseen 'fit_exit0' fit\(\) called sys.exit\(0\): a component must raise an exception", jobs=2),
    Case("fit-exit-3", "--detector=fit_exit3", r"detector 'fit_exit3' fit\(\) called sys.exit\(3\)"),
    Case("scalars-nan", "--detector=nan_scalars", r"detector 'nan_scalars': learned value\(s\) \['margin'\] are NaN; not saved"),
    Case("scalars-a-string", "--detector=str_scalars", r"detector 'str_scalars' state_scalars\(\) returned a str: return a dict of learned scalars"),
    Case("scalars-an-object", "--detector=object_scalars", r"detector 'object_scalars' state_scalars\(\) holds a builtins.object at 'net'"),
    Case("class-exits-at-import", "--detector=exits_on_import", r"detector 'exits_on_import' from avood-faulty 0.0.1 .* failed to import "
         r"'avood_faulty.exits_at_import:Detector': called sys.exit\(3\); reinstall or fix that plugin"),
]


def run_args(option: str, *extra: str) -> tuple[str, ...]:
    """``avood run`` with the stand-ins in every slot but the one ``option`` (``--<kind>=<name>``) fills."""
    kind = option[2:].split("=")[0]
    slots = [f"--{k}=standin" for k in KINDS if k != kind]
    return ("run", "-q", "--no-report", *slots, option, *SETS, *extra)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> ThrowawayEnv:
    """A throwaway environment with the faulty package installed (built from a copy, like the example's)."""
    root = tmp_path_factory.mktemp("faulty-env")
    source = root / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    made = ThrowawayEnv(root / "venv")
    _install(made, source)
    return made


def _before(out: Path) -> dict[str, str]:
    """An output folder that already holds a file and an earlier run's results."""
    (out / "earlier-run").mkdir(parents=True)
    (out / "notes.txt").write_bytes(b"keep me\n")
    (out / "earlier-run" / "results.json").write_text(json.dumps({"metrics": {"HM": 1.0}}))
    return file_digests(out)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_component_fault_is_one_line(case: Case, env: ThrowawayEnv, tmp_path):
    out = tmp_path / "runs"
    before = _before(out)
    proc = env.avood(*run_args(case.option, "--jobs", str(case.jobs), "-o", str(out)), timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == case.code, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.search(WHO + case.line, lines[0]), proc.stderr
    after = file_digests(out)
    assert {k: after.get(k) for k in before} == before
    finished = [p for name in FINISHED for p in out.rglob(name) if "earlier-run" not in p.parts]
    assert not finished, finished


def test_numpy_scalars_are_saved_as_numbers(env: ThrowawayEnv, tmp_path):
    """``state_scalars()`` holding ``numpy.float32`` / ``numpy.int64``: the run finishes, config.json holds numbers."""
    proc = env.avood(*run_args("--detector=numpy_scalars", "-o", str(tmp_path)), timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    run_dir = Path(re.search(r"run folder: (.+)", proc.stderr).group(1).strip())
    state = json.loads((run_dir / "components" / "detector" / "config.json").read_text())["state"]
    assert isinstance(state["threshold"], float) and state["count"] == 3
    evaluated = env.avood("evaluate", str(run_dir))
    assert evaluated.returncode == 0 and "AV-OOD (gated)" in evaluated.stdout, evaluated.stderr[-2000:]


def test_a_plugin_exiting_at_import_is_listed_as_broken(env: ThrowawayEnv):
    """Its ``SystemExit(3)`` at import no longer ends every command: `avood plugins` names it, exit 0."""
    proc = env.avood("plugins")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BROKEN  avood-faulty 0.0.1 (plugin 'avood_faulty_exits'): called sys.exit(3)" in proc.stdout
    assert re.search(r"^detector\s+nan_score\s+avood-faulty\s+0.0.1", proc.stdout, re.M), proc.stdout


def test_a_saved_faulty_pipeline_is_refused_again(env: ThrowawayEnv, tmp_path):
    """The fitted pipeline of a failed run, evaluated from its folder: the same line, nothing added to it."""
    proc = env.avood(*run_args("--detector=nan_score", "-o", str(tmp_path)), timeout=300)
    assert proc.returncode == ERROR, proc.stderr[-2000:]
    (run_dir,) = [p.parent for p in tmp_path.rglob("pipeline.json")]
    before = file_digests(run_dir)
    again = env.avood("evaluate", str(run_dir), timeout=300)
    assert again.returncode == ERROR and again.stderr == proc.stderr, again.stderr[-2000:]
    assert file_digests(run_dir) == before
