"""``avood sweep``: many runs of one spec, resumable, on this machine or on Ray; the sweep folder's
layout is in docs/scaling.md."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from avood_core import __version__
from avood_core.errors import AvoodError
from avood_core.run.tracking import SweepSession
from avood_core.executor.engines import TRIAL_FILE, make_engine
from avood_core.executor.jobs import Job, run_jobs
from avood_core.util.threads import usable_cores
from avood_core.sweep.spec import SweepSpec, Trial, expand, spec_hash
from avood_core.sweep.table import check_metrics, default_metrics, write_tables
from avood_core.util.json_read import read_json
from avood_core.util.paths import check_name, check_output_dir, contained


@dataclass
class SweepResult:
    folder: Path
    records: list[dict]
    markdown: str

    @property
    def failed(self) -> list[dict]:
        """The records of the trials that failed (``label``, ``seed``, ``error``, ``run_dir``)."""
        return [r for r in self.records if r.get("status") == "failed"]

    def failure_lines(self) -> list[str]:
        """One line per failed trial: its name, the one-line reason and where its log is."""
        return [f"failed: {r['label']}, seed={r['seed']}: {r.get('error') or 'no reason recorded'} "
                f"(log: {self.folder / r['run_dir'] / 'log.txt'})" for r in self.failed]


def component_keys(trial: Trial, registry) -> tuple[frozenset, bool]:
    """``(kind, fit hash)`` of the components the trial fits first, and whether these are its last fits:
    one stage (stage 1 off or skipped, as :func:`~avood_core.run.fitting.stage1_decision` decides), so a
    trial sharing one may start as soon as it is published to the sweep's ``shared`` folder. When stage 1
    runs, the stage-2 fits depend on its selections, so the trial holds its keys until it ends."""
    from avood_core.run.fitting import build_pipeline, fit_hashes, has_stage1, stage1_decision

    cfg = trial.config
    staged = has_stage1(cfg)
    try:
        two_stages = stage1_decision(cfg, staged, registry)[0]
    except AvoodError:  # a component that cannot say: the trial reports it; hold its keys to the end
        two_stages = staged
    stage = "stage1" if two_stages else "stage2" if staged else ""
    return frozenset(fit_hashes(cfg, build_pipeline(cfg, registry), stage).items()), not two_stages


def published(shared: Path, final: set) -> Callable[[tuple], bool]:
    """Whether a ``(kind, fit hash)`` key in ``final`` is in ``shared`` (published whole, by one rename)."""
    from avood_core.run.fitting import shared_component

    return lambda key: key in final and shared_component(shared, *key).is_dir()


def _complete(run_dir: Path, trial_hash: str) -> dict | None:
    """The trial's record when its folder is finished with this hash; else ``None``."""
    try:
        info = read_json(run_dir / TRIAL_FILE)
    except AvoodError:
        return None
    if not isinstance(info, dict) or info.get("status") != "done" or info.get("hash") != trial_hash:
        return None
    return info if (run_dir / "results.json").is_file() else None


SWEEP_LOCK = ".avood-sweep.lock"
SWEEP_FILE = "sweep.json"


def check_sweep_folder(folder: Path) -> None:
    """Refuse, before anything is written, a file, a run folder or a folder of other files (not a sweep's)."""
    if folder.exists():
        if not folder.is_dir():
            raise AvoodError(f"sweep folder '{folder}' is a file, not a folder; pass a new folder to --output-dir")
        try:
            names = {p.name for p in folder.iterdir()}
        except OSError as exc:
            raise AvoodError(f"sweep folder '{folder}' cannot be read ({exc.strerror}); fix its permissions") from None
        if names and not names & {SWEEP_FILE, SWEEP_LOCK}:
            from avood_core.run.folder import is_run_folder

            what = ("a run folder written by 'avood run'" if is_run_folder(folder)
                    else f"not empty and holds no {SWEEP_FILE}")
            raise AvoodError(f"sweep folder '{folder}' is {what}, not a sweep folder; nothing was written: pass a "
                             f"new or empty folder (or an earlier sweep's folder) to --output-dir")
    check_output_dir(folder, "--output-dir")


