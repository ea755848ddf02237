"""Device names, and the lazy driver registry with its plugin entry points."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from devices import registry
from devices.base import Driver
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("nonin2@/dev/ttyUSB0", "nonin2", "/dev/ttyUSB0"),
        ("NONIN2@COM3", "nonin2", "COM3"),
        ("nonin2@socket://127.0.0.1:7000", "nonin2", "socket://127.0.0.1:7000"),
        ("sim:typical", "sim", "typical"),
        ("sim:/tmp/my scenario.toml", "sim", "/tmp/my scenario.toml"),
        ("nonin7+set-format@/dev/ttyUSB0", "nonin7", "/dev/ttyUSB0"),
    ],
)
def test_device_specs(text, kind, target):
    spec = DeviceSpec.parse(text)
    assert (spec.kind, spec.target, spec.text) == (kind, target, text)
    assert spec.options == ({"set-format"} if "+" in text else set())


@pytest.mark.parametrize(
    "text", ["", "nonin2", "@/dev/ttyUSB0", "nonin2@", "sim:", "nonin7+@x", "+a@x"]
)
def test_bad_device_specs(text):
    with pytest.raises(UserError):
        DeviceSpec.parse(text)


def test_naming_a_driver_imports_only_that_driver():
    for name in ("devices.protocols.nonin",):
        sys.modules.pop(name, None)
    cls = registry.get_driver_class("sim")
    assert cls.__name__ == "SimDriver"
    assert "devices.protocols.nonin" not in sys.modules
    assert registry.get_driver_class("nonin2").__module__ == "devices.protocols.nonin.driver"


class PluginDriver(Driver):
    name = "acme"

    def _run(self) -> None:
        pass


def test_plugins_register_through_the_entry_point_group(monkeypatch):
    plugin = EntryPoint("acme", f"{__name__}:PluginDriver", registry.ENTRY_POINT_GROUP)
    hijack = EntryPoint("sim", f"{__name__}:PluginDriver", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [plugin, hijack])
    assert "acme" in registry.driver_names()
    assert registry.get_driver_class("acme") is PluginDriver
    # A plugin cannot silently replace a built-in driver.
    assert registry.get_driver_class("sim").__name__ == "SimDriver"


def test_a_broken_plugin_is_a_plain_error(monkeypatch):
    broken = EntryPoint("broken", "no_such_module_kap:Driver", registry.ENTRY_POINT_GROUP)
    not_a_driver = EntryPoint("notadriver", "os:getcwd", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken, not_a_driver])
    with pytest.raises(UserError, match="could not be loaded"):
        registry.get_driver_class("broken")
    with pytest.raises(UserError, match="is not a kapmonitor driver"):
        registry.get_driver_class("notadriver")
