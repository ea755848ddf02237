"""The Contec driver: a CMS50D+/E on its USB cable, kept streaming by the host."""

from __future__ import annotations

from devices.protocols.contec.emulator import ContecEmulator
from devices.protocols.contec.parser import ContecParser
from devices.protocols.contec.wire import BYTE_RATE, KEEP_ALIVE_COMMAND, START_COMMAND
from devices.serial_driver import SerialDriver
from kapmonitor.core.model import ConnectionState


class ContecDriver(SerialDriver[ContecParser]):
    """A Contec CMS50D+/E (protocol V7.0) on its USB cable (``contec@/dev/ttyUSB0``).

    Sends the start command on connect and the keep-alive every second, without which the device
    stops streaming. While the device is silent (NO_DATA), the periodic message is the start
    command instead: the USB bridge is in the cable, so the port stays open when the oximeter is
    switched off and on or has stopped for a missed keep-alive, and only a new start command gets
    it streaming again (AndreasZachariae/cms50dplus-driver re-sends A1 as its keep-alive, so a
    repeated start does no harm).
    """

    name = "contec"
    parser_class = ContecParser
    emulator_class = ContecEmulator
    serial_settings = ContecParser.SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = 1.0

    def greeting(self) -> bytes:
        return START_COMMAND

    def keep_alive(self) -> bytes:
        if self.state is ConnectionState.NO_DATA:
            return START_COMMAND
        return KEEP_ALIVE_COMMAND
