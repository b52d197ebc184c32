"""Data parallelism behind the training loop: a two-half step in one process or two.

A component whose step is two halves (:class:`Halves`: each half through the network as its own
call, its own BatchNorm batch, the loss coupling them; the paper's positives and negatives, §3.4,
reference ``CLSU_Embedding.forward``) gets this from :func:`avood_core.train.loop.fit_loop`: forward
both halves, cut the graph at the outputs, the loss on the cut, then back-propagate the first half
(``grad = g⁺``) and the second (``grad += g⁻``). With ``jobs = 2`` the main process, once its own
stages are done, computes the second half of each remaining step of the worker's fit (:func:`serve`,
over :mod:`avood_core.train.exchange`), with the same bits whether, whenever and however long it
joins; docs/performance.md ("The main process assists") gives the protocol and why it is exact.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from avood_core.train.exchange import Arena, Channel, PartnerGone, spec_of
from avood_core.train.precision import autocast, shared_casts, skip_words, words_drawn


@dataclass
class Halves:
    """A step of two halves of the batch ``idx`` (first half ``idx[:b]``, second ``idx[b:]``, ``b = len(idx) // 2``)."""

    forward: Callable[[nn.Module, Tensor], dict[str, Tensor]]
    """``(net, rows) -> outputs``: one half through the network, as one call."""
    extra: Callable[[Tensor], Tensor]
    """``rows -> tensor``: what the losses need of a half besides the network's outputs (no gradient)."""
    losses: Callable[[dict, Tensor, dict, Tensor], Tensor]
    """``(out⁺, extra⁺, out⁻, extra⁻) -> stacked loss terms``, the total first."""

    def backward(self, net: nn.Module, idx: Tensor, cut_pos: dict[str, Tensor], cut_neg: dict[str, Tensor]) -> Tensor:
        """The loss terms on the cut outputs, the total back-propagated to them (the net's gradients zeroed first)."""
        b = len(idx) // 2
        terms = self.losses(cut_pos, self.extra(idx[:b]), cut_neg, self.extra(idx[b:]))
        net.zero_grad(set_to_none=True)
        terms[0].backward()
        return terms.detach()


def _cut(outs: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().requires_grad_() for k, v in outs.items()}


def _backprop(outs: dict[str, Tensor], cut: dict[str, Tensor]) -> None:
    """Back-propagate the cut's gradients through the half whose outputs are ``outs``."""
    pairs = [(outs[k], c.grad) for k, c in cut.items() if c.grad is not None]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


def batch_norms(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _release(params: list[nn.Parameter]) -> None:
    """Move the parameters back to this process's own memory (the arena may go)."""
    for p in params:
        p.data = p.data.clone()


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
            self.grads, self.bns = self.arena.tensors[len(self.params):], batch_norms(net)
            self.acts: _Activations | None = None
            channel.send("hello", {**hello, "arena": str(self.arena.path), "specs": specs, "n_params": len(self.params),
                                   "folder": str(folder)})
            channel.recv("ready")
        except BaseException:
            _release(self.params)
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
        for key, t in s_pos.items():
            self.acts.out_pos[key].copy_(t.detach())
        self.channel.send("out")
        return {key: v.clone().requires_grad_() for key, v in self.acts.out_neg.items()}

    def gather(self, device: torch.device, precision: str) -> bool:
        """Add the partner's g⁻ to ours, replay idx⁻'s BatchNorm calls; True (:class:`PartnerGone` if it left)."""
        present = self.channel.recv("grads")[1]
        for p, g, has in zip(self.trainable, self.grads, present):
            if has:
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.add_(g)  # = AccumulateGrad's in-place sum of the one-process step
        with torch.no_grad(), autocast(device, precision):
            for i, x in zip(self.acts.bn_index, self.acts.bn):
                self.bns[i](x)  # idx⁻'s running-statistics update, after idx⁺'s as in one process
        return True


class SplitStep:
    """The step in the process that owns the fit; takes a partner from ``offer`` when one connects."""

    def __init__(self, net: nn.Module, halves: Halves, precision: str, offer: Any = None,
                 log: Callable[[str], None] = lambda m: None, label: str = "") -> None:
        self.net, self.trainable = net, [q for q in net.parameters() if q.requires_grad]
        self.halves, self.precision, self.offer = halves, precision, offer
        self.hello, self.log, self.label = {"precision": precision}, log, label
        self.partner: _Partner | None = None
        self.words: int | None = None  # dropout words one half's forward draws, measured
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

    def drop(self, why: str) -> None:
        """Parameters back in this process's memory, channel closed, no partner (``why`` logged if given)."""
        if self.partner is not None:
            if why:
                self.log(f"{self.label}: the main process stopped assisting ({why}); training on alone, same result")
            _release(self.partner.params)
            self.partner.channel.close()
            self.partner = None

    def close(self) -> None:
        """End the assistance (tell the partner) and keep the parameters in this process's memory."""
        if self.partner is not None:
            with contextlib.suppress(PartnerGone):
                self.partner.channel.send("done")
        self.drop("")
        if self.offer is not None:
            self.offer.close()
            self.offer = None

    def _partner_does(self, action: Callable[[_Partner], Any]) -> Any:
        """``action(partner)``, or None (the partner dropped) when there is none or it leaves."""
        if self.partner is None:
            return None
        try:
            return action(self.partner)
        except PartnerGone as exc:
            self.drop(str(exc))
            return None

    def __call__(self, idx: Tensor) -> Tensor:
        """One step's gradients (the caller steps the optimizer); returns the loss terms, detached.

        With a partner it computes the second half (:func:`serve`); whenever it leaves, this process
        computes that half itself from where the first half left the generator. Under bf16 both halves'
        forwards use one cast of each weight (:func:`~avood_core.train.precision.shared_casts`)."""
        with shared_casts(idx.device, self.precision):
            return self._step(idx)

    def _step(self, idx: Tensor) -> Tensor:
        self._poll()
        b, k_sent, forward = len(idx) // 2, self.words, self.halves.forward
        self._partner_does(lambda partner: partner.channel.send("job", {"k": k_sent}, [idx, torch.get_rng_state()]))
        w0 = words_drawn()
        s_pos = forward(self.net, idx[:b])
        self.words = words_drawn() - w0
        rng_mid = torch.get_rng_state()

        def local() -> dict[str, Tensor]:  # the negative half here, from where the positive one left the generator
            torch.set_rng_state(rng_mid)
            return forward(self.net, idx[b:])

        if self.words != k_sent:
            self.drop(f"a forward drew {self.words} random words, not {k_sent}")
        cut_neg = self._partner_does(lambda partner: partner.exchange(s_pos))
        s_neg = local() if cut_neg is None else None
        cut_pos, cut_neg = _cut(s_pos), _cut(s_neg) if cut_neg is None else cut_neg
        terms = self.halves.backward(self.net, idx, cut_pos, cut_neg)
        _backprop(s_pos, cut_pos)
        if s_neg is None and self._partner_does(lambda partner: partner.gather(idx.device, self.precision)):
            self.split_steps += 1
        else:  # solo, or the partner left after the outputs: its half again, here
            _backprop(s_neg if s_neg is not None else local(), cut_neg)
        return terms


class _Activations:
    """The per-step arena the partner creates at its first step: outputs of both halves, idx⁻'s BatchNorm inputs."""

    def __init__(self, meta: dict[str, Any], create: bool) -> None:
        keys, self.bn_index, specs = list(meta["keys"]), list(meta["bn_index"]), list(meta["specs"])
        n = len(keys)
        self.arena = Arena.create(Path(meta["folder"]), meta["name"], specs) if create \
            else Arena(Path(meta["path"]), specs, create=False)
        self.meta = {**meta, "path": str(self.arena.path)}
        self.layout = (list(zip(keys, specs[:n])), list(zip(self.bn_index, specs[2 * n:])))
        views = self.arena.tensors
        self.out_neg, self.out_pos = dict(zip(keys, views[:n])), dict(zip(keys, views[n:2 * n]))
        self.bn = views[2 * n:]

    @classmethod
    def build(cls, folder: Path, outs: dict[str, Tensor], bn: list[tuple[int, Tensor]]) -> "_Activations":
        specs = [spec_of(t) for t in outs.values()] * 2 + [spec_of(x) for _, x in bn]
        return cls({"folder": str(folder), "name": f"assist-{os.getpid()}.acts", "specs": specs, "keys": list(outs),
                    "bn_index": [i for i, _ in bn]}, create=True)

    def fits(self, outs: dict[str, Tensor], bn: list[tuple[int, Tensor]] | None = None) -> bool:
        """Whether this step's tensors have the layout of the first one."""
        return [(k, spec_of(t)) for k, t in outs.items()] == self.layout[0] and \
            (bn is None or [(i, spec_of(x)) for i, x in bn] == self.layout[1])


def serve(channel: Channel, net: nn.Module, halves: Halves, precision: str,
          tick: Callable[[], None] = lambda: None) -> int:
    """The main process's side: compute the second half of the leader's steps (``net`` and ``halves`` built here
    from the same fit inputs) until it says done; the steps served. The caller keeps its own RNG state around this."""
    _, hello, _ = channel.recv("hello")
    params, n = list(net.parameters()), hello["n_params"]
    trainable = [p for p in params if p.requires_grad]
    refusals = [(hello["precision"] != precision, f"precision {precision} here, {hello['precision']} in the worker"),
                ([spec_of(p) for p in params] != list(hello["specs"][:n]),
                 "the network built here has other parameter shapes"),
                (len(hello["specs"]) - n != len(trainable), "the network built here has other trainable parameters")]
    refusal = next((why for bad, why in refusals if bad), None)  # why this process cannot serve the leader's step
    if refusal is not None:
        channel.send("refuse", refusal)
        return 0
    arena = Arena(Path(hello["arena"]), hello["specs"], create=False)
    for p, view in zip(params, arena.tensors):
        p.data = view
    grads = arena.tensors[n:]
    captured: list[tuple[int, Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda _, args, i=i: captured.append((i, args[0].detach())))
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
            torch.set_rng_state(rng)
            skip_words(meta["k"])
            captured.clear()
            w0 = words_drawn()
            s_neg = halves.forward(net, idx[len(idx) // 2:])
            if words_drawn() - w0 != meta["k"]:
                raise RuntimeError(f"the negative half drew {words_drawn() - w0} random words, the positive "
                                   f"{meta['k']}")
            first = acts is None
            if first:
                acts = _Activations.build(Path(hello["folder"]), s_neg, captured)
            elif not acts.fits(s_neg, captured):
                raise RuntimeError("the negative half changed its output shapes")
            for key, t in s_neg.items():
                acts.out_neg[key].copy_(t.detach())
            for (_, x), view in zip(captured, acts.bn):
                view.copy_(x)
            channel.send("out", acts.meta if first else None, [torch.get_rng_state()])
            channel.recv("out")
            if first:
                acts.arena.unlink()  # the leader has mapped it
            cut_neg = _cut(s_neg)
            halves.backward(net, idx, {key: v.clone().requires_grad_() for key, v in acts.out_pos.items()}, cut_neg)
            _backprop(s_neg, cut_neg)
            for p, view in zip(trainable, grads):
                if p.grad is not None:
                    view.copy_(p.grad)
            channel.send("grads", [p.grad is not None for p in trainable])
            steps += 1
            tick()
    finally:
        for h in hooks:
            h.remove()
        _release(params)  # the leader may still step the arena; nothing here uses it after this
