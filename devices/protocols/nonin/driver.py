"""The Nonin drivers: a Nonin oximeter on a serial port, in Data Format 2, 7 or 8."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from devices.base import DriverSettings, Publish
from devices.protocols.nonin.emulator import (
    NoninFormat2Emulator,
    NoninFormat7Emulator,
    NoninFormat8Emulator,
)
from devices.protocols.nonin.parser import (
    NoninFormat2Parser,
    NoninFormat7Parser,
    NoninFormat8Parser,
    _NoninParser,
)
from devices.protocols.nonin.wire import (
    ACK,
    BYTE_RATE,
    BYTE_RATE8,
    NAK,
    REPLY_WAIT,
    SERIAL,
    SET_FORMAT_OPTION,
    set_format_command,
)
from devices.serial_driver import SerialDriver, Tap
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Stamp

log = logging.getLogger(__name__)


class _NoninDriver(SerialDriver[_NoninParser]):
    """A Nonin oximeter on a serial port; option ``set-format`` asks it for this driver's format.

    Without the option the host sends nothing, and the device must already be set to the format
    (it keeps it in non-volatile memory).
    """

    serial_settings = SERIAL
    options: ClassVar[Mapping[str, str]] = {
        SET_FORMAT_OPTION: "ask the oximeter for this driver's data format on connect"
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
        #: The answer to the last set-format command: "accepted", "refused" or "no answer".
        self.format_answer: str | None = None
        self._packets_at_greeting = 0

    @property
    def data_format(self) -> int:
        return self.parser_class.data_format

    def greeting(self) -> bytes:
        if SET_FORMAT_OPTION not in self.spec.options:
            return b""
        self.format_answer = None
        self._packets_at_greeting = self.parser.stats.packets_ok
        self.parser.expect_reply(Stamp.now().mono + REPLY_WAIT, self._on_reply)
        return set_format_command(self.data_format)

    def _on_reply(self, reply: bytes | None) -> None:
        fmt = self.data_format
        if reply == ACK:
            self.format_answer = "accepted"
            log.info("%s: the oximeter accepted data format %d", self.source, fmt)
        elif reply == NAK:
            self.format_answer = "refused"
            log.warning(
                "%s: the oximeter refused data format %d: set it on the device", self.source, fmt
            )
        else:
            self.format_answer = "no answer"
            if self.parser.stats.packets_ok > self._packets_at_greeting:
                log.info(
                    "%s: no answer to the request for data format %d, but its data arrive",
                    self.source,
                    fmt,
                )
            else:
                log.warning(
                    "%s: the oximeter did not answer the request for data format %d; "
                    "if no data arrive, set it on the device",
                    self.source,
                    fmt,
                )


class Nonin2Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 2 (``nonin2@PORT``, ``nonin2+set-format@PORT``)."""

    name = "nonin2"
    parser_class = NoninFormat2Parser
    emulator_class = NoninFormat2Emulator
    byte_rate = BYTE_RATE


class Nonin7Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 7 (``nonin7@PORT``, ``nonin7+set-format@PORT``)."""

    name = "nonin7"
    parser_class = NoninFormat7Parser
    emulator_class = NoninFormat7Emulator
    byte_rate = BYTE_RATE


class Nonin8Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 8 (``nonin8@PORT``, ``nonin8+set-format@PORT``)."""

    name = "nonin8"
    parser_class = NoninFormat8Parser
    emulator_class = NoninFormat8Emulator
    byte_rate = BYTE_RATE8
