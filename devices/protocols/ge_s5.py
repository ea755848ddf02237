"""GE/Datex-Ohmeda S/5 Computer Interface (AS/3, CS/3, S/5, CARESCAPE B450/B650/B850) over serial.

**Sources.** GE's own documents, public in github.com/KaiWU17TUM/icu_devices
(``docs/manufacturers/GE_Monitor_B650/``): "S/5 Computer Interface Specification" M1017617
12th ed. (line settings, framing, checksum, request examples with their bytes) and "S/5 System
Interface, Datex-Ohmeda Record Specification" 8005313 12th ed. (record, subrecord and group
layouts, special values, NIBP label bits, waveform header and rates). Checked against the
receivers in xeonfusion/VSCapture (``Class1.cs``, ``Class2.cs``) and icu_devices
(``code/ge_monitor.cpp``), which decode real monitors. Nothing here is copied from either.

**Wire.** 19200 baud, 8 data bits, even parity, 1 stop bit, RTS/CTS. Every record, both ways, is
``7E | escaped(record + CHK) | 7E``; inside, ``7E`` goes as ``7D 5E`` and ``7D`` as ``7D 5D``
(bit 5 cleared), the checksum byte included (M1017617 p. 4; its 60-s trend example ends in
``7d 5d 7e``: a checksum of ``7D``, escaped).

**Checksum: the sum of the unescaped record.** M1017617 says so ("summing all bytes in the
Datex-Ohmeda Record"), and both public receivers validate real monitor frames that way (they
unescape first, then sum all but the last byte). Both public *transmitters* instead add the two
escaped bytes ``7D 5E`` / ``7D 5D`` to the sum (icu_devices ``tx_buffer``; VSCapture even keeps
a running total across escapes). That is a bug that never shows for their requests, which
contain no ``7E``/``7D``; a request with such a byte (a ``tx_ival`` of 125 s is ``7D 00``) would
be refused by the monitor. :func:`frame` sums the unescaped bytes; tests/test_ge_s5.py checks this
against the spec's examples and shows the escaped sum being rejected.

**Record** (8005313 §2.2, little-endian, packed): a 40-byte header ``r_len i16`` (whole record
with header, without checksum), ``r_nbr u8``, ``dri_level u8``, ``plug_id u16``, ``r_time u32``
(Unix seconds), 4 reserved bytes, ``r_maintype i16`` (0 PHDB, 1 WAVE, 4 ALARM), then 8 ×
{``sr_offset i16``, ``sr_type u8``} ended by type ``FF``; then at most 1450 data bytes, into which
the offsets point.

**Displayed values** (PHDB). The host requests them once (``phdb_rcrd_type`` 1, ``tx_ival`` ≥ 5 s,
0 stops); the monitor then sends a PHDB record every interval. Its subrecord (type 1, 278 bytes):
``time u32``, a 270-byte class block, ``marker u8``, a reserved byte, ``cl_drilvl_subt u16`` whose
bits 8-11 give the class (0 = basic). The driver asks for the basic class only, so each record has
one subrecord. Basic-class offsets (groups start with ``status u32, label u16``): ECG@0 (hr@6),
NIBP@72 (sys@78, dia@80, mean@82, hr@84), SpO2@118 (SpO2@124, pr@126, ir_amp@128), CO2@132
(amb_press@144). Pressures and SpO2 are in 1/100 mmHg and 1/100 %, rates in 1/min; ``ir_amp``
(the pleth modulation, 1/100 %) is kept as the vendor value ``GE_S5_SPO2_IR_AMP``.

**Special values.** 8005313 §3.4: values from −32001 down are control codes, so −32000 is the
smallest valid value (VSCapture treats −32001 as valid; the spec does not). They become ``None``
with a flag that says why: −32767 "invalid" is SENSOR_OFF when the group's status says the
measurement is not active (bit 1; bit 0 = module exists) and SEARCHING when it is; −32764 / −32763
(under / over range) are OUT_OF_RANGE; −32766 "not updated", −32765 "discontinuity", −32762 "not
calibrated" and any other code are QUESTIONABLE. ECG status bits 7 (noise) and 8 (artifact) flag
the heart rate ARTIFACT, bit 9 (learning) QUESTIONABLE. The SpO2 group has no status bits of its
own.

**NIBP: one reading per cuff measurement.** The NIBP group repeats the last reading in every
record (the public B650 data shows 115/55/79 in three records 10 s apart), and its label says
what the cuff is doing: bit 5 measuring, bit 7 calibrating, bit 8 "data older than 60 s" (bits 3/4
AUTO/STAT). A :class:`~kapmonitor.core.model.NibpReading` is emitted when

1. the measuring bit was seen set and now is clear: a measurement ended (the normal case: a cuff
   measurement takes 20-40 s, longer than the 5-s interval the driver asks for). If the values are
   then invalid, the measurement failed: a reading of three ``None`` with MEASUREMENT_FAILED;
2. the values differ from the last record's without a measuring phase seen (a phase that fell
   between two records, with a long interval or after lost frames);
3. the "older than 60 s" bit went from set to clear: a new measurement that gave the same numbers;
4. the first record the parser sees shows valid values: the reading on the monitor when the host
   joined; if its "older than 60 s" bit is set, its time is unknown and it is flagged
   QUESTIONABLE.

Records while calibrating are skipped. The reading is stamped at the arrival of the record that
first shows it: the cuff finished at most one interval (5 s) before that.

**Pleth** (WAVE). The host requests it with a 72-byte record (``req_type`` 0 start / 1 stop, then
wave types ended by ``FF``; PLETH is 8). Each returned subrecord is ``act_len i16`` (samples),
``status u16`` (bit 0: gap before this subrecord), ``label u16``, then ``act_len`` i16 samples at
100 Hz in 1/100 % modulation; samples of −32000 and below are control codes (NaN, and the block is
flagged SENSOR_OFF). Each subrecord becomes a ``WaveformBlock(PLETH, fs=100)`` in % whose last
sample is stamped one sample before the record's arrival. The spec says the monitor sends a wave
record "every 1000, 500, 250, 200, 167 or 125 ms" depending on the requested sample rate, without
saying which for which; the emulator sends one every :data:`WAVE_PERIOD` (250 ms, 25 samples),
an assumption the parser does not depend on.

**Framing and damage.** ``7E`` never occurs inside an escaped frame, so the parser cuts the stream
at every ``7E`` and judges each piece alone: a piece that is not a valid escape sequence, is too
short or long, has a wrong checksum (``checksum_errors``) or an ``r_len`` that is not its length
(``framing_errors``) is discarded and costs only itself; the frames around it survive. Bytes before
the first ``7E`` are the end of a frame the host joined late: discarded, not an error. Every
decision depends only on the bytes, so any chunking gives the same items and counters. Items are
stamped by counting back from the chunk's arrival at the line's byte time (19200 baud, 11 bits).
"""

