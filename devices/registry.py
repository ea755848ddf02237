"""Drivers by name, imported only when used, and open to plugins.

Built-in drivers are listed as ``module:Class`` strings so that naming one never imports the
others (or their optional dependencies). A third-party package adds drivers through the
``kapmonitor.drivers`` entry-point group::

    [project.entry-points."kapmonitor.drivers"]
    acme500 = "kapmonitor_acme.driver:Acme500Driver"

The replay of a recorded session (``replay:SESSION``) registers that way too, from kapmonitor's
own pyproject.toml: it reads the record, which sits above this package.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from devices.base import Driver
from kapmonitor.core.errors import UserError

ENTRY_POINT_GROUP = "kapmonitor.drivers"

BUILTIN_DRIVERS: dict[str, str] = {
    "sim": "devices.sim.driver:SimDriver",
    "nonin2": "devices.protocols.nonin:Nonin2Driver",
    "nonin7": "devices.protocols.nonin:Nonin7Driver",
    "nonin8": "devices.protocols.nonin:Nonin8Driver",
    "masimo": "devices.protocols.masimo:MasimoDriver",
    "contec": "devices.protocols.contec:ContecDriver",
    "ge-s5": "devices.protocols.ge_s5:GeS5Driver",
    "intellivue": "devices.protocols.intellivue:IntellivueDriver",
    "capnostream": "devices.protocols.capnostream:CapnostreamDriver",
}


def _all_targets() -> dict[str, str]:
    targets = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    targets.update(BUILTIN_DRIVERS)  # a plugin cannot silently replace a built-in driver
    return targets


def driver_names() -> list[str]:
    return sorted(_all_targets())


def protocol_names() -> list[str]:
    """Drivers that speak a wire protocol (everything but the simulator and the replay)."""
    return [name for name in driver_names() if name not in ("sim", "replay")]


def get_driver_class(name: str) -> type[Driver]:
    # A built-in name needs no scan of the installed packages' entry points (tens of ms of
    # every `kapmonitor decode`).
    target = BUILTIN_DRIVERS.get(name.lower()) or _all_targets().get(name.lower())
    if target is None:
        raise UserError(
            f"unknown protocol '{name}' (protocols: {', '.join(protocol_names())}; "
            "or sim:SCENARIO for the simulator, replay:SESSION for a recorded session)"
        )
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"the driver for '{name}' could not be loaded ({target}): {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise UserError(f"'{target}', registered for '{name}', is not a kapmonitor driver")
    return cls
