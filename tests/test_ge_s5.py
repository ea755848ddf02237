"""GE/Datex S/5 Computer Interface: spec vectors, real B650 values, emulator, damage, driver."""

from __future__ import annotations

import csv
import itertools
import json
import math
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.protocols.ge_s5 import (
    PHDB_REQUEST,
    PHDB_STOP,
    WAVE_REQUEST,
    WAVE_STOP,
    BasicClass,
    GeS5Driver,
    GeS5Emulator,
    GeS5Parser,
    checksum,
    escape,
    frame,
    phdb_record,
    unescape,
    wave_record,
)
from devices.protocols.ge_s5.records import (
    decode_basic,
    encode_basic,
    phdb_request,
    wave_request,
    wave_subrecord,
)
from devices.protocols.ge_s5.wire import (
    BASIC_GROUPS,
    CLASS_LEN,
    DATA_DISCONT,
    DATA_INVALID,
    DATA_NOT_CALIBRATED,
    DATA_NOT_UPDATED,
    DATA_OVER_RANGE,
    DATA_UNDER_RANGE,
    ECG_ARTIFACT,
    HEADER_LEN,
    LINE_RATE,
    MAX_BODY,
    NIBP_AUTO,
    NIBP_CALIBRATING,
    NIBP_MEASURING,
    NIBP_OLD,
    PH_60S_TREND,
    PHDB_SUBRECORD_LEN,
    STATUS_ACTIVE,
    STATUS_EXISTS,
    WF_ECG1,
    WF_PLETH,
    WF_STATUS_GAP,
    decode_header,
)
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import serve
from devices.transport import open_port
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    ConnectionState,
    DeviceValue,
    Flag,
    NibpReading,
    Numeric,
    WaveformBlock,
)
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector, decode_cli, feed_chunks
from tests.protocol_helpers import ORIGIN, PTY, TeeEndpoint, at_byte_rate, check_accounting, hypo

DATA = Path(__file__).parent / "data" / "ge-b650"  # copied from ../shared/data (see README)
HYPO = hypo(max_examples=60)
ON = STATUS_EXISTS | STATUS_ACTIVE

# M1017617 (S/5 Computer Interface Specification, 12th ed.) Appendix A: GE's own examples, as
# printed there, of the requests and their bytes on the wire.
SPEC_DISPL_10S_ALL_CLASSES = """7e 31 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 0a 00 0e 00 00 00
00 00 49 7e"""
SPEC_DISPL_STOP = """7e 31 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00
00 00 31 7e"""
SPEC_60S_TREND = """7e 31 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 3c 00 0e 00 00 00
00 00 7d 5d 7e"""
SPEC_60S_TREND_STOP = """7e 31 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 00 00 00 00 00 00
00 00 33 7e"""
SPEC_WAVE_ECG1 = """7e 48 00 00 00 00 00 00 00 00 00 00 00 00 00 01
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 ff 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 48 7e"""
SPEC_WAVE_STOP = """7e 48 00 00 00 00 00 00 00 00 00 00 00 00 00 01
00 00 00 00 00 00 ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 ff 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 48 7e"""


# --- helpers ------------------------------------------------------------------------------------


byte_stamp = at_byte_rate(LINE_RATE)  #: when byte ``end`` has arrived, at the line's rate


def decode(stream: bytes, cuts=None) -> tuple[GeS5Parser, list]:
    """Feed ``stream`` split at ``cuts`` (default: whole), each chunk stamped by its last byte."""
    parser = GeS5Parser("ge")
    return parser, feed_chunks(parser, stream, cuts, byte_stamp)


def comparable(items: list) -> list[tuple]:
    out = []
    for it in items:
        # In ticks of 1/1,920,000 s: byte times (11/19200 s) and sample times (1/100 s) are whole
        # numbers of them, so rounding is safe from float noise.
        stamp = round((it.stamp.mono - ORIGIN.mono) * 1_920_000)
        if isinstance(it, Numeric):
            out.append((it.code, it.value, it.flags, stamp))
        elif isinstance(it, DeviceValue):
            out.append((it.key, it.value, it.flags, stamp))
        elif isinstance(it, NibpReading):
            out.append(("nibp", it.systolic, it.diastolic, it.mean, it.flags, stamp))
        else:
            assert isinstance(it, WaveformBlock) and it.code is Code.PLETH and it.fs == 100.0
            samples = tuple(np.nan_to_num(it.samples, nan=-1e9).tolist())
            out.append((it.code, samples, it.flags, stamp))
    return out


def numerics(items: list, code: Code) -> list[Numeric]:
    return [i for i in items if isinstance(i, Numeric) and i.code is code]


def readings(items: list) -> list[NibpReading]:
    return [i for i in items if isinstance(i, NibpReading)]


