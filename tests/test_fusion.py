"""Fusion plugins (avood_core.fusion): shapes, gradients, modality independence, the consumers'
``fusion`` param (generator, detectors, classifiers) and the kit catching a broken fusion."""

from __future__ import annotations

import pytest
import torch

from avood_core.errors import AvoodError, ConfigError, DataError
from avood_core.fusion import Fusion, FusedMLP, input_x, make_fusion
from avood_core.registry import get_registry
from avood_core.task import AVSamples
from avood_core.testing import check_component

DA, DV, B = 10, 10, 6
SMALL = {"cross_attention": {"embed_dim": 12, "enc_hidden": 16, "heads": 2, "ff_dim": 8}}
BUILTINS = ("concat", "audio", "video", "mean", "sum", "gated", "cross_attention")


def _inputs(seed=0, da=DA, dv=DV):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, da, generator=g), torch.randn(B, dv, generator=g)


@pytest.mark.parametrize("name", BUILTINS)
def test_output_shape_and_gradient_flow(name):
    torch.manual_seed(0)
    fusion = make_fusion(name, DA, DV, SMALL.get(name))
    audio, video = (t.requires_grad_(True) for t in _inputs())
    out = fusion(audio, video)
    expected = {"concat": DA + DV, "audio": DA, "video": DV, "mean": DA, "sum": DA, "gated": DA, "cross_attention": 24}
    assert out.shape == (B, expected[name]) == (B, fusion.dim)
    (out * torch.randn(out.shape)).sum().backward()
    for modality, t in (("audio", audio), ("video", video)):
        read = modality in type(fusion).modalities
        assert (t.grad is not None and t.grad.abs().sum() > 0) == read, (name, modality)
    for pname, p in fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, (name, pname)


@pytest.mark.parametrize("name,ignored", [("audio", "video"), ("video", "audio")])
def test_one_modality_ignores_the_other(name, ignored):
    fusion = make_fusion(name, DA, DV)
    audio, video = _inputs()
    base = fusion(audio, video)
    other = (audio, video * 100 - 3) if ignored == "video" else (torch.full_like(audio, 9.0), video)
    assert torch.equal(fusion(*other), base)
    assert torch.equal(base, audio if name == "audio" else video)


@pytest.mark.parametrize("name", ["mean", "sum"])
def test_equal_dim_fusions_refuse_unequal_dims_in_one_line(name):
    with pytest.raises(ConfigError, match=f"fusion '{name}' needs equal audio and video dims, got 10 and 7") as exc:
        make_fusion(name, 10, 7)
    assert "\n" not in str(exc.value)


def test_gated_projects_unequal_dims_and_starts_at_the_mean():
    fusion = make_fusion("gated", 10, 7)
    assert fusion.dim == 10 and isinstance(fusion.proj_v, torch.nn.Linear)
    equal = make_fusion("gated", DA, DV)
    audio, video = _inputs()
    assert torch.allclose(equal(audio, video), (audio + video) / 2)  # zero-initialised gate: g = 1/2


