"""The exchange between a worker's fit and the main process that assists it (``jobs = 2``).

A Unix socket in the worker's private folder carries the messages (a pickle with the raw bytes of CPU
tensors); an :class:`Arena` (a shared memory-mapped file) holds the parameters, gradients and
activations (:mod:`avood_core.train.strategy`). POSIX only; ``AVOOD_ASSIST=0`` switches it off.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import select
import socket
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

SOCKET = "assist.sock"
SHM = "/dev/shm"  # where arenas go when it has room (Arena.create)
_ALIGN = 64  # bytes; each arena slot starts on a cache line
_MAX_SOCKET_PATH = 100  # sun_path holds 104 (macOS) to 108 (Linux) bytes


class PartnerGone(Exception):
    """The other process closed the channel, died, or answered out of protocol."""


def enabled() -> bool:
    """Whether the main process may assist its workers (``AVOOD_ASSIST=0`` switches it off)."""
    return os.environ.get("AVOOD_ASSIST", "1").strip().lower() not in ("0", "false", "no", "off")


class Channel:
    """One connected stream socket carrying ``(tag, meta, tensors)`` messages: one pickle, tensors as raw bytes."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.conn = Connection(sock.detach())

    def send(self, tag: str, meta: Any = None, tensors: Sequence[Tensor] = ()) -> None:
        raw = [(spec_of(t), t.detach().contiguous().reshape(-1).view(torch.uint8).numpy()) for t in tensors]
        try:
            self.conn.send_bytes(pickle.dumps((tag, meta, raw), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            raise PartnerGone(f"sending '{tag}': {exc}") from None

    def recv(self, expect: str | None = None) -> tuple[str, Any, list[Tensor]]:
        """The next message; ``expect``: the tag it must have (:class:`PartnerGone` otherwise)."""
        try:
            tag, meta, raw = pickle.loads(self.conn.recv_bytes())
        except EOFError:
            raise PartnerGone("the other process closed the channel") from None
        except OSError as exc:
            raise PartnerGone(str(exc)) from None
        tensors = [torch.empty(shape, dtype=getattr(torch, dtype)) for (dtype, shape), _ in raw]
        for t, (_, data) in zip(tensors, raw):
            t.reshape(-1).view(torch.uint8).copy_(torch.from_numpy(data))
        if expect is not None and tag != expect:
            raise PartnerGone(f"expected '{expect}', got '{tag}'" + (f": {meta}" if tag == "refuse" else ""))
        return tag, meta, tensors

    def close(self) -> None:
        self.conn.close()


Spec = tuple[str, tuple[int, ...]]


def spec_of(t: Tensor) -> Spec:
    return str(t.dtype).removeprefix("torch."), tuple(t.shape)


def _nbytes(spec: Spec) -> int:
    dtype, shape = spec
    return torch.Size(shape).numel() * torch.empty((), dtype=getattr(torch, dtype)).element_size()


class Arena:
    """Tensors in one shared memory-mapped file, one slot per ``(dtype, shape)`` spec: the creator writes it,
    the other process maps it by path, the creator unlinks it once both hold the mapping."""

    def __init__(self, path: Path, specs: Sequence[Spec], create: bool) -> None:
        self.path, self.specs = path, list(specs)
        offsets, total = [], 0
        for spec in self.specs:
            offsets.append(total)
            total += -(-_nbytes(spec) // _ALIGN) * _ALIGN
        self.size = max(total, _ALIGN)
        if create:
            with open(path, "wb") as fh:
                fh.truncate(self.size)
        with open(path, "r+b") as fh:
            self._map = mmap.mmap(fh.fileno(), self.size)
        base = torch.frombuffer(self._map, dtype=torch.uint8)
        self.tensors: list[Tensor] = [base[at:at + _nbytes(spec)].view(getattr(torch, spec[0])).view(spec[1])
                                      for spec, at in zip(self.specs, offsets)]

    @classmethod
    def create(cls, folder: Path, name: str, specs: Sequence[Spec]) -> "Arena":
        """A new arena for ``specs``: in ``/dev/shm`` when it has twice their size free, else ``folder / name``."""
        size, path = sum(_nbytes(spec) for spec in specs), folder / name
        with contextlib.suppress(OSError):
            st = os.statvfs(SHM)
            if st.f_bavail * st.f_frsize >= 2 * size + (16 << 20):
                path = Path(SHM) / f"avood-{os.getpid()}-{folder.name}-{name}"
        return cls(path, specs, create=True)

    def unlink(self) -> None:
        """Remove the file; the mappings stay valid while the two processes hold them."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _unix_socket(path: Path, listen: bool) -> socket.socket | None:
    """A Unix stream socket listening at (non-blocking) or connected to ``path``; None where Unix sockets
    are missing, the path is too long or nothing listens there."""
    if not hasattr(socket, "AF_UNIX") or len(str(path)) > _MAX_SOCKET_PATH:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if listen:
            sock.bind(str(path))
            sock.listen(1)
            sock.setblocking(False)
        else:
            sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


class Offer:
    """The worker's side: a listening socket that its component's fit polls between steps."""

    def __init__(self, folder: Path, sock: socket.socket) -> None:
        self.folder, self.path, self._sock = folder, folder / SOCKET, sock

    @classmethod
    def open(cls, folder: Path) -> "Offer | None":
        """An offer in ``folder`` (None: no Unix socket there)."""
        sock = _unix_socket(folder / SOCKET, listen=True)
        return None if sock is None else cls(folder, sock)

    def poll(self) -> Channel | None:
        """A channel to the main process if it has connected since the last poll (never blocks)."""
        if self._sock.fileno() < 0 or not select.select([self._sock], [], [], 0)[0]:
            return None
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return None
        self.close()  # one partner per fit
        return Channel(conn)

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def connect(folder: Path) -> Channel | None:
    """The main process's side: a channel to the worker whose folder is ``folder``, if it offers one."""
    sock = _unix_socket(folder / SOCKET, listen=False)
    return None if sock is None else Channel(sock)