from __future__ import annotations

import bisect
import math
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.serial_driver import SerialDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceValue,
    Flag,
    Flags,
    Measurement,
    NibpReading,
    Numeric,
    Stamp,
    WaveformBlock,
)

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession

FLAG = 0x7E
CTRL = 0x7D
LINE_RATE = 19200 / 11  #: bytes per second on the line (8 data bits, parity, start, stop)

HEADER_LEN = 40
MAX_DATA = 1450
MAX_RECORD = HEADER_LEN + MAX_DATA
#: The longest piece between two flags a valid frame can have: every byte escaped.
MAX_BODY = 2 * (MAX_RECORD + 1)
EOL = 0xFF  #: DRI_EOL_SUBR_LIST: ends a subrecord list

# Record main types
MT_PHDB = 0
MT_WAVE = 1
MT_ALARM = 4

# PHDB subrecord types
PH_REQUEST = 0
PH_DISPL = 1
PH_10S_TREND = 2
PH_60S_TREND = 3
PH_AUX_INFO = 4
PHDB_SUBRECORD_LEN = 278
CLASS_LEN = 270
CLASS_BASIC = 0
CLASS_DENY_BASIC = 0x0001  #: phdb_class_bf bit: no basic class

# Waveform subrecord types and requests
WF_CMD = 0
WF_ECG1 = 1
WF_PLETH = 8
WF_REQ_START = 0
WF_REQ_STOP = 1
WF_STATUS_GAP = 0x0001
WF_HEADER_LEN = 6
WF_REQUEST_LEN = 32  #: req_type, res, type[8], addl_type[16], reserved[2]
PLETH_FS = 100.0
PLETH_DIVISOR = 100  #: samples are in 1/100 % modulation
WAVE_CONTROL = -32000  #: wave samples at or below this are control codes

DRI_LEVEL_09 = 10  #: the DRI level a CARESCAPE B650 (ESP 2.x) reports, "'09"

# Special values (8005313 table 3-9)
DATA_INVALID_LIMIT = -32001  #: this and below are control codes, not values
DATA_INVALID = -32767
DATA_NOT_UPDATED = -32766
DATA_DISCONT = -32765
DATA_UNDER_RANGE = -32764
DATA_OVER_RANGE = -32763
DATA_NOT_CALIBRATED = -32762

# Group status bits (all groups) and parameter-specific ones
STATUS_EXISTS = 0x01
STATUS_ACTIVE = 0x02
ECG_NOISE = 1 << 7
ECG_ARTIFACT = 1 << 8
ECG_LEARNING = 1 << 9
# NIBP label bits (8005313 table 3-18)
NIBP_AUTO = 1 << 3
NIBP_STAT = 1 << 4
NIBP_MEASURING = 1 << 5
NIBP_STASIS = 1 << 6
NIBP_CALIBRATING = 1 << 7
NIBP_OLD = 1 << 8  #: the measurement ended more than 60 s ago

#: Groups of the basic class as (offset, number of i16 values after the 6-byte header), from
#: 8005313 §3.5 (struct basic_phdb); ecg_extra (226) has no group header.
BASIC_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("ecg", 0, 5),
    ("p1", 16, 4),
    ("p2", 30, 4),
    ("p3", 44, 4),
    ("p4", 58, 4),
    ("nibp", 72, 4),
    ("t1", 86, 1),
    ("t2", 94, 1),
    ("t3", 102, 1),
    ("t4", 110, 1),
    ("spo2", 118, 4),
    ("co2", 132, 4),
    ("o2", 146, 2),
    ("n2o", 156, 2),
    ("aa", 166, 3),
    ("flow_vol", 178, 8),
    ("co_wedge", 200, 4),
    ("nmt", 214, 3),
    ("ecg_extra", 226, -3),  # three values, no header
    ("svo2", 232, 1),
    ("p5", 240, 4),
    ("p6", 254, 4),
)
ECG_OFF, NIBP_OFF, SPO2_OFF, CO2_OFF = 0, 72, 118, 132
CO2_AMB_PRESS = CO2_OFF + 6 + 6  #: ambient pressure, 1/10 mmHg

