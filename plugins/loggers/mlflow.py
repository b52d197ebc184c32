"""``--logger mlflow``: one MLflow run per avood run: params, curves, final metrics, the run folder.

Needs ``pip install 'avood[mlflow]'``. Tracking URI: ``logging.mlflow.uri`` (any MLflow URI, e.g.
``--set logging.mlflow.uri=http://host:5000`` or ``sqlite:///runs/mlflow.db``); by default MLflow's
own: ``$MLFLOW_TRACKING_URI``, else its local store in the working folder (MLflow 3: the SQLite
database ``./mlflow.db``, artifacts under ``./mlruns``; ``mlflow ui`` there shows the runs).
MLflow 3 refuses a plain folder store (``file:...``) unless ``MLFLOW_ALLOW_FILE_STORE=true``. Recorded: the resolved config as params (``seed``,
``generator.params.lr``, ...), each component's curves as ``<stage/><kind>/epoch/<metric>``
(step = epoch) and ``<stage/><kind>/step/<metric>`` (step = optimizer step), the final
``S``, ``U``, ``HM``, ``ZSL``, ``AUROC`` and the other metrics of results.json, and every file of
the run folder as artifacts. A failed run ends as FAILED.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from avood_core.run.tracking import Logger, flat, headline

_BATCH = 100  # MLflow's limit of params / metrics per log_batch call
_BAD = re.compile(r"[^\w\-. :/]")  # what MLflow refuses in a metric or param name


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


class MLflowLogger(Logger):
    """Params, per-epoch and per-N-step metrics, final metrics and artifacts, through ``MlflowClient``."""

    Params = MLflowParams
    extra = "mlflow"

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.client: Any = None
        self.run_id: str | None = None
        self.stage = ""

    def check(self) -> None:
        self.require("mlflow")

    def on_run_start(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.params.uri)  # None: MLflow's default
        exp = self.client.get_experiment_by_name(self.params.experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            self.params.experiment, artifact_location=self.params.artifact_location)
        run = self.client.create_run(exp_id, run_name=Path(run_dir).name, tags={"avood.run_dir": str(Path(run_dir).resolve())})
        self.run_id = run.info.run_id
        params = [Param(_key(k), str(v)[:6000]) for k, v in flat(config).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i: i + _BATCH])

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        self.stage = f"{info['stage']}/" if info.get("stage") else ""

    def _metrics(self, tag: str, index: int, metrics: Mapping[str, float]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_key(f"{tag}{name}"), float(value), now, index) for name, value in metrics.items()]
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i: i + _BATCH])

    def on_step(self, kind: str, step: int, metrics: Mapping[str, float]) -> None:
        self._metrics(f"{self.stage}{kind}/step/", step, metrics)

    def on_epoch(self, kind: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self._metrics(f"{self.stage}{kind}/epoch/", epoch, metrics)

    def on_run_end(self, run_dir: Path, results: Mapping[str, Any]) -> None:
        if self.client is None:
            return
        self._metrics("", 0, headline(results))
        if self.params.artifacts:
            self.client.log_artifacts(self.run_id, str(run_dir))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.client = None

    def on_exception(self, run_dir: Path, exc: BaseException) -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            self.client = None
