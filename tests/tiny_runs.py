"""Tiny end-to-end runs of the real plugins, shared by the checkpoint, resume and predict tests.

Every budget is at its minimum (1 epoch, 3 batches) and every network narrow, so one run of
the full wgan_gp → entropy → mlp → cross_attention pipeline takes about two seconds on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avood_core.stages import KINDS  # the stage table's kinds; tests import them from here too

TINY = [
    "data.scale=0.05", 'device="cpu"', "syn_num=5",
    "generator.epochs=1", "generator.batches_per_epoch=3", "generator.critic_iters=1",
    "generator.noise_dim=16", "generator.hidden=32", "generator.batch_size=16",
    "detector.epochs=2", "detector.hidden=[32]", "detector.batch_size=64",
    "seen.epochs=2", "seen.hidden=[32]", "seen.batch_size=64",
    "unseen.epochs=1", "unseen.batches_per_epoch=3", "unseen.batch_size=16",
    "unseen.embed_dim=30", "unseen.enc_hidden=32", "unseen.proj_hidden=32", "unseen.joint_dim=8", "unseen.ff_dim=8",
]


def tiny_config(output_dir: Path, *extra: str):
    from avood_core.config import build_config

    return build_config(overrides=[*TINY, f"output_dir={json.dumps(str(output_dir))}", *extra])


def tiny_run(output_dir: Path, *extra: str, echo=lambda m: None, resume: Path | None = None,
             allow_changes: bool = False):
    """``execute`` a tiny config (no report); returns the RunResult."""
    from avood_core.run.driver import RunOptions, execute

    options = RunOptions(report=False, quiet=True, echo=echo, resume=resume, allow_changes=allow_changes)
    return execute(tiny_config(output_dir, *extra), options)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (the lock file aside: it holds a pid)."""
    import hashlib

    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".avood.lock"}


def reseal(run: Path) -> None:
    """Recompute every checksum of a run folder, as a tamperer could: each component's weights_sha256
    and config_sha256, then the manifest of pipeline.json (files that are not JSON objects are skipped)."""
    import hashlib

    from avood_core.pipeline.store import seal

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    for kind in KINDS:
        folder = Path(run) / "components" / kind
        try:
            config = json.loads((folder / "config.json").read_text())
        except ValueError:
            continue
        if isinstance(config, dict) and "weights_sha256" in config:
            config["weights_sha256"] = sha(folder / "model.safetensors")
            (folder / "config.json").write_text(json.dumps(seal(config) if "config_sha256" in config else config, indent=2))
    try:
        meta = json.loads((Path(run) / "pipeline.json").read_text())
    except ValueError:
        return
    if isinstance(meta, dict) and isinstance(meta.get("files"), dict):
        meta["files"] = {rel: sha(Path(run) / rel) for rel in meta["files"] if (Path(run) / rel).is_file()}
        (Path(run) / "pipeline.json").write_text(json.dumps(meta, indent=2))


def run_task(run_dir: Path):
    """The task a run folder reports on, rebuilt from its config.toml."""
    from avood_core.config import validate_config
    from avood_core.recipe import load_toml
    from avood_core.run.fitting import build_task

    return build_task(validate_config(load_toml(Path(run_dir) / "config.toml")))


def weights(run_dir: Path, kind: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / "components" / kind / "model.safetensors"))


def predictions(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / "predictions.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def fit_hash(run_dir: Path, kind: str) -> str:
    return json.loads((Path(run_dir) / "components" / kind / "config.json").read_text())["fit_hash"]


def assert_same_predictions_other_batch(labels, score, ref_labels, ref_score, threshold: float) -> None:
    """The same clips predicted in a batch of another shape than the reference's.

    A float32 matmul may round differently for another number of rows (the BLAS picks its
    blocking by shape), so scores are equal only within ``torch.testing.assert_close``'s float32
    defaults; labels must be identical for every clip whose gate score is farther than that
    tolerance from the threshold (a clip within it may legitimately take either branch).
    """
    import torch

    score, ref_score = torch.as_tensor(score), torch.as_tensor(ref_score)
    torch.testing.assert_close(score, ref_score)
    clear = (ref_score - threshold).abs() > 1e-5 + 1.3e-6 * abs(threshold)
    assert clear.any()
    assert torch.equal(torch.as_tensor(labels)[clear], torch.as_tensor(ref_labels)[clear])
