import importlib.metadata as md
import sys
import types

import pytest

from avood_core import registry as registry_mod
from avood_core.errors import PluginError
from avood_core.hookspecs import hookimpl
from avood_core.registry import Registry

from toy_components import CentroidDetector, ToyPlugin


def test_builtins_discovered_through_entry_points():
    reg = Registry()
    found = {(e.kind, e.name): e.provider for e in reg.all_entries()}
    for key in [("generator", "wgan_gp"), ("detector", "entropy"), ("seen", "mlp"), ("unseen", "cross_attention")]:
        assert key in found
        assert found[key].dist == "avood" and found[key].version
    assert reg.broken == []


def test_discovery_does_not_import_torch_or_builtin_modules():
    code = (
        "import sys; from avood_core.registry import Registry; r = Registry(); "
        "assert len(list(r.all_entries())) >= 4; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'avood_plugins.detectors.entropy' not in sys.modules"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_registered_in_test_without_a_package():
    reg = Registry(discover=False)
    reg.register_plugin(ToyPlugin(), name="toy")
    assert reg.names("detector") == ["toy_centroid"]
    assert reg.component_class("detector", "toy_centroid") is CentroidDetector
    assert str(reg.entry("detector", "toy_centroid").provider).startswith("plugin 'toy'")


def test_unknown_name_lists_valid_names():
    reg = Registry()
    with pytest.raises(PluginError) as err:
        reg.entry("detector", "nope")
    msg = str(err.value)
    assert "unknown detector 'nope'" in msg and "entropy" in msg and "\n" not in msg


def test_duplicate_name_names_both_providers():
    reg = Registry(discover=False)
    reg.register_plugin(ToyPlugin(), name="first")
    with pytest.raises(PluginError) as err:
        reg.register_plugin(ToyPlugin(), name="second")
    assert "first" in str(err.value) and "second" in str(err.value)


def test_simulated_broken_entry_point_is_reported_and_rest_works(monkeypatch):
    real = list(md.entry_points(group="avood"))
    fake = md.EntryPoint(name="broken_thing", value="avood_no_such_module_xyz", group="avood")
    monkeypatch.setattr(registry_mod.md, "entry_points", lambda group: [fake, *real])
    reg = Registry()
    assert [b.provider.plugin for b in reg.broken] == ["broken_thing"]
    assert "ModuleNotFoundError" in reg.broken[0].error
    assert "entropy" in reg.names("detector")


def _plugin(*registrations: tuple, raises: Exception | None = None) -> types.SimpleNamespace:
    """A plugin module whose hook registers ``(kind, name, target)`` triples, then raises ``raises``."""

    @hookimpl
    def register_components(register):
        for kind, name, target in registrations:
            register(kind, name, target)
        if raises is not None:
            raise raises

    return types.SimpleNamespace(register_components=register_components)


def test_plugin_whose_hook_raises_is_broken_not_fatal():
    reg = Registry(discover=False)
    reg.register_plugin(_plugin(("detector", "half", CentroidDetector), raises=RuntimeError("boom")), name="flaky")
    assert reg.broken and "boom" in reg.broken[0].error
    assert reg.names("detector") == []


def test_lazy_target_that_fails_to_import_is_a_clear_error():
    reg = Registry(discover=False)
    reg.register_plugin(_plugin(("seen", "ghost", "avood_no_such_module_xyz:Ghost")), name="ghosts")
    assert reg.names("seen") == ["ghost"]  # registering is lazy
    with pytest.raises(PluginError, match="failed to import"):
        reg.component_class("seen", "ghost")


def test_wrong_kind_is_rejected():
    with pytest.raises(PluginError, match="unknown kind 'gate'"):
        Registry(discover=False).register_plugin(_plugin(("gate", "x", CentroidDetector)), name="odd")


def test_class_registered_under_other_kind_fails_on_use():
    reg = Registry(discover=False)
    reg.register_plugin(_plugin(("seen", "mislabelled", CentroidDetector)), name="mis")
    with pytest.raises(PluginError, match="declares kind='detector'"):
        reg.component_class("seen", "mislabelled")


def test_ctrl_c_while_a_plugin_module_creates_a_class_stays_an_interrupt(tmp_path, monkeypatch):
    # Python 3.11 reports an exception raised in __set_name__ (a pydantic validator's descriptor, when
    # Ctrl-C lands during the plugin's import) as a RuntimeError caused by it: it must not read as a
    # broken plugin (exit 1) but stay an interrupt (exit 130).
    (tmp_path / "ctrl_c_plugin.py").write_text(
        "class Lands:\n"
        "    def __set_name__(self, owner, name):\n"
        "        raise KeyboardInterrupt\n"
        "class Component:\n"
        "    attr = Lands()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ctrl_c_plugin", raising=False)
    entry = registry_mod.ComponentEntry("detector", "ctrl_c", "ctrl_c_plugin:Component", registry_mod.Provider("t"))
    with pytest.raises(KeyboardInterrupt):
        entry.load()

    from avood_core.pipeline.boundary import calling

    def wrapped():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__") from exc

    with pytest.raises(KeyboardInterrupt):
        with calling(CentroidDetector(), "fit"):
            wrapped()
    with pytest.raises(PluginError, match="RuntimeError: plain"):
        with calling(CentroidDetector(), "fit"):
            raise RuntimeError("plain")
