"""Philips IntelliVue Data Export over MIB/RS232 (MP20-MP90, MX series): parser, emulator, driver.

The wire (shared/reference/device-protocols.md §4; Philips "Data Export Interface Programming
Guide" 4535 642 59271): 115200 or 19200 8N1 on the monitor's MIB port set to *Data Export*.
Every message, both ways, is one frame ``C0 | 11 01 LEN(u16 BE) | user data | FCS | C1``; inside
the frame ``C0``, ``C1`` and ``7D`` go out as ``7D, b ^ 0x20`` and ``7D C1`` aborts a frame. The
FCS is CRC-16/X.25 (PPP's: init FFFF, reflected poly 0x8408, complemented, LSB first) over header
and user data; the spec's vectors (``3A 71`` -> ``9B 26``, ``3A 91`` -> ``95 C1``) are tests. It
is computed with :func:`binascii.crc_hqx` on bit-reversed bytes (the same CRC, reflected), so a
frame's check runs at C speed.

**Session.** The host sends an Association Request (a session SPDU, first byte ``0D``); the
monitor answers with an Association Result (``0E``; ``0C`` refuses) and an MDS Create Event
Report (a ROSE ``ROIV`` confirmed event report, ``NOM_NOTI_MDS_CREAT``), which it repeats until
the host confirms it with an event report result carrying the **same invoke id**. Then the host
sends Extended Poll requests (``NOM_ACT_POLL_MDIB_DATA_EXT``) for numerics
(``NOM_MOC_VMO_METRIC_NU``) and real-time waves (``NOM_MOC_VMO_METRIC_SA_RT``) with a poll
period attribute (``NOM_ATTR_TIME_PD_POLL``); for that period the monitor sends a poll result
every 1.024 s (numerics) or 256 ms (waves) with a growing sequence number. The association
times out when the host is silent for 3 x the negotiated minimum poll period, clamped to
10-130 s, so the host must keep talking; it ends with a Release Request (``09``) answered by a
Release Response (``0A``); either side may abort (``19``).

**Keep-alive and renewal.** :class:`IntellivueDriver` re-sends both extended polls every
:data:`KEEP_ALIVE_S` (3 s, inside the smallest possible timeout of 10 s): the polls are the
keep-alive. In the two real MP90 sessions (tests/data/intellivue-mp90) the numerics poll's
sequence number restarts at 0 when the host repeats its request, with no gap and no duplicate on
the monitor's 1.024-s grid, so a repeated request replaces the running one; the emulator does
exactly that.

**What the parser emits.** Per numerics poll result, each ``NOM_ATTR_NU_VAL_OBS`` becomes a
:class:`Numeric` when its physio id maps to a code in :data:`PHYSIO_CODES` (HR, SpO2, pleth
pulse rate, perfusion) and a :class:`DeviceValue` under ``INTELLIVUE_<name>`` otherwise (logged
once per id, never dropped). NIBP is the compound ``NOM_ATTR_NU_CMPD_VAL_OBS`` (sys/dia/mean,
``4A05``/``4A06``/``4A07``) with the measurement's own time ``NOM_ATTR_TIME_STAMP_ABS``; the monitor
repeats it in every poll, so a :class:`NibpReading` is emitted once per cuff measurement: when
that time stamp differs from the last one seen for the object and no value carries
``MSMT_ONGOING`` (the cuff is measuring). The reading present when the parser starts is emitted
too if it has values (stamped at its own, older time); an all-NaN one is the monitor's "no
reading yet". A new time stamp with no valid value is a failed measurement (``None`` values,
:attr:`Flag.MEASUREMENT_FAILED`). A ``4BB4`` wave (pleth) in ``NOM_ATTR_SA_VAL_OBS`` becomes a
:class:`WaveformBlock` per result (32 samples at 125 Hz on an MP90); its rate is
``NOM_ATTR_TIME_PD_SAMP`` when the monitor sent it, else samples / 256 ms (the MP90 sends only
the dynamic attributes, as in the real sessions); ``NOM_ATTR_SA_SPECN`` (significant bits) and
``NOM_ATTR_SCALE_SPECN_I16`` (counts to physical units) are applied when present, else the
samples are the monitor's counts. Other waves (ECG, respiration) are counted, logged once and
not kept: :class:`DeviceValue` holds numbers, not waves. Alarm polls are decoded as frames only.

**Values.** FLOAT is an 8-bit signed exponent and a 24-bit signed mantissa, value = mantissa x
10^exponent; NaN (``7FFFFF``) is ``None``; NRes (``800000``) and +-INF (``7FFFFE``/``800002``) are
``None`` with :attr:`Flag.OUT_OF_RANGE`. Measurement state: INVALID -> ``None`` with
MEASUREMENT_FAILED; UNAVAILABLE -> ``None``; QUESTIONABLE and CALIBRATION_ONGOING ->
QUESTIONABLE; DEMO and TEST data -> :attr:`Flag.DEMO` (not the patient's values). NIBP in kPa
is converted to mmHg.

**Time.** The parser reads no clock: a frame ends ``bytes after it in the chunk / BYTE_RATE``
before the chunk's stamp. Items carry the monitor's own time: a poll result's relative time
(1/8 ms ticks) is placed on the host clock through the earliest-arriving frame (a frame can only
be late, never early); NIBP's absolute time is placed through the (absolute, relative) pair of
the MDS create event. So pleth blocks are gapless at the monitor's rate and a cuff reading is
stamped when the cuff measured. A wave result's relative time is taken as its first sample's.

**Both directions.** A capture of the shared line holds the host's frames too (association
request, polls, results for the create event); they are good frames that give no items, so
``decode`` reads such a file as well. The public MP90 sessions hold the monitor's side only.

**Robustness.** Frames are found with ``bytes.find`` on the delimiters; a ``C0`` inside a frame
means the frame was cut (it is dropped and the new one starts there), so a damaged region never
costs a frame outside it. Any chunking gives the same items and counters. A frame that passes the
FCS but does not parse is counted in ``messages_malformed``; nothing raises for any input.
"""

from __future__ import annotations

