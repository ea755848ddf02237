"""Opening a serial port or URL with a protocol's own line settings, and saying plainly why not.

pyserial's ``serial_for_url`` gives us device paths (/dev/ttyUSB0, COM3) and its URL handlers
(loop://, socket://host:port, rfc2217://host:port, spy://) with one API, so the same driver code
runs against real hardware, network serial servers and test loopbacks.
"""

from __future__ import annotations

import errno
import os

import serial
import serial.tools.list_ports

from devices.protocols.base import SerialSettings
from kapmonitor.core.errors import PortError

#: pyserial read timeout: how often a reader thread looks up to check for stop and "no data".
READ_TIMEOUT = 0.1


def open_port(
    url: str, settings: SerialSettings, *, timeout: float = READ_TIMEOUT
) -> serial.Serial:
    """Open ``url`` for a protocol; raise :class:`PortError` with one plain sentence on failure."""
    try:
        port = serial.serial_for_url(
            url,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            rtscts=settings.rtscts,
            timeout=timeout,
            write_timeout=1.0,
            # A second program on the same port would steal bytes from ours: refuse to share.
            exclusive=True if _is_device_path(url) else None,
        )
    except ValueError as exc:
        raise PortError(f"'{url}' cannot be opened: {_first_line(exc)}") from None
    except (serial.SerialException, OSError) as exc:
        if (settings.parity != "N" or settings.rtscts) and _is_pty(url):
            # A pseudo-terminal has no line: Linux refuses even parity together with RTS/CTS
            # on it (EINVAL), and it carries the bytes the same without them. This lets
            # ``simulate --pty`` stand in for a device that needs them (ge-s5).
            plain = SerialSettings(settings.baudrate, settings.bytesize, "N", settings.stopbits)
            return open_port(url, plain, timeout=timeout)
        raise PortError(describe_port_error(url, exc)) from None
    return port


def _is_device_path(url: str) -> bool:
    return "://" not in url


def _is_pty(url: str) -> bool:
    """Whether ``url`` is (a link to) the terminal side of a pseudo-terminal."""
    return _is_device_path(url) and os.path.realpath(url).startswith(("/dev/pts/", "/dev/ttyp"))


def describe_port_error(url: str, exc: BaseException) -> str:
    """One sentence a nurse or tester can act on, for an error opening or reading a port."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code is None:
        # pyserial wraps OS errors in SerialException without errno for some handlers.
        for name in ("ENOENT", "EACCES", "EBUSY", "EAGAIN", "ECONNREFUSED", "EIO"):
            if os.strerror(getattr(errno, name)) in text:
                code = getattr(errno, name)
                break
    if code == errno.ENOENT:
        return f"port '{url}' does not exist: is the device plugged in? {_available_ports()}"
    if code == errno.EACCES:
        return (
            f"no permission to open port '{url}': on Linux add your user to the 'dialout' group "
            "and log in again"
        )
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        return f"port '{url}' is busy: another program is using it"
    if code == errno.ECONNREFUSED:
        return f"nothing is listening at '{url}': the connection was refused"
    if code == errno.EIO or "returned no data" in text:
        return f"port '{url}' stopped answering: the device was unplugged or switched off"
    return f"port '{url}' cannot be used: {_first_line(exc)}"


def _available_ports() -> str:
    ports = [p.device for p in serial.tools.list_ports.comports()]
    if not ports:
        return "No serial ports are present on this computer."
    return "Serial ports present: " + ", ".join(sorted(ports)) + "."


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
