"""The misbehaving components: each subclasses a built-in and breaks one method."""

from __future__ import annotations

import sys

import numpy as np
import torch

from avood_core.task import AVSamples
from avood_plugins.detectors.entropy import EntropyDetector
from avood_plugins.generators.wgan_gp import WGANGP
from avood_plugins.seen.mlp import MLPSeenClassifier
from avood_plugins.unseen.cross_attention import CrossAttentionClassifier


class Generator_nan_features(WGANGP):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(torch.full_like(out.audio, float("nan")), out.video, out.labels)


class Generator_short_rows(WGANGP):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio[:-1], out.video[:-1], out.labels[:-1])


class Generator_wrong_dim(WGANGP):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio[:, :-2], out.video, out.labels)


class Generator_wrong_labels(WGANGP):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio, out.video, torch.zeros_like(out.labels))


class Generator_not_samples(WGANGP):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return out.audio, out.video, out.labels


class Detector_nan_score(EntropyDetector):
    def score(self, samples):
        return torch.full_like(super().score(samples), float("nan"))


class Detector_half_inf_score(EntropyDetector):
    def score(self, samples):
        s = super().score(samples).clone()
        s[: len(s) // 2] = float("inf")
        return s


class Detector_short_score(EntropyDetector):
    def score(self, samples):
        return super().score(samples)[:-3]


class Detector_wide_score(EntropyDetector):
    def score(self, samples):
        s = super().score(samples)
        return torch.stack([s, s], dim=1)


class Detector_nan_threshold(EntropyDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        super().fit(seen, synthetic_unseen, ctx)
        self.threshold = float("nan")
        return self

    def extra_scalars(self):
        return {**super().extra_scalars(), "threshold": 0.5}


class Detector_int_is_seen(EntropyDetector):
    def is_seen(self, samples):
        return (self.score(samples) < self.threshold).long()


class Detector_numpy_scalars(EntropyDetector):
    def extra_scalars(self):
        return {**super().extra_scalars(), "threshold": np.float32(self.threshold), "count": np.int64(3)}


class Detector_nan_scalars(EntropyDetector):
    def extra_scalars(self):
        return {**super().extra_scalars(), "margin": float("nan")}


class Detector_str_scalars(EntropyDetector):
    def state_scalars(self):
        return "threshold=0.5"


class Detector_object_scalars(EntropyDetector):
    def extra_scalars(self):
        return {**super().extra_scalars(), "net": object()}


class Detector_fit_value_error(EntropyDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        raise ValueError("bad hidden size")


class Detector_fit_exit0(EntropyDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        sys.exit(0)


class Detector_fit_exit3(EntropyDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        raise SystemExit(3)


class Detector_score_raises(EntropyDetector):
    def score(self, samples):
        raise RuntimeError("CUDA kernel failed")


class Seen_huge_id(MLPSeenClassifier):
    def predict(self, samples):
        return torch.full((len(samples),), 10**6, dtype=torch.long)


class Seen_float_ids(MLPSeenClassifier):
    def predict(self, samples):
        return super().predict(samples).float()


class Seen_short_pred(MLPSeenClassifier):
    def predict(self, samples):
        return super().predict(samples)[:-1]


class Seen_list_pred(MLPSeenClassifier):
    def predict(self, samples):
        return super().predict(samples).tolist()


class Seen_bad_selection(MLPSeenClassifier):
    def selected_params(self):
        return ["epochs", 3]


class Seen_fit_value_error(MLPSeenClassifier):
    def fit(self, train, ctx):
        raise ValueError("bad hidden size")


class Seen_fit_exit0(MLPSeenClassifier):
    def fit(self, train, ctx):
        sys.exit(0)


class Unseen_short_pred(CrossAttentionClassifier):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text)[:2]


class Unseen_outside_ids(CrossAttentionClassifier):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text) + 1000


class Unseen_nan_distances(CrossAttentionClassifier):
    def distances(self, samples, candidates, text):
        return torch.full_like(super().distances(samples, candidates, text), float("nan"))


class Unseen_wide_distances(CrossAttentionClassifier):
    def distances(self, samples, candidates, text):
        d = super().distances(samples, candidates, text)
        return torch.cat([d, d], dim=1)


class Unseen_fit_value_error(CrossAttentionClassifier):
    def fit(self, train, text, ctx):
        raise ValueError("bad hidden size")


class Unseen_fit_exit0(CrossAttentionClassifier):
    def fit(self, train, text, ctx):
        sys.exit(0)