def test_fused_mlp_keeps_the_plain_mlp_weight_names():
    """concat adds no parameters and the MLP keeps its indices: default checkpoints are unchanged."""
    mlp = torch.nn.Sequential(torch.nn.Linear(DA + DV, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    net = FusedMLP(make_fusion("concat", DA, DV), mlp)
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = torch.cat(_inputs(), dim=1)
    assert torch.equal(net(x), mlp(x))
    assert len(net) == 3 and net[-1] is mlp[2] and list(net) == list(mlp)  # indexed as the plain MLP
    gated = FusedMLP(make_fusion("gated", DA, DV), torch.nn.Sequential(torch.nn.Linear(DA, 3)))
    assert {"fusion.gate.weight", "fusion.gate.bias", "0.weight"} <= set(gated.state_dict())


def test_input_x_fills_an_unread_missing_modality_and_refuses_a_read_one():
    audio_only = AVSamples(torch.randn(4, DA), torch.zeros(4, 0), torch.arange(4))
    x = input_x(audio_only, "audio", DA, DV, "detector entropy")
    assert x.shape == (4, DA + DV) and torch.equal(x[:, :DA], audio_only.audio) and not x[:, DA:].any()
    with pytest.raises(DataError, match="detector entropy: fusion 'concat' reads video .* set detector.fusion"):
        input_x(audio_only, "concat", DA, DV, "detector entropy")


def test_unknown_fusion_and_bad_fusion_params_fail_clearly():
    from avood_plugins.seen.mlp import MLPSeenClassifier

    with pytest.raises(Exception, match="unknown fusion 'bogus'; valid fusions: audio, concat"):
        MLPSeenClassifier(fusion="bogus")
    with pytest.raises(Exception, match="fusion_params.nope of fusion 'gated': Extra inputs"):  # at config time
        MLPSeenClassifier(fusion="gated", fusion_params={"nope": 1})
    with pytest.raises(ConfigError, match="seen mlp: fusion_params.dim of fusion 'gated'"):  # and at build time
        make_fusion("gated", DA, DV, {"dim": 0}, "seen mlp")


def _synthetic_task():
    from avood_core.data.synthetic import SyntheticSpec, make_synthetic_task

    return make_synthetic_task(0, SyntheticSpec().scaled(0.05))


def test_audio_only_generator_synthesizes_audio_only():
    from avood_core.protocols import FitContext
    from avood_plugins.generators.wgan_gp import WGANGP

    task = _synthetic_task()
    gen = WGANGP(fusion="audio", epochs=1, batches_per_epoch=2, critic_iters=1, noise_dim=8, hidden=16, batch_size=16)
    ctx = FitContext(task.text, task.seen_classes, task.unseen_classes, torch.device("cpu"))
    gen.fit(task.train, task.text, ctx)
    syn = gen.generate(task.unseen_classes, task.text, 3)
    assert syn.audio.shape == (3 * len(task.unseen_classes), task.train.audio_dim) and syn.video.shape[1] == 0
    with pytest.raises(AvoodError, match="generator.fusion 'gated' mixes the modalities"):
        WGANGP(fusion="gated").fit(task.train, task.text, ctx)


def test_detector_and_seen_train_with_a_learned_fusion_and_save_it(tmp_path):
    """``detector.fusion=video`` / ``seen.fusion=gated`` in a real run: the gate's first layer sees the
    video dims only, the gated fusion is trained (moved from its zero init) and saved in
    model.safetensors, and the run folder reloads to the same predictions."""
    import numpy as np
    from tiny_runs import predictions, run_task, tiny_run, weights

    from avood_core.pipeline import Pipeline

    result = tiny_run(tmp_path, 'detector.fusion="video"', 'seen.fusion="gated"')
    seen_w, det_w = weights(result.run_dir, "seen"), weights(result.run_dir, "detector")
    assert seen_w["fusion.gate.weight"].abs().sum() > 0  # trained with the classifier
    assert det_w["0.weight"].shape[1] == 512  # the video dims only
    task = run_task(result.run_dir)
    pred = Pipeline.load(result.run_dir).predict(task.test.audio, task.test.video)
    saved = predictions(result.run_dir)
    assert np.array_equal(pred.labels.numpy(), saved["pred"])
    assert np.array_equal(pred.score.numpy(), saved["score"])


class ReadsBoth(Fusion):
    """Claims to read audio only but adds the video: the kit's modalities check must fail."""

    modalities = ("audio",)

    def out_dim(self, audio_dim, video_dim):
        return audio_dim

    def forward(self, audio, video):
        return audio + 1e-3 * video.mean(dim=1, keepdim=True)


def test_the_kit_catches_a_fusion_that_reads_an_unread_modality():
    report = check_component(ReadsBoth, raise_on_failure=False)
    assert report.results["modalities"].status == "failed"
    assert "unread video" in report.results["modalities"].message
    assert report.results["gradients"].status == "passed"


def test_every_builtin_fusion_is_registered():
    assert set(BUILTINS) <= set(get_registry().names("fusion"))
