"""Drivers for devices that stream over a serial port (or anything pyserial opens)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

import serial

from devices.base import Driver, DriverSettings, Publish, backoff_delays
from devices.capture import Kind
from devices.protocols.base import DeviceEmulator, Parser, SerialSettings
from devices.transport import describe_port_error, open_port
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import PortError
from kapmonitor.core.model import ConnectionState, Flag, Stamp

Tap = Callable[[Kind, bytes, Stamp], None]

#: The protocol's parser. Covariant: a driver is read for its parser, never handed one, so a
#: ``SerialDriver[NoninFormat2Parser]`` is a ``SerialDriver[Parser]`` to code that takes any.
P = TypeVar("P", bound=Parser, covariant=True)


class SerialDriver(Driver, Generic[P]):
    """Reads a port, stamps each chunk on arrival, and feeds the protocol's parser.

    Subclasses name their protocol: its parser (``class XDriver(SerialDriver[XParser])``, so
    :attr:`parser` has the protocol's own type), its line settings, and the emulator that lets
    the simulator play the same device.
    """

    #: Set on the class; not a ClassVar only because a ClassVar cannot hold a type variable.
    parser_class: type[P]
    emulator_class: ClassVar[type[DeviceEmulator] | None] = None
    #: The protocol's line settings on the class; on a driver, this device's (an option may
    #: choose others, e.g. ``intellivue+19200``): open the port with the driver's.
    serial_settings: SerialSettings
    #: Bytes per second the device sends; lets ``decode`` place items of a plain byte file in time.
    byte_rate: ClassVar[float]
    #: Seconds between :meth:`keep_alive` messages, for devices that stop streaming without one;
    #: the protocol's on the class, on a driver the one its device negotiated.
    keep_alive_interval: float | None = None

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

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        *,
        tap: Tap | None = None,
    ) -> None:
        super().__init__(spec, publish, settings)
        # One parser for the driver's life, so its error counters survive reconnects.
        self.parser = self.parser_class(self.source)
        self._port: serial.Serial | None = None
        #: Sees every byte read and written, with its stamp: what ``capture`` records.
        self._tap = tap
        #: Bytes read, and the parser's error count, since the last valid measurement: what
        #: tells silence from undecodable bytes (:meth:`_silence_detail`).
        self._bytes_since_valid = 0
        self._errors_at_valid = (0, 0)

    def status(self) -> str:
        """One line for a status bar or log: state, what arrived, what was damaged, problems."""
        st = self.parser.stats
        state = self.state or "not started"
        if self.state is ConnectionState.NO_DATA:
            state = f"{state} ({self._silence_detail()})"
        line = (
            f"{self.source}: {state}; {st.frames_ok} frames, "
            f"{st.checksum_errors} checksum errors, {st.framing_errors} framing errors, "
            f"{st.bytes_discarded} bytes skipped"
        )
        return f"{line}. {self.parser.problem}" if self.parser.problem else line

    def _silence_detail(self) -> str:
        """Why no measurement came since the last one: silence, or bytes that never decode
        (a device set to another data format, a noisy or flooded line)."""
        if not self._bytes_since_valid:
            return f"no data from the device for {self.no_data_timeout:g} s"
        now, then = self._error_counts(), self._errors_at_valid
        return (
            f"bytes arrive ({now[0] - then[0]} framing/checksum errors, {now[1] - then[1]} bytes "
            f"skipped) but none decode: wrong data format suspected — is the device set to "
            f"{self.name}?"
        )

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
        self.parser.begin(Stamp.now())  # what arrives from now on arrived after this
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
        """Read, parse and publish until the port fails or the driver stops.

        The watchdog counts measurements, not bytes: a device in the wrong data format, or a
        line full of noise the parser rightly rejects, sends bytes but no patient values, and
        is "no data" (a technical alarm) just as a silent one is. A value the parser flags
        out-of-range is no measurement either (as for the alarm engine's own silence watch):
        noise that decodes only into impossible values is not a device delivering data.
        """
        last_valid = last_keep_alive = time.monotonic()
        self._bytes_since_valid = 0
        self._errors_at_valid = self._error_counts()
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
                self._bytes_since_valid += len(data)
                items = self.parser.feed(data, stamp)
                if any(Flag.OUT_OF_RANGE not in item.flags for item in items):
                    last_valid = stamp.mono
                    self._bytes_since_valid = 0
                    self._errors_at_valid = self._error_counts()
                    if self.state is ConnectionState.NO_DATA:
                        self._set_state(ConnectionState.CONNECTED, stamp=stamp)
                for item in items:
                    self._publish(item)
                self._send(port, self.reply())
            if (
                self.state is ConnectionState.CONNECTED
                and time.monotonic() - last_valid >= self.no_data_timeout
            ):
                self._set_state(ConnectionState.NO_DATA, self._silence_detail())
        self._send(port, self.farewell())

    def _error_counts(self) -> tuple[int, int]:
        """Framing and checksum errors, and bytes skipped, so far."""
        st = self.parser.stats
        return st.framing_errors + st.checksum_errors, st.bytes_discarded

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
