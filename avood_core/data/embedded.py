"""The embedded default task: UCF-GZSL's 51 real classes (42 seen, 9 unseen) and word2vec vectors
(``ucf_w2v.npz``, AVCA-GZSL benchmark, MIT licence, see NOTICE), synthetic 512-d features from
:mod:`avood_core.data.latent` calibrated to UCF's SC_acc 96.12 / UC_acc 28.21 (paper Table 3).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from avood_core.data.latent import ClassRoles, LatentGenerator, LatentParams, calibrate, name_key
from avood_core.data.synthetic import SyntheticSpec, split_counts
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.util.threads import torch_threads

FEATURE_DIMS = (512, 512)


@lru_cache(maxsize=1)
def ucf_classes() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(class names, word2vec names, 51 x 300 unit word2vec vectors, unseen mask), by name."""
    with resources.files("avood_core.data").joinpath("ucf_w2v.npz").open("rb") as fh:
        z = np.load(fh, allow_pickle=False)
        return [str(n) for n in z["names"]], [str(n) for n in z["w2v_names"]], z["vectors"].copy(), z["unseen"].copy()


def make_ucf_task(seed: int = 0, scale: float = 1.0, seen_acc: float | None = None, zsl_acc: float | None = None,
                  val_fraction: float = 0.1, params: LatentParams | None = None) -> AVGZSLTask:
    """Generate the embedded default task from ``seed`` (same seed and knobs, same task), with one torch
    thread: a matmul's last bits depend on the thread count, and a reload must rebuild the same features."""
    with torch_threads(1):
        names, _, vectors, unseen_mask = ucf_classes()
        text = torch.from_numpy(vectors).clone()  # a copy: a task may change its text, the cached table stays
        seen = torch.nonzero(torch.from_numpy(~unseen_mask)).flatten()
        unseen = torch.nonzero(torch.from_numpy(unseen_mask)).flatten()
        g = torch.Generator().manual_seed(seed)
        spec = SyntheticSpec(len(seen), len(unseen)).scaled(scale)  # UCF-GZSL's clip counts
        counts = [split_counts(n, len(c), g) for n, c in zip(
            (spec.train_samples, spec.test_seen_samples, spec.test_unseen_samples), (seen, seen, unseen))]
        roles = ClassRoles(seen, unseen, *counts)
        gen = LatentGenerator(text, FEATURE_DIMS, params or LatentParams(), seed, [name_key(seed, n) for n in names])
        cal = calibrate(gen, text, roles, "ucf", seen_acc, zsl_acc, seed=seed + 1)

        def clips(classes: torch.Tensor, n: torch.Tensor) -> AVSamples:
            labels = torch.repeat_interleave(classes, n)
            audio, video = gen.sample(labels, g)
            return AVSamples(audio, video, labels)

        train_all = clips(seen, counts[0])
        test = AVSamples.concat(clips(seen, counts[1]), clips(unseen, counts[2]))
        held = torch.rand(len(train_all), generator=g) < val_fraction
        return AVGZSLTask(
            train=train_all.subset(~held), val=train_all.subset(held), test=test, text=text,
            seen_classes=seen, unseen_classes=unseen, class_names=list(names), name=f"synthetic-ucf-seed{seed}",
            meta={"source": "synthetic", "seed": seed, "generator": "latent_synth", "seen_acc_target": cal.seen_target,
                  "zsl_acc_target": cal.zsl_target, "probe_targets": [round(t, 2) for t in cal.probe_targets],
                  "seen_probe": round(cal.seen_probe, 2), "zsl_probe": round(cal.zsl_probe, 2), "noise": cal.params.noise,
                  "residual": cal.params.residual, "latent_dim": cal.params.latent_dim, "scale": scale},
        )