DEFAULT_INTERVAL = 5  #: seconds between displayed-value records the driver asks for (minimum)
WAVE_PERIOD = 0.25  #: seconds between the emulator's wave records (see the module docstring)
WAVE_SAMPLES = round(PLETH_FS * WAVE_PERIOD)
_WAVE_FRAME = 1 + HEADER_LEN + WF_HEADER_LEN + 2 * WAVE_SAMPLES + 1 + 1
_PHDB_FRAME = 1 + HEADER_LEN + PHDB_SUBRECORD_LEN + 1 + 1
#: Bytes a second the monitor sends for the driver's requests (escapes aside).
BYTE_RATE = _WAVE_FRAME / WAVE_PERIOD + _PHDB_FRAME / DEFAULT_INTERVAL

_HEADER = struct.Struct("<hBBHI4xh")
_DESC = struct.Struct("<hB")
_GROUP4 = struct.Struct("<IHhhhh")  # status, label, four values
_ECG = struct.Struct("<IHh")
_WF_HDR = struct.Struct("<hHH")
_I16 = struct.Struct("<h")
_U16 = struct.Struct("<H")

_ESCAPED_FLAG = bytes((CTRL, FLAG ^ 0x20))
_ESCAPED_CTRL = bytes((CTRL, CTRL ^ 0x20))
_FLAG_B = bytes((FLAG,))
_CTRL_B = bytes((CTRL,))


# --- framing ------------------------------------------------------------------------------------


def checksum(record: bytes) -> int:
    """The 8-bit sum of the unescaped record (M1017617 "Checksum"; see the module docstring)."""
    return sum(record) & 0xFF


def escape(data: bytes) -> bytes:
    """``7D`` → ``7D 5D`` and ``7E`` → ``7D 5E`` (the control character first, so it is not
    escaped twice)."""
    return data.replace(_CTRL_B, _ESCAPED_CTRL).replace(_FLAG_B, _ESCAPED_FLAG)


def unescape(body: bytes) -> bytes | None:
    """The inverse of :func:`escape`; None when a ``7D`` is not followed by ``5D`` or ``5E``."""
    if CTRL not in body:
        return body
    if body.count(_CTRL_B) != body.count(_ESCAPED_CTRL) + body.count(_ESCAPED_FLAG):
        return None
    # Every 7D now leads a valid pair, so the replacements cannot match across pairs.
    return body.replace(_ESCAPED_FLAG, _FLAG_B).replace(_ESCAPED_CTRL, _CTRL_B)


def frame(record: bytes) -> bytes:
    """A record on the wire: flag, escaped record and checksum, flag."""
    return b"%c%s%c" % (FLAG, escape(record + bytes((checksum(record),))), FLAG)


@dataclass(frozen=True)
class RecordHeader:
    """The 40-byte Datex-Ohmeda record header."""

    r_len: int
    maintype: int
    subrecords: tuple[tuple[int, int], ...]  #: (offset into the data area, type), up to 8
    r_nbr: int = 0
    dri_level: int = 0
    plug_id: int = 0
    r_time: int = 0


def encode_header(h: RecordHeader) -> bytes:
    """The header bytes; unused descriptors are zero, the list ends with type ``FF``."""
    if len(h.subrecords) > 8:
        raise ValueError("a record has at most 8 subrecords")
    out = bytearray(
        _HEADER.pack(h.r_len, h.r_nbr, h.dri_level, h.plug_id, h.r_time & 0xFFFFFFFF, h.maintype)
    )
    descs = list(h.subrecords)
    if len(descs) < 8:
        descs.append((0, EOL))
    descs += [(0, 0)] * (8 - len(descs))
    for off, typ in descs:
        out += _DESC.pack(off, typ)
    return bytes(out)


def decode_header(record: bytes) -> RecordHeader:
    """The header of a record of at least 40 bytes; the subrecord list stops at ``FF``."""
    r_len, r_nbr, level, plug, r_time, maintype = _HEADER.unpack_from(record, 0)
    subs = []
    for k in range(8):
        off, typ = _DESC.unpack_from(record, 16 + 3 * k)
        if typ == EOL:
            break
        subs.append((off, typ))
    return RecordHeader(r_len, maintype, tuple(subs), r_nbr, level, plug, r_time)


def make_record(
    maintype: int,
    subrecords: list[tuple[int, bytes]],
    *,
    r_time: int = 0,
    dri_level: int = 0,
    r_nbr: int = 0,
    plug_id: int = 0,
) -> bytes:
    """A whole record (unframed) from ``(type, bytes)`` subrecords laid end to end."""
    descs, data, off = [], bytearray(), 0
    for typ, body in subrecords:
        descs.append((off, typ))
        data += body
        off += len(body)
    if len(data) > MAX_DATA:
        raise ValueError("a record carries at most 1450 data bytes")
    h = RecordHeader(
        HEADER_LEN + len(data), maintype, tuple(descs), r_nbr, dri_level, plug_id, r_time
    )
    return encode_header(h) + bytes(data)


# --- host requests ------------------------------------------------------------------------------


def phdb_request(
    interval: int = DEFAULT_INTERVAL,
    record_type: int = PH_DISPL,
    class_bf: int = 0,
    dri_level: int = 0,
) -> bytes:
    """The 49-byte physiological-data request (unframed): ``interval`` 0 stops, −1 asks once."""
    body = struct.pack("<BhIh", record_type, interval, class_bf, 0)
    return make_record(MT_PHDB, [(PH_REQUEST, body)], dri_level=dri_level)


