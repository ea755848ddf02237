"""The driver: :class:`IntellivueDriver` plays the host's side of the session on a serial port."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from devices.base import DriverSettings, Publish
from devices.protocols.intellivue.emulator import IntellivueEmulator
from devices.protocols.intellivue.messages import (
    ABORT,
    ASSOCIATION_REQUEST,
    RELEASE_REQUEST,
    RELEASE_RESPONSE,
    ext_poll_request,
    mds_create_result,
    negotiated_timeout,
    wave_priority_request,
)
from devices.protocols.intellivue.nomenclature import (
    BAUD_OPTIONS,
    BYTE_RATE,
    CO2_LABEL,
    KEEP_ALIVE_S,
    MIN_TIMEOUT_S,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMO_METRIC_SA_RT,
    PLETH_LABEL,
    SERIAL,
)
from devices.protocols.intellivue.parser import IntellivueParser
from devices.protocols.intellivue.wire import frame
from devices.serial_driver import SerialDriver, Tap
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import ConnectionState

log = logging.getLogger(__name__)


class IntellivueDriver(SerialDriver[IntellivueParser]):
    """A Philips IntelliVue on its MIB port (``intellivue@/dev/ttyUSB0``; option ``19200`` for
    a port set to 19200 baud: ``intellivue+19200@PORT``).

    Plays the host's side of the session: the association request on connect, the confirmation
    of the MDS Create Event (same invoke id), the wave priority list (pleth and CO2) and the
    extended polls for numerics and waves, renewed every :data:`KEEP_ALIVE_S` as the keep-alive
    (a third of the shortest timeout a monitor can negotiate). When the monitor aborts or
    releases the association, or sends no frame for two keep-alive periods while associated, the
    driver associates again (after an abort of its own, for the silent case); a refused or
    unanswered request is repeated every other period. On stop it sends a release request.
    """

    name = "intellivue"
    parser_class = IntellivueParser
    emulator_class = IntellivueEmulator
    serial_settings = SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = KEEP_ALIVE_S
    options: ClassVar[Mapping[str, str]] = {
        rate: f"the monitor's MIB port is set to {rate} baud" for rate in BAUD_OPTIONS
    }

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        *,
        tap: Tap | None = None,
    ) -> None:
        super().__init__(spec, publish, settings, tap=tap)
        if len(spec.options) > 1:
            raise UserError(
                f"device '{spec.text}': the options {' and '.join(sorted(spec.options))} each "
                "set the line speed; give one"
            )
        for option in spec.options:
            self.serial_settings = BAUD_OPTIONS[option]
        self.associated = False  #: the monitor accepted the association
        self.polling = False  #: the MDS create event was confirmed and polls sent
        self.associations = 0  #: associations completed (MDS create confirmed)
        #: The timeout the monitor negotiated (seconds of host silence it accepts).
        self.timeout = MIN_TIMEOUT_S
        self._invoke = 0
        self._ticks_waiting = 0
        self._frames_seen = 0
        self._silent_ticks = 0

    def status(self) -> str:
        line = super().status()
        session = (
            "polling" if self.polling else "associated" if self.associated else "no association"
        )
        return f"{line}; {session}"

    def _next_invoke(self) -> int:
        self._invoke = (self._invoke + 1) & 0xFFFF
        return self._invoke

    def _associate(self) -> bytes:
        self.associated = self.polling = False
        self._ticks_waiting = 0
        self._silent_ticks = 0
        return frame(ASSOCIATION_REQUEST)

    def _polls(self) -> bytes:
        return frame(ext_poll_request(self._next_invoke(), 1, NOM_MOC_VMO_METRIC_NU)) + frame(
            ext_poll_request(self._next_invoke(), 2, NOM_MOC_VMO_METRIC_SA_RT)
        )

    def greeting(self) -> bytes:
        return self._associate()

    def reply(self) -> bytes:
        out = bytearray()
        frames = self.parser.stats.frames_ok
        if frames != self._frames_seen:
            self._frames_seen = frames
            self._silent_ticks = 0
        for ev in self.parser.take_events():
            if ev.kind == "accept":
                self.associated = True
                self.timeout = negotiated_timeout(ev.min_poll_s)
                self.keep_alive_interval = min(KEEP_ALIVE_S, self.timeout / 3)
            elif ev.kind == "mds-create":
                out += frame(mds_create_result(ev.invoke_id, ev.event_time))
                if not self.polling:
                    self.associated = self.polling = True
                    self.associations += 1
                    labels = (PLETH_LABEL, CO2_LABEL)  # the pleth and the capnogram
                    out += frame(wave_priority_request(self._next_invoke(), labels))
                    out += self._polls()
                    self._set_state(ConnectionState.CONNECTED, "associated with the monitor")
            elif ev.kind == "refuse":
                self.associated = self.polling = False
                log.warning("%s: %s", self.source, self.parser.problem)
            elif ev.kind in ("abort", "release-request", "release-response"):
                if self.stopping:
                    continue
                if ev.kind == "release-request":
                    out += frame(RELEASE_RESPONSE)
                why = "aborted" if ev.kind == "abort" else "released"
                self._set_state(ConnectionState.RECONNECTING, f"the monitor {why} the association")
                out += self._associate()
        return bytes(out)

    def keep_alive(self) -> bytes:
        if self.polling:
            self._silent_ticks += 1
            if self._silent_ticks > 2:
                self._set_state(
                    ConnectionState.RECONNECTING, "the monitor stopped sending: associating again"
                )
                return frame(ABORT) + self._associate()
            return self._polls()
        self._ticks_waiting += 1
        if self._ticks_waiting >= 2:
            return self._associate()
        return b""

    def farewell(self) -> bytes:
        if not self.associated:
            return b""
        self.associated = self.polling = False
        return frame(RELEASE_REQUEST)
