"""The S/5 records kapmonitor builds: the host's requests, the basic class, displayed-value and
wave records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from devices.protocols.ge_s5.wire import (
    _ECG,
    _GROUP4,
    _I16,
    _WF_HDR,
    BASIC_GROUPS,
    CLASS_BASIC,
    CLASS_LEN,
    CO2_OFF,
    DATA_INVALID,
    DEFAULT_INTERVAL,
    DRI_LEVEL_09,
    ECG_OFF,
    EOL,
    MT_PHDB,
    MT_WAVE,
    NIBP_OFF,
    PH_DISPL,
    PH_REQUEST,
    SPO2_OFF,
    WF_CMD,
    WF_CO2,
    WF_PLETH,
    WF_REQ_START,
    WF_REQ_STOP,
    frame,
    make_record,
)


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
#: Pleth and the capnogram (the driver's ``co2`` option: ``ge-s5+co2@PORT``).
WAVE_REQUEST_CO2 = frame(wave_request((WF_PLETH, WF_CO2)))
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
    # The CO2 group (issue 17): status, label, EtCO2 and FiCO2 in 1/100 %, RR in /min.
    co2_status: int = 0
    co2_label: int = 0
    co2_et: int = DATA_INVALID
    co2_fi: int = DATA_INVALID
    co2_rr: int = DATA_INVALID


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
    _GROUP4.pack_into(
        out,
        CO2_OFF,
        b.co2_status,
        b.co2_label,
        b.co2_et,
        b.co2_fi,
        b.co2_rr,
        b.co2_amb_press,
    )
    return bytes(out)


def decode_basic(data: bytes | memoryview, off: int = 0) -> BasicClass:
    """The fields of a basic class that starts at ``data[off]``."""
    ecg_status, ecg_label, hr = _ECG.unpack_from(data, off + ECG_OFF)
    n_status, n_label, n_sys, n_dia, n_mean, n_hr = _GROUP4.unpack_from(data, off + NIBP_OFF)
    s = _GROUP4.unpack_from(data, off + SPO2_OFF)
    c_status, c_label, c_et, c_fi, c_rr, amb = _GROUP4.unpack_from(data, off + CO2_OFF)
    return BasicClass(
        ecg_status,
        ecg_label,
        hr,
        n_status,
        n_label,
        n_sys,
        n_dia,
        n_mean,
        n_hr,
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        amb,
        co2_status=c_status,
        co2_label=c_label,
        co2_et=c_et,
        co2_fi=c_fi,
        co2_rr=c_rr,
    )


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