def wave_request(types: tuple[int, ...] = (WF_PLETH,), *, start: bool = True) -> bytes:
    """The 72-byte waveform request (unframed); a stop carries only the list terminator."""
    if len(types) > 8:
        raise ValueError("at most 8 wave types in the type array")
    req = struct.pack("<hh", WF_REQ_START if start else WF_REQ_STOP, 0)
    listed = bytes(types if start else ()) + bytes((EOL,))
    req += listed.ljust(8 + 16, b"\x00") + bytes(4)
    return make_record(MT_WAVE, [(WF_CMD, req)])


PHDB_REQUEST = frame(phdb_request())  #: displayed values, basic class, every 5 s
PHDB_STOP = frame(phdb_request(0))
WAVE_REQUEST = frame(wave_request())  #: pleth
WAVE_STOP = frame(wave_request(start=False))


# --- the basic class ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BasicClass:
    """The basic-class fields kapmonitor reads, raw as on the wire (special values kept)."""

    ecg_status: int = 0
    ecg_label: int = 0
    hr: int = DATA_INVALID
    nibp_status: int = 0
    nibp_label: int = 0
    nibp_sys: int = DATA_INVALID
    nibp_dia: int = DATA_INVALID
    nibp_mean: int = DATA_INVALID
    nibp_hr: int = DATA_INVALID
    spo2_status: int = 0
    spo2_label: int = 0
    spo2: int = DATA_INVALID
    spo2_pr: int = DATA_INVALID
    spo2_ir_amp: int = DATA_INVALID
    co2_amb_press: int = DATA_INVALID


def _empty_class() -> bytes:
    """A basic class with every group absent: zero headers, every value DATA_INVALID."""
    out = bytearray(CLASS_LEN)
    for _, off, n in BASIC_GROUPS:
        first = off if n < 0 else off + 6
        for k in range(abs(n)):
            _I16.pack_into(out, first + 2 * k, DATA_INVALID)
    return bytes(out)


_EMPTY_CLASS = _empty_class()


def encode_basic(b: BasicClass) -> bytes:
    """The 270-byte basic class; groups kapmonitor does not use are absent."""
    out = bytearray(_EMPTY_CLASS)
    struct.pack_into("<IHh", out, ECG_OFF, b.ecg_status, b.ecg_label, b.hr)
    _GROUP4.pack_into(
        out,
        NIBP_OFF,
        b.nibp_status,
        b.nibp_label,
        b.nibp_sys,
        b.nibp_dia,
        b.nibp_mean,
        b.nibp_hr,
    )
    struct.pack_into(
        "<IHhhh", out, SPO2_OFF, b.spo2_status, b.spo2_label, b.spo2, b.spo2_pr, b.spo2_ir_amp
    )
    _I16.pack_into(out, CO2_AMB_PRESS, b.co2_amb_press)
    return bytes(out)


def decode_basic(data: bytes, off: int = 0) -> BasicClass:
    """The fields of a basic class that starts at ``data[off]``."""
    ecg_status, ecg_label, hr = _ECG.unpack_from(data, off + ECG_OFF)
    n = _GROUP4.unpack_from(data, off + NIBP_OFF)
    s = _GROUP4.unpack_from(data, off + SPO2_OFF)
    (amb,) = _I16.unpack_from(data, off + CO2_AMB_PRESS)
    return BasicClass(ecg_status, ecg_label, hr, *n, s[0], s[1], s[2], s[3], s[4], amb)


def phdb_subrecord(
    basic: BasicClass, time_s: int, *, marker: int = 0, cls: int = CLASS_BASIC
) -> bytes:
    """A 278-byte displayed-values subrecord (dri_phdb) of one class."""
    return (
        struct.pack("<I", time_s & 0xFFFFFFFF)
        + encode_basic(basic)
        + struct.pack("<BBH", marker, 0, (cls & 0xF) << 8)
    )


def phdb_record(basic: BasicClass, r_time: int, *, dri_level: int = DRI_LEVEL_09) -> bytes:
    """A displayed-values record as the monitor sends it (unframed)."""
    return make_record(
        MT_PHDB, [(PH_DISPL, phdb_subrecord(basic, r_time))], r_time=r_time, dri_level=dri_level
    )


def wave_subrecord(samples: np.ndarray | list[int], status: int = 0, label: int = 0) -> bytes:
    """A waveform subrecord: header and little-endian i16 samples."""
    raw = np.asarray(samples, dtype="<i2")
    return _WF_HDR.pack(len(raw), status, label) + raw.tobytes()


def wave_record(
    waves: list[tuple[int, bytes]], r_time: int, *, dri_level: int = DRI_LEVEL_09
) -> bytes:
    """A waveform record from ``(wave type, subrecord)`` pairs (unframed)."""
    return make_record(MT_WAVE, waves, r_time=r_time, dri_level=dri_level)


# --- parser -------------------------------------------------------------------------------------


@dataclass
class GeS5Stats(ParserStats):
    """Counters of the S/5 parser; ``bytes_in == bytes_in_frames + bytes_discarded + pending``."""

    bytes_in_frames: int = 0  #: flags and the bytes of good frames
    records_phdb: int = 0
    records_wave: int = 0
    records_other: int = 0  #: alarms, requests echoed back, unknown main types
    subrecords_bad: int = 0  #: a subrecord whose offset or length does not fit its record


