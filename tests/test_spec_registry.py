"""Device names, and the lazy driver registry with its plugin entry points."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from devices import registry
from devices.base import Driver
from devices.serial_driver import SerialDriver
from kapmonitor.cli import EXIT_USER_ERROR, main
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.runner import check_device


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


# --- driver options -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", registry.protocol_names())
def test_every_protocol_says_what_its_options_mean(name):
    cls = registry.get_driver_class(name)
    assert issubclass(cls, SerialDriver)
    for option, meaning in cls.options.items():
        assert option == option.lower() and meaning and "\n" not in meaning, (name, option)


def _record_refused(capsys, device: str) -> str:
    status = main(["record", "--device", device])
    err = capsys.readouterr().err
    assert status == EXIT_USER_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_unknown_option_is_refused_in_one_sentence_for_every_protocol(capsys):
    """The serial driver base checks options, so a protocol without any (Masimo) refuses one too,
    before any port is opened."""
    line = _record_refused(capsys, "masimo+bogus@/dev/ttyKAP-nothing-here")
    assert "device 'masimo+bogus@/dev/ttyKAP-nothing-here': unknown option 'bogus'" in line
    assert "masimo takes none" in line
    line = _record_refused(capsys, "intellivue+bogus@/dev/ttyKAP-nothing-here")
    assert "unknown option 'bogus' (intellivue knows: 115200, 19200)" in line


def test_a_known_option_passes_to_the_port(capsys):
    line = _record_refused(capsys, "nonin7+set-format@/dev/ttyKAP-nothing-here")
    assert "option" not in line and "port '/dev/ttyKAP-nothing-here' does not exist" in line


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_start_dialogs_check_asks_the_driver():
    """check_device builds the driver: it refuses what the driver refuses, and opens the port
    with the line settings the driver chose from its options (intellivue+19200)."""
    from devices.sim.serve import PtyEndpoint

    endpoint = PtyEndpoint()
    try:
        assert check_device(f"intellivue+19200@{endpoint.path}") is None
        assert check_device(f"masimo@{endpoint.path}") is None
        refused = check_device(f"masimo+bogus@{endpoint.path}")
        assert refused is not None and "unknown option 'bogus'" in refused
        both = check_device(f"intellivue+19200+115200@{endpoint.path}")
        assert both is not None and "give one" in both
    finally:
        endpoint.close()
