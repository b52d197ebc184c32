"""Paths checked before any work starts: output folders, plain names, containment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from avood_core.errors import AvoodError


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` if it is, or can be created as, a folder this process can write into; else one line naming
    ``option``. The nearest existing ancestor decides (a file, a read-only folder); nothing is created."""
    path = Path(path).expanduser()
    probe = path
    while True:
        try:
            mode = probe.stat().st_mode
            break
        except (FileNotFoundError, NotADirectoryError):  # not there yet, or under a file: look one level up
            if probe.parent == probe:
                return path
            probe = probe.parent
        except OSError as exc:
            raise AvoodError(f"{option} '{path}': '{probe}' cannot be accessed ({exc.strerror or exc}); "
                             f"fix its permissions or pass another {option}") from None
    if not stat.S_ISDIR(mode):
        raise AvoodError(f"{option} '{path}': '{probe}' is a file, not a folder; pass a folder path to {option}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AvoodError(f"{option} '{path}': folder '{probe}' is not writable (read-only or no permission); "
                         f"pass a writable folder to {option} or fix its permissions")
    return path


def check_name(value: object, field: str) -> str:
    """``value`` if it names one file or folder (no separator, not ``.``/``..``, no control character, not
    empty); else one line naming ``field`` (e.g. ``"sweep spec 'x.toml': name"``)."""
    text = str(value)
    bad = ("it is empty" if not text.strip() else
           "it holds a path separator" if "/" in text or "\\" in text or (os.altsep and os.altsep in text) else
           "'.' and '..' name folders, not files" if text in (".", "..") else
           "it holds a control character" if any(ord(c) < 32 or ord(c) == 127 for c in text) else None)
    if bad is not None:
        raise AvoodError(f"{field} {text!r} is not a plain name ({bad}); use letters, digits, '-', '_' and '.', "
                         f"e.g. 'my-sweep'")
    return text


def contained(root: str | os.PathLike, rel: str | os.PathLike, what: str) -> Path:
    """``root / rel``, refused (one line) when a step of ``rel`` below ``root`` is a symbolic link or the path
    resolves outside ``root`` (``root`` itself may be a link); ``what`` says what avood would write there."""
    root = Path(root)
    path = root
    for part in Path(rel).parts:
        if part in ("", ".", "..") or os.sep in part:
            raise AvoodError(f"'{root / rel}': '{part}' is not a folder name inside '{root}'")
        path = path / part
        if path.is_symlink():
            raise AvoodError(f"'{path}' is a symbolic link (to '{os.readlink(path)}'); avood writes {what} only "
                             f"inside '{root}': replace the link with a folder, or remove it")
    if not path.resolve().is_relative_to(root.resolve()):
        raise AvoodError(f"'{path}' leads outside '{root}'; avood writes {what} only inside it")
    return path

