"""The misbehaving components: each subclasses a fast stand-in of the conformance kit
(avood_core.testing, closed-form fits) and breaks one method; ``*_standin`` are the stand-ins as they are."""

from __future__ import annotations

import sys

import numpy as np
import torch

from avood_core.task import AVSamples
from avood_core.testing import StandInDetector, StandInGenerator, StandInSeen, StandInUnseen


class Generator_standin(StandInGenerator):
    pass


class Detector_standin(StandInDetector):
    pass


class Seen_standin(StandInSeen):
    pass


class Unseen_standin(StandInUnseen):
    pass


class Generator_nan_features(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(torch.full_like(out.audio, float("nan")), out.video, out.labels)


class Generator_short_rows(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio[:-1], out.video[:-1], out.labels[:-1])


class Generator_wrong_dim(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio[:, :-2], out.video, out.labels)


class Generator_wrong_labels(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return AVSamples(out.audio, out.video, torch.zeros_like(out.labels))


class Generator_uneven_counts(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        labels = out.labels.clone()
        labels[0] = labels[-1]  # one class gets a sample too many, another one too few
        return AVSamples(out.audio, out.video, labels)


class Generator_not_samples(StandInGenerator):
    def generate(self, class_ids, text, n_per_class):
        out = super().generate(class_ids, text, n_per_class)
        return out.audio, out.video, out.labels


class Detector_nan_score(StandInDetector):
    def score(self, samples):
        if not self.fitted:  # its fit scores the seen clips; the fault shows once it is fitted
            return super().score(samples)
        return torch.full_like(super().score(samples), float("nan"))


class Detector_half_inf_score(StandInDetector):
    def score(self, samples):
        if not self.fitted:  # its fit scores the seen clips; the fault shows once it is fitted
            return super().score(samples)
        s = super().score(samples).clone()
        s[: len(s) // 2] = float("inf")
        return s


class Detector_short_score(StandInDetector):
    def score(self, samples):
        if not self.fitted:  # its fit scores the seen clips; the fault shows once it is fitted
            return super().score(samples)
        return super().score(samples)[:-3]


class Detector_wide_score(StandInDetector):
    def score(self, samples):
        if not self.fitted:  # its fit scores the seen clips; the fault shows once it is fitted
            return super().score(samples)
        s = super().score(samples)
        return torch.stack([s, s], dim=1)


class Detector_nan_threshold(StandInDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        super().fit(seen, synthetic_unseen, ctx)
        self.threshold = float("nan")
        return self

    def state_scalars(self):
        return {**super().state_scalars(), "threshold": 0.5}


class Detector_int_is_seen(StandInDetector):
    def is_seen(self, samples):
        return (self.score(samples) < self.threshold).long()


class Detector_numpy_scalars(StandInDetector):
    def state_scalars(self):
        return {**super().state_scalars(), "threshold": np.float32(self.threshold), "count": np.int64(3)}


class Detector_nan_scalars(StandInDetector):
    def state_scalars(self):
        return {**super().state_scalars(), "margin": float("nan")}


class Detector_str_scalars(StandInDetector):
    def state_scalars(self):
        return "threshold=0.5"


class Detector_object_scalars(StandInDetector):
    def state_scalars(self):
        return {**super().state_scalars(), "net": object()}


class Detector_fit_value_error(StandInDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        raise ValueError("bad hidden size")


class Detector_fit_exit0(StandInDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        sys.exit(0)


class Detector_fit_exit3(StandInDetector):
    def fit(self, seen, synthetic_unseen, ctx):
        raise SystemExit(3)


class Detector_score_raises(StandInDetector):
    def score(self, samples):
        if not self.fitted:  # its fit scores the seen clips; the fault shows once it is fitted
            return super().score(samples)
        raise RuntimeError("CUDA kernel failed")


class Seen_huge_id(StandInSeen):
    def predict(self, samples):
        return torch.full((len(samples),), 10**6, dtype=torch.long)


class Seen_float_ids(StandInSeen):
    def predict(self, samples):
        return super().predict(samples).float()


class Seen_short_pred(StandInSeen):
    def predict(self, samples):
        return super().predict(samples)[:-1]


class Seen_list_pred(StandInSeen):
    def predict(self, samples):
        return super().predict(samples).tolist()


class Seen_list_selection(StandInSeen):
    def selected_params(self):
        return ["epochs", 3]


class Seen_fit_value_error(StandInSeen):
    def fit(self, train, ctx):
        raise ValueError("bad hidden size")


class Seen_fit_exit0(StandInSeen):
    def fit(self, train, ctx):
        sys.exit(0)


class Unseen_short_pred(StandInUnseen):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text)[:2]


class Unseen_outside_ids(StandInUnseen):
    def predict(self, samples, candidates, text):
        return super().predict(samples, candidates, text) + 1000


class Unseen_nan_distances(StandInUnseen):
    def distances(self, samples, candidates, text):
        return torch.full_like(super().distances(samples, candidates, text), float("nan"))


class Unseen_wide_distances(StandInUnseen):
    def distances(self, samples, candidates, text):
        d = super().distances(samples, candidates, text)
        return torch.cat([d, d], dim=1)


class Unseen_fit_value_error(StandInUnseen):
    def fit(self, train, text, ctx):
        raise ValueError("bad hidden size")


class Unseen_fit_exit0(StandInUnseen):
    def fit(self, train, text, ctx):
        sys.exit(0)
