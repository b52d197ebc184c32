"""The one line ``avood run`` prints on Ctrl-C: what the run folder holds and how to continue."""

from __future__ import annotations

from pathlib import Path

from avood_core.pipeline.store import CONFIG, WEIGHTS
from avood_core.stages import KINDS


def saved_components(folder: Path) -> list[str]:
    """The kinds whose checkpoint (config and weights) is complete in ``folder/components``."""
    return [k for k in KINDS if (folder / "components" / k / CONFIG).is_file()
            and (folder / "components" / k / WEIGHTS).is_file()]


def interrupted_message(run_dir: Path | None) -> str:
    """``interrupted; <what was saved in run_dir>; <how to continue>`` on one line."""
    if run_dir is None or not run_dir.is_dir():
        return "interrupted before a run folder was created; nothing was saved"
    if (run_dir / "results.json").is_file():
        return (f"interrupted after the run finished; '{run_dir}' holds every component and results.json "
                f"(rewrite the report with 'avood report {run_dir}')")
    stage1 = run_dir / "stage1"
    listed = lambda folder: ", ".join(saved_components(folder)) or "nothing"  # noqa: E731
    saved = f"stage 1: {listed(stage1)}; stage 2: {listed(run_dir)}" if stage1.is_dir() else listed(run_dir)
    return (f"interrupted; saved in '{run_dir}': {saved}; continue with 'avood run --resume {run_dir}' "
            "(it reuses what was saved and fits the rest)")