def steady(**kw) -> BasicClass:
    """A basic class with a steady patient and an old NIBP reading 120/80 (93)."""
    base = BasicClass(
        ecg_status=ON,
        hr=72,
        nibp_status=ON,
        nibp_label=NIBP_AUTO,
        nibp_sys=12000,
        nibp_dia=8000,
        nibp_mean=9300,
        spo2_status=ON,
        spo2=9700,
        spo2_pr=72,
        spo2_ir_amp=250,
        co2_amb_press=7600,
    )
    return replace(base, **kw)


def phdb(basic: BasicClass, r_time: int = 1_600_000_000) -> bytes:
    return frame(phdb_record(basic, r_time))


def pleth(samples, status: int = 0, r_time: int = 1_600_000_000) -> bytes:
    return frame(wave_record([(WF_PLETH, wave_subrecord(samples, status))], r_time))


def started(session: KapSession, at: float = 0.0) -> GeS5Emulator:
    emu = GeS5Emulator(session)
    assert emu.on_host_bytes(PHDB_REQUEST + WAVE_REQUEST, at) == b""
    return emu


@pytest.fixture(scope="module")
def typical() -> KapSession:
    return KapSession(load_scenario("typical"), seed=3)


@pytest.fixture(scope="module")
def stream(typical: KapSession) -> bytes:
    """Two minutes of what the monitor sends after the driver's requests."""
    return started(typical).emit(0.0, 120.0)


# --- golden: GE's own request examples and the checksum -----------------------------------------


@pytest.mark.parametrize(
    ("record", "wire"),
    [
        (phdb_request(10, class_bf=0x0E), SPEC_DISPL_10S_ALL_CLASSES),
        (phdb_request(0), SPEC_DISPL_STOP),
        (phdb_request(60, PH_60S_TREND, 0x0E), SPEC_60S_TREND),
        (phdb_request(0, PH_60S_TREND), SPEC_60S_TREND_STOP),
        (wave_request((WF_ECG1,)), SPEC_WAVE_ECG1),
        (wave_request(start=False), SPEC_WAVE_STOP),
    ],
)
def test_requests_are_byte_for_byte_the_specs_examples(record: bytes, wire: str) -> None:
    want = bytes.fromhex(wire)
    assert frame(record) == want
    assert len(record) == (49 if record[14] == 0 else 72) == record[0]
    emu = GeS5Emulator(KapSession(load_scenario("typical"), seed=1))
    emu.on_host_bytes(want, 1.0)
    assert emu.received == [(1.0, record)]  # the monitor side accepts GE's own bytes


def test_checksum_is_the_sum_of_the_unescaped_record_and_is_itself_escaped() -> None:
    # The spec's 60-s trend request sums to 0x7D: the checksum byte goes out as 7D 5D.
    record = phdb_request(60, PH_60S_TREND, 0x0E)
    assert checksum(record) == 0x7D and frame(record).endswith(b"\x7d\x5d\x7e")
    # A record holding 7E and 7D. The public transmitters (VSCapture WriteBuffer, icu_devices
    # tx_buffer) add the escaped pair 7D 5E instead of 7E to the sum; the receivers of both, like
    # the monitor, sum the unescaped bytes. A frame summed their way is refused.
    rec = phdb_request(0x7E7D)  # tx_ival bytes 7D 7E
    body = escape(rec)
    assert b"\x7d\x5e" in body and b"\x7d\x5d" in body
    good = frame(rec)
    escaped_sum = sum(body) & 0xFF
    assert escaped_sum != checksum(rec)
    bad = b"\x7e" + body + escape(bytes((escaped_sum,))) + b"\x7e"
    parser, _ = decode(good + bad)
    assert (parser.stats.frames_ok, parser.stats.checksum_errors) == (1, 1)
    emu = GeS5Emulator(KapSession(load_scenario("typical"), seed=1))
    emu.on_host_bytes(good + bad, 0.0)
    assert [r for _, r in emu.received] == [rec]


@given(st.binary(max_size=300))
@settings(max_examples=100)
def test_escape_round_trips_and_leaves_no_flag(data: bytes) -> None:
    body = escape(data)
    assert 0x7E not in body and unescape(body) == data
    assert len(body) == len(data) + data.count(0x7E) + data.count(0x7D)


def test_unescape_refuses_a_control_byte_without_a_valid_follower() -> None:
    assert unescape(b"\x01\x7d\x5e\x02") == b"\x01\x7e\x02"
    for bad in (b"\x7d", b"\x01\x7d\x00", b"\x7d\x7d\x5d"):
        assert unescape(bad) is None


# --- golden: the struct layouts (8005313 §2.2, §3.3-3.5; VSCapture Class2.cs) -------------------


