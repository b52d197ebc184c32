"""``--logger tensorboard``: the run's curves and final metrics as TensorBoard event files (``pip install
'avood[tensorboard]'``), in ``<run>/tensorboard`` by default; the config as text and as the HPARAMS session."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from avood_core.run.tracking import Logger, headline
from avood_core.util.nested import flat


class TensorBoardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dir: str | None = Field(None, description="Event-file folder (default: <run folder>/tensorboard).")


class TensorBoardLogger(Logger):
    """Scalars per epoch / every N steps / final, through torch's SummaryWriter."""

    Params = TensorBoardParams
    extra = "tensorboard"
    writer: Any = None  # the SummaryWriter, from on_run_start to the run's end
    stage = ""
    config: Mapping[str, Any] = {}

    def check(self) -> None:
        self.require("tensorboard")
        self.require("torch.utils.tensorboard")

    def on_run_start(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from avood_core.config import to_toml

        self.writer = SummaryWriter(log_dir=str(self.params.dir or Path(run_dir) / "tensorboard"))
        self.config = config
        self.writer.add_text("config", "```toml\n" + to_toml(dict(config)) + "\n```")

    def on_stage_start(self, kind: str, info: Mapping[str, Any]) -> None:
        self.stage = f"{info['stage']}/" if info.get("stage") else ""

    def _scalars(self, tag: str, index: int, metrics: Mapping[str, float]) -> None:
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"{tag}/{name}", value, global_step=index)

    def on_step(self, kind: str, step: int, metrics: Mapping[str, float]) -> None:
        self._scalars(f"{self.stage}{kind}/step", step, metrics)

    def on_epoch(self, kind: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self._scalars(f"{self.stage}{kind}/epoch", epoch, metrics)

    def on_run_end(self, run_dir: Path, results: Mapping[str, Any]) -> None:
        if self.writer is not None:
            from torch.utils.tensorboard.summary import hparams

            metrics = headline(results)
            self._scalars("results", 0, metrics)
            writer = self.writer._get_file_writer()  # the run's own event file (add_hparams would start another)
            # the resolved config as hparams: dotted keys; numbers, strings and booleans kept, the rest as text
            values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat(self.config).items()}
            for summary in hparams(values, {f"results/{k}": v for k, v in metrics.items()}):
                writer.add_summary(summary)
        self._close()

    def on_exception(self, run_dir: Path, exc: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