import binascii
import bisect
import contextlib
import logging
import math
import struct
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.serial_driver import SerialDriver
from kapmonitor.codes import Code
from kapmonitor.errors import UserError
from kapmonitor.model import (
    NO_FLAGS,
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

log = logging.getLogger(__name__)

SERIAL = SerialSettings(115200)
SERIAL_19200 = SerialSettings(19200)
BAUD_OPTIONS: dict[str, SerialSettings] = {"115200": SERIAL, "19200": SERIAL_19200}
#: Bytes a second the monitor sends while polled for numerics, alarms and waves: the real MP90
#: sessions average 2,120 B/s (516 kB in 243 s); places the frames of a plain byte file in time.
BYTE_RATE = 2100.0

BOF, EOF, ESC = 0xC0, 0xC1, 0x7D
_BOF, _EOF, _ESC = b"\xc0", b"\xc1", b"\x7d"
HEADER = b"\x11\x01"  #: protocol id (IntelliVue data export) and message type (AS3 data)
MAX_WIRE = 4096  #: a longer frame is damage (the monitor's messages are under 1,500 bytes)

TICKS = 8000  #: RelativeTime units a second (1/8 ms)
NUMERIC_PERIOD = 1.024  #: seconds between numerics poll results
WAVE_PERIOD = 0.256  #: seconds of wave in one wave poll result
KEEP_ALIVE_S = 3.0  #: the driver renews its polls this often (the keep-alive)
POLL_DURATION_S = 60.0  #: the period a poll request asks for (renewed long before it ends)
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 10.0, 130.0

# Session SPDU types (first byte of a frame's user data)
CN_SPDU = 0x0D  #: association request
AC_SPDU = 0x0E  #: association result (accepted)
RF_SPDU = 0x0C  #: association refused
FN_SPDU = 0x09  #: release request
DN_SPDU = 0x0A  #: release response
AB_SPDU = 0x19  #: abort
DATA_SPDU = 0xE1  #: data export message (the session id's first byte)
SESSION_ID = 0xE100
P_CONTEXT_ID = 2
ROIV, RORS, ROER, ROLRS = 1, 2, 3, 5
CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT, CMD_GET, CMD_SET = 0, 1, 3, 4
CMD_CONFIRMED_SET, CMD_CONFIRMED_ACTION = 5, 7
NOM_PART_OBJ = 1
NOM_MOC_VMS_MDS = 0x0021
NOM_MOC_VMO_METRIC_NU = 0x0006
NOM_MOC_VMO_METRIC_SA_RT = 0x0009
NOM_MOC_VMO_AL_MON = 0x0036
NOM_NOTI_MDS_CREAT = 0x0D06
NOM_ACT_POLL_MDIB_DATA = 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT = 0xF13B
NOM_ATTR_GRP_VMO_DYN = 0x0803

# Attribute ids
NOM_ATTR_NU_VAL_OBS = 0x0950
NOM_ATTR_NU_CMPD_VAL_OBS = 0x094B
NOM_ATTR_SA_VAL_OBS = 0x096E
NOM_ATTR_SA_CMPD_VAL_OBS = 0x0967
NOM_ATTR_SA_SPECN = 0x096D
NOM_ATTR_SCALE_SPECN_I16 = 0x096F
NOM_ATTR_TIME_PD_SAMP = 0x098D
NOM_ATTR_TIME_STAMP_ABS = 0x0990
NOM_ATTR_TIME_STAMP_REL = 0x0991
NOM_ATTR_TIME_ABS = 0x0987
NOM_ATTR_TIME_REL = 0x098F
NOM_ATTR_SYS_TYPE = 0x0984
NOM_ATTR_ID_MODEL = 0x0928
NOM_ATTR_TIME_PD_POLL = 0xF13E
NOM_ATTR_POLL_RTSA_PRIO_LIST = 0xF23A
NOM_POLL_PROFILE_SUPPORT = 0x0001
NOM_ATTR_POLL_PROFILE_EXT = 0xF001

# Physio ids (the low 16 bits of the SCADA code)
NOM_ECG_CARD_BEAT_RATE = 0x4182
NOM_PULS_OXIM_SAT_O2 = 0x4BB8
NOM_PULS_OXIM_PULS_RATE = 0x4822
NOM_PULS_OXIM_PERF_REL = 0x4BB0
NOM_PULS_OXIM_PLETH = 0x4BB4
NOM_PRESS_BLD_NONINV = 0x4A04
NOM_PRESS_BLD_NONINV_SYS = 0x4A05
NOM_PRESS_BLD_NONINV_DIA = 0x4A06
NOM_PRESS_BLD_NONINV_MEAN = 0x4A07
NOM_PRESS_BLD_NONINV_PULS_RATE = 0xF0E5
NOM_ECG_V_P_C_CNT = 0x4261
NIBP_PARTS = (NOM_PRESS_BLD_NONINV_SYS, NOM_PRESS_BLD_NONINV_DIA, NOM_PRESS_BLD_NONINV_MEAN)
PLETH_LABEL = 0x00024BB4  #: the pleth's TextId (partition SCADA) for the wave priority list

#: Physio ids kapmonitor has an IEEE 11073 code for (the NOM_ names are the 11073 RefIds).
PHYSIO_CODES: dict[int, Code] = {
    NOM_ECG_CARD_BEAT_RATE: Code.HEART_RATE,
    NOM_PULS_OXIM_SAT_O2: Code.SPO2,
    NOM_PULS_OXIM_PULS_RATE: Code.PULSE_RATE,
    NOM_PULS_OXIM_PERF_REL: Code.PERFUSION,
}
#: Names for the DeviceValue keys of common unmapped ids (else the hex id is the name).
PHYSIO_NAMES: dict[int, str] = {
    NOM_ECG_V_P_C_CNT: "ECG_V_P_C_CNT",
    NOM_PRESS_BLD_NONINV_PULS_RATE: "PRESS_BLD_NONINV_PULS_RATE",
    0x0300: "ECG_AMPL_ST",
    0x0301: "ECG_AMPL_ST_I",
    0x0302: "ECG_AMPL_ST_II",
    0x0303: "ECG_AMPL_ST_V1",
    0x480A: "PULS_RATE",
    0x5012: "RESP_RATE",
    0x500A: "AWAY_RESP_RATE",
    0x50B0: "AWAY_CO2_ET",
    0xE004: "TEMP",
}
#: Unit codes to UCUM (spec: NOM_DIM_*).
UNITS: dict[int, str] = {
    0x0000: "",
    0x0200: "1",
    0x0220: "%",
    0x0512: "mm",
    0x0AA0: "/min",
    0x0F03: "kPa",
    0x0F20: "mm[Hg]",
    0x17A0: "Cel",
}
UNIT_MMHG, UNIT_KPA = 0x0F20, 0x0F03
KPA_TO_MMHG = 7.500615758

# MeasurementState bits
INVALID = 0x8000
QUESTIONABLE = 0x4000
UNAVAILABLE = 0x2000
CALIBRATION_ONGOING = 0x1000
TEST_DATA = 0x0800
DEMO_DATA = 0x0400
MSMT_ONGOING = 0x0020
MSMT_STATE_IN_ALARM = 0x0002

# FLOAT specials (mantissa)
FLOAT_NAN = 0x7FFFFF
FLOAT_NRES = 0x800000
FLOAT_PINF = 0x7FFFFE
FLOAT_NINF = 0x800002

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
    m = round(value * 10 ** (-exponent))
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


# --- messages -------------------------------------------------------------------------------------

_MDS_OBJ = struct.pack(">HHH", NOM_MOC_VMS_MDS, 0, 0)
_NU = struct.Struct(">HHHI")  #: NuObsValue: physio id, state, unit, FLOAT


def _li(n: int) -> bytes:
    """A session-layer length indicator: one byte below 255, else FF and a u16."""
    return bytes((n,)) if n < 255 else b"\xff" + n.to_bytes(2, "big")


def attribute_list(attrs: list[tuple[int, bytes]]) -> bytes:
    """An AttributeList: count, length, then (id, length, value) for each attribute."""
    body = b"".join(struct.pack(">HH", a, len(v)) + v for a, v in attrs)
    return struct.pack(">HH", len(attrs), len(body)) + body


def data_export(ro_type: int, invoke_id: int, command: int, body: bytes) -> bytes:
    """SPpdu + ROapdus + ROIV/RORS apdu around a command's argument or result."""
    apdu = struct.pack(">HHH", invoke_id, command, len(body)) + body
    return struct.pack(">HHHH", SESSION_ID, P_CONTEXT_ID, ro_type, len(apdu)) + apdu


_SESSION_DATA = bytes.fromhex("05081301001601028000140200 02".replace(" ", ""))
#: The association request's presentation header up to the user data's length (the spec's
#: template, as VSCaptureMP and PERSEUS send it).
_AARQ_PRESENTATION = bytes.fromhex(
    "3180a08080010100 00a280a003000001a4803080020101060452010001308006025101000000003080020102"
    "060c2a8648ce1402010000000101 3080060c2a8648ce14020100000002010000000000 00618030800201"
    "01a0806080a180060c2a8648ce140201000000030100 00be802880060c2a8648ce1402010000000101020102"
    "81".replace(" ", "")
)
#: The association result's presentation header up to the user data's length, reconstructed
#: from the spec's layout (accepted, with the MDSE user information after ``BE 80 28 80 02 01
#: 02 81``, which is all a host reads; PERSEUS finds the user data by that marker too).
_AARE_PRESENTATION = bytes.fromhex(
    "3180a080800101 0000a280a003000001a5803080800100810251010000 3080800100810c2a8648ce1402"
    "0100000002010000 0000618030800201 01a0806180a180060c2a8648ce14020100000003010000a203"
    "020100a305a103020100be80288002010281".replace(" ", "")
)
_USER_INFO_MARKER = bytes.fromhex("be80288002010281")
_PRESENTATION_TRAILER = bytes(16)


def _user_info(system_type: int, min_poll_s: float) -> bytes:
    """MDSEUserInfoStd: versions, system type, hot start, and the poll profile."""
    ext = struct.pack(">I", 0x8C000000) + attribute_list([])
    profile = struct.pack(
        ">IIIIII", 0x80000000, round(min_poll_s * TICKS), 1000, 1000, 0xFFFFFFFF, 0x60000000
    ) + attribute_list([(NOM_ATTR_POLL_PROFILE_EXT, ext)])
    return (
        struct.pack(">IIIII", 0x80000000, 0x40000000, 0, system_type, 0x20000000)
        + attribute_list([])
        + attribute_list([(NOM_POLL_PROFILE_SUPPORT, profile)])
    )


def _session_message(spdu: int, presentation: bytes, user_info: bytes) -> bytes:
    pres = presentation + _li(len(user_info)) + user_info + _PRESENTATION_TRAILER
    body = _SESSION_DATA + b"\xc1" + _li(len(pres)) + pres
    return bytes((spdu,)) + _li(len(body)) + body


SYST_CLIENT, SYST_SERVER = 0x80000000, 0x00800000
#: The host's Association Request (minimum poll period proposed: 1 s).
ASSOCIATION_REQUEST = _session_message(CN_SPDU, _AARQ_PRESENTATION, _user_info(SYST_CLIENT, 1.0))
#: Release request and response, and the abort, as the spec gives them.
RELEASE_REQUEST = bytes.fromhex("0918c11661803080020101a08062808001000000000000000000")
RELEASE_RESPONSE = bytes.fromhex("0a18c11661803080020101a08063808001000000000000000000")
ABORT = bytes.fromhex(
    "192e110103c129a080a080308002010106025101000000006180308002010"
    "1a080648080010100000000000000000000"
)


def association_result(min_poll_s: float = 1.0) -> bytes:
    """The monitor's Association Result (accepted) offering ``min_poll_s`` as its poll period."""
    return _session_message(AC_SPDU, _AARE_PRESENTATION, _user_info(SYST_SERVER, min_poll_s))


def min_poll_period(user_data: bytes) -> float | None:
    """The minimum poll period (s) an association result offers, or None if it cannot be read."""
    i = user_data.find(_USER_INFO_MARKER)
    if i < 0:
        return None
    j = i + len(_USER_INFO_MARKER)
    j += 3 if user_data[j : j + 1] == b"\xff" else 1
    try:
        # protocol, nomenclature, functional units, system type, startup mode; option list
        k = j + 20
        (n_opt,) = struct.unpack_from(">H", user_data, k + 2)
        k += 4 + n_opt
        count, _ = struct.unpack_from(">HH", user_data, k)
        k += 4
        for _ in range(count):
            aid, alen = struct.unpack_from(">HH", user_data, k)
            if aid == NOM_POLL_PROFILE_SUPPORT and alen >= 8:
                return struct.unpack_from(">I", user_data, k + 8)[0] / TICKS
            k += 4 + alen
    except struct.error:
        return None
    return None


def negotiated_timeout(min_poll_s: float | None) -> float:
    """The monitor drops a silent host after 3 x the minimum poll period, within 10-130 s."""
    if min_poll_s is None:
        return MIN_TIMEOUT_S
    return min(max(3.0 * min_poll_s, MIN_TIMEOUT_S), MAX_TIMEOUT_S)


def mds_create_result(invoke_id: int, event_time: int) -> bytes:
    """The host's confirmation of the MDS Create Event (same invoke id, the event's time)."""
    body = _MDS_OBJ + struct.pack(">IHH", event_time, NOM_NOTI_MDS_CREAT, 0)
    return data_export(RORS, invoke_id, CMD_CONFIRMED_EVENT_REPORT, body)


def ext_poll_request(
    invoke_id: int, poll_number: int, obj_code: int, duration_s: float = POLL_DURATION_S
) -> bytes:
    """An Extended Poll Data Request for all objects of one class, for ``duration_s``."""
    attrs = attribute_list([(NOM_ATTR_TIME_PD_POLL, struct.pack(">I", round(duration_s * TICKS)))])
    req = struct.pack(">HHHH", poll_number, NOM_PART_OBJ, obj_code, 0) + attrs
    body = _MDS_OBJ + struct.pack(">IHH", 0, NOM_ACT_POLL_MDIB_DATA_EXT, len(req)) + req
    return data_export(ROIV, invoke_id, CMD_CONFIRMED_ACTION, body)


def wave_priority_request(invoke_id: int, labels: tuple[int, ...] = (PLETH_LABEL,)) -> bytes:
    """Set the monitor's real-time wave priority list (which waves a wave poll returns)."""
    ids = struct.pack(">HH", len(labels), 4 * len(labels)) + b"".join(
        struct.pack(">I", x) for x in labels
    )
    mod = (
        struct.pack(">HH", 1, 6 + len(ids))
        + struct.pack(">HHH", 0, NOM_ATTR_POLL_RTSA_PRIO_LIST, len(ids))
        + ids
    )
    return data_export(ROIV, invoke_id, CMD_CONFIRMED_SET, _MDS_OBJ + struct.pack(">I", 0) + mod)


# --- message decoding -----------------------------------------------------------------------------


class Obs(NamedTuple):
    """One observed object of a poll result: its context, handle and attributes by id."""

    context: int
    handle: int
    attrs: dict[int, bytes]


@dataclass
class PollReply:
    """A (extended) poll result: its header and observations, in wire order."""

    invoke_id: int
    poll_number: int
    sequence: int
    rel_time: int
    abs_time: bytes
    obj_code: int
    observations: list[Obs]


@dataclass
class Message:
    """What one frame's user data says, as far as a host or the emulator needs to know."""

    kind: str  #: "associate", "accept", "refuse", "release-request", "release-response",
    #: "abort", "mds-create", "mds-create-result", "poll-request", "poll-result", "set",
    #: "set-result", "error", "other"
    invoke_id: int = 0
    ro_type: int = 0
    command: int = 0
    poll: PollReply | None = None
    obj_code: int = 0  #: the polled object class of a poll request
    poll_number: int = 0
    attrs: dict[int, bytes] = field(default_factory=dict)  #: MDS create: its attributes
    event_time: int = 0
    min_poll_s: float | None = None


def _attr_dict(b: bytes, off: int) -> tuple[dict[int, bytes], int]:
    count, length = struct.unpack_from(">HH", b, off)
    off += 4
    end = off + length
    if end > len(b):
        raise ValueError("attribute list runs past the message")
    out: dict[int, bytes] = {}
    for _ in range(count):
        aid, alen = struct.unpack_from(">HH", b, off)
        off += 4
        if off + alen > end:
            raise ValueError("attribute runs past its list")
        out[aid] = b[off : off + alen]
        off += alen
    return out, end


def _poll_reply(u: bytes, off: int, invoke_id: int, ext: bool) -> PollReply:
    if ext:
        poll_number, seq, rel = struct.unpack_from(">HHI", u, off)
        off += 8
    else:
        poll_number, rel = struct.unpack_from(">HI", u, off)
        seq = 0
        off += 6
    abs_time = u[off : off + 8]
    _, code, _ = struct.unpack_from(">HHH", u, off + 8)
    off += 14
    n_ctx, _ = struct.unpack_from(">HH", u, off)
    off += 4
    observations: list[Obs] = []
    for _ in range(n_ctx):
        context, n_obs, _ = struct.unpack_from(">HHH", u, off)
        off += 6
        for _ in range(n_obs):
            (handle,) = struct.unpack_from(">H", u, off)
            attrs, off = _attr_dict(u, off + 2)
            observations.append(Obs(context, handle, attrs))
    return PollReply(invoke_id, poll_number, seq, rel, abs_time, code, observations)


def parse_message(u: bytes) -> Message:
    """Decode one frame's user data (either direction); raises ValueError/struct.error if it is
    malformed."""
    if not u:
        raise ValueError("empty message")
    first = u[0]
    if first != DATA_SPDU:
        kind = {
            CN_SPDU: "associate",
            AC_SPDU: "accept",
            RF_SPDU: "refuse",
            FN_SPDU: "release-request",
            DN_SPDU: "release-response",
            AB_SPDU: "abort",
        }.get(first, "other")
        return Message(kind, min_poll_s=min_poll_period(u) if kind == "accept" else None)
    session, _, ro_type, _ = struct.unpack_from(">HHHH", u, 0)
    if session != SESSION_ID:
        return Message("other")
    off = 8
    if ro_type == ROLRS:
        off += 2  # linked id: state, count
    if ro_type == ROER:
        (invoke_id,) = struct.unpack_from(">H", u, off)
        return Message("error", invoke_id, ro_type)
    invoke_id, command, _ = struct.unpack_from(">HHH", u, off)
    off += 6
    msg = Message("other", invoke_id, ro_type, command)
    if command in (CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT):
        event_time, event_type, _ = struct.unpack_from(">IHH", u, off + 6)
        if event_type == NOM_NOTI_MDS_CREAT:
            msg.event_time = event_time
            if ro_type == ROIV:
                msg.kind = "mds-create"
                msg.attrs, _ = _attr_dict(u, off + 14 + 6)  # after the MDS's own object id
            elif ro_type == RORS:
                msg.kind = "mds-create-result"
    elif command == CMD_CONFIRMED_ACTION:
        if ro_type == ROIV:
            (action,) = struct.unpack_from(">H", u, off + 10)
            if action in (NOM_ACT_POLL_MDIB_DATA_EXT, NOM_ACT_POLL_MDIB_DATA):
                msg.kind = "poll-request"
                msg.poll_number, _, msg.obj_code = struct.unpack_from(">HHH", u, off + 14)
        else:
            (action,) = struct.unpack_from(">H", u, off + 6)
            if action in (NOM_ACT_POLL_MDIB_DATA_EXT, NOM_ACT_POLL_MDIB_DATA):
                msg.kind = "poll-result"
                msg.poll = _poll_reply(u, off + 10, invoke_id, action == NOM_ACT_POLL_MDIB_DATA_EXT)
    elif command in (CMD_SET, CMD_CONFIRMED_SET):
        msg.kind = "set" if ro_type == ROIV else "set-result"
    return msg


# --- parser ---------------------------------------------------------------------------------------


@dataclass
class IntellivueStats(ParserStats):
    """The base counters plus what the frames held."""

    bytes_in_frames: int = 0  #: wire bytes of frames with a good FCS
    frames_aborted: int = 0  #: frames the sender aborted (7D C1)
    messages_malformed: int = 0  #: good frames whose content did not parse
    poll_results: int = 0
    host_messages: int = 0  #: the host's own frames, when both directions were logged
    waves_ignored: int = 0  #: wave blocks of waves other than pleth


class SessionEvent(NamedTuple):
    """Something the driver must act on: the association changed or the monitor asks."""

    kind: str  #: "accept", "refuse", "abort", "release-request", "release-response",
    #: "mds-create"
    invoke_id: int = 0
    event_time: int = 0
    min_poll_s: float | None = None


def _state_flags(state: int) -> Flags:
    flags = set()
    if state & INVALID:
        flags.add(Flag.MEASUREMENT_FAILED)
    if state & (QUESTIONABLE | CALIBRATION_ONGOING):
        flags.add(Flag.QUESTIONABLE)
    if state & (DEMO_DATA | TEST_DATA):
        flags.add(Flag.DEMO)
    return frozenset(flags) if flags else NO_FLAGS


_STATE_FLAGS: dict[int, Flags] = {}


def state_flags(state: int) -> Flags:
    """The kapmonitor flags of a MeasurementState (cached: few states occur)."""
    flags = _STATE_FLAGS.get(state)
    if flags is None:
        flags = _STATE_FLAGS[state] = _state_flags(state)
    return flags


def numeric_value(state: int, raw: int) -> tuple[float | None, Flags]:
    """Value and flags of one NuObsValue: None when the monitor has no valid value."""
    value, extra = float_value(raw)
    flags = state_flags(state)
    if state & (INVALID | UNAVAILABLE):
        value = None
    if extra is not None:
        flags = flags | {extra}
    return value, flags


@dataclass
class _WaveSpec:
    """What the monitor said once about a wave object (static attributes)."""

    fs: float | None = None
    bits: int | None = None
    scale: tuple[float, float, int, int] | None = None


class IntellivueParser(Parser):
    """Decodes the monitor's frames into numerics, NIBP readings, pleth blocks and vendor values;
    session messages become :attr:`events` for the driver (see the module notes)."""

    protocol: ClassVar[str] = "intellivue"
    SERIAL: ClassVar[SerialSettings] = SERIAL

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: IntellivueStats = IntellivueStats()
        self._buf = b""
        self._in_step = False
        self._lost = False
        #: Session messages for the driver, oldest first (bounded: a decode keeps none).
        self.events: deque[SessionEvent] = deque(maxlen=64)
        self._anchor: tuple[float, float] | None = None  #: host (mono, wall) at relative time 0
        self._rel_last: int | None = None
        self._rel_wraps = 0
        #: (absolute seconds, relative ticks) at the MDS create event: places absolute times.
        self._mds_clock: tuple[float, int] | None = None
        self._nibp_seen: dict[tuple[int, int], bytes] = {}
        self._waves: dict[tuple[int, int], _WaveSpec] = {}
        self._logged: set[int] = set()
        #: (length, fixed slices, sample blocks) of the last plain wave result (the fast path).
        self._wave_layout: tuple[int, list, list] | None = None
        self._values: dict[tuple[int, int, int, int], tuple] = {}

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a frame not complete yet; ``bytes_in`` is always ``bytes_discarded +
        bytes_in_frames + pending_bytes``."""
        return len(self._buf)

    def take_events(self) -> list[SessionEvent]:
        """The session events since the last call (for the driver)."""
        out = list(self.events)
        self.events.clear()
        return out

    # --- framing ---

    def feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        if not data:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._buf
        if buf and _EOF not in data and _BOF not in data and len(buf) + len(data) <= MAX_WIRE:
            self._buf = buf + data  # the middle of a frame: nothing to decide yet
            return []
        b = buf + data if buf else data
        n = len(b)
        out: list[Measurement] = []
        pos = 0
        find = b.find
        while pos < n:
            s = find(_BOF, pos)
            if s < 0:
                self._discard(n - pos)
                pos = n
                break
            if s > pos:
                self._discard(s - pos)
            e = find(_EOF, s + 1)
            s2 = find(_BOF, s + 1, e if e >= 0 else n)
            if s2 >= 0:  # a new frame began before this one ended: this one was cut
                self._discard(s2 - s)
                pos = s2
                continue
            if e < 0:
                if n - s > MAX_WIRE:
                    self._discard(n - s)
                    pos = n
                else:
                    pos = s
                break
            pos = e + 1
            if e + 1 - s > MAX_WIRE:
                self._discard(e + 1 - s)
                continue
            self._frame(b, s, e, n, stamp, out)
        self._buf = b[pos:] if pos < n else b""
        return out

    def _discard(self, count: int, *, error: bool = True) -> None:
        stats = self.stats
        stats.bytes_discarded += count
        if error and self._in_step:
            stats.framing_errors += 1
        self._in_step = False
        self._lost = True

    def _frame(self, b: bytes, s: int, e: int, n: int, stamp: Stamp, out: list) -> None:
        stats = self.stats
        content = unescape(b[s + 1 : e])
        if content is None:
            stats.frames_aborted += 1
            self._discard(e + 1 - s)
            return
        if len(content) < 6 or content[:2] != HEADER:
            self._discard(e + 1 - s)
            return
        if fcs(content[:-2]) != int.from_bytes(content[-2:], "little"):
            stats.checksum_errors += 1
            was = self._in_step
            self._discard(e + 1 - s, error=False)
            self._in_step = was  # a bad FCS is counted as such, not also as a framing error
            return
        if int.from_bytes(content[2:4], "big") != len(content) - 6:
            self._discard(e + 1 - s)
            return
        stats.frames_ok += 1
        stats.bytes_in_frames += e + 1 - s
        if self._lost and not self._in_step:
            stats.resyncs += 1
        self._in_step = True
        self._lost = False
        at = stamp if e + 1 == n else stamp.shifted((e + 1 - n) / BYTE_RATE)
        try:
            u = content[4:-2]
            if self._fast_wave(u, at, out):
                return
            msg = parse_message(u)
            self._message(msg, at, out)
            if msg.poll is not None and msg.poll.obj_code == NOM_MOC_VMO_METRIC_SA_RT:
                self._learn_wave_layout(u, msg.poll)
        except (ValueError, struct.error, IndexError, OverflowError):
            stats.messages_malformed += 1

    # --- messages ---

    def _message(self, msg: Message, at: Stamp, out: list) -> None:
        kind = msg.kind
        if kind == "poll-result":
            assert msg.poll is not None
            self.stats.poll_results += 1
            self._poll(msg.poll, at, out)
        elif kind == "mds-create":
            abs_raw = msg.attrs.get(NOM_ATTR_TIME_ABS)
            rel_raw = msg.attrs.get(NOM_ATTR_TIME_REL)
            abs_s = decode_abs_time(abs_raw) if abs_raw and len(abs_raw) == 8 else None
            if abs_s is not None and rel_raw is not None and len(rel_raw) == 4:
                self._mds_clock = (abs_s, int.from_bytes(rel_raw, "big"))
            self._rel_last = None  # a new association: the relative clock may have restarted
            self.events.append(SessionEvent(kind, msg.invoke_id, msg.event_time))
        elif kind == "accept":
            self.problem = None
            self.events.append(SessionEvent(kind, min_poll_s=msg.min_poll_s))
        elif kind == "refuse":
            self.problem = (
                "the monitor refused the association: set its MIB/RS232 port to Data Export "
                "(Config mode) and check the baud rate"
            )
            self.events.append(SessionEvent(kind))
        elif kind in ("abort", "release-request", "release-response"):
            self.events.append(SessionEvent(kind))
        elif kind in ("associate", "poll-request", "mds-create-result", "set"):
            self.stats.host_messages += 1
        elif kind == "error":
            self._log_once(-1, "the monitor answered a request with an error (ROER)")

    def _log_once(self, key: int, text: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.info("%s: " + text, self.source, *args)

    def _device_stamp(self, rel: int, at: Stamp) -> Stamp:
        """The host stamp of monitor relative time ``rel`` seen in a frame that ended at ``at``."""
        if self._rel_last is None:
            u = rel
            self._rel_wraps = 0
        else:
            d = (rel - self._rel_last) & 0xFFFFFFFF
            if d >= 0x80000000:
                d -= 0x100000000
            u = self._rel_last + self._rel_wraps * 0x100000000 + d
            self._rel_wraps = (u - rel) // 0x100000000
        self._rel_last = rel
        secs = u / TICKS
        anchor = self._anchor
        mono0 = at.mono - secs
        # A frame is never early: the earliest arrival fixes the clock; a later one by more than
        # a second means the monitor's clock jumped or drifted, so it re-anchors.
        if anchor is None or mono0 < anchor[0] or mono0 > anchor[0] + 1.0:
            anchor = self._anchor = (mono0, at.wall - secs)
        return Stamp(anchor[0] + secs, anchor[1] + secs)

    def _poll(self, poll: PollReply, at: Stamp, out: list) -> None:
        stamp = self._device_stamp(poll.rel_time, at)
        src = self.source
        values_of = self._values
        for obs in poll.observations:
            attrs = obs.attrs
            if not attrs:
                continue
            values: list[tuple[int, int, int, int]] = []
            nu = attrs.get(NOM_ATTR_NU_VAL_OBS)
            if nu is not None:
                values.append(_NU.unpack_from(nu))
            cmpd = attrs.get(NOM_ATTR_NU_CMPD_VAL_OBS)
            if cmpd is not None:
                count = cmpd[0] << 8 | cmpd[1]
                values += [_NU.unpack_from(cmpd, 4 + 10 * i) for i in range(count)]
                if count and values[-1][0] in NIBP_PARTS:
                    self._nibp(obs, values, poll, stamp, out)
                    values = [v for v in values if v[0] not in NIBP_PARTS]
            for physio, state, unit, raw in values:
                key = (physio, state, unit, raw)
                made = values_of.get(key)
                if made is None:
                    if len(values_of) > 4096:
                        values_of.clear()
                    made = values_of[key] = self._describe(physio, state, unit, raw)
                code, vkey, value, ucum, flags, text = made
                if code is not None:
                    out.append(Numeric(src, code, value, stamp, flags))
                else:
                    out.append(DeviceValue(src, vkey, value, ucum, stamp, flags, text))
            if NOM_ATTR_SA_VAL_OBS in attrs or NOM_ATTR_SA_CMPD_VAL_OBS in attrs:
                self._waves_of(obs, stamp, out)

    def _describe(self, physio: int, state: int, unit: int, raw: int) -> tuple:
        """What one NuObsValue becomes: (code, vendor key, value, unit, flags, text); cached by
        the caller, since a monitor repeats the same few values poll after poll."""
        value, flags = numeric_value(state, raw)
        code = PHYSIO_CODES.get(physio)
        if code is not None:
            return code, "", value, code.unit, flags, ""
        name = PHYSIO_NAMES.get(physio, f"{physio:04X}")
        self._log_once(
            physio, "no IEEE code for physio id 0x%04X: kept as INTELLIVUE_%s", physio, name
        )
        text = "" if value is None else f"{value:g}"
        return None, f"INTELLIVUE_{name}", value, UNITS.get(unit, ""), flags, text

    def _nibp(self, obs: Obs, values: list, poll: PollReply, stamp: Stamp, out: list) -> None:
        parts: dict[int, tuple[int, int, int]] = {v[0]: (v[1], v[2], v[3]) for v in values}
        if any(st & MSMT_ONGOING for st, _, _ in parts.values()):
            return  # the cuff is measuring: the reading is not there yet
        key = (obs.context, obs.handle)
        abs_raw = obs.attrs.get(NOM_ATTR_TIME_STAMP_ABS)
        rel_raw = obs.attrs.get(NOM_ATTR_TIME_STAMP_REL)
        marker = (abs_raw or b"") + (rel_raw or b"")
        if not marker:  # no time stamp: a change of values is a new reading
            marker = b"".join(struct.pack(">HI", st, raw) for st, _, raw in parts.values())
        first = key not in self._nibp_seen
        if not first and self._nibp_seen[key] == marker:
            return
        self._nibp_seen[key] = marker
        readings: list[float | None] = []
        flags: set[Flag] = set()
        for pid in NIBP_PARTS:
            st, unit, raw = parts.get(pid, (UNAVAILABLE, UNIT_MMHG, FLOAT_NAN))
            value, f = numeric_value(st, raw)
            if value is not None and unit == UNIT_KPA:
                value = round(value * KPA_TO_MMHG, 1)
            readings.append(value)
            flags |= f
        if all(v is None for v in readings):
            if first:
                return  # the monitor's "no reading yet"
            flags.add(Flag.MEASUREMENT_FAILED)
        out.append(
            NibpReading(
                self.source,
                *readings,
                self._nibp_stamp(abs_raw, rel_raw, poll, stamp),
                frozenset(flags),
            )
        )

    def _nibp_stamp(
        self, abs_raw: bytes | None, rel_raw: bytes | None, poll: PollReply, stamp: Stamp
    ) -> Stamp:
        """When the cuff measured, on the host clock (never after the poll that told us)."""
        back: float | None = None
        if rel_raw is not None and len(rel_raw) == 4:
            back = ((poll.rel_time - int.from_bytes(rel_raw, "big")) & 0xFFFFFFFF) / TICKS
        elif abs_raw is not None and self._mds_clock is not None:
            abs_s = decode_abs_time(abs_raw)
            if abs_s is not None:
                mds_abs, mds_rel = self._mds_clock
                poll_abs = mds_abs + ((poll.rel_time - mds_rel) & 0xFFFFFFFF) / TICKS
                back = poll_abs - abs_s
        if back is None or back < 0 or back > 0x80000000 / TICKS:
            return stamp
        return stamp.shifted(-back)

    def _waves_of(self, obs: Obs, stamp: Stamp, out: list) -> None:
        attrs = obs.attrs
        key = (obs.context, obs.handle)
        spec = self._waves.get(key)
        if spec is None:
            spec = self._waves[key] = _WaveSpec()
        if NOM_ATTR_TIME_PD_SAMP in attrs:
            period = int.from_bytes(attrs[NOM_ATTR_TIME_PD_SAMP][:4], "big")
            spec.fs = TICKS / period if period else None
        if NOM_ATTR_SA_SPECN in attrs and len(attrs[NOM_ATTR_SA_SPECN]) >= 4:
            spec.bits = attrs[NOM_ATTR_SA_SPECN][3] or None
        scale = attrs.get(NOM_ATTR_SCALE_SPECN_I16)
        if scale is not None and len(scale) >= 12:
            lo_abs, hi_abs, lo_s, hi_s = struct.unpack_from(">IIHH", scale)
            lo_v, hi_v = decode_float(lo_abs), decode_float(hi_abs)
            if hi_s != lo_s and math.isfinite(lo_v) and math.isfinite(hi_v):
                spec.scale = (lo_v, hi_v, lo_s, hi_s)
        blocks: list[tuple[int, int, bytes]] = []
        sa = attrs.get(NOM_ATTR_SA_VAL_OBS)
        if sa is not None:
            physio, state, length = struct.unpack_from(">HHH", sa)
            blocks.append((physio, state, sa[6 : 6 + length]))
        cmpd = attrs.get(NOM_ATTR_SA_CMPD_VAL_OBS)
        if cmpd is not None:
            count, _ = struct.unpack_from(">HH", cmpd)
            off = 4
            for _ in range(count):
                physio, state, length = struct.unpack_from(">HHH", cmpd, off)
                blocks.append((physio, state, cmpd[off + 6 : off + 6 + length]))
                off += 6 + length
        for physio, state, data in blocks:
            self._wave_block(physio, state, data, 0, len(data) // 2, spec, stamp, out)

    def _wave_block(
        self,
        physio: int,
        state: int,
        data: bytes,
        offset: int,
        n: int,
        spec: _WaveSpec,
        stamp: Stamp,
        out: list,
    ) -> None:
        """One SaObsValue's samples (``n`` u16 from ``offset`` in ``data``) as a pleth block."""
        if physio != NOM_PULS_OXIM_PLETH:
            self.stats.waves_ignored += 1
            self._log_once(0x10000 | physio, "wave 0x%04X is not kept", physio)
            return
        if not n:
            return
        counts = np.frombuffer(data, dtype=">u2", count=n, offset=offset)
        if spec.bits is not None and spec.bits < 16:
            counts = counts & ((1 << spec.bits) - 1)
        samples: np.ndarray = counts
        if spec.scale is not None:
            lo_v, hi_v, lo_s, hi_s = spec.scale
            samples = lo_v + (counts.astype(np.float64) - lo_s) * ((hi_v - lo_v) / (hi_s - lo_s))
        if state & (INVALID | UNAVAILABLE):
            samples = np.full(n, np.nan)
        fs = spec.fs or n / WAVE_PERIOD
        out.append(WaveformBlock(self.source, Code.PLETH, stamp, fs, samples, state_flags(state)))

    # --- the fast path for wave results -------------------------------------------------------

    def _learn_wave_layout(self, u: bytes, poll: PollReply) -> None:
        """Remember where the samples sit in a wave result whose objects carry nothing but one
        SaObsValue each: the next results of the same poll differ only there (and in their
        sequence number and times), so :meth:`_fast_wave` reads them without parsing."""
        self._wave_layout = None
        if (
            u[4:6] != b"\x00\x02"
            or not poll.observations
            or any(
                len(o.attrs) != 1 or NOM_ATTR_SA_VAL_OBS not in o.attrs for o in poll.observations
            )
        ):
            return
        # Walk the structure again, recording offsets (the slow path has checked it).
        off = 24 + 8 + 8 + 6  # to the PollInfoList, after the reply's header
        n_ctx = int.from_bytes(u[off : off + 2], "big")
        off += 4
        blocks: list[tuple[int, int, int, int, _WaveSpec]] = []
        for _ in range(n_ctx):
            context, n_obs = struct.unpack_from(">HH", u, off)
            off += 6
            for _ in range(n_obs):
                handle = int.from_bytes(u[off : off + 2], "big")
                off += 2 + 4 + 4  # handle, list header, attribute header
                physio, _, length = struct.unpack_from(">HHH", u, off)
                spec = self._waves.setdefault((context, handle), _WaveSpec())
                blocks.append((physio, off + 2, off + 6, length // 2, spec))
                off += 6 + length
        if off != len(u):
            return
        fixed: list[tuple[int, int, bytes]] = [(0, 26, u[:26])]  # to the sequence number
        start = 40  # after the relative and absolute time
        for _, state_off, data_off, n, _ in blocks:
            fixed.append((start, state_off, u[start:state_off]))
            fixed.append((state_off + 2, data_off, u[state_off + 2 : data_off]))
            start = data_off + 2 * n
        fixed.append((start, len(u), u[start:]))
        self._wave_layout = (len(u), fixed, blocks)

    def _fast_wave(self, u: bytes, at: Stamp, out: list) -> bool:
        """Decode a wave result laid out as the last one; False if it is not."""
        layout = self._wave_layout
        if layout is None or len(u) != layout[0]:
            return False
        for a, b, ref in layout[1]:
            if u[a:b] != ref:
                return False
        self.stats.poll_results += 1
        stamp = self._device_stamp(int.from_bytes(u[28:32], "big"), at)
        for physio, state_off, data_off, n, spec in layout[2]:
            state = u[state_off] << 8 | u[state_off + 1]
            self._wave_block(physio, state, u, data_off, n, spec, stamp, out)
        return True


# --- emulator -------------------------------------------------------------------------------------

#: The emulated monitor's clock: relative time at session time 0 (as in the real 1A session)
#: and its absolute time then.
REL0 = 0x00C0C600
DEVICE_EPOCH = datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC).timestamp()
KEEP_ALIVE_TIMEOUT = MIN_TIMEOUT_S  #: what the emulator's association result negotiates
CREATE_RESEND_S = 5.0  #: the MDS Create Event is repeated this often until confirmed
PLETH_FS = 125.0
PLETH_PER_RESULT = round(PLETH_FS * WAVE_PERIOD)  #: 32
PLETH_FULL_SCALE = 4095  #: the MP90's pleth counts are 12-bit

# Object handles of the emulated monitor (those of the real MP90 where it has them).
H_NIBP, H_HR, H_PVC, H_SPO2, H_PR, H_PERF, H_PLETH = (
    0x8268,
    0x82A5,
    0x82B8,
    0x83B5,
    0x83B6,
    0x83C3,
    0x03BA,
)
MDS_ATTRS_FIXED = [
    (NOM_ATTR_SYS_TYPE, bytes.fromhex("00060009")),
    (NOM_ATTR_ID_MODEL, bytes.fromhex("00085068696c6970730000064d3830303000")),  # Philips M8000
]


@dataclass
class _Poll:
    """An extended poll the emulated monitor is serving."""

    invoke_id: int
    poll_number: int
    start: float  #: session time of the request
    until: float  #: it ends here
    sequence: int = 0


class IntellivueEmulator(DeviceEmulator):
    """An IntelliVue MP90 on its MIB port, playing the monitor's side of the session.

    Silent until an Association Request; then it answers with the association result (offering a
    1-s minimum poll period, so a 10-s timeout) and the MDS Create Event, repeated every
    :data:`CREATE_RESEND_S` until the host confirms it with the same invoke id. Only then does it
    serve extended polls: numerics (HR, SpO2, pleth pulse rate, perfusion, PVC count, and the
    NIBP compound) every 1.024 s and the pleth (32 samples at 125 Hz, 12-bit) every 256 ms, on
    its own time grid, from the first grid point after the request until the requested period
    ends; a repeated request replaces the running one. A wave priority list request is answered
    with its set result. It drops the association with an abort when the host is silent for the
    timeout (real seconds, so ``speed`` times longer in session time), or when :meth:`drop` is
    called (a monitor that ends it on its own); a release request is answered with the release
    response. Every message is built as the real MP90 frames in tests/data/intellivue-mp90 are
    laid out (one context, the same object handles).

    NIBP follows the scenario's schedule: before the first reading the compound is NaN and
    unavailable; while the cuff measures (``measure_s`` before a reading) it carries the last
    reading with MSMT_ONGOING; then the new values stamped with the time the cuff finished
    (a failed measurement: NaN, invalid).
    """

    protocol: ClassVar[str] = IntellivueParser.protocol
    SERIAL: ClassVar[SerialSettings] = SERIAL
    tick: ClassVar[float] = 0.05

    def __init__(
        self,
        session: KapSession,
        *,
        speed: float = 1.0,
        timeout: float = KEEP_ALIVE_TIMEOUT,
        min_poll_s: float = 1.0,
    ) -> None:
        super().__init__(session, speed=speed)
        #: The association's timeout in session time (real seconds × speed).
        self.timeout = timeout * speed
        self.min_poll_s = min_poll_s
        self.create_resend = CREATE_RESEND_S * speed
        self.associated = False
        self.confirmed = False
        self.associations = 0  #: association requests accepted
        #: (session time, message kind, detail) of every host message, as received.
        self.received: list[tuple[float, str, int]] = []
        #: (session time, what) of the monitor's own session actions ("abort", "release").
        self.ended: list[tuple[float, str]] = []
        self._hostbuf = b""
        self._polls: dict[int, _Poll] = {}
        self._last_host = 0.0
        self._create_invoke = 0
        self._create_at = 0.0
        self._drop = False
        self._readings = tuple(getattr(session, "nibp_readings", ()))
        self._reading_t = [r.t for r in self._readings]
        nibp_plan = getattr(getattr(session, "scenario", None), "nibp", None)
        self._measure_s = float(getattr(nibp_plan, "measure_s", 30.0))

    # --- clock ---

    @staticmethod
    def rel(t: float) -> int:
        """The monitor's relative time (1/8 ms) at session time ``t``."""
        return (REL0 + round(t * TICKS)) & 0xFFFFFFFF

    @staticmethod
    def abs_time(t: float) -> float:
        return DEVICE_EPOCH + t

    # --- host → monitor ---

    def drop(self) -> None:
        """End the association from the monitor's side at the next emit (sends an abort)."""
        self._drop = True

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        reply = bytearray()
        for content in self._host_frames(data):
            reply += self._host_message(content, t)
        return bytes(reply)

    def _host_frames(self, data: bytes) -> list[bytes]:
        """The user data of the host's complete, good frames (framing shared with the parser)."""
        buf = self._hostbuf + data
        out = []
        pos = 0
        while True:
            s = buf.find(_BOF, pos)
            if s < 0:
                pos = len(buf)
                break
            e = buf.find(_EOF, s + 1)
            if e < 0:
                pos = s
                break
            s2 = buf.find(_BOF, s + 1, e)
            if s2 >= 0:
                pos = s2
                continue
            pos = e + 1
            content = unescape(buf[s + 1 : e])
            if (
                content is not None
                and len(content) >= 6
                and content[:2] == HEADER
                and fcs(content[:-2]) == int.from_bytes(content[-2:], "little")
            ):
                out.append(content[4:-2])
        self._hostbuf = buf[pos:][-MAX_WIRE:]
        return out

    def _host_message(self, u: bytes, t: float) -> bytes:
        try:
            msg = parse_message(u)
        except (ValueError, struct.error, IndexError):
            self.received.append((t, "malformed", 0))
            return b""
        self.received.append((t, msg.kind, msg.obj_code))
        self._last_host = t
        if msg.kind == "associate":
            # A new association replaces any old one (a host that restarted).
            self.associated, self.confirmed = True, False
            self.associations += 1
            self._polls.clear()
            self._create_invoke = (self._create_invoke + 1) & 0xFFFF
            self._create_at = t
            return frame(association_result(self.min_poll_s)) + self._create_event(t)
        if not self.associated:
            return b""
        if msg.kind == "release-request":
            self._end(t, "release")
            return frame(RELEASE_RESPONSE)
        if msg.kind == "abort":
            self._end(t, "host abort")
            return b""
        if msg.kind == "mds-create-result" and msg.invoke_id == self._create_invoke:
            self.confirmed = True
        elif not self.confirmed:
            return b""
        elif msg.kind == "poll-request" and msg.obj_code in (
            NOM_MOC_VMO_METRIC_NU,
            NOM_MOC_VMO_METRIC_SA_RT,
        ):
            duration = POLL_DURATION_S
            with contextlib.suppress(ValueError, struct.error, IndexError):
                attrs, _ = _attr_dict(u, 36)  # after the request's header
                if NOM_ATTR_TIME_PD_POLL in attrs:
                    duration = int.from_bytes(attrs[NOM_ATTR_TIME_PD_POLL][:4], "big") / TICKS
            self._polls[msg.obj_code] = _Poll(msg.invoke_id, msg.poll_number, t, t + duration)
        elif msg.kind == "set":
            ava = u[30:]  # the modification's attribute: id, length, value
            value = ava[4 : 4 + int.from_bytes(ava[2:4], "big")]
            body = _MDS_OBJ + attribute_list([(NOM_ATTR_POLL_RTSA_PRIO_LIST, value)])
            return frame(data_export(RORS, msg.invoke_id, CMD_CONFIRMED_SET, body))
        return b""

    def _end(self, t: float, why: str) -> None:
        self.associated = self.confirmed = False
        self._polls.clear()
        self.ended.append((t, why))

    def _create_event(self, t: float) -> bytes:
        attrs = [
            *MDS_ATTRS_FIXED,
            (NOM_ATTR_TIME_ABS, encode_abs_time(self.abs_time(t))),
            (NOM_ATTR_TIME_REL, struct.pack(">I", self.rel(t))),
        ]
        info = _MDS_OBJ + attribute_list(attrs)
        body = _MDS_OBJ + struct.pack(">IHH", self.rel(t), NOM_NOTI_MDS_CREAT, len(info)) + info
        return frame(data_export(ROIV, self._create_invoke, CMD_CONFIRMED_EVENT_REPORT, body))

    # --- monitor → host ---

    def emit(self, t0: float, t1: float) -> bytes:
        if t1 <= t0:
            return b""
        out: list[tuple[float, int, bytes]] = []
        if self.associated and (self._drop or t0 - self._last_host > self.timeout):
            self._end(t0, "abort" if self._drop else "timeout")
            self._drop = False
            return frame(ABORT)
        self._drop = False
        if not self.associated:
            return b""
        if not self.confirmed:
            c, r = self._create_at, self.create_resend
            ks = range(max(1, math.ceil((t0 - c) / r - 1e-9)), math.ceil((t1 - c) / r - 1e-9))
            return b"".join(self._create_event(c + k * r) for k in ks)
        for code, poll in self._polls.items():
            period = NUMERIC_PERIOD if code == NOM_MOC_VMO_METRIC_NU else WAVE_PERIOD
            # Results on the monitor's grid, from the first grid point after the request.
            hi = min(t1, poll.until)
            k = max(math.floor(t0 / period - 1e-9), math.floor(poll.start / period))
            while k * period < hi:
                if k * period >= t0 and k * period > poll.start:
                    out.append((k * period, code, self._result(code, poll, k)))
                k += 1
        out.sort(key=lambda x: (x[0], x[1]))
        return b"".join(f for _, _, f in out)

    def _result(self, code: int, poll: _Poll, k: int) -> bytes:
        if code == NOM_MOC_VMO_METRIC_NU:
            t = k * NUMERIC_PERIOD
            observations = self.numerics(t)
            rel = self.rel(t)
        else:
            t = (k - 1) * WAVE_PERIOD  # the samples of the 256 ms before the result
            observations = [(H_PLETH, [(NOM_ATTR_SA_VAL_OBS, self.pleth_value(t))])]
            rel = self.rel(t)
        seq = poll.sequence
        poll.sequence = (seq + 1) & 0xFFFF
        obs = b"".join(struct.pack(">H", h) + attribute_list(a) for h, a in observations)
        info = struct.pack(">HHH", 1, len(observations), len(obs)) + obs
        reply = (
            struct.pack(">HHI", poll.poll_number, seq, rel)
            + b"\xff" * 8
            + struct.pack(">HHH", NOM_PART_OBJ, code, NOM_ATTR_GRP_VMO_DYN)
            + struct.pack(">HH", 1, len(info))
            + info
        )
        body = _MDS_OBJ + struct.pack(">HH", NOM_ACT_POLL_MDIB_DATA_EXT, len(reply)) + reply
        return frame(data_export(RORS, poll.invoke_id, CMD_CONFIRMED_ACTION, body))

    def numerics(self, t: float) -> list[tuple[int, list[tuple[int, bytes]]]]:
        """The numerics poll result's observations at session time ``t``."""
        v = self.session.vitals(t)
        off = Flag.SENSOR_OFF in v.flags or Flag.SEARCHING in v.flags
        quest = bool(v.flags & {Flag.ARTIFACT, Flag.LOW_PERFUSION})
        ox_state = (INVALID | UNAVAILABLE) if off else (QUESTIONABLE if quest else 0)

        def nu(physio: int, state: int, unit: int, value: float | None, exp: int) -> bytes:
            raw = encode_float(None if state & UNAVAILABLE else value, exp)
            return struct.pack(">HHHI", physio, state, unit, raw)

        hr = v.heart_rate
        hr_state = UNAVAILABLE if hr is None else 0
        spo2_state = ox_state | (MSMT_STATE_IN_ALARM if v.spo2 is not None and v.spo2 < 90 else 0)
        hr_v = None if hr is None else float(round(hr))
        spo2_v = None if v.spo2 is None else round(v.spo2, 1)
        pi_v = None if v.perfusion_index is None else round(v.perfusion_index, 2)
        return [
            (H_NIBP, self.nibp_attrs(t)),
            (H_HR, [(NOM_ATTR_NU_VAL_OBS, nu(NOM_ECG_CARD_BEAT_RATE, hr_state, 0x0AA0, hr_v, 0))]),
            (H_PVC, [(NOM_ATTR_NU_VAL_OBS, nu(NOM_ECG_V_P_C_CNT, hr_state, 0x0AA0, 0.0, 0))]),
            (
                H_SPO2,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_SAT_O2, spo2_state, 0x0220, spo2_v, -1))],
            ),
            (
                H_PR,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_PULS_RATE, ox_state, 0x0AA0, hr_v, 0))],
            ),
            (
                H_PERF,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_PERF_REL, ox_state, 0x0200, pi_v, -2))],
            ),
        ]

    def nibp_attrs(self, t: float) -> list[tuple[int, bytes]]:
        """The NIBP object's attributes at ``t``: last reading, or measuring, or none yet."""
        i = bisect.bisect_right(self._reading_t, t)
        last = self._readings[i - 1] if i else None
        following = self._readings[i] if i < len(self._readings) else None
        measuring = following is not None and following.t - self._measure_s <= t
        if last is None:
            values: tuple = (None, None, None)
            state = UNAVAILABLE
            when = None
        else:
            values = (last.systolic, last.diastolic, last.mean)
            state = INVALID if last.systolic is None else 0
            when = self.abs_time(last.t)
        if measuring:
            state = (state & ~INVALID) | MSMT_ONGOING
        parts = b"".join(
            struct.pack(
                ">HHHI", pid, state, UNIT_MMHG, encode_float(None if x is None else float(x))
            )
            for pid, x in zip(NIBP_PARTS, values, strict=True)
        )
        cmpd = struct.pack(">HH", 3, len(parts)) + parts
        return [(NOM_ATTR_TIME_STAMP_ABS, encode_abs_time(when)), (NOM_ATTR_NU_CMPD_VAL_OBS, cmpd)]

    def pleth_value(self, t: float) -> bytes:
        """The SaObsValue of the 32 pleth samples from ``t``."""
        x = np.asarray(self.session.pleth(t, PLETH_PER_RESULT, PLETH_FS), dtype=np.float64)
        invalid = bool(np.isnan(x).any())
        q = np.rint(np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * PLETH_FULL_SCALE)
        data = q.astype(">u2").tobytes()
        state = INVALID if invalid else 0
        return struct.pack(">HHH", NOM_PULS_OXIM_PLETH, state, len(data)) + data