def test_basic_class_layout_matches_the_published_structs() -> None:
    sizes = {"ecg": 16, "p1": 14, "nibp": 14, "t1": 8, "spo2": 14, "co2": 14, "o2": 10}
    sizes |= {"aa": 12, "flow_vol": 22, "nmt": 12, "ecg_extra": 6, "svo2": 8, "p6": 14}
    ends = [off + (2 * -n if n < 0 else 6 + 2 * n) for _, off, n in BASIC_GROUPS]
    starts = [off for _, off, _ in BASIC_GROUPS]
    assert starts[0] == 0 and starts[1:] == ends[:-1]  # packed, one after the other
    assert ends[-1] + 2 == CLASS_LEN == 270  # + byte reserved[2]
    for name, _, n in BASIC_GROUPS:
        if name in sizes:
            assert (2 * -n if n < 0 else 6 + 2 * n) == sizes[name], name
    assert PHDB_SUBRECORD_LEN == 4 + 270 + 1 + 1 + 2 == 278  # time, class, marker, res, cl_drilvl
    b = steady(hr=61, nibp_sys=11500, nibp_dia=5500, nibp_mean=7900, nibp_hr=64, spo2_pr=62)
    raw = encode_basic(replace(b, nibp_label=NIBP_MEASURING | NIBP_OLD))
    got = [struct.unpack_from("<h", raw, o)[0] for o in (6, 78, 80, 82, 84, 124, 126, 128, 144)]
    assert got == [61, 11500, 5500, 7900, 64, 9700, 62, 250, 7600]
    assert struct.unpack_from("<IH", raw, 72) == (ON, NIBP_MEASURING | NIBP_OLD)
    assert struct.unpack_from("<h", raw, 16 + 6)[0] == DATA_INVALID  # P1 absent: invalid
    assert decode_basic(raw) == replace(b, nibp_label=NIBP_MEASURING | NIBP_OLD)


def test_record_header_layout() -> None:
    rec = phdb_record(steady(), 1623330374)
    assert len(rec) == HEADER_LEN + PHDB_SUBRECORD_LEN == struct.unpack_from("<h", rec, 0)[0]
    h = decode_header(rec)
    assert (h.maintype, h.subrecords, h.r_time, h.dri_level) == (0, ((0, 1),), 1623330374, 10)
    assert rec[16 + 3 + 2] == 0xFF  # the list ends after one descriptor
    assert struct.unpack_from("<I", rec, HEADER_LEN)[0] == 1623330374  # the subrecord's time
    assert struct.unpack_from("<H", rec, HEADER_LEN + 276)[0] >> 8 & 0xF == 0  # class: basic
    wave = wave_record([(WF_PLETH, wave_subrecord([1, -2, 3], WF_STATUS_GAP))], 5)
    assert wave[14] == 1 and wave[18] == WF_PLETH and len(wave) == 40 + 6 + 6
    assert struct.unpack_from("<hHH3h", wave, 40) == (3, WF_STATUS_GAP, 0, 1, -2, 3)


# --- golden: real B650 values through the wire format -------------------------------------------


def b650_rows(name: str) -> list[list[str]]:
    with open(DATA / name, newline="") as f:
        return list(csv.reader(f))[1:]


def test_b650_displayed_values_come_back_exactly() -> None:
    rows = b650_rows("phdb_2021-06-10.csv")
    assert len(rows) == 14
    wire, want = b"", []
    for row in rows:
        when = datetime.strptime(row[0], "%Y-%m-%d %I:%M:%S %p").replace(tzinfo=UTC)
        hr, spo2, pr, amb = (round(float(row[k])) for k in (1, 37, 38, 57))
        b = steady(hr=hr, spo2=spo2 * 100, spo2_pr=pr, co2_amb_press=amb * 10)
        rec = phdb_record(b, int(when.timestamp()))
        assert decode_header(rec).r_time == int(when.timestamp())
        wire += frame(rec)
        want.append((hr, float(spo2), pr))
    for cuts in (None, list(range(1, len(wire)))):
        parser, items = decode(wire, cuts)
        got = list(
            zip(
                [n.value for n in numerics(items, Code.HEART_RATE)],
                [n.value for n in numerics(items, Code.SPO2)],
                [n.value for n in numerics(items, Code.PULSE_RATE)],
                strict=True,
            )
        )
        assert got == want
        assert {hr for hr, _, _ in got} <= set(range(52, 67))
        assert all(i.flags == frozenset() for i in items)
        assert parser.stats.frames_ok == 14 and parser.stats.records_phdb == 14
    # Records 10 s apart arrive 10 s apart: stamps follow the bytes.
    parser = GeS5Parser("ge")
    stamps = []
    for k, f in enumerate(wire.split(b"\x7e\x7e")):
        chunk = (b"\x7e" if k else b"") + f + (b"\x7e" if k < len(rows) - 1 else b"")
        stamps += [
            n.stamp.mono for n in numerics(parser.feed(chunk, ORIGIN.shifted(10 * k)), Code.SPO2)
        ]
    assert np.allclose(np.diff(stamps), 10.0)


