"""The S/5 wire: record layout constants, special values, status bits, the framing (escape,
checksum) and the record header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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
#: The CO2 wave: VSCapture's DRI_WF_CO2 = 9; 25 Hz in 1/100 % of the gas, per a public Go S/5
#: reader's SAMPLE_RATE_CO2 and its sample conversion (not in the reference table).
WF_CO2 = 9
WF_REQ_START = 0
WF_REQ_STOP = 1
WF_STATUS_GAP = 0x0001
WF_HEADER_LEN = 6
WF_REQUEST_LEN = 32  #: req_type, res, type[8], addl_type[16], reserved[2]
PLETH_FS = 100.0
PLETH_DIVISOR = 100  #: samples are in 1/100 % modulation
CO2_FS = 25.0
CO2_DIVISOR = 100  #: CO2 samples and the CO2 group's et/fi are in 1/100 % of the gas
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