# --- driver ---------------------------------------------------------------------------------------


class IntellivueDriver(SerialDriver):
    """A Philips IntelliVue on its MIB port (``intellivue@/dev/ttyUSB0``; option ``19200`` for
    a port set to 19200 baud: ``intellivue+19200@PORT``).

    Plays the host's side of the session: the association request on connect, the confirmation
    of the MDS Create Event (same invoke id), the wave priority list (pleth only) and the
    extended polls for numerics and waves, renewed every :data:`KEEP_ALIVE_S` as the keep-alive
    (a third of the shortest timeout a monitor can negotiate). When the monitor aborts or
    releases the association, or sends no frame for two keep-alive periods while associated, the
    driver associates again (after an abort of its own, for the silent case); a refused or
    unanswered request is repeated every other period. On stop it sends a release request.
    """

    name = "intellivue"
    parser_class = IntellivueParser
    emulator_class = IntellivueEmulator
    serial_settings = SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = KEEP_ALIVE_S
    options: ClassVar[frozenset[str]] = frozenset(BAUD_OPTIONS)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        unknown = sorted(self.spec.options - self.options)
        if unknown or len(self.spec.options) > 1:
            raise UserError(
                f"device '{self.spec.text}': unknown option '{(unknown or ['?'])[0]}' "
                f"({self.name} knows one of: {', '.join(sorted(self.options))})"
            )
        for option in self.spec.options:
            self.serial_settings = BAUD_OPTIONS[option]
        self.associated = False  #: the monitor accepted the association
        self.polling = False  #: the MDS create event was confirmed and polls sent
        self.associations = 0  #: associations completed (MDS create confirmed)
        #: The timeout the monitor negotiated (seconds of host silence it accepts).
        self.timeout = MIN_TIMEOUT_S
        self._invoke = 0
        self._ticks_waiting = 0
        self._frames_seen = 0
        self._silent_ticks = 0

    def status(self) -> str:
        line = super().status()
        session = (
            "polling" if self.polling else "associated" if self.associated else "no association"
        )
        return f"{line}; {session}"

    def _next_invoke(self) -> int:
        self._invoke = (self._invoke + 1) & 0xFFFF
        return self._invoke

    def _associate(self) -> bytes:
        self.associated = self.polling = False
        self._ticks_waiting = 0
        self._silent_ticks = 0
        return frame(ASSOCIATION_REQUEST)

    def _polls(self) -> bytes:
        return frame(ext_poll_request(self._next_invoke(), 1, NOM_MOC_VMO_METRIC_NU)) + frame(
            ext_poll_request(self._next_invoke(), 2, NOM_MOC_VMO_METRIC_SA_RT)
        )

    def greeting(self) -> bytes:
        return self._associate()

    def reply(self) -> bytes:
        out = bytearray()
        frames = self.parser.stats.frames_ok
        if frames != self._frames_seen:
            self._frames_seen = frames
            self._silent_ticks = 0
        for ev in self.parser.take_events():
            if ev.kind == "accept":
                self.associated = True
                self.timeout = negotiated_timeout(ev.min_poll_s)
                self.keep_alive_interval = min(KEEP_ALIVE_S, self.timeout / 3)
            elif ev.kind == "mds-create":
                out += frame(mds_create_result(ev.invoke_id, ev.event_time))
                if not self.polling:
                    self.associated = self.polling = True
                    self.associations += 1
                    out += frame(wave_priority_request(self._next_invoke()))
                    out += self._polls()
                    self._set_state(ConnectionState.CONNECTED, "associated with the monitor")
            elif ev.kind == "refuse":
                self.associated = self.polling = False
                log.warning("%s: %s", self.source, self.parser.problem)
            elif ev.kind in ("abort", "release-request", "release-response"):
                if self.stopping:
                    continue
                if ev.kind == "release-request":
                    out += frame(RELEASE_RESPONSE)
                why = "aborted" if ev.kind == "abort" else "released"
                self._set_state(ConnectionState.RECONNECTING, f"the monitor {why} the association")
                out += self._associate()
        return bytes(out)

    def keep_alive(self) -> bytes:
        if self.polling:
            self._silent_ticks += 1
            if self._silent_ticks > 2:
                self._set_state(
                    ConnectionState.RECONNECTING, "the monitor stopped sending: associating again"
                )
                return frame(ABORT) + self._associate()
            return self._polls()
        self._ticks_waiting += 1
        if self._ticks_waiting >= 2:
            return self._associate()
        return b""

    def farewell(self) -> bytes:
        if not self.associated:
            return b""
        self.associated = self.polling = False
        return frame(RELEASE_REQUEST)


__all__ = [
    "ABORT",
    "ASSOCIATION_REQUEST",
    "IntellivueDriver",
    "IntellivueEmulator",
    "IntellivueParser",
    "decode_float",
    "encode_float",
    "fcs",
    "frame",
]
