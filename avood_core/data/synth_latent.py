"""Features of a synthetic benchmark tree from the calibrated latent model (:mod:`avood_core.data.latent`).

Stage 2 of the tree's split fixes the calibration: its train classes are the seen classes, its
test-unseen classes the unseen ones, and its per-class clip counts size the probes. The targets
default to the dataset's published accuracies (paper Table 3: UCF 96.12 / 28.21, VGGSound
58.27 / 8.78, ActivityNet 62.33 / 11.49). Each class's clips are drawn from a generator seeded by
the class name, so a clip listed in several stage csv files has the same features everywhere.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from avood_core.data.h5io import write_class_h5
from avood_core.data.layout import STAGES
from avood_core.data.plan import TreePlan
from avood_core.errors import DataError
from avood_core.data.latent import Calibration, ClassRoles, LatentGenerator, LatentParams, calibrate


def _name_key(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}:{name.lower()}".encode())


def _text_matrix(plan: TreePlan, g: torch.Generator) -> torch.Tensor:
    """Row ``c`` = the word vector of ``plan.class_names[c]`` (looked up by name; random if absent)."""
    manual = {r["original"].strip().lower(): r["manual"].strip() for r in plan.w2v_rows}
    width = len(next(iter(plan.vectors.values())))
    rows = []
    for name in plan.class_names:
        vec = plan.vectors.get(manual.get(name.lower(), "\0"))
        rows.append(torch.as_tensor(np.asarray(vec), dtype=torch.float32) if vec is not None else torch.randn(width, generator=g))
    return torch.stack(rows)


def _per_class(plan: TreePlan, split: str) -> tuple[dict[str, int], dict[int, dict[str, tuple[str, list[str]]]]]:
    """Class index by lower-case name, and class id -> stage -> (label as written, clip files)."""
    index = {n.lower(): i for i, n in enumerate(plan.class_names)}
    per_class: dict[int, dict[str, tuple[str, list[str]]]] = {}
    for stage in STAGES:
        for r in plan.rows[split][stage]:
            cid = index.get(r["label"].strip().lower())
            if cid is None:
                raise DataError(f"csv row '{r['filename']}' of {split}/{stage} names unknown class '{r['label']}'; fix the split csv")
            per_class.setdefault(cid, {}).setdefault(stage, (r["label"], []))[1].append(r["filename"])
    return index, per_class


def _roles(plan: TreePlan, split: str, index: dict[str, int]) -> ClassRoles:
    def counts(stage: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for r in plan.rows[split][stage]:
            cid = index[r["label"].strip().lower()]
            out[cid] = out.get(cid, 0) + 1
        return out

    train, test_seen, test_unseen = counts("stage_2_train"), counts("stage_2_test_seen"), counts("stage_2_test_unseen")
    seen = sorted(train)
    unseen = sorted(test_unseen)
    return ClassRoles(
        torch.tensor(seen), torch.tensor(unseen), torch.tensor([train[c] for c in seen]),
        torch.tensor([max(1, test_seen.get(c, 0)) for c in seen]), torch.tensor([test_unseen[c] for c in unseen]),
    )


def write_latent_features(
    root: Path, plan: TreePlan, dataset: str, method: str, split: str, dims: tuple[int, int], seed: int,
    latent_dim: int = 64, seen_acc: float | None = None, zsl_acc: float | None = None, probe: bool = False,
) -> Calibration:
    """Write ``features/<method>/{audio,video}/<stage>/<Class>.h5``; return the solved calibration.

    ``seen_acc`` / ``zsl_acc``: the trained classifiers' targets, or the probes' with ``probe``.
    """
    g = torch.Generator().manual_seed(seed)
    text = _text_matrix(plan, g)
    index, per_class = _per_class(plan, split)
    roles = _roles(plan, split, index)
    keys = [_name_key(seed, n) for n in plan.class_names]
    gen = LatentGenerator(text, dims, LatentParams(latent_dim=latent_dim), seed, keys)
    cal = calibrate(gen, text, roles, dataset, seen_acc, zsl_acc, seed=seed + 1, probe=probe)
    gen.params = cal.params
    feat = root / "features" / method
    for stage in STAGES:
        for m in ("audio", "video"):
            (feat / m / stage).mkdir(parents=True, exist_ok=True)
    for cid in sorted(per_class):
        clips = list(dict.fromkeys(f for _, files in per_class[cid].values() for f in files))
        row_of = {f: i for i, f in enumerate(clips)}
        gc = torch.Generator().manual_seed(_name_key(seed, plan.class_names[cid]) ^ 0x5A5A)
        audio, video = gen.sample(torch.full((len(clips),), cid, dtype=torch.long), gc)
        audio, video = audio.numpy(), video.numpy()
        for stage, (label, files) in per_class[cid].items():
            idx = np.array([row_of[f] for f in files])
            write_class_h5(feat / "audio" / stage / f"{label}.h5", audio[idx], files)
            write_class_h5(feat / "video" / stage / f"{label}.h5", video[idx], files)
    return cal


def calibration_note(cal: Calibration) -> str:
    """One line for the synth report: targets, probe targets and accuracies, the solved parameters."""
    how = (f"probe targets {cal.probe_targets[0]:.2f} / {cal.probe_targets[1]:.2f} from the measured transfer "
           f"({', '.join(cal.mapped)})" if cal.mapped else "probe targets = targets (no measured transfer)")
    return (f"calibrated to seen {cal.seen_target:.2f} / ZSL {cal.zsl_target:.2f} %: {how}; probes reached "
            f"{cal.seen_probe:.2f} / {cal.zsl_probe:.2f} at noise {cal.params.noise:.3f}, residual {cal.params.residual:.3f} "
            "(avood_core.data.latent)")