def _marker_flag(raw: int, active: bool) -> Flag:
    if raw == DATA_INVALID:
        return Flag.SEARCHING if active else Flag.SENSOR_OFF
    if raw in (DATA_UNDER_RANGE, DATA_OVER_RANGE):
        return Flag.OUT_OF_RANGE
    return Flag.QUESTIONABLE


def value_of(raw: int, divisor: int, active: bool) -> tuple[float | None, Flags]:
    """A wire value in its unit (``raw / divisor``), or None with the reason when it is a
    special value; ``active`` is the group's "measurement active" status bit."""
    if raw > DATA_INVALID_LIMIT:
        return (raw if divisor == 1 else raw / divisor), frozenset()
    return None, frozenset((_marker_flag(raw, active),))


def nibp_value_of(raw: int) -> tuple[float | None, Flags]:
    """An NIBP value in mmHg; an invalid one means the cuff gave no such value."""
    if raw > DATA_INVALID_LIMIT:
        return raw / 100, frozenset()
    if raw == DATA_INVALID:
        return None, frozenset((Flag.MEASUREMENT_FAILED,))
    return None, frozenset((_marker_flag(raw, True),))


@dataclass
class _NibpState:
    """What the parser remembers between records to find new cuff measurements."""

    seen: bool = False  #: a record with an NIBP group has been read
    measuring: bool = False  #: a measuring phase was seen since the last reading
    key: tuple[int, int, int] | None = None
    old: bool = False


class GeS5Parser(Parser):
    """Decodes what an S/5-family monitor sends: displayed values and the pleth wave."""

    protocol: ClassVar[str] = "ge-s5"
    SERIAL: ClassVar[SerialSettings] = SerialSettings(19200, 8, "E", 1, rtscts=True)

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: GeS5Stats = GeS5Stats()
        self._buf = b""  #: bytes after the last flag
        self._synced = False  #: a flag has been seen
        self._skipping = False  #: the piece being received is already known to be too long
        self._good_before = False
        self._lost = False
        self._nibp = _NibpState()
        #: ``stamp.mono`` of the latest good record of each kind (for the driver's re-requests).
        self.last_phdb: float | None = None
        self.last_wave: float | None = None

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        out: list[Measurement] = []
        stats = self.stats
        if not self._synced:
            i = data.find(FLAG)
            if i < 0:
                stats.bytes_discarded += len(data)  # the end of a frame we joined late
                return out
            stats.bytes_discarded += i
            data = data[i:]
            self._synced = True
            self._buf = b""
            stats.bytes_in_frames += 1
            data = data[1:]
        b = self._buf + data
        n = len(b)
        pos = 0
        find = b.find
        while True:
            j = find(FLAG, pos)
            if j < 0:
                break
            stats.bytes_in_frames += 1  # the flag itself
            if j > pos:
                if self._skipping:
                    stats.bytes_discarded += j - pos
                    self._skipping = False
                else:
                    at = stamp.shifted(-self.back(n - 1 - j, LINE_RATE)) if j != n - 1 else stamp
                    self._piece(b[pos:j], at, out)
            pos = j + 1
        rest = b[pos:]
        if len(rest) > MAX_BODY:
            # No valid frame is this long: drop it now to bound memory, and the rest of it when
            # its flag comes, as one error (the same count for any chunking).
            if not self._skipping:
                self._bad()
                stats.framing_errors += 1
            stats.bytes_discarded += len(rest)
            self._skipping = True
            rest = b""
        self._buf = rest
        return out

    # --- one piece between two flags ------------------------------------------------------------

    def _bad(self) -> None:
        if self._good_before:
            self._lost = True

    def _piece(self, body: bytes, at: Stamp, out: list[Measurement]) -> None:
        stats = self.stats
        record = unescape(body) if len(body) <= MAX_BODY else None
        if record is None or not HEADER_LEN + 1 <= len(record) <= MAX_RECORD + 1:
            stats.framing_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        chk = record[-1]
        record = record[:-1]
        if checksum(record) != chk:
            stats.checksum_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        if _I16.unpack_from(record, 0)[0] != len(record):
            stats.framing_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        stats.frames_ok += 1
        stats.bytes_in_frames += len(body)
        if self._lost:
            stats.resyncs += 1
            self._lost = False
        self._good_before = True
        try:
            self._record(record, at, out)
        except (struct.error, ValueError, IndexError):  # pragma: no cover - bounds are checked
            stats.subrecords_bad += 1

    def _record(self, record: bytes, at: Stamp, out: list[Measurement]) -> None:
        stats = self.stats
        (maintype,) = _I16.unpack_from(record, 14)
        data = memoryview(record)[HEADER_LEN:]
        size = len(data)
        if maintype == MT_PHDB:
            stats.records_phdb += 1
            self.last_phdb = at.mono
            for k in range(8):
                off, typ = _DESC.unpack_from(record, 16 + 3 * k)
                if typ == EOL:
                    break
                if typ != PH_DISPL:
                    continue  # trends and aux info: not asked for, and would repeat values
                if off < 0 or off + PHDB_SUBRECORD_LEN > size:
                    stats.subrecords_bad += 1
                    continue
                (cl,) = _U16.unpack_from(data, off + PHDB_SUBRECORD_LEN - 2)
                if (cl >> 8) & 0xF == CLASS_BASIC:
                    self._basic(decode_basic(data, off + 4), at, out)
        elif maintype == MT_WAVE:
            stats.records_wave += 1
            self.last_wave = at.mono
            for k in range(8):
                off, typ = _DESC.unpack_from(record, 16 + 3 * k)
                if typ == EOL:
                    break
                if off < 0 or off + WF_HEADER_LEN > size:
                    stats.subrecords_bad += 1
                    continue
                act_len, _status, _label = _WF_HDR.unpack_from(data, off)
                end = off + WF_HEADER_LEN + 2 * act_len
                if act_len < 0 or end > size:
                    stats.subrecords_bad += 1
                    continue
                if typ == WF_PLETH and act_len:
                    self._pleth(data, off + WF_HEADER_LEN, act_len, at, out)
        else:
            stats.records_other += 1

    def _pleth(self, data, start: int, count: int, at: Stamp, out: list[Measurement]) -> None:
        raw = np.frombuffer(data, dtype="<i2", count=count, offset=start)
        samples = raw / PLETH_DIVISOR
        flags: Flags = frozenset()
        bad = raw <= WAVE_CONTROL
        if bad.any():
            samples[bad] = np.nan
            flags = frozenset((Flag.SENSOR_OFF,))
        out.append(
            WaveformBlock(
                self.source, Code.PLETH, at.shifted(-count / PLETH_FS), PLETH_FS, samples, flags
            )
        )

    def _basic(self, b: BasicClass, at: Stamp, out: list[Measurement]) -> None:
        src = self.source
        ecg_active = bool(b.ecg_status & STATUS_ACTIVE)
        hr, hr_flags = value_of(b.hr, 1, ecg_active)
        if b.ecg_status & (ECG_NOISE | ECG_ARTIFACT):
            hr_flags |= {Flag.ARTIFACT}
        if b.ecg_status & ECG_LEARNING:
            hr_flags |= {Flag.QUESTIONABLE}
        out.append(Numeric(src, Code.HEART_RATE, hr, at, hr_flags))
        spo2_active = bool(b.spo2_status & STATUS_ACTIVE)
        spo2, spo2_flags = value_of(b.spo2, 100, spo2_active)
        out.append(Numeric(src, Code.SPO2, spo2, at, spo2_flags))
        pr, pr_flags = value_of(b.spo2_pr, 1, spo2_active)
        out.append(Numeric(src, Code.PULSE_RATE, pr, at, pr_flags))
        amp, amp_flags = value_of(b.spo2_ir_amp, 100, spo2_active)
        out.append(DeviceValue(src, "GE_S5_SPO2_IR_AMP", amp, "%", at, amp_flags))
        self._nibp_group(b, at, out)

    def _nibp_group(self, b: BasicClass, at: Stamp, out: list[Measurement]) -> None:
        st = self._nibp
        label = b.nibp_label
        if label & NIBP_CALIBRATING:
            return
        if label & NIBP_MEASURING:
            st.measuring = True
            st.seen = True
            return
        key = (b.nibp_sys, b.nibp_dia, b.nibp_mean)
        old = bool(label & NIBP_OLD)
        valid = any(v > DATA_INVALID_LIMIT for v in key)
        flags: Flags = frozenset()
        if st.measuring:
            new = True  # a measurement ended since the last record
        elif not st.seen:
            new = valid  # the reading on display when we joined
            if old:
                flags = frozenset((Flag.QUESTIONABLE,))  # its time is unknown
        else:
            new = valid and (key != st.key or (st.old and not old))
        st.seen, st.measuring, st.key, st.old = True, False, key, old
        if not new:
            return
        if not valid:
            out.append(
                NibpReading(
                    self.source, None, None, None, at, frozenset((Flag.MEASUREMENT_FAILED,))
                )
            )
            return
        parts = []
        for raw in key:
            v, f = nibp_value_of(raw)
            parts.append(v)
            flags |= f
        out.append(NibpReading(self.source, parts[0], parts[1], parts[2], at, flags))


