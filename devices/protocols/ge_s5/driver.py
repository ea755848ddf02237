"""The S/5 driver: asks for the displayed values and the pleth, and again when they fall silent."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from devices.base import DriverSettings, Publish
from devices.protocols.ge_s5.emulator import GeS5Emulator
from devices.protocols.ge_s5.parser import GeS5Parser
from devices.protocols.ge_s5.records import (
    PHDB_REQUEST,
    PHDB_STOP,
    WAVE_REQUEST,
    WAVE_REQUEST_CO2,
    WAVE_STOP,
)
from devices.protocols.ge_s5.wire import BYTE_RATE, DEFAULT_INTERVAL
from devices.serial_driver import SerialDriver, Tap
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import ConnectionState

RETRY_S = 5.0  #: at most one set of re-requests this often
WAVE_SILENT_S = 3.0  #: a pleth this long silent while connected is asked for again
PHDB_SILENT_S = 3 * DEFAULT_INTERVAL


class GeS5Driver(SerialDriver[GeS5Parser]):
    """A GE/Datex S/5-family monitor on its computer interface (``ge-s5@/dev/ttyUSB0``).

    Asks for the displayed values (basic class, every 5 s) and the pleth on connect. The monitor
    needs no keep-alive, but it stops the waves by itself when RTS/CTS holds it back for more than
    2 s (M1017617 p. 10) and forgets both requests when it is restarted, so the driver asks again
    for what has been silent: the pleth after :data:`WAVE_SILENT_S`, the displayed values after
    three intervals (a repeated request does no harm: it restarts the same transmission). When
    it is stopped it asks the monitor to stop both (:meth:`farewell`).

    Option ``co2`` (``ge-s5+co2@PORT``): ask for the CO2 wave beside the pleth. Off by default:
    the 25 Hz capnogram adds a subrecord to every wave record (the line's budget is 600 samples
    a second), and a monitor without a CO2 module has none to send. The CO2 group's EtCO2, FiCO2
    and rate come with the displayed values either way.
    """

    name = "ge-s5"
    parser_class = GeS5Parser
    emulator_class = GeS5Emulator
    serial_settings = GeS5Parser.SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = 1.0
    options: ClassVar[Mapping[str, str]] = {"co2": "ask for the CO2 wave beside the pleth"}

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        *,
        tap: Tap | None = None,
    ) -> None:
        super().__init__(spec, publish, settings, tap=tap)
        self._asked = time.monotonic()
        self._wave_request = WAVE_REQUEST_CO2 if "co2" in spec.options else WAVE_REQUEST

    def greeting(self) -> bytes:
        self._asked = time.monotonic()
        return PHDB_REQUEST + self._wave_request

    def keep_alive(self) -> bytes:
        now = time.monotonic()
        if now - self._asked < RETRY_S:
            return b""
        parser = self.parser
        out = b""
        if now - max(parser.last_phdb or 0.0, self._asked) > PHDB_SILENT_S:
            out += PHDB_REQUEST
        if (
            now - max(parser.last_wave or 0.0, self._asked) > WAVE_SILENT_S
            or self.state is ConnectionState.NO_DATA
        ):
            out += self._wave_request
        if out:
            self._asked = now
        return out

    def farewell(self) -> bytes:
        return PHDB_STOP + WAVE_STOP
