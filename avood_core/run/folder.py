"""A run folder: its fresh name, what it owns, its writer lock, how a resumed config may differ,
and the line ``avood run`` prints on Ctrl-C."""

from __future__ import annotations

import contextlib
import errno
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from avood_core.errors import AvoodError
from avood_core.stages import KINDS
from avood_core.util.paths import check_output_dir

LOCK_NAME = ".avood.lock"
OUTPUT_OPTION = "-o/--output-dir"  # where a run's config.output_dir comes from on the command line

WRITES = tuple(f"{stage}{rel}" for stage in ("", "stage1/") for rel in
               ("components", *(f"components/{kind}" for kind in KINDS), "metrics", "figures")) + ("stage1",)
"""The folders avood writes into inside a run folder (``avood run``, ``--resume``, ``avood report``)."""

RESERVED = frozenset({
    "config.toml", "config.stage2.toml", "components", "stage1", "pipeline.json", "task.safetensors",
    "predictions.npz", "results.json", "report.md", "report.html", "figures", "tsne.npz",
    "table.md", "rows", "roc.png", "roc.svg", LOCK_NAME,
})
"""Names a run folder owns (``avood run``, ``--seeds``, ``avood ablate``, ``avood report``); also
every ``seed-*`` folder and every hidden name (temp files, swap folders, the lock)."""

NOT_COMPARED = frozenset({"output_dir", "jobs"})
"""Config keys a ``--resume`` may change freely: where fresh runs go (a resume writes into its own
folder) and how many processes fit (the same results, docs/performance.md), not what is computed."""


_HELD: set[str] = set()  # real paths of the run folders this process holds the lock of


class RunFolderBusy(AvoodError):
    """Another process holds a run folder's lock."""


def is_run_folder(path: Path) -> bool:
    """True for a folder written by ``avood run`` / ``ablate`` / ``--seeds`` (finished or not)."""
    return (path / LOCK_NAME).is_file() or ((path / "config.toml").is_file() and any(
        (path / m).exists() for m in ("components", "results.json", "pipeline.json")))


def check_output_path(path: Path, option: str = "--output") -> None:
    """Fail (one line) if ``path`` is a folder or a file a run folder owns; otherwise nothing."""
    if path.is_dir():
        raise AvoodError(f"{option} '{path}' is a folder; name a file in it, e.g. '{path / 'predictions.csv'}'")
    real = Path(os.path.realpath(path))
    for folder in real.parents:
        rel = real.relative_to(folder)
        if is_run_folder(folder) and (rel.parts[0] in RESERVED or rel.parts[0].startswith((".", "seed-"))):
            raise AvoodError(
                f"{option} '{path}' would overwrite '{rel.parts[0]}' of the run folder '{folder}', which "
                f"'avood report'/'evaluate' read; write elsewhere, e.g. '{folder / 'my-predictions.csv'}'"
            )


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return ""
    return f" (pid {text[0]}: avood {' '.join(text[1:])})" if text and text[0].isdigit() else ""


@contextlib.contextmanager
def lock(run_dir: str | os.PathLike, command: str, name: str = LOCK_NAME, noun: str = "run folder") -> Iterator[Path]:
    """Hold the exclusive write lock ``name`` of ``run_dir`` (created if missing) for the ``with`` block;
    ``command`` and this pid go into the lock file, so a second writer's :class:`RunFolderBusy` names them."""
    run_dir = Path(run_dir)
    key = os.path.join(os.path.realpath(run_dir), name)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no advisory locks, write unguarded
        fcntl = None
    if fcntl is None or key in _HELD:  # already held by this process (a run writing its report): reentrant
        yield run_dir
        return
    path = run_dir / name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AvoodError(f"'{path}' is a symbolic link; avood never writes its lock through a link: remove it") from None
        raise AvoodError(f"cannot lock the {noun} '{run_dir}' ({exc.strerror}: '{path}'); "
                         f"it must be a writable folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AvoodError(f"cannot lock the {noun} '{run_dir}' ({exc.strerror}); "
                                 f"use a local file system") from None
            raise RunFolderBusy(
                f"the {noun} '{run_dir}' is being written by another avood process{_holder(path)}; "
                f"wait until it finishes (or stop it), then retry"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {command}\n".encode())
        except OSError as exc:  # a full disk: the lock holds, only the holder's name is missing
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        _HELD.add(key)
        yield run_dir
    finally:
        _HELD.discard(key)
        os.close(fd)  # closing the descriptor releases the flock


def check_resume(run_dir: Path, config, registry, allow_changes: bool) -> str:
    """How ``config`` differs from ``run_dir``'s resolved ``config.toml`` (``generator.params.beta 0.01 -> 0.02,
    seed 0 -> 1 (and 3 more)``; :data:`NOT_COMPARED` aside), "" when it does not; a difference, without
    ``allow_changes``, is a :class:`ConfigError` (resuming would refit over that run's files)."""
    from avood_core.config import resolve, validate_config
    from avood_core.errors import ConfigError
    from avood_core.recipe import load_toml
    from avood_core.util.nested import flat

    saved_path = run_dir / "config.toml"
    if not saved_path.is_file():
        raise AvoodError(f"--resume '{run_dir}': '{saved_path}' not found; pass a run folder written by 'avood run'")
    saved = flat(resolve(validate_config(load_toml(saved_path), str(saved_path)), registry).model_dump(mode="json"))
    wanted = flat(config.model_dump(mode="json"))
    keys = sorted(k for k in set(saved) | set(wanted) if k.split(".")[0] not in NOT_COMPARED)
    diffs = [f"{k} {saved.get(k)!r} -> {wanted.get(k)!r}" for k in keys if saved.get(k) != wanted.get(k)]
    text = ", ".join(diffs[:4]) + (f" (and {len(diffs) - 4} more)" if len(diffs) > 4 else "")
    if diffs and not allow_changes:
        raise ConfigError(
            f"--resume '{run_dir}': the config differs from its config.toml ({text}); "
            f"resuming would refit over that run. Add --allow-changes to write a new run folder that reuses the "
            f"matching components (this one stays as it is), or start afresh: avood run --config {saved_path} --set ..."
        )
    return text


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder ``root/<UTC time>-<label>``; never reuses an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    check_output_dir(root, OUTPUT_OPTION)
    for i in range(1000):
        candidate = root / (f"{stamp}-{label}" + (f"-{i}" if i else ""))
        try:
            root.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise AvoodError(f"{OUTPUT_OPTION} '{root}': cannot create '{candidate}' ({exc.strerror or exc}); "
                             f"pass a writable folder") from None
    raise AvoodError(f"could not create a fresh run folder under '{root}'; clean it up")


def run_label(config: Any) -> str:
    """``<generator>-<detector>-<seen>-<unseen>-s<seed>``: the run folder's label."""
    return "-".join([*(config.component(kind).name for kind in KINDS), f"s{config.seed}"])


def save_outputs(path: Path, outputs: dict) -> None:
    """Per-sample test outputs (numpy arrays, no pickles) for reports and threshold sweeps."""
    import numpy as np

    from avood_core.util.io import atomic_write

    arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


def saved_components(folder: Path) -> list[str]:
    """The kinds whose checkpoint (config and weights) is complete in ``folder/components``."""
    from avood_core.pipeline.store import CONFIG, WEIGHTS

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
