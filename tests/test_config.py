import json
import tomllib

import pytest

from avood_core.config import ComponentSpec, RunConfig, build_config, resolve, to_toml
from avood_core.errors import ConfigError
from avood_core.registry import Registry

from toy_components import ToyPlugin


@pytest.fixture
def toy_registry():
    reg = Registry(discover=False)
    reg.register_plugin(ToyPlugin(), name="toy")
    return reg


def toy_config(**kw):
    return RunConfig(
        generator=ComponentSpec(name="toy_ridge"), detector=ComponentSpec(name="toy_centroid"),
        seen=ComponentSpec(name="toy_centroid"), unseen=ComponentSpec(name="toy_ridge"), **kw,
    )


def test_defaults_are_the_paper_components():
    cfg = build_config()
    assert [cfg.component(k).name for k in ("generator", "detector", "seen", "unseen")] == [
        "wgan_gp", "entropy", "mlp", "cross_attention"
    ]


def test_set_override_short_and_long_paths():
    cfg = build_config(overrides=["detector.lr=0.001", "unseen.params.margin=2", "seed=7", "data.scale=0.5"])
    assert cfg.detector.params == {"lr": 0.001}
    assert cfg.unseen.params == {"margin": 2}
    assert cfg.seed == 7 and cfg.data.scale == 0.5


def test_typed_values_are_set_without_a_toml_round_trip():
    """CLI options (--seed, --data, ...) and sweep axes arrive as typed values: the same config as
    the --set texts they stand for, applied after every --set, and a str stays a str."""
    sets = ['seed=3', 'data.source="benchmark"', 'data.path="/tmp/x"', "unseen.lr=0.01", 'logging.loggers=["mlflow"]']
    typed = {"seed": 3, "data.source": "benchmark", "data.path": "/tmp/x", "unseen.lr": 0.01, "logging.loggers": ["mlflow"]}
    assert build_config(values=typed) == build_config(overrides=sets)
    assert build_config(overrides=["seed=1"], values={"seed": 2}).seed == 2
    assert str(build_config(values={"output_dir": "1e3"}).output_dir) == "1e3"  # not read as the float 1000.0
    with pytest.raises(ConfigError, match=r"""--set 'data.path="/x"': 'data' is a value, not a table"""):
        build_config(base={"data": 5}, values={"data.path": "/x"})


def test_component_flag_resets_params_of_the_previous_plugin():
    cfg = build_config(components={"detector": "other"}, base={"detector": {"name": "entropy", "params": {"lr": 1}}})
    assert cfg.detector.name == "other" and cfg.detector.params == {}


def test_unknown_param_fails_with_field_path(toy_registry):
    cfg = toy_config()
    cfg.unseen.params["nope"] = 1
    with pytest.raises(ConfigError, match=r"unseen\.params\.nope: Extra inputs are not permitted"):
        resolve(cfg, toy_registry)


def test_ill_typed_param_fails_with_field_path(toy_registry):
    cfg = toy_config()
    cfg.generator.params["lam"] = "abc"
    with pytest.raises(ConfigError, match=r"generator\.params\.lam: .*number.*'abc'"):
        resolve(cfg, toy_registry)


def test_ill_typed_run_field_fails_with_field_path():
    with pytest.raises(ConfigError, match=r"seed: .*integer"):
        build_config(overrides=["seed=abc"])
    with pytest.raises(ConfigError, match=r"device: .*cpu, cuda"):
        build_config(overrides=["device=tpu"])
    with pytest.raises(ConfigError, match=r"KEY=VALUE"):
        build_config(overrides=["seed"])


def test_resolve_fills_every_default(toy_registry):
    resolved = resolve(toy_config(), toy_registry)
    assert resolved.generator.params == {"lam": 0.1, "noise": 0.1}
    assert resolved.detector.params == {}


def test_quick_profile_applies_plugin_overrides_and_user_wins():
    from avood_core.registry import get_registry

    reg = get_registry()
    cls = reg.component_class("seen", "mlp")
    quick = resolve(build_config()).seen.params
    paper = resolve(build_config(overrides=["profile=paper"])).seen.params
    assert paper == cls.Params().model_dump(mode="json")
    for key, value in cls.quick.items():
        assert quick[key] == value
    user = resolve(build_config(overrides=[f"seen.{next(iter(cls.quick))}=3"])).seen.params
    assert user[next(iter(cls.quick))] == 3


def test_toml_file_and_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('seed = 3\n[detector]\nname = "entropy"\n[detector.params]\nlr = 0.002\n')
    cfg = resolve(build_config(path, overrides=["seed=4"]))
    assert cfg.seed == 4 and cfg.detector.params["lr"] == 0.002
    text = to_toml(cfg.model_dump(mode="json"))
    again = resolve(build_config(base=tomllib.loads(text)))
    assert again == cfg


def test_missing_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        build_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("sede = 3")
    with pytest.raises(ConfigError, match=r"unknown.toml: sede: Extra inputs"):
        build_config(unknown)


HOSTILE = {
    "newline": "line one\nline two\r\n",
    "quotes": 'say "hi" and \'bye\' \\ backslash \\n not a newline',
    "unicode": "naïve — 音 \t tab \x7f del",
    "key with spaces": 1,
    "dotted.key": "not a table",
    '"quoted" key': True,
    "": "empty key",
    "list of tables": [{"a": 1, "b": "x\ny"}, {"c": [1, 2.5], "d": {"e": "deep"}}],
    "nested": {"inner table": {"k = v": "[not] a #comment"}},
    "empty": {},
}


def test_to_toml_round_trips_hostile_strings_keys_and_tables_in_lists():
    """config.toml is written by tomli-w: what tomllib reads back is what was written (None left out)."""
    text = to_toml({**HOSTILE, "unset": None, "nested_unset": {"x": None, "y": 1}})
    assert tomllib.loads(text) == {**HOSTILE, "nested_unset": {"y": 1}}


def test_resolved_config_with_hostile_values_round_trips(tmp_path):
    """A run config whose strings hold newlines and quotes reads back equal (as --resume reads config.toml)."""
    out = tmp_path / 'runs "x"\nnext'
    cfg = resolve(build_config(overrides=[f"output_dir={json.dumps(str(out))}", 'logging.loggers=["mlflow"]',
                                          'logging.mlflow.experiment="exp\\n\\"1\\" [a] # b"']))
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg.model_dump(mode="json")))
    again = resolve(build_config(path))
    assert again == cfg and again.output_dir == out and again.logging.model_extra["mlflow"]["experiment"] == 'exp\n"1" [a] # b'
