"""What the embedded task's latent model makes easy: text transfer, modality agreement, clip noise.

Builds the embedded task (``avood_core.data.latent.make_ucf_task``; optional latent parameters
of ``avood_core.data.latent.LatentParams``, the two calibrated ones re-solved as usual) and
measures, on its features:

* ``text R2 (unseen)``: a ridge map from word2vec to the class means, fitted on the seen classes'
  training means, predicting the unseen classes' means (estimated from their test clips); the
  share of the unseen means' spread around their centre that it explains (1 = all, 0 = none);
* ``ridge ZSL a / v / av``: the unseen test clips given to the nearest predicted unseen mean (the
  generator's ZSL probe, here in the feature space of audio, video or both), % per class; chance
  is 100 / 9;
* ``a-v agreement``: Pearson correlation, over class pairs, of the audio and the video class
  means' cosine similarities (1: the two modalities place the classes identically);
* ``between/within``: per modality, the class means' spread over the clips' spread around them;
  ``NCM seen a / v / av``: nearest-class-mean accuracy of the seen test clips (training means);
* with ``--train``: ZSL (UC_acc, among the unseen classes) of unseen classifiers trained at the
  quick profile with their defaults, as ``avood ablate table1`` trains them on the embedded task.

The unseen means are read from the test clips only to describe the data, never to select anything.

    python benchmarks/latent_properties.py
    python benchmarks/latent_properties.py --set latent_dim=16 --train cjme,avgzslnet,cross_attention
    python benchmarks/latent_properties.py --modality-residual 0.2 --train cjme,avgzslnet,cross_attention

``--modality-residual κ`` screens a variant that the package does not have: each modality gets its
own class mean ``unit(√(1-κ)·μ_c + √κ·r_c,m)`` (``r_c,m`` a random unit residual per class and
modality), in the features and in the calibration probes alike (patched in for this process only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from avood_core.data import latent
from avood_core.data.latent import LatentParams, make_ucf_task, nearest_mean, per_class_accuracy, ridge_text_map
from avood_core.data.synthetic import unit


def use_modality_residual(kappa: float) -> None:
    """Patch the generator and its probes: modality ``m``'s class mean mixes in its own residual (share κ)."""

    class Generator(latent.LatentGenerator):
        def __init__(self, text, dims, params, seed, residual_keys=None) -> None:
            super().__init__(text, dims, params, seed, residual_keys)
            g = torch.Generator().manual_seed(seed ^ 0xA5A5)
            self.own = [unit(torch.randn(len(self.resid), params.latent_dim, generator=g)) for _ in range(2)]

        def modality_means(self, means: torch.Tensor) -> list[torch.Tensor]:
            return [unit((1 - kappa) ** 0.5 * means + kappa**0.5 * r) for r in self.own]

    latent.LatentGenerator = Generator


def class_means(x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[y == c].mean(0) for c in classes])


