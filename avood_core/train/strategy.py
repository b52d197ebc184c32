"""Data parallelism behind the training loop: a two-half step in one process or two.

A component whose step is two halves (:class:`Halves`: each half goes through the network as its
own call, its own BatchNorm batch, and the loss couples them; e.g. the paper's positives and
negatives, §3.4, reference ``CLSU_Embedding.forward``) gets this from
:func:`avood_core.train.loop.fit_loop`. The step: forward both halves, cut the graph at the
network outputs, compute the loss on the cut and back-propagate it to the outputs, then
back-propagate the first half's outputs (``grad = g⁺``) and after them the second's
(``grad += g⁻``). One process does all of it (:class:`SplitStep` without a partner). With
``jobs = 2`` the main process, once its own stages are done, computes the second half of each
remaining step of the fit running in the worker (:mod:`avood_core.train.exchange`)::

    worker (leader)                                 main process (partner, :func:`serve`)
    sample; send idx, RNG state S0, k          →    set S0, skip k words; forward idx⁻ (k words more)
    forward idx⁺ (draws k words)
    outputs⁺ into the arena                    ⇄    outputs⁻, its BatchNorm inputs, the RNG state S0 + 2k
    the loss on the cut; backward idx⁺              the same loss; backward idx⁻
    grad = g⁺; grad += g⁻                      ←    g⁻ into the arena
    idx⁻'s BatchNorm calls again (running statistics); the optimizer on the shared parameters

Every operation of the two-process step is the one-process step's, on the same shapes at the
same thread count: idx⁻'s dropout masks come from the same generator position (keep_mask's draws
are serial, so skipping k words lands where idx⁺'s forward left the generator), both processes
compute the same loss from the same outputs, the running statistics get idx⁻'s update from the
same kernel on the same input, and the gradient is g⁺ + g⁻ either way. So the fit gives the
same bits whether, and whenever, the main process joins (tests/test_assist.py); if it drops
out mid-step, the worker computes that half itself. A ``torch.distributed`` (gloo) version was
measured slower on two CPU cores and cannot take a partner mid-fit (docs/performance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from avood_core.train.exchange import Arena, Channel, PartnerGone, spec_of
from avood_core.train.precision import autocast, skip_words, words_drawn


@dataclass
class Halves:
    """A step of two halves of the batch ``idx`` (first half ``idx[:b]``, second ``idx[b:]``, ``b = len(idx) // 2``)."""

    forward: Callable[[nn.Module, Tensor], dict[str, Tensor]]
    """``(net, rows) -> outputs``: one half through the network, as one call."""
    extra: Callable[[Tensor], Tensor]
    """``rows -> tensor``: what the losses need of a half besides the network's outputs (no gradient)."""
    losses: Callable[[dict, Tensor, dict, Tensor], Tensor]
    """``(out⁺, extra⁺, out⁻, extra⁻) -> stacked loss terms``, the total first."""


def _cut(outs: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().requires_grad_() for k, v in outs.items()}


def _backprop(outs: dict[str, Tensor], cut: dict[str, Tensor]) -> None:
    """Back-propagate the cut's gradients through the half whose outputs are ``outs``."""
    pairs = [(outs[k], c.grad) for k, c in cut.items() if c.grad is not None]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


def batch_norms(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class _Partner:
    """The leader's view of the main process: the channel and the arena of parameters and gradients."""

    def __init__(self, channel: Channel, net: nn.Module, trainable: list[nn.Parameter], folder: Path,
                 hello: dict[str, Any]) -> None:
        self.channel, self.params, self.trainable = channel, list(net.parameters()), trainable
        specs = [spec_of(p) for p in self.params] + [spec_of(p) for p in trainable]
        self.arena = Arena.create(folder, "assist.arena", specs)
        try:
            for p, view in zip(self.params, self.arena.tensors):
                view.copy_(p.detach())
                p.data = view  # Adam updates the shared copy in place; the partner reads it
            self.grads = self.arena.tensors[len(self.params):]
            self.bns = batch_norms(net)
            self.acts: _Activations | None = None
            channel.send("hello", {**hello, "arena": str(self.arena.path), "specs": specs, "n_params": len(self.params),
                                   "folder": str(folder)})
            channel.recv("ready")
        except BaseException:
            self.release()
            raise
        finally:
            self.arena.unlink()  # both hold the mapping now (or the partner never will)

    def exchange(self, s_pos: dict[str, Tensor]) -> dict[str, Tensor]:
        """Swap this step's outputs with the partner's: ours into the arena, its idx⁻ outputs back as leaves."""
        _, meta, (rng_end,) = self.channel.recv("out")
        torch.set_rng_state(rng_end)  # where a one-process step stands after both forwards
        if self.acts is None:
            self.acts = _Activations(meta, create=False)
        if not self.acts.fits(s_pos):
            raise PartnerGone("the halves' output shapes differ")
        _fill(self.acts.out_pos, s_pos)
        self.channel.send("out")
        return _leaves(self.acts.out_neg)

    def release(self) -> None:
        """Move the parameters back to this process's own memory (the arena may go)."""
        for p in self.params:
            p.data = p.data.clone()


class SplitStep:
    """The step in the process that owns the fit; takes a partner from ``offer`` when one connects."""

    def __init__(self, net: nn.Module, halves: Halves, precision: str, offer: Any = None,
                 log: Callable[[str], None] = lambda m: None, label: str = "") -> None:
        self.net, self.trainable = net, [q for q in net.parameters() if q.requires_grad]
        self.forward, self.losses, self.extra = halves.forward, halves.losses, halves.extra
        self.precision, self.offer = precision, offer
        self.hello, self.log, self.label = {"precision": precision}, log, label
        self.partner: _Partner | None = None
        self.words: int | None = None  # keep_mask words one half's forward draws, measured
        self.split_steps = 0

    def _poll(self) -> None:
        if self.offer is None or self.words is None:  # a first solo step measures the words
            return
        channel = self.offer.poll()
        if channel is None:
            return
        folder, self.offer = Path(self.offer.folder), None
        try:
            self.partner = _Partner(channel, self.net, self.trainable, folder, self.hello)
        except (PartnerGone, OSError, RuntimeError) as exc:  # refused, gone, or no room for the arena
            self.log(f"{self.label}: the main process could not assist ({exc}); training on alone")
            channel.close()

    def _end(self) -> None:
        """Parameters back in this process's memory, channel closed, no partner."""
        if self.partner is not None:
            self.partner.release()
            self.partner.channel.close()
            self.partner = None

    def drop(self, why: str) -> None:
        if self.partner is not None:
            self.log(f"{self.label}: the main process stopped assisting ({why}); training on alone, same result")
        self._end()

    def close(self) -> None:
        """End the assistance (tell the partner) and keep the parameters in this process's memory."""
        if self.partner is not None:
            try:
                self.partner.channel.send("done")
            except PartnerGone:
                pass
        self._end()
        if self.offer is not None:
            self.offer.close()
            self.offer = None

    def __call__(self, idx: Tensor) -> Tensor:
        """One step's gradients (the caller steps the optimizer); returns the loss terms, detached."""
        self._poll()
        b = len(idx) // 2
        if self.partner is not None:
            return self._split(idx, b)
        w0 = words_drawn()
        s_pos = self.forward(self.net, idx[:b])
        self.words = words_drawn() - w0
        s_neg = self.forward(self.net, idx[b:])
        cut_pos, cut_neg = _cut(s_pos), _cut(s_neg)
        terms = self.losses(cut_pos, self.extra(idx[:b]), cut_neg, self.extra(idx[b:]))
        self.net.zero_grad(set_to_none=True)
        terms[0].backward()
        _backprop(s_pos, cut_pos)
        _backprop(s_neg, cut_neg)
        return terms.detach()

    def _split(self, idx: Tensor, b: int) -> Tensor:
        partner, neg, k_sent = self.partner, idx[b:], self.words
        assert partner is not None and k_sent is not None
        try:
            partner.channel.send("job", {"k": k_sent}, [idx, torch.get_rng_state()])
        except PartnerGone as exc:
            self.drop(str(exc))
        w0 = words_drawn()
        s_pos = self.forward(self.net, idx[:b])
        self.words = k = words_drawn() - w0
        rng_mid = torch.get_rng_state()

        def local() -> dict[str, Tensor]:  # the negative half here, from where the positive one left the generator
            torch.set_rng_state(rng_mid)
            return self.forward(self.net, neg)

        if k != k_sent:
            self.drop(f"a forward drew {k} random words, not {k_sent}")
        cut_neg = s_neg = None
        if self.partner is not None:
            try:
                cut_neg = partner.exchange(s_pos)
            except PartnerGone as exc:
                self.drop(str(exc))
        if cut_neg is None:
            s_neg = local()
            cut_neg = _cut(s_neg)
        cut_pos = _cut(s_pos)
        terms = self.losses(cut_pos, self.extra(idx[:b]), cut_neg, self.extra(neg))
        self.net.zero_grad(set_to_none=True)
        terms[0].backward()
        _backprop(s_pos, cut_pos)
        if s_neg is not None:
            _backprop(s_neg, cut_neg)
            return terms.detach()
        present = None
        if self.partner is not None:
            try:
                present = partner.channel.recv("grads")[1]
            except PartnerGone as exc:
                self.drop(str(exc))
        if present is None:  # the partner left after the outputs: its half again, here
            _backprop(local(), cut_neg)
            return terms.detach()
        for p, g, has in zip(self.trainable, partner.grads, present):
            if has:
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.add_(g)  # = AccumulateGrad's in-place sum of the one-process step
        with torch.no_grad(), autocast(idx.device, self.precision):
            for i, x in zip(partner.acts.bn_index, partner.acts.bn):
                partner.bns[i](x)  # idx⁻'s running-statistics update, after idx⁺'s as in one process
        self.split_steps += 1
        return terms.detach()


class _Activations:
    """The per-step arena the partner creates at its first step: outputs of both halves, idx⁻'s BatchNorm inputs."""

    def __init__(self, meta: dict[str, Any], create: bool) -> None:
        self.keys, self.bn_index = list(meta["keys"]), list(meta["bn_index"])
        n = len(self.keys)
        self.arena = Arena.create(Path(meta["folder"]), meta["name"], meta["specs"]) if create \
            else Arena(Path(meta["path"]), meta["specs"], create=False)
        self.meta = {**meta, "path": str(self.arena.path)}
        views = self.arena.tensors
        self.out_neg = dict(zip(self.keys, views[:n]))
        self.out_pos = dict(zip(self.keys, views[n:2 * n]))
        self.bn = views[2 * n:]

    @classmethod
    def build(cls, folder: Path, outs: dict[str, Tensor], bn: list[tuple[int, Tensor]]) -> "_Activations":
        specs = [spec_of(t) for t in outs.values()] * 2 + [spec_of(x) for _, x in bn]
        return cls({"folder": str(folder), "name": f"assist-{os.getpid()}.acts", "specs": specs, "keys": list(outs),
                    "bn_index": [i for i, _ in bn]}, create=True)

    def fits(self, outs: dict[str, Tensor], bn: list[tuple[int, Tensor]] | None = None) -> bool:
        """Whether this step's tensors have the layout of the first one."""
        if list(outs) != self.keys or any(spec_of(t) != spec_of(v) for t, v in zip(outs.values(), self.out_neg.values())):
            return False
        return bn is None or ([i for i, _ in bn] == self.bn_index
                              and all(spec_of(x) == spec_of(v) for (_, x), v in zip(bn, self.bn)))


def _fill(views: dict[str, Tensor], outs: dict[str, Tensor]) -> None:
    for key, t in outs.items():
        views[key].copy_(t.detach())


def _leaves(views: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key: v.clone().requires_grad_() for key, v in views.items()}


def serve(channel: Channel, net: nn.Module, halves: Halves, precision: str,
          tick: Callable[[], None] = lambda: None) -> int:
    """The main process's side: compute the second half of the leader's steps until it says done.

    ``net`` and ``halves``: the step as this process builds it from the same fit inputs.
    Returns the number of steps served. The caller keeps its own RNG state around this (the
    generator is set to the leader's state each step).
    """
    _, hello, _ = channel.recv("hello")
    forward, losses, extra = halves.forward, halves.losses, halves.extra
    params = list(net.parameters())
    n = hello["n_params"]
    if hello["precision"] != precision:
        channel.send("refuse", f"precision {precision} here, {hello['precision']} in the worker")
        return 0
    if [spec_of(p) for p in params] != list(hello["specs"][:n]):
        channel.send("refuse", "the network built here has other parameter shapes")
        return 0
    arena = Arena(Path(hello["arena"]), hello["specs"], create=False)
    for p, view in zip(params, arena.tensors):
        p.data = view
    trainable = [p for p in params if p.requires_grad]
    grads = arena.tensors[n:]
    if len(grads) != len(trainable):
        channel.send("refuse", "the network built here has other trainable parameters")
        return 0
    captured: list[tuple[int, Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, i=i: captured.append((i, args[0].detach())))
             for i, m in enumerate(batch_norms(net))]
    net.train()
    acts: _Activations | None = None
    steps = 0
    try:
        channel.send("ready")
        while True:
            tag, meta, tensors = channel.recv()
            if tag == "done":
                return steps
            if tag != "job":
                raise PartnerGone(f"expected 'job', got '{tag}'")
            idx, rng = tensors
            b = len(idx) // 2
            torch.set_rng_state(rng)
            skip_words(meta["k"])
            captured.clear()
            w0 = words_drawn()
            s_neg = forward(net, idx[b:])
            if words_drawn() - w0 != meta["k"]:
                raise RuntimeError(f"the negative half drew {words_drawn() - w0} random words, the positive {meta['k']}")
            first = acts is None
            if first:
                acts = _Activations.build(Path(hello["folder"]), s_neg, captured)
            elif not acts.fits(s_neg, captured):
                raise RuntimeError("the negative half changed its output shapes")
            _fill(acts.out_neg, s_neg)
            for (_, x), view in zip(captured, acts.bn):
                view.copy_(x)
            channel.send("out", acts.meta if first else None, [torch.get_rng_state()])
            channel.recv("out")
            if first:
                acts.arena.unlink()  # the leader has mapped it
            cut_pos, cut_neg = _leaves(acts.out_pos), _cut(s_neg)
            terms = losses(cut_pos, extra(idx[:b]), cut_neg, extra(idx[b:]))
            net.zero_grad(set_to_none=True)
            terms[0].backward()
            _backprop(s_neg, cut_neg)
            present = []
            for p, view in zip(trainable, grads):
                present.append(p.grad is not None)
                if p.grad is not None:
                    view.copy_(p.grad)
            channel.send("grads", present)
            steps += 1
            tick()
    finally:
        for h in hooks:
            h.remove()
        for p in params:  # the leader may still step the arena; nothing here uses it after this
            p.data = p.data.clone()
