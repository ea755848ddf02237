"""The simulator on a wire: a device emulator writing its protocol to a pty or a real port.

``kapmonitor simulate --pty`` makes a pseudo-terminal whose other end any program opens as a
serial port, so the host side runs exactly as with hardware: pyserial, the reader thread, the
parser. Like a real device, the emulator transmits whether or not anyone listens: when nobody
reads, bytes that do not fit the line's buffer are lost rather than blocking the simulation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import serial

from devices.capture import Kind, Record
from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.transport import open_port


class Endpoint(ABC):
    """The device's end of a line."""

    dropped = 0  #: bytes lost because nobody was reading

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read(self) -> bytes:
        """What the host has sent, without waiting."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def unplug(self) -> None:
        """Simulate pulling the cable."""

    @abstractmethod
    def replug(self) -> None:
        """Undo :meth:`unplug`."""


class PtyEndpoint(Endpoint):
    """The device end of a pseudo-terminal; the host opens :attr:`path`.

    With ``link``, a symlink at that path always points at the current pty, so a host configured
    with the link finds the device again after a simulated unplug (which makes a new pty).
    """

    def __init__(self, link: Path | None = None) -> None:
        self.link = link
        self.path = ""
        self._master = self._slave = -1
        self.dropped = 0
        self._open()

    def _open(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw mode on the terminal side: no echo, no line editing, all 256 byte values pass.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.path)
            tmp.replace(self.link)

    @property
    def host_path(self) -> str:
        return str(self.link) if self.link is not None else self.path

    def write(self, data: bytes) -> None:
        if self._master < 0:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                self.dropped += len(view)
                return
            view = view[n:]

    def read(self) -> bytes:
        if self._master < 0:
            return b""
        try:
            return os.read(self._master, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def unplug(self) -> None:
        # Closing both ends makes the host's reads fail, as a USB adapter pulled out does.
        self.close()

    def replug(self) -> None:
        self._open()


class PortEndpoint(Endpoint):
    """The device end of a real serial line or URL (a null-modem cable, socat, a TCP server)."""

    def __init__(self, url: str, settings: SerialSettings) -> None:
        self.url = url
        self.dropped = 0
        self._port = open_port(url, settings, timeout=0)
        self._port.write_timeout = 0.5
        self._silent = False

    def write(self, data: bytes) -> None:
        if self._silent:
            return
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            self.dropped += len(data)

    def read(self) -> bytes:
        return self._port.read(self._port.in_waiting or 1)

    def close(self) -> None:
        self._port.close()

    def unplug(self) -> None:
        # A port we do not own cannot vanish; the line falls silent instead.
        self._silent = True

    def replug(self) -> None:
        self._silent = False


def serve(
    emulator: DeviceEmulator,
    endpoint: Endpoint,
    *,
    speed: float = 1.0,
    start: float = 0.0,
    stop: threading.Event | None = None,
    on_replug=None,
) -> float:
    """Stream the emulator's bytes in (scaled) real time until the session ends or ``stop``.

    Returns the session time reached. ``on_replug(endpoint)`` is called after a simulated
    unplug ends, e.g. to print the new pty path.
    """
    stop = stop or threading.Event()
    session = emulator.session
    started = time.monotonic()
    t = start  # session time to begin at: a tester can go straight to an incident
    plugged = True
    while not stop.is_set() and t < session.duration:
        t1 = min(t + emulator.tick, session.duration)
        delay = started + (t1 - start) / speed - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        connected = session.connected(t)
        if connected != plugged:
            plugged = connected
            if plugged:
                endpoint.replug()
                if on_replug is not None:
                    on_replug(endpoint)
            else:
                endpoint.unplug()
        if plugged:
            host_bytes = endpoint.read()
            if host_bytes:
                endpoint.write(emulator.on_host_bytes(host_bytes, t))
            endpoint.write(emulator.emit(t, t1))
        t = t1
    return t


def replay(
    records: Sequence[Record],
    endpoint: Endpoint,
    *,
    speed: float = 1.0,
    stop: threading.Event | None = None,
) -> int:
    """Play a capture's device bytes with their original timing (scaled by ``speed``).

    What the host sends is read and dropped: a recording cannot answer. Returns the number of
    device bytes played.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    played = 0
    for record in records:
        if record.kind is not Kind.FROM_DEVICE:
            continue
        delay = started + record.t / speed - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        if stop.is_set():
            break
        endpoint.read()
        endpoint.write(record.data)
        played += len(record.data)
    return played
