"""Checks on what a fitted pipeline is given: one-line :class:`~avood_core.errors.DataError`s."""

from __future__ import annotations

from typing import Any

import torch

from avood_core.errors import DataError
from avood_core.task import AVGZSLTask, AVSamples


def samples_from_arrays(audio: Any, video: Any, dims: dict[str, int]) -> AVSamples:
    """:class:`AVSamples` from ``audio`` (N, Da) and ``video`` (N, Dv) arrays of the fitted ``dims``."""
    arrays = {}
    for name, arr in (("audio", audio), ("video", video)):
        if arr is None:
            raise DataError(f"no {name} features given; pass audio (N, Da) and video (N, Dv) arrays")
        try:
            arrays[name] = torch.as_tensor(arr, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{name} is not a numeric array ({type(exc).__name__}: {exc}); pass float features") from None
    audio, video = arrays["audio"], arrays["video"]
    for name, arr in arrays.items():
        want = dims.get(name)
        if arr.ndim != 2 or (want is not None and arr.shape[1] != want):
            raise DataError(f"{name} has shape {tuple(arr.shape)} but the pipeline was fitted on (N, {want}); pass features of that dim")
        if not torch.isfinite(arr).all():
            bad = int((~torch.isfinite(arr)).any(dim=1).sum())
            raise DataError(f"{name} holds NaN/inf in {bad} row(s); clean or drop those rows first")
    if len(audio) != len(video):
        raise DataError(f"audio has {len(audio)} rows but video has {len(video)}; pass one row per clip in each")
    return AVSamples(audio, video, torch.zeros(len(audio), dtype=torch.long))


def check_samples(samples: AVSamples, dims: dict[str, int]) -> AVSamples:
    """``samples`` unchanged, or a DataError when their dims differ from the fitted ``dims``."""
    for name, got in (("audio", samples.audio_dim), ("video", samples.video_dim)):
        want = dims.get(name)
        if want is not None and got != want:
            raise DataError(
                f"the data has {name} dim {got} but the pipeline was fitted on {name} dim {want} "
                f"(audio {dims.get('audio')}, video {dims.get('video')}); use features of the run's dataset"
            )
    return samples


def check_task(task: AVGZSLTask, dims: dict[str, int], class_names: list[str]) -> AVGZSLTask:
    """``task`` unchanged if it matches the fitted ``dims`` and ``class_names``, else a DataError."""
    check_samples(task.test, dims)
    if class_names and list(task.class_names) != list(class_names):
        raise DataError(
            f"the data has {len(task.class_names)} classes that differ from the {len(class_names)} classes "
            f"the pipeline was fitted on; evaluate on the run's dataset"
        )
    return task
