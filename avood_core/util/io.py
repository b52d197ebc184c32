"""Atomic file writes (a temp file in the same folder, fsync, rename over the target); a failed write
leaves any previous file untouched and raises :class:`WriteFailed`, one line naming the file and cause."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from avood_core.errors import AvoodError

_HINTS = {
    errno.ENOSPC: "free space (or inodes) on its file system, or write elsewhere",
    errno.EDQUOT: "your disk quota is used up; free space or write elsewhere",
    errno.EMFILE: "this process may open no more files: raise the limit (ulimit -n) or run fewer jobs at once",
    errno.ENFILE: "the system may open no more files: close some programs or raise its limit",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "no permission; fix the folder's permissions or write elsewhere",
    errno.EPERM: "no permission; fix the folder's permissions or write elsewhere",
    errno.EFBIG: "the file is larger than its file system allows; write elsewhere",
}


class WriteFailed(AvoodError, OSError):
    """A file could not be written: an :class:`AvoodError` (one CLI line) and an :class:`OSError` (its ``errno``)."""

    def __init__(self, message: str, code: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.filename = code, path

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):  # pickles across worker processes
        return type(self), (self.args[0], self.errno, self.filename)


def _named_errno(message: str) -> int | None:
    """The errno of :data:`_HINTS` a message names: ``os error 28`` (Rust), ``[Errno 28]`` or the strerror."""
    import re

    found = re.search(r"(?:os error|Errno) (\d+)", message)
    if found and int(found.group(1)) in _HINTS:
        return int(found.group(1))
    return next((code for code in _HINTS if os.strerror(code) in message), None)


def _full(folder: Path) -> bool:
    """Whether the file system of ``folder`` (or its nearest existing ancestor) has no room or no inode left."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024 or (st.f_files > 0 and st.f_favail == 0)


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str | None = None) -> Iterator[None]:
    """A failed write of ``path`` inside the block as :class:`WriteFailed`: an ``OSError``, or a library's own
    exception (torch, safetensors) naming an errno or raised while its file system is full; others pass unchanged."""
    def failed(code: int | None, reason: str) -> WriteFailed:
        hint = _HINTS.get(code or 0, "check the folder and its file system")
        return WriteFailed(f"cannot write {what + ' ' if what else ''}'{path}' ({reason}); {hint}", code, str(path))

    try:
        yield
    except WriteFailed:
        raise
    except OSError as exc:
        raise failed(exc.errno, exc.strerror or str(exc)) from None
    except Exception as exc:
        code = _named_errno(str(exc)) or (errno.ENOSPC if _full(Path(path).parent) else None)
        if code is None:
            raise
        raise failed(code, os.strerror(code)) from None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], what: str | None = None) -> Path:
    """Call ``write(tmp_path)``, then rename the temp file onto ``path`` (nothing left behind on failure)."""
    path = Path(path)
    tmp_path: Path | None = None
    with writing(path, what):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
            write(tmp_path)
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
        except BaseException:
            if tmp_path is not None:
                with contextlib.suppress(OSError):
                    tmp_path.unlink(missing_ok=True)
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, what: str | None = None) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), what)


def atomic_write_json(path: str | os.PathLike, data: Any, what: str | None = None) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n", what)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def os_failure_line(exc: OSError) -> str:
    """One line for an OS error no command turned into its own message: the file, the cause, a fix."""
    where = f"'{exc.filename}': " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}; {_HINTS.get(exc.errno or 0, 'check the path and its file system')}"


def stdout_broken(exc: OSError | None = None) -> bool:
    """Whether stdout cannot take what is written (``> /dev/full``): ``exc`` came from ``click.echo``, or the
    buffer cannot be flushed. If so, stdout is pointed at ``/dev/null`` so the flush at exit does not fail again."""
    import sys
    import traceback

    echoed = exc is not None and exc.filename is None and any(
        f.name == "echo" and "click" in f.filename for f in traceback.extract_tb(exc.__traceback__))
    try:
        if echoed:
            raise OSError("click.echo failed")
        if sys.stdout is not None:
            sys.stdout.flush()
        return False
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return True


def open_nofollow(path: str | os.PathLike, mode: str = "w"):
    """``open(path, mode)`` for writing text ("w" or "a") that never follows a symbolic link (one error line)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and Path(path).is_symlink():
            raise AvoodError(f"'{path}' is a symbolic link (to '{os.readlink(path)}'); avood does not write through "
                             f"links inside its folders: remove it") from None
        raise
    return os.fdopen(fd, mode, encoding="utf-8")
