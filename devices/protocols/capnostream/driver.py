"""The Capnostream driver: a Capnostream 20 on its serial port, kept talking by the host."""

from __future__ import annotations

from devices.protocols.capnostream.emulator import CapnostreamEmulator
from devices.protocols.capnostream.parser import CapnostreamParser
from devices.protocols.capnostream.wire import (
    BYTE_RATE,
    DISABLE_COMM,
    ENABLE_COMM,
    LINK_IS_ACTIVE,
    START_RT,
    STOP_RT,
)
from devices.serial_driver import SerialDriver
from kapmonitor.core.model import ConnectionState


class CapnostreamDriver(SerialDriver[CapnostreamParser]):
    """An Oridion (Medtronic) Capnostream 20 (``capnostream@/dev/ttyUSB0``).

    On connect: "enable communication" (the device answers with its id and starts its
    once-a-second numerics), then "start real-time" for the CO2 wave. Every 5 s "link is
    active", as OpenICE sends it. While the device is silent (NO_DATA: switched off and on, or
    it dropped the link) the periodic message is the greeting again, since only "enable
    communication" starts a device that has stopped talking. On stop: "stop real-time" and
    "disable communication", so the monitor's own screen shows no host connected.
    """

    name = "capnostream"
    parser_class = CapnostreamParser
    emulator_class = CapnostreamEmulator
    serial_settings = CapnostreamParser.SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = 5.0

    def greeting(self) -> bytes:
        return ENABLE_COMM + START_RT

    def keep_alive(self) -> bytes:
        if self.state is ConnectionState.NO_DATA:
            return ENABLE_COMM + START_RT
        return LINK_IS_ACTIVE

    def farewell(self) -> bytes:
        return STOP_RT + DISABLE_COMM
