"""Per-dataset presets (paper §4.2, reference configs): shipped data, values, field-by-field overrides, CLI; and the
documentation of the compat switches (docs/defects.md)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from avood_core.cli.commands import app
from avood_core.config import build_config, resolve
from avood_core.errors import ConfigError
from avood_core.recipe import list_presets, load_preset, preset_names

runner = CliRunner()

# Paper §4.2 and the reference configs: unseen (batch, lr, r_enc, r_proj, r_dec, bn), seen (batch, lr), OOD (batch, lr), syn_num
SPEC4 = {
    "vggsound": ((256, 5e-4, .3, .1, .2, 0.1), (1024, 8e-3), (6900, 1e-3), 50),
    "ucf": ((112, 2.4e-3, .5, .4, .4, 0.1), (32, 6e-4), (16, 9e-4), 50),
    "activitynet": ((256, 5e-4, .2, .3, .2, 0.99), (128, 8e-3), (64, 5e-3), 1000),
}


def test_presets_are_shipped_and_described():
    assert preset_names() == ["activitynet", "ucf", "vggsound"]
    for p in list_presets():
        assert p.description and "\n" not in p.description


@pytest.mark.parametrize("name", sorted(SPEC4))
def test_preset_values_match_spec4(name):
    (ub, ulr, enc, proj, dec, bn), (sb, slr), (ob, olr), syn = SPEC4[name]
    cfg = resolve(build_config(preset=name))
    assert cfg.profile == "paper" and cfg.syn_num == syn and cfg.data.dataset == name
    u = cfg.unseen.params
    assert (u["batch_size"], u["lr"], u["r_enc"], u["r_proj"], u["r_dec"], u["bn_momentum"]) == (ub, ulr, enc, proj, dec, bn)
    assert (cfg.seen.params["batch_size"], cfg.seen.params["lr"]) == (sb, slr)
    assert (cfg.detector.params["batch_size"], cfg.detector.params["lr"]) == (ob, olr)
    # the paper's epochs are the plugins' defaults
    assert (cfg.unseen.params["epochs"], cfg.seen.params["epochs"], cfg.detector.params["epochs"]) == (50, 200, 80)
    # alternatives in a slot get the same per-dataset values where they apply
    alt = resolve(build_config(preset=name, components={"detector": "binary", "seen": "cross_attention"}))
    assert (alt.detector.params["batch_size"], alt.detector.params["lr"]) == (ob, olr)
    assert alt.seen.params == u
    # every plugin combination validates under every preset
    for det in ("entropy", "binary", "calibrated_stacking"):
        for seen in ("mlp", "cross_attention"):
            for unseen in ("cross_attention", "mlp"):
                resolve(build_config(preset=name, components={"detector": det, "seen": seen, "unseen": unseen}))


def test_preset_is_overridable_field_by_field(tmp_path):
    user = tmp_path / "user.toml"
    user.write_text('syn_num = 7\n[unseen.params]\nlr = 0.001\n[params.detector.binary]\nbatch_size = 3\n')
    cfg = resolve(build_config(user, {"detector": "binary"}, ["unseen.r_enc=0.25", "profile=quick"], preset="ucf"))
    assert cfg.syn_num == 7 and cfg.profile == "quick"
    assert cfg.unseen.params["lr"] == 0.001 and cfg.unseen.params["r_enc"] == 0.25
    assert cfg.unseen.params["batch_size"] == 112 and cfg.unseen.params["r_proj"] == 0.4  # untouched preset fields
    assert cfg.detector.params["batch_size"] == 3 and cfg.detector.params["lr"] == 9e-4
    assert cfg.unseen.params["epochs"] == 4  # quick profile under the preset's params


def test_unknown_preset_is_one_line_listing_valid_ones():
    with pytest.raises(ConfigError) as info:
        load_preset("kinetics")
    msg = str(info.value)
    assert "\n" not in msg and "activitynet, ucf, vggsound" in msg
    res = runner.invoke(app, ["config", "--preset", "kinetics"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)


def test_cli_presets_and_config_preset():
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0 and [line.split()[0] for line in res.output.strip().splitlines()] == ["activitynet", "ucf", "vggsound"]
    res = runner.invoke(app, ["config", "--preset", "ucf", "--format", "json", "--set", "seen.lr=0.01"])
    assert res.exit_code == 0, res.output
    import json

    cfg = json.loads(res.stdout)
    assert cfg["profile"] == "paper" and cfg["unseen"]["params"]["lr"] == 2.4e-3 and cfg["seen"]["params"]["lr"] == 0.01
    res = runner.invoke(app, ["run", "--help"])
    assert "--preset" in res.output


@pytest.mark.parametrize("kind, name, field, doc", [
    ("data", None, "compat_positional_text", "defect 1"),
    ("generator", "wgan_gp", "compat_label_condition", "defect 2"),
    ("seen", "mlp", "select_on_val", "defect 3"),
    ("unseen", "cross_attention", "compat_frozen_position", "defect 4"),
    ("detector", "entropy", "threshold_rule", "defect 5"),
])
def test_compat_switches_are_documented_and_off_by_default(kind, name, field, doc):
    from avood_core.config import DataConfig
    from avood_core.registry import get_registry

    model = DataConfig if kind == "data" else get_registry().component_class(kind, name).Params
    info = model.model_fields[field]
    assert doc in info.description and "docs/defects.md" in info.description and "SPEC" not in info.description
    assert info.default in (False, "mean")


@pytest.mark.parametrize("name, dropout", [("ucf", 0.2), ("activitynet", 0.2), ("vggsound", 0.0)])
def test_table1_baseline_presets(name, dropout):
    """AVCA-GZSL run_scripts/<dataset>/{cjme,avgzslnet}.sh values; only CJME's dropout differs by dataset;
    epochs are the plugins' defaults (50 x 500 batches), reduced by the quick profile."""
    for unseen, extra in (("cjme", ("dropout", dropout)), ("avgzslnet", ("embed_dropout", 0.8))):
        cfg = resolve(build_config(preset=name, components={"unseen": unseen, "detector": "calibrated_stacking"}))
        p = cfg.unseen.params
        assert (p["batch_size"], p["lr"], p["epochs"], p["batches_per_epoch"], p[extra[0]]) == (256, 1e-3, 50, 500, extra[1])
        quick = resolve(build_config(preset=name, components={"unseen": unseen}, overrides=["profile=quick"]))
        assert quick.unseen.params["epochs"] == 4 and quick.unseen.params["lr"] == 1e-3
