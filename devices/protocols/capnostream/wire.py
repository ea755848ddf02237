"""Capnostream's wire: message framing with its escapes and checksum, the command and response
codes, the numerics layout, the status and alarm bits, and the encoders both sides use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 0x85  #: starts every message, both ways; never appears inside one
ESCAPE = 0x80  #: ``80 00`` stands for 0x80 and ``80 05`` for 0x85 inside a message
_ESCAPED = {0x00: 0x80, 0x05: 0x85}

WAVE_RATE = 20.0  #: CO2 wave messages a second (OpenICE: 50 ms a sample)
NUMERICS_PERIOD = 1.0  #: seconds between periodic numerics messages
#: A CO2 wave message on the wire (header, length, code, 4 bytes, checksum) and a numerics one,
#: without escapes: what the device sends a second, to count back by.
WAVE_BYTES = 8
NUMERICS_BYTES = 31
BYTE_RATE = WAVE_RATE * WAVE_BYTES + NUMERICS_BYTES / NUMERICS_PERIOD

# Host -> device commands (OpenICE ``Capnostream.Command``).
CMD_ENABLE_COMM = 1
CMD_DISABLE_COMM = 2
CMD_INQUIRE_NUMERIC = 3
CMD_START_RT = 4
CMD_STOP_RT = 5
CMD_LINK_IS_ACTIVE = 6

# Device -> host responses (OpenICE ``Capnostream.Response``, capnoReader's ``cap_codes``).
RSP_CO2_WAVE = 0
RSP_NUMERICS = 1
RSP_NUMERIC_ITEM = 3
RSP_DEVICE_ID = 4
#: Message length (code + payload) of the responses whose layout is known; another length with
#: one of these codes is damage.
LENGTHS = {RSP_CO2_WAVE: 5, RSP_NUMERICS: 28, RSP_NUMERIC_ITEM: 2, RSP_DEVICE_ID: 31}

# Numeric items for "inquire numeric item" (the command's one argument).
ITEM_ETCO2, ITEM_FICO2, ITEM_RR, ITEM_SPO2, ITEM_PULSE = 1, 2, 3, 4, 5

INVALID = 0xFF  #: a numeric the device has no value for

# CO2 wave "fast status" bits.
FAST_INVALID = 0x01
FAST_INITIALIZATION = 0x02
FAST_OCCLUSION = 0x04  #: occlusion in the gas input line: the sampling line is blocked
FAST_END_OF_BREATH = 0x08
FAST_SFM = 0x10  #: self-test / flow measurement in progress
FAST_PURGING = 0x20
FAST_LINE_OFF = 0x40  #: FilterLine not connected: the sampling line is off
FAST_MALFUNCTION = 0x80

# Numerics: CO2 active alarms.
CO2_NO_BREATH = 0x01
CO2_ETCO2_HIGH = 0x02
CO2_ETCO2_LOW = 0x04
CO2_RR_HIGH = 0x08
CO2_RR_LOW = 0x10
CO2_FICO2_HIGH = 0x20
# Numerics: SpO2 active alarms.
SPO2_PULSE_NOT_FOUND = 0x01
SPO2_SENSOR_OFF = 0x20
SPO2_SENSOR_DISCONNECTED = 0x40
# Numerics: extended CO2 status (OpenICE's bits; see the package notes).
EXT_CHECK_CALIBRATION = 0x01
EXT_CHECK_FLOW = 0x02
EXT_PUMP_OFF = 0x04

UNITS_MMHG, UNITS_KPA, UNITS_PERCENT = 1, 2, 3

#: What the device answers "enable communication" with: its id and software version, 30 ASCII
#: characters (the example in OpenICE's ``Capnostream.main``).
DEVICE_ID = b"V45.67 02/24/2008 B355987654  "


def checksum(body: bytes) -> int:
    """XOR of the length, code and payload bytes (unescaped: an escape pair XORs to the byte
    it stands for, so OpenICE's sum over the pairs is the same number)."""
    x = 0
    for b in body:
        x ^= b
    return x


def escape(data: bytes) -> bytes:
    """``data`` as it goes on the wire after the header."""
    if ESCAPE not in data and HEADER not in data:
        return data
    return data.replace(b"\x80", b"\x80\x00").replace(b"\x85", b"\x80\x05")


def encode_message(code: int, payload: bytes = b"") -> bytes:
    """One message: header, then length (code + payload), code, payload, checksum, escaped."""
    if not 0 <= code <= 0xFF or len(payload) > 254:
        raise ValueError("a message has a one-byte code and at most 254 payload bytes")
    body = bytes((len(payload) + 1, code)) + payload
    return bytes((HEADER,)) + escape(body + bytes((checksum(body),)))


def command(code: int, *args: int) -> bytes:
    """A host command (its arguments one byte each)."""
    return encode_message(code, bytes(args))


ENABLE_COMM = command(CMD_ENABLE_COMM)  #: 85 01 01 00
DISABLE_COMM = command(CMD_DISABLE_COMM)
START_RT = command(CMD_START_RT)  #: 85 01 04 05
STOP_RT = command(CMD_STOP_RT)
LINK_IS_ACTIVE = command(CMD_LINK_IS_ACTIVE)


def unescape_frame(buf: bytes, start: int) -> tuple[int, bytes, int]:
    """Read the message whose header is at ``buf[start]``.

    Returns ``(status, body, end)``: status 1 with the unescaped length, code, payload and
    checksum in ``body`` and ``end`` the index after the message; 0 when ``buf`` ends first
    (wait for more); -1 when it is broken (a header or a bad escape inside it, a length of 0).
    """
    n = len(buf)
    i = start + 1
    # Fast path: no escape in the message (the common case).
    if i < n and buf[i] not in (ESCAPE, HEADER):
        length = buf[i]
        if length == 0:
            return -1, b"", i
        end = i + length + 2
        raw = buf[i : min(end, n)]
        if ESCAPE not in raw and HEADER not in raw[1:]:
            if end > n:
                return 0, b"", n
            return 1, raw, end
    out = bytearray()
    need = -1
    while need < 0 or len(out) < need:
        if i >= n:
            return 0, b"", n
        b = buf[i]
        if b == HEADER:
            return -1, b"", i
        if b == ESCAPE:
            if i + 1 >= n:
                return 0, b"", n
            value = _ESCAPED.get(buf[i + 1])
            if value is None:
                return -1, b"", i
            out.append(value)
            i += 2
        else:
            out.append(b)
            i += 1
        if need < 0:
            if out[0] == 0:
                return -1, b"", i
            need = out[0] + 2  # length, code + payload, checksum
    return 1, bytes(out), i


@dataclass(frozen=True)
class NumericsFields:
    """The periodic numerics message's payload (27 bytes), raw: 0xFF is "no value"."""

    timestamp: int = 0  #: the device's clock, seconds (read by decode of a plain file only)
    etco2: int = INVALID
    fico2: int = INVALID
    rr: int = INVALID
    spo2: int = INVALID
    pulse: int = INVALID
    slow_status: int = 0
    events_index: bytes = b"\x00\x00\x00"
    co2_alarms: int = 0
    spo2_alarms: int = 0
    no_breath_period: int = 20
    etco2_high: int = 50
    etco2_low: int = 20
    rr_high: int = 30
    rr_low: int = 8
    fico2_high: int = 8
    spo2_high: int = 100
    spo2_low: int = 90
    pulse_high: int = 120
    pulse_low: int = 50
    units: int = UNITS_MMHG
    extended_co2_status: int = 0


_NUMERICS = struct.Struct(">I5BB3s14B")  #: 27 bytes: OpenICE's offsets 0-26


def encode_numerics(f: NumericsFields) -> bytes:
    payload = _NUMERICS.pack(
        f.timestamp,
        f.etco2,
        f.fico2,
        f.rr,
        f.spo2,
        f.pulse,
        f.slow_status,
        f.events_index,
        f.co2_alarms,
        f.spo2_alarms,
        f.no_breath_period,
        f.etco2_high,
        f.etco2_low,
        f.rr_high,
        f.rr_low,
        f.fico2_high,
        f.spo2_high,
        f.spo2_low,
        f.pulse_high,
        f.pulse_low,
        f.units,
        f.extended_co2_status,
    )
    return encode_message(RSP_NUMERICS, payload)


def decode_numerics(payload: bytes) -> NumericsFields:
    """The fields of a 27-byte numerics payload."""
    v = _NUMERICS.unpack(payload[: _NUMERICS.size])
    return NumericsFields(*v)


def encode_wave(number: int, co2: float, status: int) -> bytes:
    """A CO2 wave message: its number (0-255, counting), CO2 in mmHg as 8.8 fixed point, and the
    fast status."""
    raw = min(max(round(co2 * 256.0), 0), 0xFFFF)
    return encode_message(RSP_CO2_WAVE, bytes((number & 0xFF, raw >> 8, raw & 0xFF, status)))


def wave_co2(payload: bytes) -> float:
    """mmHg of a CO2 wave payload: an integer byte and a 1/256 byte (OpenICE's reading)."""
    return payload[1] + payload[2] / 256.0
