"""The calibrated latent model of synthetic AV-GZSL data (docs/reproducing.md, "Calibration of the synthetic data").

Class mean ``μ_c = unit(√(1-ρ)·unit((t_c - t̄) A) + √ρ·r_c)``; clip latent ``z_m = μ_c + σ·(√½·ε + √½·k_m·ε_m)/√L``;
features ``x_m = s·z_m Q_m + ν·η + b_m``. :func:`calibrate` bisects ``σ`` (seen accuracy) and ``ρ`` (ZSL
accuracy) against two probes; :data:`TRANSFER` maps trained targets (paper Table 3) to probe targets.
:func:`make_ucf_task` is the embedded default task: UCF-GZSL's 51 real classes (42 seen, 9 unseen) and
word2vec vectors (``ucf_w2v.npz``, AVCA-GZSL benchmark, MIT licence, see NOTICE) with 512-d features.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch import Tensor

from avood_core.errors import DataError
from avood_core.data.layout import FEATURE_DIMS
from avood_core.data.synthetic import SyntheticSpec, split_counts, unit
from avood_core.task import AVGZSLTask, AVSamples
from avood_core.util.threads import torch_threads

PUBLISHED: dict[str, tuple[float, float]] = {
    "ucf": (96.12, 28.21),
    "vggsound": (58.27, 8.78),
    "activitynet": (62.33, 11.49),
}
"""(SC_acc, UC_acc) in percent, paper Table 3 "MLP & Embedding (ours)" per dataset."""

TRANSFER: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {
    ("ucf", "zsl"): ((28.21, 18.08), (40.0, 22.34), (52.0, 24.69), (64.0, 29.67), (71.88, 29.97)),
    ("ucf", "seen"): ((96.12, 92.67), (98.0, 95.73), (99.0, 97.67)),
    ("activitynet", "zsl"): ((38.0, 9.66), (54.0, 12.72)),
    ("activitynet", "seen"): ((70.0, 62.40), (72.0, 67.04)),
    ("vggsound", "zsl"): ((13.0, 7.94), (22.0, 10.81)),
    ("vggsound", "seen"): ((70.0, 58.25), (72.0, 61.06), (74.0, 62.28)),
}
"""(dataset, "seen" | "zsl") -> measured (probe target, trained accuracy at the preset's full epochs), percent:
``benchmarks/calibrate_synth.py`` runs listed in docs/reproducing.md ("Calibration of the synthetic data")."""


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in least squares (isotonic regression), by its min-max
    formula ``x_i = max_{j<=i} min_{k>=i} mean(values[j..k])`` (a handful of points)."""
    n = len(values)
    return [max(min(sum(values[j:k + 1]) / (k + 1 - j) for k in range(i, n)) for j in range(i + 1)) for i in range(n)]


def transfer_probe(pairs: tuple[tuple[float, float], ...], trained: float) -> float:
    """The probe target whose trained accuracy is ``trained`` on the curve through the measured (probe, trained)
    ``pairs``: made non-decreasing by isotonic regression (trained accuracies are noisy), interpolated, end
    segments extended."""
    if len(pairs) < 2:
        raise ValueError("a transfer curve needs two or more (probe, trained) pairs")
    x, y = [p for p, _ in sorted(pairs)], _isotonic([t for _, t in sorted(pairs)])
    if y[-1] <= y[0]:
        raise ValueError("the measured transfer curve does not rise with the probe; remeasure it")
    # the segment to interpolate on (or extend): skip flat segments, they cannot be inverted
    segs = [(i, i + 1) for i in range(len(x) - 1) if y[i + 1] > y[i]]
    i, j = next(((a, b) for a, b in segs if trained <= y[b]), segs[-1])
    return x[i] + (trained - y[i]) * (x[j] - x[i]) / (y[j] - y[i])


def probe_targets(dataset: str, seen_acc: float, zsl_acc: float) -> tuple[float, float, list[str]]:
    """Probe targets for trained-classifier targets (percent), and which knobs had a measured curve."""
    mapped = [knob for knob in ("seen", "zsl") if len(TRANSFER.get((dataset, knob), ())) >= 2]
    seen, zsl = (min(99.0, max(1.0, transfer_probe(TRANSFER[dataset, knob], target))) if knob in mapped
                 else target for knob, target in (("seen", seen_acc), ("zsl", zsl_acc)))
    return seen, zsl, mapped


def name_key(seed: int, name: str) -> int:
    """A class's random key from its name and the seed (its residual and clips follow its name)."""
    return zlib.crc32(f"{seed}:{name.lower()}".encode())


@dataclass(frozen=True)
class LatentParams:
    """The latent parameters behind the knobs (see the module docstring for the model)."""

    noise: float = 1.0  # σ, per-clip latent noise (norm, relative to the unit class mean): sets SC_acc
    residual: float = 0.5  # ρ, share of a class mean its text does not explain: sets UC_acc
    latent_dim: int = 64
    audio_scale: float = 1.3  # k_a, audio's own noise (times σ): audio is the noisier modality
    video_scale: float = 0.8  # k_v
    feature_noise: float = 0.3  # ν, isotropic feature noise off the latent subspace
    gain: float = 1.0  # s / √D, feature scale


@dataclass
class ClassRoles:
    """Which rows of the text matrix are seen / unseen, and clip counts for the probes."""

    seen: Tensor
    unseen: Tensor
    train_counts: Tensor
    test_seen_counts: Tensor
    test_unseen_counts: Tensor


def _projection(latent_dim: int, out_dim: int, g: torch.Generator) -> Tensor:
    """``Q_m``: ``latent_dim`` orthonormal rows times ``√out_dim`` (random rows when ``out_dim < latent_dim``)."""
    if out_dim < latent_dim:
        return torch.randn(latent_dim, out_dim, generator=g)
    q, r = torch.linalg.qr(torch.randn(out_dim, latent_dim, generator=g))
    return (q * torch.sign(torch.diagonal(r))).T.contiguous() * out_dim**0.5


class LatentGenerator:
    """Fixed random structure for one seed; class ``c``'s mean depends only on ``text[c]`` and ``residual_keys[c]``."""

    def __init__(self, text: Tensor, dims: tuple[int, int], params: LatentParams, seed: int,
                 residual_keys: list[int]) -> None:
        self.params, self.dims = params, dims
        text = torch.as_tensor(text, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed)
        L = params.latent_dim
        self.explained = unit((text - text.mean(0)) @ torch.randn(text.shape[1], L, generator=g))
        self.resid = unit(torch.stack([torch.randn(L, generator=torch.Generator().manual_seed(k)) for k in residual_keys]))
        self.proj = [_projection(L, d, g) for d in dims]
        self.bias = [0.5 * torch.randn(d, generator=g) for d in dims]

    def class_means(self, residual: float | None = None) -> Tensor:
        """``μ_c`` for every class (rows of the text matrix) at residual share ``residual``."""
        rho = self.params.residual if residual is None else residual
        return unit((1 - rho) ** 0.5 * self.explained + rho**0.5 * self.resid)

    def modality_means(self, means: Tensor) -> list[Tensor]:
        """The class means of audio and video: both ``μ_c`` (benchmarks/latent_properties.py varies them)."""
        return [means, means]

    def sample(self, labels: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Audio and video features of clips with class ids ``labels`` at the generator's own parameters."""
        p, means = self.params, self.modality_means(self.class_means())
        eps, feat = _clip_noise(len(labels), self.dims, p, g)
        audio, video = (p.gain * (means[m][labels] + p.noise / p.latent_dim**0.5 * eps[m]) @ self.proj[m]
                        + p.feature_noise * feat[m] + self.bias[m] for m in range(2))
        return audio, video


def _clip_noise(n: int, dims: tuple[int, int], p: LatentParams, g: torch.Generator) -> tuple[list, list]:
    """Unit Gaussian draws of ``n`` clips: per modality the latent noise ``√½·ε + √½·k_m·ε_m`` and the feature
    noise ``η`` (the probes reuse theirs across a bisection: common random numbers)."""
    shared = torch.randn(n, p.latent_dim, generator=g)
    own = (torch.randn(n, p.latent_dim, generator=g), torch.randn(n, p.latent_dim, generator=g))
    feat = [torch.randn(n, d, generator=g) for d in dims]
    return [(0.5**0.5) * shared + (0.5**0.5) * k * own[m] for m, k in enumerate((p.audio_scale, p.video_scale))], feat


def per_class_accuracy(pred: Tensor, labels: Tensor) -> float:
    """Mean over classes of the per-class accuracy, in percent (the paper's metric)."""
    accs = [(pred[labels == c] == c).float().mean() for c in labels.unique()]
    return float(torch.stack(accs).mean()) * 100.0


def nearest_mean(x: Tensor, means: Tensor, classes: Tensor) -> Tensor:
    """Class id (from ``classes``) of the nearest row of ``means`` for every row of ``x``."""
    return classes[torch.cdist(x, means).argmin(1)]


def ridge_text_map(text: Tensor, targets: Tensor, lam: float = 0.1) -> Tensor:
    """Ridge weights ``W`` with ``text @ W ≈ targets`` (kernel form; few classes, wide text)."""
    k = text @ text.T
    return text.T @ torch.linalg.solve(k + lam * torch.eye(len(k)), targets)


class Probe:
    """The two probes on a fixed sample of the task's size (same draws for every parameter value), in the
    latent coordinates of each modality (off-subspace noise ``ν / (gain·√D_m)`` per coordinate)."""

    def __init__(self, gen: LatentGenerator, text: Tensor, roles: ClassRoles, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.gen, self.text, self.roles = gen, torch.as_tensor(text, dtype=torch.float32), roles
        # clips of training, test-seen and test-unseen
        self.ys = [torch.repeat_interleave(c, n) for c, n in ((roles.seen, roles.train_counts),
                   (roles.seen, roles.test_seen_counts), (roles.unseen, roles.test_unseen_counts))]
        p, L = gen.params, gen.params.latent_dim
        # per clip: features = [μ_y, μ_y] + σ·E + F (E: latent noise, F: off-subspace noise), E and F drawn once
        self.parts = []
        for y in self.ys:
            eps, feat = _clip_noise(len(y), (L, L), p, g)
            f = [p.feature_noise / (p.gain * gen.dims[m] ** 0.5) * feat[m] for m in range(2)]
            self.parts.append((torch.cat(eps, 1) / L**0.5, torch.cat(f, 1)))
        rows = torch.repeat_interleave(torch.arange(len(roles.seen)), roles.train_counts)  # training clip -> its class
        onehot = torch.zeros(len(roles.seen), len(rows))
        onehot[rows, torch.arange(len(rows))] = 1.0
        avg = onehot / onehot.sum(1, keepdim=True)
        self.train_parts = (avg @ self.parts[0][0], avg @ self.parts[0][1])

    def _feats(self, sigma: float, residual: float, part: int) -> tuple[Tensor, Tensor]:
        """Features of the clips of ``self.parts[part]`` and the class means estimated from training clips."""
        means = torch.cat(self.gen.modality_means(self.gen.class_means(residual)), 1)
        (e, f), (te, tf) = self.parts[part], self.train_parts
        return means[self.ys[part]] + sigma * e + f, means[self.roles.seen] + sigma * te + tf

    def seen_acc(self, sigma: float, residual: float) -> float:
        """Nearest-class-mean accuracy on seen test clips, means estimated from training clips."""
        x, est = self._feats(sigma, residual, 1)
        return per_class_accuracy(nearest_mean(x, est, self.roles.seen), self.ys[1])

    def zsl_acc(self, sigma: float, residual: float) -> float:
        """Unseen test clips classified among unseen classes by ridge-predicted means from text."""
        x, est = self._feats(sigma, residual, 2)
        center = est.mean(0)
        w = ridge_text_map(self.text[self.roles.seen], est - center)
        pred_means = self.text[self.roles.unseen] @ w + center
        return per_class_accuracy(nearest_mean(x, pred_means, self.roles.unseen), self.ys[2])


def _bisect(f, lo: float, hi: float, target: float, steps: int) -> float:
    """``x`` in [lo, hi] with decreasing ``f(x) ≈ target`` (clamped to the ends)."""
    if f(lo) <= target:
        return lo
    if f(hi) >= target:
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass
class Calibration:
    """Solved parameters, the targets (trained classifiers') and the probes' targets and accuracies."""

    params: LatentParams
    seen_target: float
    zsl_target: float
    seen_probe: float
    zsl_probe: float
    probe_targets: tuple[float, float] = (0.0, 0.0)
    mapped: tuple[str, ...] = ()  # knobs turned into probe targets by a measured transfer curve


def calibrate(gen: LatentGenerator, text: Tensor, roles: ClassRoles, dataset: str, seen_acc: float | None,
              zsl_acc: float | None, seed: int, probe: bool = False, rounds: int = 2, steps: int = 14) -> Calibration:
    """Solve and set ``gen``'s latent ``noise`` and ``residual`` for trained-classifier targets (default: ``dataset``'s
    published ones; ``probe=True`` takes them as the probes' own, to measure :data:`TRANSFER`); a probe target out
    of reach clamps the parameter to its range, and :class:`Calibration` holds the accuracies reached."""
    seen, zsl = (published if acc is None else acc for published, acc in zip(PUBLISHED[dataset], (seen_acc, zsl_acc)))
    for name, v in (("--seen-acc", seen), ("--zsl-acc", zsl)):
        if not 0 < v < 100:
            raise DataError(f"{name} must be a percentage between 0 and 100 (exclusive), got {v}")
    p_seen, p_zsl, mapped = (seen, zsl, []) if probe else probe_targets(dataset, seen, zsl)
    probes = Probe(gen, text, roles, seed)
    sigma, rho = gen.params.noise, gen.params.residual
    for _ in range(rounds):
        sigma = _bisect(lambda s: probes.seen_acc(s, rho), 0.01, 40.0, p_seen, steps)
        rho = _bisect(lambda r: probes.zsl_acc(sigma, r), 0.0, 1.0, p_zsl, steps)
    gen.params = replace(gen.params, noise=sigma, residual=rho)
    return Calibration(gen.params, seen, zsl, probes.seen_acc(sigma, rho), probes.zsl_acc(sigma, rho), (p_seen, p_zsl),
                       tuple(mapped))


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
        seen, unseen = (torch.nonzero(torch.from_numpy(mask)).flatten() for mask in (~unseen_mask, unseen_mask))
        g = torch.Generator().manual_seed(seed)
        spec = SyntheticSpec(len(seen), len(unseen)).scaled(scale)  # UCF-GZSL's clip counts
        counts = [split_counts(n, len(c), g) for n, c in zip(
            (spec.train_samples, spec.test_seen_samples, spec.test_unseen_samples), (seen, seen, unseen))]
        roles = ClassRoles(seen, unseen, *counts)
        gen = LatentGenerator(text, FEATURE_DIMS["main_features"], params or LatentParams(), seed,
                              [name_key(seed, n) for n in names])
        cal = calibrate(gen, text, roles, "ucf", seen_acc, zsl_acc, seed=seed + 1)

        def clips(classes: torch.Tensor, n: torch.Tensor) -> AVSamples:
            labels = torch.repeat_interleave(classes, n)
            return AVSamples(*gen.sample(labels, g), labels)

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
