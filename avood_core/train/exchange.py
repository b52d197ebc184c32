"""The exchange between a worker's fit and the main process that assists it (``jobs = 2``).

With ``jobs = 2`` a component may train in a worker while the main process fits the others;
once the main process is done it connects to the worker and computes half of each remaining
step (:mod:`avood_core.train.strategy`). A Unix socket in the worker's private folder carries
the messages (a pickled header and the raw bytes of CPU tensors); an :class:`Arena` (a shared
memory-mapped file) holds what is large and lives for the whole assistance (parameters,
gradients, activations). POSIX only: elsewhere the worker offers nothing and the main process
just waits. ``AVOOD_ASSIST=0`` switches it off.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import socket
import struct
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

SOCKET = "assist.sock"
SHM = "/dev/shm"  # where arenas go when it has room (Arena.place)
_HEADER = struct.Struct("<Q")
_ALIGN = 64  # bytes; each arena slot starts on a cache line
_MAX_SOCKET_PATH = 100  # sun_path holds 104 (macOS) to 108 (Linux) bytes


class PartnerGone(Exception):
    """The other process closed the channel, died, or answered out of protocol."""


def enabled() -> bool:
    """Whether the main process may assist its workers (``AVOOD_ASSIST=0`` switches it off)."""
    return os.environ.get("AVOOD_ASSIST", "1").strip().lower() not in ("0", "false", "no", "off")


def _raw(t: Tensor) -> memoryview:
    """The bytes of CPU tensor ``t`` (contiguous), without a copy where it already is contiguous."""
    flat = t.detach().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


class Channel:
    """One connected stream socket carrying ``(tag, meta, tensors)`` messages."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock

    def send(self, tag: str, meta: Any = None, tensors: Sequence[Tensor] = ()) -> None:
        specs = [(str(t.dtype).removeprefix("torch."), tuple(t.shape)) for t in tensors]
        header = pickle.dumps((tag, meta, specs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.sock.sendall(_HEADER.pack(len(header)) + header)
            for t in tensors:
                self.sock.sendall(_raw(t))
        except OSError as exc:
            raise PartnerGone(f"sending '{tag}': {exc}") from None

    def _read_into(self, view: memoryview) -> None:
        while len(view):
            try:
                n = self.sock.recv_into(view)
            except OSError as exc:
                raise PartnerGone(str(exc)) from None
            if n == 0:
                raise PartnerGone("the other process closed the channel")
            view = view[n:]

    def recv(self, expect: str | None = None) -> tuple[str, Any, list[Tensor]]:
        """The next message; ``expect``: the tag it must have (:class:`PartnerGone` otherwise)."""
        size = bytearray(_HEADER.size)
        self._read_into(memoryview(size))
        header = bytearray(_HEADER.unpack(size)[0])
        self._read_into(memoryview(header))
        tag, meta, specs = pickle.loads(header)
        tensors = []
        for dtype, shape in specs:
            t = torch.empty(shape, dtype=getattr(torch, dtype))
            if t.numel():
                self._read_into(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
            tensors.append(t)
        if expect is not None and tag != expect:
            raise PartnerGone(f"expected '{expect}', got '{tag}'" + (f": {meta}" if tag == "refuse" else ""))
        return tag, meta, tensors

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - already gone
            pass


Spec = tuple[str, tuple[int, ...]]


def _nbytes(spec: Spec) -> int:
    dtype, shape = spec
    return torch.Size(shape).numel() * torch.empty((), dtype=getattr(torch, dtype)).element_size()


class Arena:
    """Tensors in one shared memory-mapped file, one slot per ``(dtype, shape)`` spec.

    The creator writes the file (in ``/dev/shm`` where it has room, else in ``folder``); the
    other process maps it by path; the creator unlinks it once both hold the mapping.
    """

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
        self.tensors: list[Tensor] = []
        for spec, at in zip(self.specs, offsets):
            dtype, shape = spec
            self.tensors.append(base[at:at + _nbytes(spec)].view(getattr(torch, dtype)).view(shape))

    @classmethod
    def create(cls, folder: Path, name: str, specs: Sequence[Spec]) -> "Arena":
        """A new arena for ``specs``, placed by :meth:`place` (its file name is ``name``, prefixed there)."""
        return cls(cls.place(folder, name, sum(_nbytes(spec) for spec in specs)), specs, create=True)

    @staticmethod
    def place(folder: Path, name: str, size_hint: int) -> Path:
        """Where to create an arena of about ``size_hint`` bytes: ``/dev/shm`` when it has twice that free."""
        shm = Path(SHM)
        try:
            st = os.statvfs(shm)
            if st.f_bavail * st.f_frsize >= 2 * size_hint + (16 << 20):
                return shm / f"avood-{os.getpid()}-{folder.name}-{name}"
        except OSError:
            pass
        return folder / name

    def unlink(self) -> None:
        """Remove the file; the mappings stay valid while the two processes hold them."""
        try:
            os.unlink(self.path)
        except OSError:
            pass


def spec_of(t: Tensor) -> Spec:
    return str(t.dtype).removeprefix("torch."), tuple(t.shape)


class Offer:
    """The worker's side: a listening socket that its component's fit polls between steps."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / SOCKET
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(str(self.path))
            self._sock.listen(1)
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise

    @classmethod
    def open(cls, folder: Path) -> "Offer | None":
        """An offer in ``folder``; None where Unix sockets are missing or the path is too long."""
        if not hasattr(socket, "AF_UNIX") or len(str(folder / SOCKET)) > _MAX_SOCKET_PATH:
            return None
        try:
            return cls(folder)
        except OSError:
            return None

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
        try:
            os.unlink(self.path)
        except OSError:
            pass


def connect(folder: Path) -> Channel | None:
    """The main process's side: a channel to the worker whose folder is ``folder``, if it offers one."""
    path = folder / SOCKET
    if not hasattr(socket, "AF_UNIX") or not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return Channel(sock)