def test_b650_nibp_repeated_in_three_records_is_one_reading() -> None:
    rows = b650_rows("phdb_nibp_2021-09-15.csv")
    assert len(rows) == 3
    wire = b""
    for row in rows:
        sys_, dia, mean = (round(float(row[k]) * 100) for k in (35, 36, 37))
        wire += phdb(steady(nibp_sys=sys_, nibp_dia=dia, nibp_mean=mean), int(row[1]))
    _, items = decode(wire)
    got = readings(items)
    assert [(r.systolic, r.diastolic, r.mean, r.flags) for r in got] == [(115, 55, 79, frozenset())]
    # The same values after a measuring phase are a new measurement.
    measuring = phdb(steady(nibp_label=NIBP_MEASURING, nibp_sys=11500, nibp_dia=5500))
    _, items = decode(wire + measuring + wire[: len(wire) // 3])
    assert [(r.systolic, r.diastolic, r.mean) for r in readings(items)] == [(115, 55, 79)] * 2


def test_b650_pleth_comes_back_sample_for_sample() -> None:
    with open(DATA / "pleth_2021-06-10.csv", newline="") as f:
        rows = list(csv.reader(f))  # no header row
    values = [float(r[1]) for r in rows]
    assert len(values) == 13500 and min(values) == -5.65 and max(values) == 4.72
    raw = [round(v * 100) for v in values]
    # 100 samples a record, as the decoder's one r_time second per 100 samples suggests.
    wire = b"".join(pleth(raw[k : k + 100], WF_STATUS_GAP * (k == 0)) for k in range(0, 13500, 100))
    for cuts in (None, list(range(7, len(wire), 61))):
        parser, items = decode(wire, cuts)
        blocks = [i for i in items if isinstance(i, WaveformBlock)]
        assert len(blocks) == 135 and all(b.fs == 100.0 and b.flags == frozenset() for b in blocks)
        assert np.concatenate([b.samples for b in blocks]).tolist() == values
        assert parser.stats.records_wave == 135
    # Each block's last sample is one sample before its record arrived.
    end = wire.index(b"\x7e\x7e") + 1
    assert blocks[0].stamp.mono == pytest.approx(byte_stamp(end).mono - 1.0)


# --- values, markers and flags ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "active", "flag"),
    [
        (DATA_INVALID, False, Flag.SENSOR_OFF),
        (DATA_INVALID, True, Flag.SEARCHING),
        (DATA_NOT_UPDATED, True, Flag.QUESTIONABLE),
        (DATA_DISCONT, True, Flag.QUESTIONABLE),
        (DATA_UNDER_RANGE, True, Flag.OUT_OF_RANGE),
        (DATA_OVER_RANGE, True, Flag.OUT_OF_RANGE),
        (DATA_NOT_CALIBRATED, True, Flag.QUESTIONABLE),
        (-32001, True, Flag.QUESTIONABLE),
        (-32768, True, Flag.QUESTIONABLE),
    ],
)
def test_special_values_are_none_with_the_reason(raw: int, active: bool, flag: Flag) -> None:
    status = STATUS_EXISTS | (STATUS_ACTIVE if active else 0)
    _, items = decode(
        phdb(steady(spo2_status=status, spo2=raw, spo2_pr=raw, ecg_status=status, hr=raw))
    )
    for code in (Code.SPO2, Code.PULSE_RATE, Code.HEART_RATE):
        (n,) = numerics(items, code)
        assert n.value is None and n.flags == frozenset({flag})


def test_the_smallest_valid_value_is_minus_32000_and_values_scale() -> None:
    _, items = decode(phdb(steady(spo2=-32000, spo2_ir_amp=1234)))
    assert numerics(items, Code.SPO2)[0].value == -320.0
    (amp,) = [i for i in items if isinstance(i, DeviceValue)]
    assert (amp.key, amp.value, amp.unit) == ("GE_S5_SPO2_IR_AMP", 12.34, "%")


def test_ecg_artifact_bit_flags_the_heart_rate() -> None:
    _, items = decode(phdb(steady(ecg_status=ON | ECG_ARTIFACT)))
    (hr,) = numerics(items, Code.HEART_RATE)
    assert hr.value == 72 and hr.flags == {Flag.ARTIFACT}
    assert numerics(items, Code.SPO2)[0].flags == frozenset()


def nibp_sequence(*labels_and_values) -> list[NibpReading]:
    wire = b""
    for label, values in labels_and_values:
        s, d, m = values
        wire += phdb(steady(nibp_label=label, nibp_sys=s, nibp_dia=d, nibp_mean=m))
    return readings(decode(wire)[1])


A = (12000, 8000, 9300)
B = (13000, 8500, 10000)
X = (DATA_INVALID,) * 3


def test_nibp_one_reading_per_measurement() -> None:
    got = nibp_sequence((0, A), (0, A), (NIBP_MEASURING, A), (NIBP_MEASURING, A), (0, B), (0, B))
    assert [(r.systolic, r.flags) for r in got] == [(120, frozenset()), (130, frozenset())]


def test_nibp_a_reading_on_display_when_joining_is_shown_once_flagged_if_old() -> None:
    got = nibp_sequence((NIBP_OLD, A), (NIBP_OLD, A), (NIBP_OLD, A))
    assert [(r.systolic, r.flags) for r in got] == [(120, {Flag.QUESTIONABLE})]
    assert nibp_sequence((0, X), (0, X)) == []  # nothing measured yet


def test_nibp_failed_measurement_and_missed_phases() -> None:
    got = nibp_sequence((0, A), (NIBP_MEASURING, A), (0, X), (0, X))
    assert [(r.systolic, r.mean, r.flags) for r in got][1:] == [
        (None, None, {Flag.MEASUREMENT_FAILED})
    ]
    got = nibp_sequence((NIBP_OLD, A), (0, B))  # values changed: a phase fell between records
    assert [r.systolic for r in got] == [120, 130]
    got = nibp_sequence((0, A), (NIBP_OLD, A), (0, A))  # the age bit reset: same numbers again
    assert [r.systolic for r in got] == [120, 120]
    got = nibp_sequence((0, A), (NIBP_CALIBRATING, X), (0, A))  # calibration is no measurement
    assert [r.systolic for r in got] == [120]
    got = nibp_sequence((0, A), (NIBP_MEASURING, X), (0, (12500, DATA_OVER_RANGE, 9000)))
    assert [(r.systolic, r.diastolic, r.flags) for r in got][1:] == [
        (125, None, {Flag.OUT_OF_RANGE})
    ]


# --- emulator -----------------------------------------------------------------------------------


def frames_of(data: bytes) -> list[bytes]:
    return [unescape(p)[:-1] for p in data.split(b"\x7e") if p]


def test_the_emulator_is_silent_until_asked_and_streams_what_was_asked(typical) -> None:
    emu = GeS5Emulator(typical)
    assert emu.emit(0.0, 30.0) == b""
    emu.on_host_bytes(frame(phdb_request(10)), 2.0)
    recs = frames_of(emu.emit(2.0, 32.0))
    assert [decode_header(r).r_time - emu.epoch for r in recs] == [2, 12, 22]
    assert all(decode_header(r).maintype == 0 for r in recs)
    emu.on_host_bytes(WAVE_REQUEST, 32.3)
    recs = frames_of(emu.emit(32.0, 34.0))
    waves = [r for r in recs if r[14] == 1]
    assert len(waves) == 5  # samples from 32.5 s on, one record each 0.25 s, sent 32.75 … 33.75
    assert [struct.unpack_from("<hH", r, 40) for r in waves] == [(25, WF_STATUS_GAP)] + [
        (25, 0)
    ] * 4


def test_stop_requests_are_honoured(typical) -> None:
    emu = started(typical)
    emu.on_host_bytes(PHDB_STOP, 11.0)
    emu.on_host_bytes(WAVE_STOP, 20.0)
    recs = frames_of(emu.emit(0.0, 60.0))
    phdb_times = [decode_header(r).r_time - emu.epoch for r in recs if r[14] == 0]
    assert phdb_times == [0, 5, 10]
    assert sum(r[14] == 1 for r in recs) == 79  # sent at 0.25 … 19.75 s
    assert emu.streaming(30.0) == (False, False)
    emu.on_host_bytes(frame(phdb_request(-1)), 40.2)  # once
    assert [decode_header(r).r_time - emu.epoch for r in frames_of(emu.emit(40.0, 60.0))] == [41]


def test_interval_below_five_is_five_and_bad_host_frames_are_ignored(typical) -> None:
    emu = GeS5Emulator(typical)
    bad = bytearray(frame(phdb_request(1)))
    bad[-2] ^= 1
    emu.on_host_bytes(bytes(bad), 0.0)
    assert emu.emit(0.0, 20.0) == b"" and emu.received == []
    emu.on_host_bytes(frame(phdb_request(1)), 0.0)
    assert len(frames_of(emu.emit(0.0, 20.0))) == 4


@given(st.lists(st.floats(0.0, 30.0), max_size=25))
@HYPO
def test_emit_is_frame_exact_for_any_boundaries(cuts: list[float]) -> None:
    session = KapSession(load_scenario("typical"), seed=3)
    whole = started(session).emit(0.0, 30.0)
    emu = started(session)
    bounds = [0.0, *sorted(cuts), 30.0]
    assert b"".join(emu.emit(a, b) for a, b in itertools.pairwise(bounds)) == whole


@given(st.lists(st.integers(1, 120), max_size=12), st.binary(max_size=20))
@HYPO
def test_host_requests_are_parsed_in_any_chunking(cuts: list[int], junk: bytes) -> None:
    wire = junk.replace(b"\x7e", b"") + PHDB_REQUEST + WAVE_REQUEST
    emu = GeS5Emulator(KapSession(load_scenario("typical"), seed=3))
    bounds = [0, *sorted(c for c in set(cuts) if c < len(wire)), len(wire)]
    for a, b in itertools.pairwise(bounds):
        emu.on_host_bytes(wire[a:b], 1.0)
    assert [r for _, r in emu.received] == [phdb_request(), wave_request()]


def test_the_emulators_values_are_the_scenarios(stream: bytes, typical: KapSession) -> None:
    parser, items = decode(stream)
    assert parser.stats.framing_errors == parser.stats.checksum_errors == 0
    check_accounting(parser)
    hr = numerics(items, Code.HEART_RATE)
    assert len(hr) == 24  # 0, 5, … 115 s
    for k, n in enumerate(hr):
        v = typical.vitals(5.0 * k)
        assert n.value == (None if v.heart_rate is None else round(v.heart_rate))
    blocks = [i for i in items if isinstance(i, WaveformBlock)]
    assert len(blocks) == 479 and {len(b.samples) for b in blocks} == {25}
    truth = typical.pleth(0.0, 25 * 479, 100.0)
    got = np.concatenate([b.samples for b in blocks])
    assert np.allclose(got, np.rint((truth - 0.5) * 1000) / 100, equal_nan=True)


def test_nibp_readings_follow_the_scenarios_cuff_schedule() -> None:
    session = KapSession(load_scenario("cuff-failure"), seed=2)
    end = min(session.duration, 3600.0)
    emu, parser, items = started(session), GeS5Parser("ge"), []
    for s in range(int(end)):  # each second's bytes arrive at its end
        items += parser.feed(emu.emit(float(s), s + 1.0), ORIGIN.shifted(s + 1.0))
    got = readings(items)
    want = [r for r in session.nibp_readings if r.t < end - 5]
    assert len(got) == len(want) > 3
    for r, w in zip(got, want, strict=True):
        assert (r.systolic, r.diastolic, r.mean) == (w.systolic, w.diastolic, w.mean)
        assert r.flags == w.flags
        t = r.stamp.mono - ORIGIN.mono  # session time of the record's arrival
        assert w.t <= t < w.t + 6.0  # the first record after the cuff finished
    assert any(Flag.MEASUREMENT_FAILED in r.flags for r in got)


# --- framing, damage and chunking ---------------------------------------------------------------


def test_joining_mid_frame_is_not_an_error(stream: bytes) -> None:
    parser, _ = decode(stream[37:4000])
    s = parser.stats
    assert s.framing_errors == s.checksum_errors == 0 and s.bytes_discarded > 0
    assert s.frames_ok > 10
    check_accounting(parser)


def test_damage_costs_only_the_frames_it_touches(stream: bytes) -> None:
    frames = [b"\x7e" + p + b"\x7e" for p in stream.split(b"\x7e") if p]
    bad = list(frames)
    bad[3] = bad[3][:20] + b"\x55" + bad[3][21:]  # corrupted: checksum error
    bad[6] = bad[6][: len(bad[6]) // 2]  # cut short: runs into the next frame's flag
    bad[9] = bad[9][:30] + b"\x7e\x00\x7e" + bad[9][30:]  # a flag inserted
    bad.insert(12, b"garbage \x7d\x01 between frames")
    parser, _ = decode(b"".join(bad))
    clean, _ = decode(b"".join(frames))
    s = parser.stats
    assert s.frames_ok == clean.stats.frames_ok - 3
    assert s.checksum_errors + s.framing_errors >= 4 and s.resyncs >= 3
    check_accounting(parser)


@given(st.integers(0, 6000), st.binary(min_size=1, max_size=40))
@HYPO
def test_damage_in_one_region_spares_every_frame_outside_it(where: int, junk: bytes) -> None:
    session = KapSession(load_scenario("typical"), seed=1)
    clean = started(session).emit(0.0, 12.0)
    where = min(where, len(clean) - 1)
    bad = clean[:where] + junk + clean[where + len(junk) :]
    _, clean_items = decode(clean)
    parser, items = decode(bad)
    check_accounting(parser)
    # A frame that ends before the damage or starts after it decodes as before.
    lo, hi = clean.rfind(b"\x7e", 0, where), clean.find(b"\x7e", where + len(junk))
    hi = len(clean) if hi < 0 else hi

    def outside(it) -> bool:
        end = round((it.stamp.mono - ORIGIN.mono) * LINE_RATE)
        if isinstance(it, WaveformBlock):
            end = round((it.stamp.mono + 0.25 - ORIGIN.mono) * LINE_RATE)
        return end <= lo or end > hi + 1

    want = [c for c, it in zip(comparable(clean_items), clean_items, strict=True) if outside(it)]
    got = [c for c, it in zip(comparable(items), items, strict=True) if outside(it)]
    assert [w for w in want if w not in got] == []


def test_a_stream_without_flags_is_dropped_in_bounded_pieces_and_counted_once() -> None:
    parser = GeS5Parser("ge")
    parser.feed(b"\x7e", ORIGIN)
    for _ in range(20):
        parser.feed(b"\x00" * 1000, ORIGIN)
        assert parser.pending_bytes <= MAX_BODY
    parser.feed(b"\x7e" + phdb(steady()), ORIGIN)
    s = parser.stats
    assert (s.framing_errors, s.frames_ok, s.resyncs) == (1, 1, 0)
    check_accounting(parser)


# --- driver, registry, line settings ------------------------------------------------------------


def test_the_registry_names_the_driver_with_its_wire_settings() -> None:
    cls = get_driver_class("ge-s5")
    assert cls is GeS5Driver
    s = cls.serial_settings
    assert (s.baudrate, s.bytesize, s.parity, s.stopbits, s.rtscts) == (19200, 8, "E", 1, True)
    assert cls.emulator_class is GeS5Emulator and cls.parser_class is GeS5Parser
    assert 400 < cls.byte_rate < 500
    driver = GeS5Driver(DeviceSpec.parse("ge-s5@/dev/null-monitor"), lambda item: None)
    assert driver.greeting() == PHDB_REQUEST + WAVE_REQUEST
    assert driver.keep_alive() == b""  # just asked
    driver._asked -= 60  # a minute of silence: ask for both again
    assert driver.keep_alive() == PHDB_REQUEST + WAVE_REQUEST
    assert driver.keep_alive() == b""


def test_even_parity_and_rts_cts_reach_the_port_over_loop() -> None:
    """ptys refuse even parity with RTS/CTS (shared/reference/toolchain.md), so the real line
    settings are checked on pyserial's loop:// port, which keeps them and carries the bytes."""
    port = open_port("loop://", GeS5Driver.serial_settings)
    try:
        assert (port.baudrate, port.parity, port.bytesize, port.rtscts) == (19200, "E", 8, True)
        port.write(PHDB_REQUEST)
        assert port.read(len(PHDB_REQUEST)) == PHDB_REQUEST
    finally:
        port.close()


class FakeMonitorPort:
    """A serial port whose far end is the emulator, playing session time as real time × speed.

    Stands in for a real null-modem line: it records the settings it was opened with (even parity,
    RTS/CTS), which a pty cannot carry."""

    def __init__(self, emulator: GeS5Emulator, settings, speed: float) -> None:
        self.emulator, self.settings, self.speed = emulator, settings, speed
        self.started = time.monotonic()
        self.t = 0.0
        self.sent = bytearray()
        self.written = bytearray()
        self.is_open = True
        self._pending = b""

    def _now(self) -> float:
        return (time.monotonic() - self.started) * self.speed

    def reset_input_buffer(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return 0

    def write(self, data: bytes) -> int:
        self.written += data
        self.emulator.on_host_bytes(data, self._now())
        return len(data)

    def read(self, n: int = 1) -> bytes:
        time.sleep(0.02)
        now = self._now()
        data = self.emulator.emit(self.t, now)
        self.t = now
        self.sent += data
        return data

    def close(self) -> None:
        self.is_open = False


def test_round_trip_with_the_real_driver_over_a_fake_port_with_even_parity(monkeypatch) -> None:
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    session = KapSession(load_scenario("typical"), seed=5)
    emulator = GeS5Emulator(session)
    ports: list[FakeMonitorPort] = []

    def fake_open(url, settings, **kw):
        ports.append(FakeMonitorPort(emulator, settings, speed=20.0))
        return ports[-1]

    monkeypatch.setattr("devices.serial_driver.open_port", fake_open)
    driver = GeS5Driver(DeviceSpec.parse("ge-s5@/dev/ttyS0"), hub.publish)
    driver.open()
    driver.start()
    try:
        assert collector.wait_for(lambda items: len(readings(items)) >= 1, timeout=30)
    finally:
        driver.stop()
    port = ports[0]
    assert (port.settings.parity, port.settings.rtscts, port.settings.baudrate) == (
        "E",
        True,
        19200,
    )
    assert port.written.startswith(PHDB_REQUEST + WAVE_REQUEST)
    assert port.written.endswith(PHDB_STOP + WAVE_STOP)  # asked to stop on closing
    assert emulator.streaming(1e9) == (False, False)
    _, offline = decode(bytes(port.sent))
    got = [i for i in collector.items if not isinstance(i, type(collector.states))]
    values = [c[:3] for c in comparable([i for i in got if not hasattr(i, "state")])]
    assert values == [c[:3] for c in comparable(offline)][: len(values)]
    assert driver.parser.stats.checksum_errors == 0 and driver.parser.stats.frames_ok > 50
    (first,) = readings(collector.items)[:1]
    assert (first.systolic, first.diastolic) == (
        session.nibp_readings[0].systolic,
        session.nibp_readings[0].diastolic,
    )


@PTY
def test_round_trip_over_a_pty_with_the_drivers_requests() -> None:
    """Over a pty the port opens without parity and handshake (a pty refuses even parity with
    RTS/CTS, see devices/transport.py): the bytes are the same; the settings are tested above."""
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    endpoint = TeeEndpoint()
    stop = threading.Event()
    session = KapSession(load_scenario("typical"), seed=5)
    emulator = GeS5Emulator(session)
    driver = GeS5Driver(DeviceSpec.parse(f"ge-s5@{endpoint.path}"), hub.publish)
    driver.open()
    driver.start()
    server = threading.Thread(
        target=serve, args=(emulator, endpoint), kwargs={"speed": 4.0, "stop": stop}
    )
    server.start()
    try:
        assert collector.wait_for(
            lambda items: (
                len(numerics(items, Code.SPO2)) >= 5
                and sum(isinstance(i, WaveformBlock) for i in items) >= 40
            ),
            timeout=30,
        )
    finally:
        stop.set()
        server.join(10)
        driver.stop()
        endpoint.close()
    assert endpoint.dropped == 0
    assert [r for _, r in emulator.received][:2] == [phdb_request(), wave_request()]
    _, offline = decode(bytes(endpoint.sent))
    got = [i for i in collector.items if isinstance(i, (Numeric, WaveformBlock))]
    want = [i for i in offline if isinstance(i, (Numeric, WaveformBlock))]
    assert [c[:3] for c in comparable(got)] == [c[:3] for c in comparable(want)][: len(got)]
    assert driver.parser.stats.checksum_errors == driver.parser.stats.framing_errors == 0
    assert collector.states()[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]


# --- command line -------------------------------------------------------------------------------


def test_kapmonitor_decode_reads_a_ge_s5_file(tmp_path: Path, stream: bytes) -> None:
    path = tmp_path / "b650.bin"
    path.write_bytes(stream)
    records = decode_cli("ge-s5", path)
    hr = [r for r in records if r.get("code") == Code.HEART_RATE.value]
    assert len(hr) == 24 and all(40 <= r["value"] <= 140 for r in hr)
    waves = [r for r in records if r.get("code") == Code.PLETH.value]
    assert len(waves) == 479 and all(r["fs"] == 100.0 and len(r["samples"]) == 25 for r in waves)
    sys_ = [r for r in records if r.get("code") == Code.NIBP_SYS.value]
    assert len(sys_) == 1 and math.isclose(sys_[0]["t"], 95.0, abs_tol=5.0)


@PTY
def test_simulate_on_a_pty_and_record_from_it_end_to_end(tmp_path: Path) -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "simulate", "--protocol", "ge-s5", "--pty",
         "--speed", "10", "--seed", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        path = sim.stdout.readline().strip()
        assert path.startswith("/dev/"), sim.stderr.read()
        rec = subprocess.run(
            [sys.executable, "-m", "kapmonitor", "record", "--device", f"ge-s5@{path}",
             "--duration", "4s", "--no-waves", "--db", f"sqlite:///{tmp_path / 'k.sqlite3'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        sim.terminate()
        sim.communicate(timeout=10)
    assert rec.returncode == 0, rec.stderr
    lines = [json.loads(line) for line in rec.stdout.splitlines()]
    assert [x["state"] for x in lines if "state" in x][:2] == ["connecting", "connected"]
    spo2 = [x for x in lines if x.get("code") == Code.SPO2.value]
    assert len(spo2) >= 2 and all(90 <= x["value"] <= 100 for x in spo2)
