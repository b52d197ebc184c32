"""``--logger mlflow``: one MLflow run per avood run: params, tags, curves, final metrics, the run folder.

Needs ``pip install 'avood[mlflow]'``; store ``logging.mlflow.uri`` (default MLflow's own). A tracking server is
checked with a 10 s ``/health`` request, a store's first use is serialised by a file lock, a run nests under the
caller's active run and a sweep's trials under its parent run (docs/plugins.md)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field

from avood_core.errors import PluginError, one_line
from avood_core.run.tracking import Logger, headline, trial_info
from avood_core.util.nested import flat

_BATCH = 100  # MLflow's limit of params / metrics per log_batch call
_BAD = re.compile(r"[^\w\-. :/]")  # what MLflow refuses in a metric or param name
HEALTH_TIMEOUT_S = 10.0  # the pre-flight request to a tracking server
_SKIPPED = re.compile(r"^(\.avood\.lock|events\.out\.tfevents\..*)$")  # not uploaded as artifacts


def _key(name: str) -> str:
    """``name`` as MLflow accepts it (``gate.FPR@TPR60`` -> ``gate.FPR_at_TPR60``)."""
    return _BAD.sub("_", name.replace("@", "_at_"))


class MLflowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str | None = Field(None, description="Tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's local store in the working folder).")
    experiment: str = Field("avood", description="Experiment name (created when missing).")
    artifact_location: str | None = Field(
        None, description="Where a newly created experiment keeps its artifacts (default: MLflow's, ./mlruns for a local store).")
    artifacts: bool = Field(True, description="Upload the run folder's files as artifacts at the end.")


def _preflight(uri: str) -> None:
    """Raise when the tracking server at ``uri`` does not answer within :data:`HEALTH_TIMEOUT_S`."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass  # it answered (a proxy's 401/404 too): MLflow's own calls say what is wrong
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PluginError(f"logger 'mlflow': the tracking server at '{uri}' is unreachable ({reason}); start it "
                          "('mlflow server') or fix logging.mlflow.uri / $MLFLOW_TRACKING_URI") from None


@contextlib.contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """Exclusive between this machine's processes while a store is opened (SQLite's migration on first use)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(tempfile.gettempdir()) / f"avood-mlflow-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


class MLflowLogger(Logger):
    """Params, tags, per-epoch and per-N-step metrics, final metrics and artifacts, through ``MlflowClient``."""

    Params = MLflowParams
    extra = "mlflow"
    client: Any = None  # the MlflowClient, once check() opened the store
    uri = experiment_id = stage = ""
    run_id: str | None = None
    sweep_run_id: str | None = None

    def check(self) -> None:
        mlflow = self.require("mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = self.params.uri or mlflow.get_tracking_uri()
        self.echo(f"mlflow: connecting to {self.uri} (experiment '{self.params.experiment}')")
        if self.uri.startswith(("http://", "https://")):
            _preflight(self.uri)
        try:
            with _first_use_lock(self.uri):
                self.client = MlflowClient(tracking_uri=self.uri)
                exp = self.client.get_experiment_by_name(self.params.experiment)
                self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(
                    self.params.experiment, artifact_location=self.params.artifact_location)
        except Exception as exc:  # noqa: BLE001 - a bad URI, a locked or newer database: one line before any work
            raise PluginError(f"logger 'mlflow' cannot use the tracking store '{self.uri}' ({one_line(exc, 300)}); "
                              "fix logging.mlflow.uri / $MLFLOW_TRACKING_URI") from None

    def _start(self, name: str, extra_tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """A new run named ``name`` with avood's tags and ``params``, nested under the sweep's parent run, else the
        caller's active run on the same store; its id."""
        import mlflow
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from avood_core import __version__
        from avood_core.bench.meter import _git_state

        parent, experiment = (trial_info("mlflow") or {}).get("parent_run_id"), self.experiment_id
        if not parent and (active := mlflow.active_run()) is not None and mlflow.get_tracking_uri() == self.uri:
            parent, experiment = active.info.run_id, active.info.experiment_id
        tags = {"avood.version": __version__, **extra_tags}
        if (commit := _git_state()) is not None:
            tags["avood.git_commit"] = commit
        if (sweep := trial_info("sweep")) is not None:
            tags["avood.sweep"] = str(sweep)
        if parent:
            tags[MLFLOW_PARENT_RUN_ID] = parent
        run_id = self.client.create_run(experiment, run_name=name, tags=tags).info.run_id
        self._batched(run_id, "params", [Param(_key(k), str(v)[:6000]) for k, v in flat(params).items()])
        return run_id

    def _batched(self, run_id: str, field: str, batch: list) -> None:
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(run_id, **{field: batch[i: i + _BATCH]})

    def on_run_start(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        from avood_core.stages import KINDS

        tags = {"avood.run_dir": str(Path(run_dir).resolve()), "avood.seed": str(config.get("seed")),
                **{f"avood.{kind}": str((config.get(kind) or {}).get("name")) for kind in KINDS}}
        self.run_id = self._start(Path(run_dir).name, tags, config)

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        self.stage = f"{info['stage']}/" if info.get("stage") else ""

    def _metrics(self, tag: str, index: int, metrics: Mapping[str, float]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._batched(self.run_id, "metrics",
                      [Metric(_key(f"{tag}{name}"), float(value), now, index) for name, value in metrics.items()])

    def on_step(self, kind: str, step: int, metrics: Mapping[str, float]) -> None:
        self._metrics(f"{self.stage}{kind}/step/", step, metrics)

    def on_epoch(self, kind: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self._metrics(f"{self.stage}{kind}/epoch/", epoch, metrics)

    def on_run_end(self, run_dir: Path, results: Mapping[str, Any]) -> None:
        if self.run_id is None:
            return
        self._metrics("", 0, headline(results))
        if self.params.artifacts:
            root = Path(run_dir)
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not _SKIPPED.match(p.name)):
                parent = path.parent.relative_to(root).as_posix()
                self.client.log_artifact(self.run_id, str(path), None if parent == "." else parent)
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None

    def on_exception(self, run_dir: Path, exc: BaseException) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            self.run_id = None

    def sweep_start(self, name: str, folder: Path, params: Mapping[str, Any]) -> dict:
        """The sweep's parent run (its trials nest under it); the store is set up here, once."""
        self.sweep_run_id = self._start(name, {"avood.sweep": name, "avood.sweep_dir": str(Path(folder).resolve())},
                                        params)
        return {"parent_run_id": self.sweep_run_id}

    def sweep_end(self, failed: int, exc: BaseException | None) -> None:
        if self.sweep_run_id is not None:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED" if exc is not None or failed else "FINISHED"
            self.client.set_terminated(self.sweep_run_id, status)
            self.sweep_run_id = None