def run_sweep(spec: SweepSpec, output: Path | None = None, allow_changes: bool = False, quiet: bool = False,
              echo: Callable[[str], None] = print, registry=None, source: str = "sweep",
              metrics: list[str] | None = None) -> SweepResult:
    """Expand ``spec``, run the unfinished trials on its engine (a failure does not stop the others) and
    write the tables (``metrics``: dotted keys); the folder is checked and locked before anything is written."""
    from avood_core.registry import get_registry
    from avood_core.run.folder import lock

    registry = registry or get_registry()
    started = time.perf_counter()
    trials = expand(spec, registry, source)
    output = output or spec.output  # else sweeps/<name> (a plain name)
    folder = Path(output) if output else Path("sweeps") / check_name(spec.name or "sweep", "sweep name")
    check_sweep_folder(folder)
    say = (lambda m: None) if quiet else echo
    tracking = SweepSession(trials[0].config.logging if trials else None, registry, spec.name or folder.name, folder,
                            say)  # the loggers checked (an unreachable store) before anything is written
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AvoodError(f"sweep folder '{folder}' cannot be created ({exc.strerror}); pass a writable --output-dir") from None
    with lock(folder, "sweep", SWEEP_LOCK, "sweep folder"):
        digest = spec_hash(trials)
        made_for = read_json(folder / SWEEP_FILE, fix="remove it or choose another sweep folder (--output-dir)"
                             ).get("spec_hash") if (folder / SWEEP_FILE).is_file() else digest
        if made_for != digest and not allow_changes:  # another spec's folder
            raise AvoodError(f"sweep folder '{folder}' was made by another spec (its trials or configs changed); "
                             "pass --allow-changes to rerun it (changed trials are refitted) or choose another "
                             "--output-dir")
        shared = sorted(p.name for p in (folder / "shared").iterdir()) if (folder / "shared").is_dir() else []
        for rel in ("trials", "shared", *(f"trials/{t.id}" for t in trials), *(f"shared/{n}" for n in shared)):
            contained(folder, rel, "trial folders and shared components")
        return _run_trials(spec, trials, folder, registry, quiet, echo, started, metrics, tracking, digest)


def _run_trials(spec: SweepSpec, trials: list[Trial], folder: Path, registry, quiet: bool, echo: Callable[[str], None],
                started: float, metrics: list[str] | None, tracking: SweepSession, digest: str) -> SweepResult:
    """The body of :func:`run_sweep`, with the sweep folder locked."""
    from avood_core.run.driver import run_payload, trial_payload

    columns = list(metrics or default_metrics(trials))
    local = spec.engine == "local"
    parallel = spec.max_parallel or (1 if local else None)  # ray: as many as the cluster's CPUs hold
    threads = spec.resources.num_cpus or (max(1, usable_cores() // parallel) if local else 1)
    say = (lambda m: None) if quiet else echo
    engine = make_engine(spec.engine, parallel or max(1, usable_cores() // threads), threads, spec.resources.num_gpus,
                         spec.address, spec.retries, echo=say)
    if parallel is None:
        parallel = engine.slots(threads)
    records: dict[str, dict] = {}
    jobs: list[Job] = []
    final: set = set()  # keys released once published (one-stage trials' fits)
    for t in trials:
        run_dir = folder / "trials" / t.id
        base = {"id": t.id, "label": t.label, "axes": t.axes, "seed": t.seed, "hash": t.hash,
                "run_dir": f"trials/{t.id}"}
        finished = _complete(run_dir, t.hash)
        if finished is not None:
            records[t.id] = {**base, **finished, "skipped": True}
            continue
        config = t.config.model_dump(mode="json")
        if spec.resources.num_gpus and spec.engine == "ray":
            config["device"] = "auto"
        payload = trial_payload(config, run_dir, t.hash, threads, folder / "shared", spec.report, spec.tsne_cap)
        records[t.id] = {**base, "status": "pending"}
        keys, last = component_keys(t, registry)
        if last:
            final |= keys
        jobs.append(Job(t.id, run_payload, payload, keys, f"{t.label}, seed={t.seed}"))
    meta = {"avood_version": __version__, "spec_hash": digest, "spec": spec.model_dump(mode="json"),
            "engine": {"name": spec.engine, "max_parallel": parallel, "threads_per_trial": threads,
                       "num_gpus": spec.resources.num_gpus, "address": spec.address}}

    def save() -> str:
        return write_tables(folder, trials, records, {**meta, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                                      "timings_s": {"total": time.perf_counter() - started}}, columns)

    check_metrics(columns, records)  # a wrong --metrics fails before any trial runs when some are finished
    save()
    skipped = len(trials) - len(jobs)
    if skipped and not quiet:
        echo(f"sweep: {skipped} of {len(trials)} trials already finished in '{folder}'; skipping them")

    def done(job: Job, info: dict) -> None:
        records[job.id] = {**records[job.id], **info}
        save()

    with tracking.running({**meta["spec"], "trials": len(trials)}, len(jobs)) as context:  # e.g. MLflow's parent run
        for job in jobs:
            job.payload["tracking"] = context
        try:
            run_jobs(jobs, engine, parallel, quiet, echo, f"sweep {folder.name}", done,
                     published(folder / "shared", final))
        finally:
            tracking.failed = sum(records[job.id].get("status") != "done" for job in jobs)
    markdown = save()
    try:
        check_metrics(columns, records)
    except AvoodError as exc:  # the trials are done and kept: say it, do not discard the sweep
        echo(f"sweep: note: {exc}")
    return SweepResult(folder, [records[t.id] for t in trials], markdown)
