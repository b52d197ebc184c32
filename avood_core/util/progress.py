"""Progress bars for training loops: rich on stderr when it is a terminal, silent otherwise or when quiet."""

from __future__ import annotations

import sys
from typing import Callable, Protocol


class Tracker(Protocol):
    def update(self, n: int = 1, **metrics: float) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[int, str], Tracker]


class NullProgress:
    """A tracker that shows nothing."""

    def update(self, n: int = 1, **metrics: float) -> None:
        pass

    def close(self) -> None:
        pass


class RichTracker:
    """One rich progress bar with the latest metrics shown beside it."""

    def __init__(self, total: int, description: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=Console(stderr=True),  # stdout holds only the command's result (e.g. --json)
        )
        self._task = self._progress.add_task(description, total=total, metrics="")
        self._progress.start()

    def update(self, n: int = 1, **metrics: float) -> None:
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self._progress.update(self._task, advance=n, **({"metrics": text} if text else {}))

    def close(self) -> None:
        self._progress.stop()


def progress_factory(quiet: bool = False) -> ProgressFactory | None:
    """Rich bars when stderr is a terminal and not ``quiet``; otherwise ``None`` (silent)."""
    if quiet or not sys.stderr.isatty():
        return None
    return RichTracker
