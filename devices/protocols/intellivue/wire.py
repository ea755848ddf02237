"""The wire: framing (FCS, transparency, frames) and the FLOAT and AbsoluteTime encodings."""

from __future__ import annotations

import binascii
import math
from datetime import UTC, datetime

from devices.protocols.intellivue.nomenclature import FLOAT_NAN, FLOAT_NINF, FLOAT_NRES, FLOAT_PINF
from kapmonitor.core.model import Flag

BOF, EOF, ESC = 0xC0, 0xC1, 0x7D
_BOF, _EOF, _ESC = b"\xc0", b"\xc1", b"\x7d"
HEADER = b"\x11\x01"  #: protocol id (IntelliVue data export) and message type (AS3 data)
MAX_WIRE = 4096  #: a longer frame is damage (the monitor's messages are under 1,500 bytes)

# --- framing --------------------------------------------------------------------------------------

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def fcs(data: bytes) -> int:
    """CRC-16/X.25 of ``data`` as the 16-bit FCS value (sent LSB first)."""
    crc = binascii.crc_hqx(data.translate(_REV), 0xFFFF)
    crc = (_REV[crc & 0xFF] << 8) | _REV[crc >> 8]  # reflect the 16-bit result
    return crc ^ 0xFFFF


def fcs_bytes(data: bytes) -> bytes:
    """The two FCS bytes as they follow ``data`` on the wire."""
    return fcs(data).to_bytes(2, "little")


def escape(data: bytes) -> bytes:
    """Transparency: C0, C1 and 7D become 7D, b ^ 0x20."""
    if b"\x7d" in data:
        data = data.replace(b"\x7d", b"\x7d\x5d")
    if b"\xc0" in data:
        data = data.replace(b"\xc0", b"\x7d\xe0")
    if b"\xc1" in data:
        data = data.replace(b"\xc1", b"\x7d\xe1")
    return data


def unescape(body: bytes) -> bytes | None:
    """The inverse of :func:`escape`; None for a frame abort (a 7D right before C1)."""
    parts = body.split(_ESC)
    if len(parts) == 1:
        return body
    if not parts[-1]:
        return None
    return parts[0] + b"".join(bytes((p[0] ^ 0x20,)) + p[1:] if p else b"" for p in parts[1:])


def frame(user_data: bytes) -> bytes:
    """One frame on the wire: header with length, user data, FCS, escaped, between C0 and C1."""
    content = HEADER + len(user_data).to_bytes(2, "big") + user_data
    return b"\xc0" + escape(content + fcs_bytes(content)) + b"\xc1"


# --- FLOAT, time ----------------------------------------------------------------------------------


def decode_float(raw: int) -> float:
    """An IntelliVue FLOAT as a Python float: NaN for NaN and NRes, +-inf for +-INF."""
    m = raw & 0xFFFFFF
    if m in (FLOAT_NAN, FLOAT_NRES):
        return math.nan
    if m == FLOAT_PINF:
        return math.inf
    if m == FLOAT_NINF:
        return -math.inf
    if m >= 0x800000:
        m -= 0x1000000
    e = raw >> 24
    if e >= 0x80:
        e -= 0x100
    return m / 10 ** (-e) if e < 0 else float(m * 10**e)


def float_value(raw: int) -> tuple[float | None, Flag | None]:
    """A FLOAT as kapmonitor carries it: None for a missing value, with OUT_OF_RANGE for
    NRes and +-INF (the monitor has a value it cannot express)."""
    m = raw & 0xFFFFFF
    if m == FLOAT_NAN:
        return None, None
    if m in (FLOAT_NRES, FLOAT_PINF, FLOAT_NINF):
        return None, Flag.OUT_OF_RANGE
    return decode_float(raw), None


def encode_float(value: float | None, exponent: int = 0) -> int:
    """``value`` as a FLOAT with the given exponent (NaN, None: the NaN marker)."""
    if value is None or math.isnan(value):
        return FLOAT_NAN
    if math.isinf(value):
        return FLOAT_PINF if value > 0 else FLOAT_NINF
    scale: float = 10 ** (-exponent)
    m = round(value * scale)
    if not -0x7FFFFD <= m <= 0x7FFFFD:
        return FLOAT_NRES | ((exponent & 0xFF) << 24)
    return ((exponent & 0xFF) << 24) | (m & 0xFFFFFF)


def _bcd(b: int) -> int:
    hi, lo = b >> 4, b & 0x0F
    if hi > 9 or lo > 9:
        raise ValueError("not BCD")
    return hi * 10 + lo


def decode_abs_time(raw: bytes) -> float | None:
    """An AbsoluteTime (8 BCD bytes: century, year, month, day, hour, minute, second, 1/100 s)
    as seconds on the monitor's clock (read as UTC); None when not set (all FF) or not valid."""
    try:
        c, y, mo, d, h, mi, s, f = (_bcd(b) for b in raw)
        return datetime(c * 100 + y, mo, d, h, mi, s, f * 10000, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def encode_abs_time(seconds: float | None) -> bytes:
    """Seconds on the monitor's clock as an AbsoluteTime; None gives "not set" (all FF)."""
    if seconds is None:
        return b"\xff" * 8
    dt = datetime.fromtimestamp(seconds, UTC)
    parts = (
        dt.year // 100,
        dt.year % 100,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond // 10000,
    )
    return bytes((p // 10) << 4 | (p % 10) for p in parts)
