"""Drivers for devices that stream over a serial port (or anything pyserial opens)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import ClassVar

import serial

from devices.base import Driver, backoff_delays
from devices.capture import Kind
from devices.protocols.base import DeviceEmulator, Parser, SerialSettings
from devices.transport import describe_port_error, open_port
from kapmonitor.errors import PortError
from kapmonitor.model import ConnectionState, Stamp

Tap = Callable[[Kind, bytes, Stamp], None]


class SerialDriver(Driver):
    """Reads a port, stamps each chunk on arrival, and feeds the protocol's parser.

    Subclasses name their protocol: its parser, its line settings, and the emulator that lets the
    simulator play the same device.
    """

    parser_class: ClassVar[type[Parser]]
    emulator_class: ClassVar[type[DeviceEmulator] | None] = None
    serial_settings: ClassVar[SerialSettings]
    #: Bytes per second the device sends; lets ``decode`` place items of a plain byte file in time.
    byte_rate: ClassVar[float]
    #: Seconds between :meth:`keep_alive` messages, for devices that stop streaming without one.
    keep_alive_interval: ClassVar[float | None] = None

    def greeting(self) -> bytes:
        """What the host sends right after connecting (a start or set-format command)."""
        return b""

    def keep_alive(self) -> bytes:
        """What the host sends every :attr:`keep_alive_interval` seconds."""
        return b""

    def reply(self) -> bytes:
        """What the host answers right after a read, for protocols with a session handshake
        (the parser has seen the device ask for it)."""
        return b""

    def farewell(self) -> bytes:
        """What the host sends before it closes the port on stop (e.g. a release request)."""
        return b""

    def __init__(self, *args, tap: Tap | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # One parser for the driver's life, so its error counters survive reconnects.
        self.parser = self.parser_class(self.source)
        self._port: serial.Serial | None = None
        #: Sees every byte read and written, with its stamp: what ``capture`` records.
        self._tap = tap

    def status(self) -> str:
        """One line for a status bar or log: state, what arrived, what was damaged, problems."""
        st = self.parser.stats
        line = (
            f"{self.source}: {self.state or 'not started'}; {st.frames_ok} frames, "
            f"{st.checksum_errors} checksum errors, {st.framing_errors} framing errors, "
            f"{st.bytes_discarded} bytes skipped"
        )
        return f"{line}. {self.parser.problem}" if self.parser.problem else line

    def open(self) -> None:
        super().open()
        try:
            self._port = self._connect()
        except PortError as exc:
            self._set_state(ConnectionState.DISCONNECTED, str(exc))
            raise

    def _connect(self) -> serial.Serial:
        port = open_port(self.spec.target, self.serial_settings)
        # Bytes buffered before we opened were stamped by nobody; their time is unknown.
        port.reset_input_buffer()
        self._set_state(ConnectionState.CONNECTED)
        return port

    def _run(self) -> None:
        delays = backoff_delays()
        while not self.stopping:
            if self._port is None:
                first = self.state in (None, ConnectionState.CONNECTING)
                self._set_state(
                    ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING
                )
                try:
                    self._port = self._connect()
                except PortError:
                    self._stop.wait(next(delays))
                    continue
            delays = backoff_delays()
            try:
                self._read_until_error(self._port)
            except (serial.SerialException, OSError) as exc:
                self._set_state(
                    ConnectionState.DISCONNECTED, describe_port_error(self.spec.target, exc)
                )
            finally:
                self._close_port()
        self._close_port()

    def _read_until_error(self, port: serial.Serial) -> None:
        last_data = last_keep_alive = time.monotonic()
        self._send(port, self.greeting())
        while not self.stopping:
            if (
                self.keep_alive_interval is not None
                and time.monotonic() - last_keep_alive >= self.keep_alive_interval
            ):
                self._send(port, self.keep_alive())
                last_keep_alive = time.monotonic()
            data = port.read(port.in_waiting or 1)
            if data:
                stamp = Stamp.now()
                if self._tap is not None:
                    self._tap(Kind.FROM_DEVICE, data, stamp)
                last_data = stamp.mono
                if self.state is ConnectionState.NO_DATA:
                    self._set_state(ConnectionState.CONNECTED, stamp=stamp)
                for item in self.parser.feed(data, stamp):
                    self._publish(item)
                self._send(port, self.reply())
            elif (
                self.state is ConnectionState.CONNECTED
                and time.monotonic() - last_data >= self.no_data_timeout
            ):
                self._set_state(
                    ConnectionState.NO_DATA,
                    f"no data from the device for {self.no_data_timeout:g} s",
                )
        self._send(port, self.farewell())

    def _send(self, port: serial.Serial, data: bytes) -> None:
        if data:
            port.write(data)
            if self._tap is not None:
                self._tap(Kind.FROM_HOST, data, Stamp.now())

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
