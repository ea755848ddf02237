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

Reading (:class:`CaptureReader`) streams the file in large chunks, so a capture of any size is
decoded in bounded memory. A capture damaged inside (a bad kind or length) has no sync marker to
find again, so the reader looks for the next place where a record and the one after it both
make sense, skips to it and says how much it skipped; a header that is not the JSON object
above, or a record whose time is not a time (NaN, infinite, negative, over a year), is refused
in one sentence, since its data cannot be placed in time.
"""

from __future__ import annotations

import io
import json
import math
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

from devices.protocols.base import SerialSettings
from kapmonitor.core.errors import UserError

MAGIC = b"KAPCAP1\n"
FORMAT_VERSION = 1
_RECORD = struct.Struct("<BdI")
#: A record longer than this is corruption, not data (a serial read returns at most a few KB).
MAX_RECORD = 1 << 20
#: A record time beyond this (seconds from the start: a year) is corruption, not a capture.
MAX_TIME = 366 * 86400.0
#: A header line longer than this is not a header.
MAX_HEADER = 64 * 1024
#: Bytes read from the file at a time: a 50 MB capture is a few dozen reads.
READ_SIZE = 1 << 20


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


def read_capture(
    data: bytes, name: str = "capture", on_damage: Callable[[str], None] | None = None
) -> tuple[CaptureHeader, list[Record]]:
    """Parse a whole capture held in memory; raise a UserError naming ``name`` if it is not one.

    ``on_damage`` hears one sentence if damaged stretches were skipped.
    """
    reader = CaptureReader(io.BytesIO(data), name)
    records = list(reader.records())
    if reader.damage and on_damage is not None:
        on_damage(reader.damage)
    return reader.header, records


class CaptureReader:
    """Reads a capture from a binary stream, record by record, in bounded memory.

    ``already_read`` is what the caller took from the stream's start to look at it (its first
    bytes, to tell a capture from a plain byte file).
    """

    def __init__(self, stream: BinaryIO, name: str = "capture", *, already_read: bytes = b""):
        self.name = name
        self._stream = stream
        self._buf = bytearray(already_read)
        self._pos = 0  #: where reading stands in ``_buf``
        self._base = 0  #: the file offset of ``_buf[0]``
        self._eof = False
        self._last_t = 0.0  #: the time of the last intact record
        self._read_any = False
        #: (file offset, bytes) of each damaged stretch skipped.
        self._skipped: list[tuple[int, int]] = []
        self.header = self._read_header()

    @property
    def offset(self) -> int:
        """The file offset reading stands at."""
        return self._base + self._pos

    @property
    def damage(self) -> str | None:
        """One sentence on what was skipped as damaged, once the records have been read."""
        if not self._skipped:
            return None
        total = sum(n for _, n in self._skipped)
        first = self._skipped[0][0]
        where = (
            f"at byte {first}"
            if len(self._skipped) == 1
            else f"in {len(self._skipped)} places, the first at byte {first}"
        )
        return (
            f"capture '{self.name}' is damaged: {total} bytes skipped {where}; "
            "the intact records after the damage were read"
        )

    def records(self) -> Iterator[Record]:
        """The records in file order; damage is skipped (see :attr:`damage`); a torn last
        record ends them."""
        size = _RECORD.size
        while self._fill(size):
            kind, t, length = _RECORD.unpack_from(self._buf, self._pos)
            if kind not in Kind._value2member_map_ or length > MAX_RECORD:
                if not self._resync():
                    return
                continue
            if not _is_time(t):
                raise UserError(
                    f"capture '{self.name}' has an impossible time ({t!r} s) in its record at "
                    f"byte {self.offset}: it cannot be placed in time"
                )
            if not self._fill(size + length):
                return  # a torn tail: everything before it stands
            start = self._pos + size
            record = Record(Kind(kind), t, bytes(self._buf[start : start + length]))
            self._pos = start + length
            self._last_t = t
            self._read_any = True
            yield record

    def _resync(self) -> bool:
        """Skip damaged bytes to the next place a record can start; False if none is left."""
        damaged_at = self.offset
        self._pos += 1
        while self._fill(_RECORD.size) and not self._intact_here():
            self._pos += 1
        self._skipped.append((damaged_at, self.offset - damaged_at))
        if self._fill(_RECORD.size):
            return True
        if not self._read_any:
            raise UserError(
                f"capture '{self.name}' is damaged from its first record (byte {damaged_at}) "
                "to its end: no record in it can be read"
            )
        return False

    def _intact_here(self) -> bool:
        """Whether a record starts at the reading position: it and the next one (or the end of
        the file right after it) make sense, with times that do not go backwards."""
        size = _RECORD.size
        kind, t, length = _RECORD.unpack_from(self._buf, self._pos)
        if not self._plausible(kind, t, length, self._last_t):
            return False
        if not self._fill(2 * size + length):
            return self._eof and len(self._buf) - self._pos == size + length
        kind2, t2, length2 = _RECORD.unpack_from(self._buf, self._pos + size + length)
        return self._plausible(kind2, t2, length2, t)

    @staticmethod
    def _plausible(kind: int, t: float, length: int, after: float) -> bool:
        return (
            kind in Kind._value2member_map_ and length <= MAX_RECORD and _is_time(t) and t >= after
        )

    def _read_header(self) -> CaptureHeader:
        self._fill(len(MAGIC))
        if bytes(self._buf[: len(MAGIC)]) != MAGIC:
            raise UserError(
                f"'{self.name}' is not a kapmonitor capture (it does not start with KAPCAP1)"
            )
        self._pos = len(MAGIC)
        end = self._buf.find(b"\n", self._pos)
        while end < 0 and len(self._buf) - self._pos <= MAX_HEADER:
            if not self._fill(len(self._buf) - self._pos + 1):
                break
            end = self._buf.find(b"\n", self._pos)
        if end < 0 or end - self._pos > MAX_HEADER:
            raise UserError(f"capture '{self.name}' has a damaged header: its line does not end")
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 1
        return _parse_header(line, self.name)

    def _fill(self, need: int) -> bool:
        """Have ``need`` bytes from the reading position in the buffer; False if the file ends
        first. Bytes already read are dropped, so the buffer stays near :data:`READ_SIZE`."""
        while len(self._buf) - self._pos < need and not self._eof:
            if self._pos >= READ_SIZE:
                del self._buf[: self._pos]
                self._base += self._pos
                self._pos = 0
            chunk = self._stream.read(READ_SIZE)
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
        return len(self._buf) - self._pos >= need


def _is_time(t: float) -> bool:
    return math.isfinite(t) and 0.0 <= t <= MAX_TIME


#: What each header field must be.
_HEADER_FIELDS = {"protocol": str, "port": str, "started": str, "serial": dict}
_JSON_KINDS = {type(None): "null", bool: "true or false", int: "a number", float: "a number",
               str: "a string", list: "a list"}  # fmt: skip


def _parse_header(line: bytes, name: str) -> CaptureHeader:
    def damaged(reason: str) -> UserError:
        return UserError(f"capture '{name}' has a damaged header: {reason}")

    try:
        meta = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise damaged("it is not JSON") from None
    if not isinstance(meta, dict):
        raise damaged(f"it is {_JSON_KINDS.get(type(meta), 'not an object')}, not a JSON object")
    if type(meta.get("format")) is not int or meta["format"] != FORMAT_VERSION:
        raise damaged(f"format {meta.get('format')!r} is not {FORMAT_VERSION}")
    for key, kind in _HEADER_FIELDS.items():
        if not isinstance(meta.get(key), kind):
            raise damaged(f"'{key}' is missing or not a {kind.__name__}")
    return CaptureHeader(**{key: meta[key] for key in _HEADER_FIELDS})
