"""Raw device traffic with its arrival times: the capture file format.

A capture lets a tester reproduce a real device's traffic, an incident included, on any machine:
``kapmonitor capture`` writes one, ``kapmonitor decode`` reads it, ``kapmonitor simulate
--replay`` plays it back on a pty with its original timing.

Format (version 1), all little-endian::

    b"KAPCAP1\\n"                         magic, 8 bytes
    header JSON, one line, ending b"\\n"   {"format": 1, "protocol": "nonin2", "port": "...",
                                          "started": "2026-11-21T10:56:57.123+00:00",
                                          "serial": {"baudrate": 9600, ...}}
    records, until the end of the file:
        u8   kind     0 = bytes from the device, 1 = bytes the host sent, 2 = a note (UTF-8)
        f64  t        seconds since the capture started (monotonic clock)
        u32  length
        length bytes

Records are appended and flushed as they arrive, so a capture cut short by a crash or a full
disk is readable up to its last whole record; a torn last record is ignored.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

from devices.protocols.base import SerialSettings
from kapmonitor.errors import UserError

MAGIC = b"KAPCAP1\n"
FORMAT_VERSION = 1
_RECORD = struct.Struct("<BdI")
#: A record longer than this is corruption, not data (a serial read returns at most a few KB).
MAX_RECORD = 1 << 20


class Kind(IntEnum):
    FROM_DEVICE = 0
    FROM_HOST = 1
    NOTE = 2


@dataclass(frozen=True)
class Record:
    kind: Kind
    t: float
    data: bytes


@dataclass(frozen=True)
class CaptureHeader:
    protocol: str
    port: str
    started: str  #: ISO 8601 wall-clock time of t = 0
    serial: dict[str, object]


class CaptureWriter:
    """Appends records to a capture file, flushing each so a crash loses at most one.

    Safe to call from the reader thread (bytes) and the main thread (notes) at once.
    """

    def __init__(self, path: Path, protocol: str, port: str, settings: SerialSettings) -> None:
        header = CaptureHeader(
            protocol, port, datetime.now(UTC).isoformat(timespec="milliseconds"), asdict(settings)
        )
        try:
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise UserError(f"cannot write the capture '{path}': {exc.strerror}") from None
        self._file.write(MAGIC)
        self._file.write(json.dumps({"format": FORMAT_VERSION, **asdict(header)}).encode() + b"\n")
        self._file.flush()
        self.path = path
        self.bytes_from_device = 0
        self._lock = threading.Lock()

    def write(self, kind: Kind, t: float, data: bytes) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.write(_RECORD.pack(kind, t, len(data)) + data)
            self._file.flush()
            if kind is Kind.FROM_DEVICE:
                self.bytes_from_device += len(data)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def is_capture(data: bytes) -> bool:
    return data.startswith(MAGIC)


def read_capture(data: bytes, name: str = "capture") -> tuple[CaptureHeader, list[Record]]:
    """Parse a whole capture; raise a UserError naming ``name`` if it is not one."""
    if not is_capture(data):
        raise UserError(f"'{name}' is not a kapmonitor capture (it does not start with KAPCAP1)")
    end = data.find(b"\n", len(MAGIC))
    try:
        meta = json.loads(data[len(MAGIC) : end])
        if meta.pop("format") != FORMAT_VERSION:
            raise ValueError("unknown format version")
        header = CaptureHeader(**meta)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"capture '{name}' has a damaged header: {exc}") from None
    return header, list(_records(data, end + 1))


def _records(data: bytes, pos: int) -> Iterator[Record]:
    while pos + _RECORD.size <= len(data):
        kind, t, length = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        if kind not in Kind._value2member_map_ or length > MAX_RECORD or pos + length > len(data):
            return  # a torn or damaged tail: everything before it stands
        yield Record(Kind(kind), t, data[pos : pos + length])
        pos += length