# --- emulator -----------------------------------------------------------------------------------

SIM_EPOCH = 1_623_330_374  #: the monitor clock at session time 0 (the public B650 data's day)
AMB_PRESS = 7600  #: 760.0 mmHg, as the public B650 data shows
PLETH_OFFSET = 0.5  #: the simulated pleth (0..1) around this …
PLETH_GAIN = 10.0  #: … times this is % modulation: ±5 %, the range of the public B650 pleth


@dataclass
class _Run:
    """One stretch of a requested transmission: from a start request to a stop or a new start."""

    start: float
    stop: float | None = None
    interval: float = 0.0  #: PHDB: seconds between records; −1: a single record


@dataclass
class _Requests:
    phdb: list[_Run] = field(default_factory=list)
    wave: list[_Run] = field(default_factory=list)


class GeS5Emulator(DeviceEmulator):
    """A CARESCAPE B650 on its computer interface, answering the host's requests.

    Silent until the host asks. A displayed-values request (type 1, basic class) with an interval
    of 5 s or more starts a PHDB record every interval, the first at the next whole second; an
    interval of 1-4 s is taken as 5 (the spec allows only ≥ 5; what a monitor does with less is
    not documented); −1 sends one record; 0 stops. A request that denies the basic class, trend
    requests (types 2, 3) and the ext classes are not emulated: the monitor's records for them
    carry groups kapmonitor does not read. A wave request that lists PLETH starts a pleth record
    every :data:`WAVE_PERIOD`; a stop request or a start without PLETH stops it; other waves are
    not simulated. The first pleth subrecord of a stream has the gap bit set, as the spec says.
    Host frames with a wrong checksum are ignored, as the monitor's receiver would; there is no
    reply to a request other than the data.

    Values are what the monitor shows at the record's time: heart rate (ECG and pulse rate are
    both the scenario's one heart rate) and SpO2 as whole numbers, NIBP from the scenario's cuff
    schedule with the "measuring" bit during each measurement (``measure_s`` before its end), the
    AUTO/STAT bit by the reading's mode, the "older than 60 s" bit after a minute, and invalid
    markers after a failed measurement. A probe that is off makes the SpO2 group inactive with
    DATA_INVALID values (and ECG HR invalid: the scenario has no separate ECG); searching keeps it
    active. Records are built from session time alone (``r_time`` = :data:`SIM_EPOCH` + t), so
    the bytes do not depend on how :meth:`emit`'s boundaries fall. ``r_nbr`` and ``plug_id`` are 0
    (their values on a real monitor are not known).
    """

    protocol: ClassVar[str] = GeS5Parser.protocol
    SERIAL: ClassVar[SerialSettings] = GeS5Parser.SERIAL
    tick: ClassVar[float] = 0.05

    def __init__(self, session: KapSession, *, speed: float = 1.0, epoch: int = SIM_EPOCH) -> None:
        super().__init__(session, speed=speed)
        self.epoch = epoch
        self.requests = _Requests()
        self.received: list[tuple[float, bytes]] = []  #: (session time, record) of valid frames
        self._host = b""
        self._pleth_cache: dict[int, np.ndarray] = {}
        readings = getattr(session, "nibp_readings", ())
        self._nibp = tuple(readings)
        self._nibp_t = [r.t for r in self._nibp]
        scenario = getattr(session, "scenario", None)
        self._measure_s = float(scenario.nibp.measure_s) if scenario is not None else 30.0

    # --- host side ------------------------------------------------------------------------------

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        buf = self._host + bytes(data)
        while True:
            i = buf.find(FLAG)
            if i < 0:
                buf = b""
                break
            j = buf.find(FLAG, i + 1)
            if j < 0:
                buf = buf[i:] if len(buf) - i <= MAX_BODY else b""
                break
            record = unescape(buf[i + 1 : j])
            buf = buf[j:]
            if record is None or len(record) < HEADER_LEN + 1:
                continue
            if checksum(record[:-1]) != record[-1]:
                continue
            self._request(record[:-1], t)
        self._host = buf
        return b""

    def _request(self, record: bytes, t: float) -> None:
        self.received.append((t, record))
        h = decode_header(record)
        if not h.subrecords or h.subrecords[0][1] != 0:
            return
        off = HEADER_LEN + h.subrecords[0][0]
        if h.maintype == MT_PHDB and len(record) >= off + 9:
            rtype, ival, class_bf, _ = struct.unpack_from("<BhIh", record, off)
            if rtype != PH_DISPL:
                return
            self._end(self.requests.phdb, t)
            if ival == 0 or class_bf & CLASS_DENY_BASIC:
                return
            interval = -1.0 if ival < 0 else float(max(ival, DEFAULT_INTERVAL))
            self.requests.phdb.append(_Run(t, None, interval))
        elif h.maintype == MT_WAVE and len(record) >= off + 12:
            (req,) = _I16.unpack_from(record, off)
            types = record[off + 4 : off + 12].split(bytes((EOL,)))[0]
            streaming = bool(self.requests.wave) and self.requests.wave[-1].stop is None
            if req == WF_REQ_START and WF_PLETH in types:
                if not streaming:  # a change of the wave list does not interrupt the pleth
                    self.requests.wave.append(_Run(t))
            elif req in (WF_REQ_START, WF_REQ_STOP):
                self._end(self.requests.wave, t)

    @staticmethod
    def _end(runs: list[_Run], t: float) -> None:
        if runs and runs[-1].stop is None:
            runs[-1].stop = t

    def streaming(self, t: float) -> tuple[bool, bool]:
        """Whether displayed values and the pleth are being sent at session time ``t``."""

        def on(runs: list[_Run]) -> bool:
            return (
                bool(runs) and runs[-1].start <= t and (runs[-1].stop is None or t < runs[-1].stop)
            )

        return on(self.requests.phdb), on(self.requests.wave)

    # --- device side ----------------------------------------------------------------------------

    def emit(self, t0: float, t1: float) -> bytes:
        events: list[tuple[float, int, int]] = []  # (time, kind, index)
        for run in self.requests.phdb:
            first = math.ceil(run.start - 1e-9)
            end = t1 if run.stop is None else min(t1, run.stop)
            if run.interval < 0:
                if t0 <= first < end:
                    events.append((float(first), 0, first))
                continue
            k = max(0, math.ceil((t0 - first) / run.interval - 1e-9))
            while (tr := first + k * run.interval) < end:
                if tr >= t0:
                    events.append((tr, 0, round(tr)))
                k += 1
        for run in self.requests.wave:
            k0 = math.ceil(run.start / WAVE_PERIOD - 1e-9)  # packets whose samples follow it
            end = t1 if run.stop is None else min(t1, run.stop)
            k = max(k0, math.ceil(t0 / WAVE_PERIOD - 1e-9) - 1)
            while (ts := (k + 1) * WAVE_PERIOD) < end:
                if ts >= t0:
                    events.append((ts, 1, k if k != k0 else -k - 1))
                k += 1
        events.sort()
        return b"".join(
            frame(self.phdb_at(i) if kind == 0 else self.wave_packet(i)) for _, kind, i in events
        )

    def phdb_at(self, second: int) -> bytes:
        """The displayed-values record the monitor sends at session second ``second``."""
        t = float(second)
        v = self.session.vitals(t)
        off = Flag.SENSOR_OFF in v.flags
        hr = DATA_INVALID if v.heart_rate is None else round(v.heart_rate)
        spo2 = DATA_INVALID if v.spo2 is None else 100 * min(round(v.spo2), 100)
        amp = DATA_INVALID if v.perfusion_index is None else round(v.perfusion_index * 100)
        on = STATUS_EXISTS | STATUS_ACTIVE
        basic = BasicClass(
            ecg_status=on,
            ecg_label=0x0200,  # channel 1: lead II
            hr=hr,
            spo2_status=STATUS_EXISTS if off else on,
            spo2=spo2,
            spo2_pr=hr,
            spo2_ir_amp=amp,
            co2_amb_press=AMB_PRESS,
            **self._nibp_fields(t),
        )
        return phdb_record(basic, self.epoch + second)

    def _nibp_fields(self, t: float) -> dict[str, int]:
        i = bisect.bisect_right(self._nibp_t, t)
        last = self._nibp[i - 1] if i else None
        nxt = self._nibp[i] if i < len(self._nibp) else None
        label = 0
        sys_ = dia = mean = DATA_INVALID
        if nxt is not None and nxt.t - self._measure_s <= t:
            label |= NIBP_MEASURING | _MODE_BITS.get(nxt.mode, 0)
        elif last is not None:
            label |= _MODE_BITS.get(last.mode, 0)
            if t - last.t > 60.0:
                label |= NIBP_OLD
        if last is not None and last.systolic is not None:
            sys_, dia, mean = (round(x * 100) for x in (last.systolic, last.diastolic, last.mean))
        return {
            "nibp_status": STATUS_EXISTS | STATUS_ACTIVE,
            "nibp_label": label,
            "nibp_sys": sys_,
            "nibp_dia": dia,
            "nibp_mean": mean,
        }

    def wave_packet(self, index: int) -> bytes:
        """Pleth record ``k`` (samples from ``k × WAVE_PERIOD``); ``-k - 1`` marks the first of
        a stream, which has the gap bit set."""
        k, status = (index, 0) if index >= 0 else (-index - 1, WF_STATUS_GAP)
        n = WAVE_SAMPLES
        first = k * n
        j0, j1 = first // 100, (first + n - 1) // 100
        x = np.concatenate([self._pleth_second(j) for j in range(j0, j1 + 1)])
        x = x[first - j0 * 100 : first - j0 * 100 + n]
        raw = np.where(
            np.isnan(x),
            DATA_INVALID,
            np.rint((np.nan_to_num(x) - PLETH_OFFSET) * PLETH_GAIN * PLETH_DIVISOR),
        ).astype("<i2")
        r_time = self.epoch + math.floor((k + 1) * WAVE_PERIOD)
        return wave_record([(WF_PLETH, wave_subrecord(raw, status))], r_time)

    def _pleth_second(self, j: int) -> np.ndarray:
        got = self._pleth_cache.get(j)
        if got is None:
            if len(self._pleth_cache) >= 4:
                self._pleth_cache.clear()
            got = np.asarray(self.session.pleth(float(j), 100, PLETH_FS), dtype=np.float64)
            self._pleth_cache[j] = got
        return got


