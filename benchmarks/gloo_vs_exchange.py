"""Per-step communication of the ``jobs = 2`` data-parallel step: torch.distributed (gloo) vs the arena exchange.

Two processes at one torch thread each move what one split step of the cross-attention unseen
classifier moves at UCF shapes (B = 112 rows per half, audio 512, video 512, text 300): the
outputs of each half to the other process and the second half's gradients to the first.

* gloo: ``all_gather`` of every output tensor, then ``all_reduce`` of the flat gradient
  (how a ``torch.distributed`` strategy would exchange them; gloo over TCP on localhost).
* exchange (:mod:`avood_core.train.exchange`): the messages of one step over the Unix socket
  and the copies into and out of the shared arenas, as :mod:`avood_core.train.strategy` does.

Run: ``python benchmarks/gloo_vs_exchange.py [steps]``; prints ms per step (median of 3 rounds).
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

B, AUDIO, VIDEO, TEXT = 112, 512, 512, 300


def shapes() -> tuple[list[torch.Size], int]:
    """The output shapes of one half and the number of trainable parameters of the UCF-sized network."""
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    comp = CrossAttentionClassifier()
    net = comp.make_net(audio_dim=AUDIO, video_dim=VIDEO, text_dim=TEXT)
    net.train()
    out = net(torch.randn(B, AUDIO), torch.randn(B, VIDEO), torch.randn(B, TEXT))
    return [v.shape for v in out.values()], sum(p.numel() for p in net.parameters() if p.requires_grad)


def gloo(rank: int, port: int, steps: int, outs: list, n: int, result) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    mine = [torch.randn(s) for s in outs]
    grad = torch.randn(n)
    rounds = []
    for _ in range(3):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            for t in mine:
                gathered = [torch.empty_like(t), torch.empty_like(t)]
                dist.all_gather(gathered, t)
            dist.all_reduce(grad)
        rounds.append((time.perf_counter() - t0) / steps * 1e3)
    if rank == 0:
        result.put(statistics.median(rounds))
    dist.destroy_process_group()


def partner(folder: str, steps: int, outs: list, n: int) -> None:
    from avood_core.train.exchange import Arena, Channel, spec_of

    torch.set_num_threads(1)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(Path(folder) / "s"))
    ch = Channel(sock)
    mine = [torch.randn(s) for s in outs]
    specs = [spec_of(t) for t in mine] * 2 + [("float32", (n,))]
    ch.recv("ready")
    arena = Arena(Path(folder) / "a", specs, create=False)
    k = len(mine)
    grad = torch.randn(n)
    for _ in range(3 * steps):
        ch.recv("job")
        for view, t in zip(arena.tensors[:k], mine):
            view.copy_(t)
        ch.send("out", None, [torch.get_rng_state()])
        ch.recv("out")
        _ = [v.clone() for v in arena.tensors[k:2 * k]]
        arena.tensors[-1].copy_(grad)
        ch.send("grads", [True])
    ch.close()


def exchange(steps: int, outs: list, n: int) -> float:
    from avood_core.train.exchange import Arena, Channel, spec_of

    torch.set_num_threads(1)
    folder = tempfile.mkdtemp()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(Path(folder) / "s"))
    srv.listen(1)
    proc = mp.get_context("spawn").Process(target=partner, args=(folder, steps, outs, n))
    proc.start()
    conn, _ = srv.accept()
    ch = Channel(conn)
    mine = [torch.randn(s) for s in outs]
    specs = [spec_of(t) for t in mine] * 2 + [("float32", (n,))]
    arena = Arena(Path(folder) / "a", specs, create=True)
    ch.send("ready")
    k = len(mine)
    grad, idx = torch.randn(n), torch.arange(2 * B)
    rounds = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            ch.send("job", {"k": 1}, [idx, torch.get_rng_state()])
            ch.recv("out")
            for view, t in zip(arena.tensors[k:2 * k], mine):
                view.copy_(t)
            ch.send("out")
            _ = [v.clone() for v in arena.tensors[:k]]
            ch.recv("grads")
            grad.add_(arena.tensors[-1])
        rounds.append((time.perf_counter() - t0) / steps * 1e3)
    proc.join()
    return statistics.median(rounds)


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    outs, n = shapes()
    floats = sum(torch.Size(s).numel() for s in outs)
    print(f"per step: {len(outs)} output tensors of one half ({floats * 4 / 1e6:.2f} MB), "
          f"gradient {n:,} floats ({n * 4 / 1e6:.2f} MB); {os.cpu_count()} CPUs, {steps} steps x 3 rounds")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    result = ctx.SimpleQueue()
    procs = [ctx.Process(target=gloo, args=(r, port, steps, outs, n, result)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(f"gloo (all_gather outputs + all_reduce gradient): {result.get():.2f} ms/step")
    print(f"arena exchange (socket messages + shared-memory copies): {exchange(steps, outs, n):.2f} ms/step")


if __name__ == "__main__":
    main()