def properties(task) -> dict[str, float]:
    """The measured properties of one task (see the module docstring), rounded."""
    tr, te = task.train, task.test
    seen, unseen = task.seen_classes, task.unseen_classes
    is_unseen = torch.isin(te.labels, unseen)
    out: dict[str, float] = {}
    joint = {"tr": torch.cat([tr.audio, tr.video], 1), "te": torch.cat([te.audio, te.video], 1)}
    m_seen = class_means(joint["tr"], tr.labels, seen)
    m_unseen = class_means(joint["te"][is_unseen], te.labels[is_unseen], unseen)
    center = m_seen.mean(0)
    pred = task.text[unseen] @ ridge_text_map(task.text[seen], m_seen - center) + center
    spread = (m_unseen - m_unseen.mean(0)).pow(2).sum()
    out["text R2 (unseen)"] = float(1 - (pred - m_unseen - (pred - m_unseen).mean(0)).pow(2).sum() / spread)
    x_u, y_u = joint["te"][is_unseen], te.labels[is_unseen]
    d_a = tr.audio.shape[1]
    for name, part in (("a", slice(0, d_a)), ("v", slice(d_a, None)), ("av", slice(None))):
        out[f"ridge ZSL {name}"] = per_class_accuracy(nearest_mean(x_u[:, part], pred[:, part], unseen), y_u)
    cos = []
    for part in (slice(0, d_a), slice(d_a, None)):
        m = class_means(joint["tr"][:, part], tr.labels, seen)
        m = torch.nn.functional.normalize(m - m.mean(0), dim=1)
        cos.append((m @ m.T)[~torch.eye(len(m), dtype=torch.bool)])
    out["a-v agreement"] = float(torch.corrcoef(torch.stack(cos))[0, 1])
    x_s, y_s = joint["te"][~is_unseen], te.labels[~is_unseen]
    for name, part in (("a", slice(0, d_a)), ("v", slice(d_a, None)), ("av", slice(None))):
        m = class_means(joint["tr"][:, part], tr.labels, seen)
        within = (joint["tr"][:, part] - m[torch.searchsorted(seen, tr.labels)]).pow(2).sum(1).mean()
        if name != "av":
            out[f"between/within {name}"] = float((m - m.mean(0)).pow(2).sum(1).mean() / within)
        out[f"NCM seen {name}"] = per_class_accuracy(nearest_mean(x_s[:, part], m, seen), y_s)
    return {k: round(v, 3) for k, v in out.items()}


def trained_zsl(task, names: list[str], seed: int) -> dict[str, dict[str, float]]:
    """UC_acc (%, among the unseen classes) and train seconds of each unseen classifier, quick profile."""
    from avood_core.config import build_config, resolve
    from avood_core.eval.metrics import mean_class_accuracy
    from avood_core.protocols import FitContext
    from avood_core.registry import get_registry
    from avood_core.train.loops import derive_seed, seed_everything

    ctx = FitContext(text=task.text, seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
                     device=torch.device("cpu"), seed=seed, val=task.val)
    part = task.test.subset(torch.isin(task.test.labels, task.unseen_classes))
    out = {}
    for name in names:
        spec = resolve(build_config(components={"unseen": name}, overrides=["profile=quick", f"seed={seed}"])).unseen
        comp = get_registry().component_class("unseen", name)(spec.params)
        seed_everything(derive_seed(seed, "unseen"))
        began = time.perf_counter()
        comp.fit(task.train, task.text, ctx)
        acc = mean_class_accuracy(comp.predict(part, task.unseen_classes, task.text), part.labels, task.unseen_classes)
        out[name] = {"ZSL": round(float(acc), 2), "train_s": round(time.perf_counter() - began, 1)}
        print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a LatentParams field other than noise/residual (solved), e.g. latent_dim=16")
    ap.add_argument("--modality-residual", type=float, default=0.0, help="κ of the screened variant (0: the package's model)")
    ap.add_argument("--train", default="", help="comma list of unseen classifiers to train (quick profile)")
    args = ap.parse_args()
    fields = {f.name for f in dataclasses.fields(LatentParams)}
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields or key in ("noise", "residual"):
            free = sorted(set(fields) - {"noise", "residual"})
            raise SystemExit(f"--set {item}: not a free LatentParams field (one of {free})")
        changes[key] = int(value) if key == "latent_dim" else float(value)
    if args.modality_residual:
        use_modality_residual(args.modality_residual)
        changes["modality_residual"] = args.modality_residual
    task = make_ucf_task(args.seed, params=LatentParams(**{k: v for k, v in changes.items() if k in fields}))
    meta = {k: task.meta[k] for k in ("noise", "residual", "seen_probe", "zsl_probe")}
    report = {"params": changes, "solved": meta, "properties": properties(task)}
    names = [n.strip() for n in args.train.split(",") if n.strip()]
    if names:
        report["trained ZSL (quick)"] = trained_zsl(task, names, args.seed)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