_MODE_BITS = {"auto": NIBP_AUTO, "stat": NIBP_STAT}


# --- driver -------------------------------------------------------------------------------------

RETRY_S = 5.0  #: at most one set of re-requests this often
WAVE_SILENT_S = 3.0  #: a pleth this long silent while connected is asked for again
PHDB_SILENT_S = 3 * DEFAULT_INTERVAL


class GeS5Driver(SerialDriver):
    """A GE/Datex S/5-family monitor on its computer interface (``ge-s5@/dev/ttyUSB0``).

    Asks for the displayed values (basic class, every 5 s) and the pleth on connect. The monitor
    needs no keep-alive, but it stops the waves by itself when RTS/CTS holds it back for more than
    2 s (M1017617 p. 10) and forgets both requests when it is restarted, so the driver asks again
    for what has been silent: the pleth after :data:`WAVE_SILENT_S`, the displayed values after
    three intervals (a repeated request does no harm: it restarts the same transmission). When
    it is stopped it asks the monitor to stop both (:meth:`farewell`).
    """

    name = "ge-s5"
    parser_class = GeS5Parser
    emulator_class = GeS5Emulator
    serial_settings = GeS5Parser.SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._asked = time.monotonic()

    def greeting(self) -> bytes:
        self._asked = time.monotonic()
        return PHDB_REQUEST + WAVE_REQUEST

    def keep_alive(self) -> bytes:
        now = time.monotonic()
        if now - self._asked < RETRY_S:
            return b""
        parser: GeS5Parser = self.parser  # type: ignore[assignment]
        out = b""
        if now - max(parser.last_phdb or 0.0, self._asked) > PHDB_SILENT_S:
            out += PHDB_REQUEST
        if (
            now - max(parser.last_wave or 0.0, self._asked) > WAVE_SILENT_S
            or self.state is ConnectionState.NO_DATA
        ):
            out += WAVE_REQUEST
        if out:
            self._asked = now
        return out

    def farewell(self) -> bytes:
        return PHDB_STOP + WAVE_STOP
