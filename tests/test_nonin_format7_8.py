"""Nonin Data Formats 7 and 8, and the set-format command: golden vectors built by hand from the
vendor spec, emulator round trips (in memory and over a pty), what damage costs (the protocol
contract, in test_parser_contract, checks any bytes and any chunking)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols.nonin import (
    FORMAT7,
    Nonin2Driver,
    Nonin7Driver,
    Nonin8Driver,
    NoninFormat2Emulator,
    NoninFormat2Parser,
    NoninFormat7Emulator,
    NoninFormat7Parser,
    NoninFormat8Emulator,
    NoninFormat8Parser,
    encode_packet,
)
from devices.protocols.nonin.parser import LOCK8
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, Flag, Numeric, Stamp, WaveformBlock
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector, feed_chunks, serving
from tests.protocol_helpers import ORIGIN, check_accounting, every, hypo, mutate
from tests.test_nonin_format2 import WIRE_FLAGS, FakeSession, expected_packet

HYPO = hypo()
ACK, NAK = 0x06, 0x15
CHECKS = frozenset({Flag.OUT_OF_RANGE, Flag.QUESTIONABLE})  #: flags of the output checks


@dataclass(frozen=True)
class Proto:
    """What the generic tests need to know of a format."""

    parser: type
    emulator: type
    packet: int  #: bytes per packet
    items: int  #: items per packet
    rate: float  #: bytes per second
    seconds: float  #: seconds per packet


F7 = Proto(NoninFormat7Parser, NoninFormat7Emulator, 125, 3, 375.0, 1 / 3)
F8 = Proto(NoninFormat8Parser, NoninFormat8Emulator, 4, 2, 4.0, 1.0)
BOTH = pytest.mark.parametrize("proto", [F7, F8], ids=["format7", "format8"])


# --- golden vectors, by hand from the spec ------------------------------------------------------
#
# Format 7 (spec pp. 12-15): frame = STATUS, PLETH MSB, PLETH LSB, FLOAT, CHK where
# CHK = (byte 1 + byte 2 + byte 3 + byte 4) mod 256. STATUS 0x83 = bit 7 | GPRF (0x02) | SYNC on
# frame 1, 0x82 on frames 2-25. PLETH = 0x81 0x0k in frame k: 0x8100 + k = 33024 + k, and an
# MSB that looks like a SYNC status byte in every frame. FLOAT by frame: 1/2 HR MSB/LSB = 01/48,
# so HR = (1 << 7) | 0x48 = 128 + 72 = 200 (mdpnp's MSB << 8 | LSB would read 0x148 = 328);
# 3 SpO2 = 0x61 = 97; 4 SREV = 0x30 = 48; 9, 10, 11, 16, 17 the other SpO2s = 0x61;
# 14/15, 20/21, 22/23 the other HRs = 01/48; the rest 0. Frame 1's CHK is 0x06 (ACK) and
# frame 21's pleth LSB is 0x15 (NAK): neither may be taken for a set-format answer.
GOLDEN7 = bytes.fromhex(
    " ".join(
        (
            "83 81 01 01 06",  # 1: 0x83 + 0x81 + 0x01 + 0x01 = 262 = 256 + 6
            "82 81 02 48 4D",  # 2: 0x82 + 0x81 + 0x02 + 0x48 = 333 = 256 + 77 (0x4D)
            "82 81 03 61 67",  # 3: 130 + 129 + 3 + 97 = 359 = 256 + 103 (0x67)
            "82 81 04 30 37",  # 4: 130 + 129 + 4 + 48 = 311 = 256 + 55 (0x37)
            "82 81 05 00 08",  # 5: 130 + 129 + 5 = 264 = 256 + 8; frames 5-8 and 12, 13,
            "82 81 06 00 09",  # 18, 19, 24, 25 carry FLOAT 0, so CHK = (259 + k) - 256 = 3 + k
            "82 81 07 00 0A",
            "82 81 08 00 0B",
            "82 81 09 61 6D",  # 9: 259 + 9 + 97 = 365 = 256 + 109 (0x6D); 10 and 11 likewise
            "82 81 0A 61 6E",
            "82 81 0B 61 6F",
            "82 81 0C 00 0F",
            "82 81 0D 00 10",
            "82 81 0E 01 12",  # 14: 259 + 14 + 1 = 274 = 256 + 18 (0x12)
            "82 81 0F 48 5A",  # 15: 259 + 15 + 72 = 346 = 256 + 90 (0x5A)
            "82 81 10 61 74",  # 16: 259 + 16 + 97 = 372 = 256 + 116 (0x74)
            "82 81 11 61 75",
            "82 81 12 00 15",
            "82 81 13 00 16",
            "82 81 14 01 18",  # 20: 259 + 20 + 1 = 280 = 256 + 24 (0x18)
            "82 81 15 48 60",  # 21: 259 + 21 + 72 = 352 = 256 + 96 (0x60)
            "82 81 16 01 1A",
            "82 81 17 48 62",
            "82 81 18 00 1B",
            "82 81 19 00 1C",  # 25: 259 + 25 = 284 = 256 + 28 (0x1C)
        )
    )
)
GOLDEN7_PLETH = [33024 + k for k in range(1, 26)]

# Format 8 (spec p. 16): byte 1 = bit 7 | OOT 0x20 | LPRF 0x10 | MPRF 0x08 | ARTF 0x04 | HR8..7,
# byte 2 = HR6..0, byte 3 = SpO2, byte 4 = SPA 0x20 | SNSA 0x08 | low battery 0x01.
GOLDEN8 = [
    # HR 72 = 0b0_1001000: HR8..7 = 0, byte 2 = 0x48; SpO2 97 = 0x61; no status bits.
    ("80 48 61 00", 72, 97, set()),
    # HR 200 = 0b1_1001000: HR7 = 1 so byte 1 = 0x80 | LPRF 0x10 | ARTF 0x04 | 0x01 = 0x95,
    # byte 2 = 200 - 128 = 72 = 0x48; SpO2 95 = 0x5F.
    ("95 48 5F 00", 200, 95, {Flag.ARTIFACT, Flag.LOW_PERFUSION}),
    # Missing: HR 511 = 0b11_1111111: byte 1 = 0x80 | 0x03, byte 2 = 0x7F; SpO2 127 = 0x7F;
    # finger out: SNSA 0x08 in byte 4.
    ("83 7F 7F 08", None, None, {Flag.SENSOR_OFF}),
    # OOT 0x20 | MPRF 0x08 = 0xA8 (marginal perfusion is yellow: no flag), HR 60 = 0x3C,
    # SpO2 90 = 0x5A, byte 4 = SPA 0x20 | low battery 0x01 = 0x21 (neither is a flag).
    ("A8 3C 5A 21", 60, 90, {Flag.SEARCHING}),
]


# --- helpers ------------------------------------------------------------------------------------


def decode(proto: Proto, stream: bytes, cuts: list[int] | None = None):
    """Feed ``stream`` split at ``cuts``, each chunk stamped when its last byte arrived at the
    device's byte rate (ORIGIN is when the first packet's last byte arrived)."""
    parser = proto.parser("ox")
    items = feed_chunks(
        parser, stream, cuts, lambda b: ORIGIN.shifted((b - proto.packet) / proto.rate)
    )
    return parser, items


def packets(proto: Proto, items: list) -> list[tuple]:
    """Items grouped per packet: (hr, spo2, flags, samples or None, numerics' stamp)."""
    assert len(items) % proto.items == 0
    out = []
    for i in range(0, len(items), proto.items):
        pr, spo2, *wave = items[i : i + proto.items]
        assert isinstance(pr, Numeric) and pr.code is Code.PULSE_RATE
        assert isinstance(spo2, Numeric) and spo2.code is Code.SPO2
        # The device's flags are the packet's; the output checks judge each value alone.
        assert pr.flags - CHECKS == spo2.flags - CHECKS and pr.stamp == spo2.stamp
        samples = None
        if wave:
            (w,) = wave
            assert isinstance(w, WaveformBlock) and w.code is Code.PLETH
            assert w.flags == pr.flags - CHECKS
            assert w.fs == 75.0 and len(w.samples) == 25
            assert w.stamp.mono == pytest.approx(pr.stamp.mono - 24 / 75, abs=1e-9)
            samples = tuple(np.nan_to_num(w.samples, nan=-1.0).tolist())
        flags = pr.flags | spo2.flags
        out.append((pr.value, spo2.value, flags, samples, round(pr.stamp.mono, 6)))
    return out


def values(proto: Proto, items: list) -> list[tuple]:
    return [g[:4] for g in packets(proto, items)]


def unjudged(got: list[tuple]) -> list[tuple]:
    """Packets without the questionable flag the jump check adds: a damaged packet the parser
    cannot tell from a real one (Format 8 has no checksum) moves the reference of the check."""
    return [(*g[:2], g[2] - {Flag.QUESTIONABLE}, *g[3:]) for g in got]


def expected7(session, p: int) -> tuple:
    """What Format 7 packet ``p`` must decode to: Format 2's values and flags (the same by the
    spec), with the pleth at 16 bits: 0..1 to 0..65535, NaN where the probe is off."""
    hr, spo2, flags, _ = expected_packet(session, p)
    v = session.vitals(p / 3)
    raw = np.asarray(session.pleth(p / 3, 25, 75.0), dtype=float)
    off = np.isnan(raw) | (Flag.SENSOR_OFF in v.flags)
    q = np.rint(np.clip(np.nan_to_num(raw), 0, 1) * 65535)
    return hr, spo2, flags, tuple(np.where(off, -1.0, q).tolist())


def expected8(session, k: int) -> tuple:
    """What Format 8 packet ``k`` (sent at k s) must decode to, by the spec."""
    v = session.vitals(float(k))
    flags = v.flags & WIRE_FLAGS
    if Flag.SENSOR_OFF in flags:
        flags -= {Flag.LOW_PERFUSION}  # no pulse, so no perfusion bits
    hr = None if v.heart_rate is None else round(v.heart_rate)
    spo2 = None if v.spo2 is None else round(v.spo2)
    return hr, spo2, frozenset(flags), None


def expected(proto: Proto, session, index: int) -> tuple:
    return (expected7 if proto is F7 else expected8)(session, index)


@functools.cache
def fake_bytes(proto: Proto) -> bytes:
    """40 packets of every state the wire carries (the scripted patient of the Format 2 tests);
    Format 8 gets 160 s of it, enough to see every phase."""
    emulator = proto.emulator(FakeSession())
    return emulator.emit(0.0, 40 * proto.seconds if proto is F7 else 160.0)


# --- golden vectors -----------------------------------------------------------------------------


def test_golden7_hr_is_packed_in_seven_bit_bytes_and_pleth_is_big_endian() -> None:
    assert len(GOLDEN7) == 125
    # Whole, a byte at a time, and 30 in a row (which takes the many-packet path).
    for repeat, cuts in ((1, None), (1, list(range(1, 125))), (30, None)):
        parser, items = decode(F7, GOLDEN7 * repeat, cuts)
        assert values(F7, items) == [(200, 97, frozenset(), tuple(GOLDEN7_PLETH))] * repeat
        s = parser.stats
        assert (s.packets_ok, s.frames_ok) == (repeat, 25 * repeat)
        assert (s.bytes_discarded, parser.pending_bytes) == (0, 0)
        assert s.checksum_errors == s.framing_errors == s.resyncs == 0


@pytest.mark.parametrize("byte", [0, 1, 2, 3])
def test_golden7_checksum_covers_all_four_bytes(byte: int) -> None:
    bad = bytearray(GOLDEN7)
    bad[5 * 6 + byte] ^= 0x02  # frame 7: a bit flipped in byte 1, 2, 3 or 4; CHK kept
    parser, items = decode(F7, GOLDEN7 + bytes(bad) + GOLDEN7)
    assert [i.value for i in items if isinstance(i, Numeric)] == [200, 97, 200, 97]
    s = parser.stats
    # Flipping STATUS bit 1 keeps bit 7, so every case is a checksum failure, not structure.
    assert (s.checksum_errors, s.framing_errors, s.packets_dropped) == (1, 0, 1)
    check_accounting(parser)


def test_golden7_is_not_format2_and_format2_is_not_format7() -> None:
    f2 = encode_packet(72, 97, [9] * 25)
    assert decode(F7, f2 * 3)[1] == []
    _, items = decode_f2(GOLDEN7 * 3)
    assert items == []


def decode_f2(stream: bytes):
    parser = NoninFormat2Parser("ox")
    return parser, parser.feed(stream, ORIGIN)


@pytest.mark.parametrize(("wire", "hr", "spo2", "flags"), GOLDEN8)
def test_golden8_packets_decode_with_their_flags(wire: str, hr, spo2, flags) -> None:
    # A stream is trusted from LOCK8 agreeing packets on: a device repeats its display values.
    stream = bytes.fromhex(wire) * LOCK8
    for cuts in (None, list(range(1, len(stream)))):
        parser, items = decode(F8, stream, cuts)
        assert values(F8, items) == [(hr, spo2, flags, None)] * LOCK8
        s = parser.stats
        assert (s.packets_ok, s.frames_ok, s.bytes_discarded, s.framing_errors) == (3, 3, 0, 0)


def test_format8_lone_packets_are_held_until_the_stream_is_trusted() -> None:
    parser, items = decode(F8, P8 * (LOCK8 - 1))
    assert items == [] and parser.pending_bytes == 4 * (LOCK8 - 1)
    check_accounting(parser)


def test_format8_numerics_are_stamped_one_second_apart() -> None:
    stream = bytes.fromhex(GOLDEN8[0][0]) * 5
    _, items = decode(F8, stream)
    assert [g[4] for g in packets(F8, items)] == [ORIGIN.mono + k for k in range(5)]


# --- Format 8 structure errors ------------------------------------------------------------------

P8 = bytes.fromhex(GOLDEN8[0][0])
RUN8 = P8 * LOCK8  #: the shortest run of packets the parser trusts
HR300 = bytes.fromhex("82 2C 61 00")  # HR (2 << 7) | 0x2C = 300: a rate the device can send
HR383 = bytes.fromhex("82 7F 61 00")  # HR (2 << 7) | 0x7F = 383: one it cannot (18-321, 511)
SPO2_120 = bytes.fromhex("80 48 78 00")  # SpO2 0x78 = 120: impossible (0-100, 127)


@pytest.mark.parametrize(
    ("stream", "framing", "dropped", "discarded", "resyncs", "good"),
    [
        # Joining mid-packet: the tail of a packet is skipped, silently.
        (P8[2:] + RUN8, 0, 0, 2, 0, 3),
        # A packet cut short by the next status byte: one framing error, the packet dropped.
        (RUN8 + P8[:2] + RUN8, 1, 1, 2, 1, 6),
        # An extra data byte after a packet: one framing error, the stream found again.
        (RUN8 + b"\x11" + RUN8, 1, 0, 1, 1, 6),
        # Junk with bit 7 set: a "packet" whose data bytes have bit 7 set again.
        (RUN8 + b"\xff\xfe" + RUN8, 2, 2, 2, 1, 6),
        # Trailing status byte and two data bytes: still waiting, nothing counted.
        (RUN8 + P8[:3], 0, 0, 0, 0, 3),
        # Values the device cannot send: the packet is damaged, and the stream must be
        # trusted again.
        (RUN8 + HR383 + RUN8, 1, 1, 4, 1, 6),
        (RUN8 + SPO2_120 + RUN8, 1, 1, 4, 1, 6),
        # Packets too few to trust before a lost byte: discarded as unconfirmed; the byte that
        # broke their run is a framing error (no resync: the stream was never trusted before).
        (P8 * 2 + b"\x11" + RUN8, 1, 0, 9, 0, 3),
    ],
    ids=["mid-join", "cut-short", "extra-byte", "junk", "waiting", "hr-383", "spo2-120", "few"],
)
def test_format8_framing_errors_are_counted_and_the_stream_found_again(
    stream: bytes, framing: int, dropped: int, discarded: int, resyncs: int, good: int
) -> None:
    for cuts in (None, list(range(1, len(stream)))):
        parser, items = decode(F8, stream, cuts)
        assert [g[:2] for g in packets(F8, items)] == [(72, 97)] * good
        s = parser.stats
        assert (s.framing_errors, s.packets_dropped, s.bytes_discarded) == (
            framing,
            dropped,
            discarded,
        )
        assert s.resyncs == resyncs and s.checksum_errors == 0
        check_accounting(parser)


def test_format8_trusts_a_run_of_agreeing_packets_then_any_value_it_can_send() -> None:
    # Two packets, then one that disagrees: the two are noise as far as the parser can tell.
    parser, items = decode(F8, P8 * 2 + HR300 * LOCK8 + P8)
    rates = [(i.value, i.flags) for i in items if i.code is Code.PULSE_RATE]
    assert [i.value for i in items if i.code is Code.SPO2] == [97] * (LOCK8 + 1)
    assert parser.stats.packets_unconfirmed == 2
    # Once trusted, a value the device can send is taken; a jump is flagged, not dropped.
    assert rates == [(300, frozenset())] * LOCK8 + [(72, frozenset({Flag.QUESTIONABLE}))]
    check_accounting(parser)


# --- Format 7 status, pleth and missing values --------------------------------------------------


# STATUS bits besides bit 7 and SYNC (spec p. 13), and the flags they must give.
STATUS7 = {
    0x02: set(),  # green perfusion
    0x06: set(),  # yellow: RPRF and GPRF
    0x04: {Flag.LOW_PERFUSION},  # red: RPRF alone
    0x38: {Flag.SENSOR_OFF, Flag.SEARCHING, Flag.ARTIFACT},  # SNSA 0x08, OOT 0x10, ARTF 0x20
}


def test_format7_status_bits_give_flags_and_no_signal_is_nan() -> None:
    pleth = [0, 255, 256, 65535, 4660] * 5  # 0x0000, 0x00FF, 0x0100, 0xFFFF, 0x1234
    for status, flags in STATUS7.items():
        p = encode_packet(70, 98, pleth, status=status, layout=FORMAT7)
        assert p[0] == 0x81 | status and p[1:3] == b"\x00\x00" and p[6:8] == b"\x00\xff"
        # One packet takes the scalar path, thirty the many-packet (numpy) path.
        _, items = decode(F7, p * 30)
        assert values(F7, items[:3]) == values(F7, items[-3:])
        (hr, spo2, got, samples) = values(F7, items[-3:])[0]
        assert (hr, spo2, got) == (70, 98, flags)
        assert samples == tuple([-1.0] * 25 if status & 0x08 else pleth)


def test_format7_missing_markers_are_none() -> None:
    p = encode_packet(None, None, [0] * 25, layout=FORMAT7)
    assert (p[3], p[8], p[13]) == (0x03, 0x7F, 0x7F)  # HR 511 = 3 << 7 | 0x7F; SpO2 127
    _, items = decode(F7, p)
    assert [i.value for i in items[:2]] == [None, None]


# --- emulators ----------------------------------------------------------------------------------


@BOTH
@given(st.lists(st.floats(0.0, 12.0), max_size=30))
@HYPO
def test_emit_is_exact_for_any_boundaries(proto: Proto, cuts: list[float]) -> None:
    whole = proto.emulator(FakeSession()).emit(0.0, 12.0)
    assert len(whole) == 12 * proto.rate
    emu = proto.emulator(FakeSession())
    bounds = [0.0, *sorted(cuts), 12.0]
    assert b"".join(emu.emit(a, b) for a, b in itertools.pairwise(bounds)) == whole


def test_format8_packet_k_is_sent_at_k_seconds() -> None:
    emu = NoninFormat8Emulator(FakeSession())
    assert emu.emit(0.0, 0.5) == emu.packet(0) and len(emu.packet(0)) == 4
    assert emu.emit(0.5, 1.0) == b"" and emu.emit(1.0, 1.0) == b""
    assert emu.emit(0.5, 3.0) == emu.packet(1) + emu.packet(2)


def test_format7_emulator_fields() -> None:
    stream = fake_bytes(F7)
    p = stream[125 * 7 : 125 * 8]  # t = 7/3 s, a normal phase
    fl = p[3::5]
    hr = round(FakeSession.hr_at(7))
    assert ((fl[0] & 3) << 7 | fl[1]) == hr == ((fl[19] & 3) << 7 | fl[20])
    assert fl[2] == fl[8] == FakeSession.spo2_at(7) and fl[3] == 48 and (fl[5] << 7 | fl[6]) == 7
    assert [s & 0x81 for s in p[0::5]] == [0x81] + [0x80] * 24
    assert all((sum(p[i : i + 4]) & 0xFF) == p[i + 4] for i in range(0, 125, 5))
    raw = FakeSession().pleth(7 / 3, 25, 75.0)
    assert [p[i] << 8 | p[i + 1] for i in range(1, 125, 5)] == np.rint(raw * 65535).tolist()


@BOTH
def test_round_trip_with_the_scripted_patient(proto: Proto) -> None:
    stream = fake_bytes(proto)
    parser, items = decode(proto, stream, every(64, stream))
    got = values(proto, items)
    assert got == [expected(proto, FakeSession(), k) for k in range(len(got))]
    assert len(got) == len(stream) // proto.packet
    assert set().union(*(g[2] for g in got)) == WIRE_FLAGS  # every flag made the trip
    assert any(g[0] is not None and g[0] > 127 for g in got)  # the 9-bit HR packing
    s = parser.stats
    assert s.checksum_errors == s.framing_errors == s.bytes_discarded == 0


@BOTH
@pytest.mark.parametrize("scenario_name", ["typical", "probe-off", "artifact-storm"])
def test_round_trip_with_real_kap_session(proto: Proto, scenario_name: str) -> None:
    session = KapSession(load_scenario(scenario_name), seed=1)
    flagged = next((t for t in range(int(session.duration)) if session.vitals(t).flags), 0)
    t0 = float(max(0, flagged - 60))
    emu = proto.emulator(session)
    stream = b"".join(emu.emit(t, t + emu.tick) for t in np.arange(t0, t0 + 300.0, emu.tick))
    parser, items = decode(proto, stream, every(64, stream))
    got = values(proto, items)
    first = round(t0 / proto.seconds)
    assert len(got) == round(300 / proto.seconds)
    assert got == [expected(proto, session, first + k) for k in range(len(got))]
    assert parser.stats.checksum_errors == parser.stats.framing_errors == 0
    want = {"probe-off": {Flag.SENSOR_OFF}, "artifact-storm": {Flag.ARTIFACT}}
    assert want.get(scenario_name, set()) <= set().union(*(g[2] for g in got))


# --- set-format: emulators and parsers ----------------------------------------------------------


def command(fmt: int) -> bytes:
    return bytes([0x02, 0x70, 0x02, 0x02, fmt, 0x03])


@pytest.mark.parametrize(
    ("emulator", "own"),
    [(NoninFormat2Emulator, 2), (NoninFormat7Emulator, 7), (NoninFormat8Emulator, 8)],
)
def test_each_emulator_acks_only_its_own_format(emulator: type, own: int) -> None:
    for fmt in (2, 7, 8, 13):
        emu = emulator(FakeSession())
        assert emu.on_host_bytes(command(fmt), 1.0) == (b"\x06" if fmt == own else b"\x15")
        assert emu.on_host_bytes(command(fmt), 5.0) == b""  # only in the first 5 s
    emu = emulator(FakeSession())
    assert emu.on_host_bytes(command(own)[:3], 0.1) == b""
    assert emu.on_host_bytes(command(own)[3:] + command(own), 0.2) == b"\x06\x06"


def armed(proto: Proto, deadline: float = ORIGIN.mono + 100):
    parser = proto.parser("ox")
    replies: list[bytes | None] = []
    parser.expect_reply(deadline, replies.append)
    return parser, replies


@BOTH
@pytest.mark.parametrize("reply", [ACK, NAK])
def test_the_answer_as_first_byte_is_taken_and_not_an_error(proto: Proto, reply: int) -> None:
    stream = fake_bytes(proto)[: 4 * proto.packet]
    parser, replies = armed(proto)
    items = parser.feed(bytes([reply]) + stream, ORIGIN)
    assert replies == [bytes([reply])]
    assert len(items) == 4 * proto.items
    s = parser.stats
    assert (s.bytes_discarded, s.framing_errors, s.resyncs) == (1, 0, 0)
    check_accounting(parser)


@BOTH
def test_the_answer_between_packets_is_taken_and_not_an_error(proto: Proto) -> None:
    stream = fake_bytes(proto)[: 6 * proto.packet] if proto is F7 else P8 * 6
    cut = 2 * proto.packet  # Format 8: inside the run that makes the stream trusted
    parser, replies = armed(proto)
    items = parser.feed(stream[:cut] + bytes([ACK]) + stream[cut:], ORIGIN)
    assert replies == [b"\x06"] and len(items) == 6 * proto.items
    assert (parser.stats.framing_errors, parser.stats.bytes_discarded) == (0, 1)
    # Unasked, the same byte is what it looks like: a byte that is no packet (and in Format 8
    # the two packets before it were too few to trust).
    _, items = decode(proto, stream[:cut] + bytes([ACK]) + stream[cut:])
    assert len(items) == (6 if proto is F7 else 4) * proto.items


@BOTH
def test_no_answer_is_reported_once_after_the_deadline(proto: Proto) -> None:
    stream = fake_bytes(proto)[: 4 * proto.packet]
    parser, replies = armed(proto, deadline=ORIGIN.mono)
    parser.feed(stream[:10], ORIGIN)
    assert replies == []
    parser.feed(stream[10:], ORIGIN.shifted(0.1))
    parser.feed(bytes([ACK]), ORIGIN.shifted(0.2))  # too late: just a stray byte
    assert replies == [None]


def test_answer_bytes_inside_format7_data_are_data() -> None:
    # GOLDEN7 holds 0x06 and 0x15 inside frames: armed or not, they decode as data.
    parser, replies = armed(F7)
    items = parser.feed(GOLDEN7 * 3, ORIGIN)
    assert replies == [] and len(items) == 9 and parser.stats.bytes_discarded == 0


# --- drivers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "fmt"), [(Nonin2Driver, 2), (Nonin7Driver, 7), (Nonin8Driver, 8)]
)
def test_the_driver_greets_with_set_format_only_when_asked(driver: type, fmt: int) -> None:
    plain = driver(DeviceSpec.parse(f"{driver.name}@/dev/null"), lambda item: None)
    assert plain.greeting() == b""
    asking = driver(DeviceSpec.parse(f"{driver.name}+set-format@/dev/null"), lambda item: None)
    assert asking.greeting() == command(fmt)
    assert driver.serial_settings.baudrate == 9600 and driver.serial_settings.bytesize == 8
    assert (driver.serial_settings.parity, driver.serial_settings.stopbits) == ("N", 1)


def test_driver_byte_rates() -> None:
    assert (Nonin7Driver.byte_rate, Nonin8Driver.byte_rate) == (375.0, 4.0)
    assert (Nonin7Driver.name, Nonin8Driver.name) == ("nonin7", "nonin8")


def test_an_unknown_option_is_refused_in_plain_words() -> None:
    with pytest.raises(UserError, match="unknown option 'setformat'"):
        Nonin7Driver(DeviceSpec.parse("nonin7+setformat@/dev/null"), lambda item: None)


def test_a_nak_is_logged_as_a_plain_warning(caplog) -> None:
    caplog.set_level(logging.INFO, logger="devices.protocols.nonin")
    driver = Nonin7Driver(DeviceSpec.parse("nonin7+set-format@/dev/null"), lambda item: None)
    driver.greeting()
    driver.parser.feed(b"\x15" + fake_bytes(F7)[:250], Stamp.now())
    assert driver.format_answer == "refused"
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "the oximeter refused data format 7: set it on the device" in record.getMessage()


@pytest.mark.parametrize(
    ("stream", "level", "words"),
    [
        (fake_bytes(F8)[:40], logging.INFO, "no answer to the request for data format 8, but"),
        (b"\x00" * 40, logging.WARNING, "did not answer the request for data format 8; if no"),
    ],
    ids=["data-arrive", "nothing-decodes"],
)
def test_no_answer_is_logged_by_what_arrived(caplog, stream: bytes, level: int, words: str):
    caplog.set_level(logging.INFO, logger="devices.protocols.nonin")
    driver = Nonin8Driver(DeviceSpec.parse("nonin8+set-format@/dev/null"), lambda item: None)
    driver.greeting()
    driver.parser.feed(stream, Stamp.now().shifted(10.0))  # after the 5-s window (and 1 s)
    assert driver.format_answer == "no answer"
    assert [(r.levelno, words in r.getMessage()) for r in caplog.records] == [(level, True)]


# --- over a pty: scenario → emulator bytes → pty → pyserial → driver → hub ----------------------

pty_only = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


@pytest.fixture
def hub() -> Hub:
    return Hub()


@contextlib.contextmanager
def running(driver_cls: type, spec: str, hub: Hub):
    """The driver for ``spec``, connected and reading into ``hub``, stopped afterwards."""
    driver = driver_cls(DeviceSpec.parse(spec), hub.publish)
    driver.open()
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


@pty_only
@pytest.mark.parametrize(("driver", "proto"), [(Nonin7Driver, F7), (Nonin8Driver, F8)])
def test_a_stream_arrives_through_a_pty_with_the_scenario_values(hub, driver, proto) -> None:
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    session = KapSession(load_scenario("probe-off"), seed=3)
    t0 = next(t for t in range(int(session.duration)) if session.vitals(t).flags) - 30.0
    wire = proto.emulator(session).emit(t0, t0 + 90.0)
    want = [
        expected(proto, session, round(t0 / proto.seconds) + k)
        for k in range(len(wire) // proto.packet)
    ]
    with (
        contextlib.closing(PtyEndpoint()) as endpoint,
        running(driver, f"{driver.name}@{endpoint.path}", hub),
    ):
        assert collector.wait_for_state(ConnectionState.CONNECTED)
        for i in range(0, len(wire), 97):  # odd-sized pieces, like a UART FIFO
            endpoint.write(wire[i : i + 97])
            time.sleep(0.0005)
        wanted = proto.items * len(want)
        assert collector.wait_for(lambda items: len(measurements(items)) >= wanted, timeout=30)
        assert endpoint.dropped == 0
    assert values(proto, measurements(collector.items)) == want
    assert any(g[2] for g in want)  # the window shows the probe coming off


def measurements(items: list) -> list:
    return [it for it in items if isinstance(it, Numeric | WaveformBlock)]


class GreetedPty(PtyEndpoint):
    """A pty whose first read waits (up to 5 s, the device's window) for the host's greeting, so
    that the device answers before it streams, as a 9560 switching formats does."""

    def __init__(self) -> None:
        super().__init__()
        self.greeting = b""

    def read(self) -> bytes:
        deadline = time.monotonic() + 5.0
        data = super().read()
        while not self.greeting and not data and time.monotonic() < deadline:
            time.sleep(0.01)
            data = super().read()
        self.greeting = self.greeting or data or b"(none)"
        return data


@pty_only
@pytest.mark.parametrize(
    ("driver", "emulator", "answer"),
    [
        (Nonin7Driver, NoninFormat7Emulator, "accepted"),
        (Nonin8Driver, NoninFormat8Emulator, "accepted"),
        (Nonin7Driver, NoninFormat2Emulator, "refused"),  # a device that stays in format 2
    ],
)
def test_set_format_goes_over_the_pty_and_the_answer_comes_back(
    hub, caplog, driver, emulator, answer
) -> None:
    caplog.set_level(logging.INFO, logger="devices.protocols.nonin")
    collector = Collector(hub.subscribe("test"))
    session = KapSession(load_scenario("typical"), seed=2)
    with (
        contextlib.closing(GreetedPty()) as endpoint,
        running(driver, f"{driver.name}+set-format@{endpoint.path}", hub) as ox,
        serving(emulator(session), endpoint, speed=8.0),
    ):
        assert collector.wait_for(lambda items: ox.format_answer is not None, timeout=10)
        if answer == "accepted":
            assert collector.wait_for(lambda items: len(collector.of_type(Numeric)) >= 6)
    assert endpoint.greeting == command(ox.data_format)
    assert ox.format_answer == answer
    mine = [r for r in caplog.records if r.name == "devices.protocols.nonin.driver"]
    warnings = [r.getMessage() for r in mine if r.levelno >= logging.WARNING]
    if answer == "accepted":
        assert warnings == []
        assert ox.parser.stats.framing_errors == ox.parser.stats.checksum_errors == 0
        rates = [i.value for i in collector.of_type(Numeric) if i.code is Code.PULSE_RATE]
        assert all(40 <= r <= 140 for r in rates)
    else:
        assert warnings == [
            f"{ox.source}: the oximeter refused data format 7: set it on the device"
        ]


# --- kapmonitor decode --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "proto"), [("nonin7", F7), ("nonin8", F8)])
def test_kapmonitor_decode_reads_the_format(tmp_path, name: str, proto: Proto) -> None:
    session = KapSession(load_scenario("probe-off"), seed=4)
    wire = proto.emulator(session).emit(0.0, 60.0)
    path = tmp_path / f"{name}.bin"
    path.write_bytes(wire)
    kapmonitor = [sys.executable, "-m", "kapmonitor"]
    # With stderr in the output, any complaint would break the JSON lines.
    output = subprocess.check_output(
        [*kapmonitor, "decode", "--protocol", name, str(path)],
        cwd=ROOT,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 60 / proto.seconds * proto.items
    rates = [x["value"] for x in lines if x.get("code") == Code.PULSE_RATE.value]
    assert rates == [expected(proto, session, k)[0] for k in range(len(rates))]
    waves = [x for x in lines if "samples" in x]
    assert len(waves) == (180 if proto is F7 else 0)


# --- any bytes, any chunking, any damage --------------------------------------------------------


@BOTH
@given(
    lo=st.integers(0, 40 * 125),
    width=st.integers(1, 300),
    edits=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=12
    ),
    chunk=st.integers(1, 200),
)
@HYPO
def test_damage_in_one_region_spares_untouched_packets(
    proto: Proto, lo: int, width: int, edits: list, chunk: int
) -> None:
    stream = fake_bytes(proto)[: 40 * 125]
    lo %= len(stream)
    hi = min(lo + width, len(stream))
    damaged = stream[:lo] + mutate(stream[lo:hi], edits) + stream[hi:]
    _, clean = decode(proto, stream)
    parser, items = decode(proto, damaged, every(chunk, damaged))
    check_accounting(parser)
    size = proto.packet
    # Format 8 trusts no fewer than LOCK8 packets in a row: fewer before or after the damage
    # are lost.
    run = LOCK8 if proto is F8 else 1
    before = lo // size >= run
    after = (len(stream) - hi) // size >= run
    want = [
        g
        for k, g in enumerate(unjudged(values(proto, clean)))
        if ((k + 1) * size <= lo and before) or (k * size >= hi and after)
    ]
    it = iter(unjudged(values(proto, items)))
    assert all(w in it for w in want), "an untouched packet was lost"  # in order


@given(k=st.integers(1, 38), frame=st.integers(0, 24), byte=st.integers(0, 4))
@HYPO
def test_format7_a_damaged_frame_costs_only_its_packet(k: int, frame: int, byte: int) -> None:
    stream = bytearray(fake_bytes(F7))
    stream[k * 125 + frame * 5 + byte] ^= 0x40
    _, clean = decode(F7, fake_bytes(F7))
    parser, items = decode(F7, bytes(stream))
    want = values(F7, clean)
    assert values(F7, items) == want[:k] + want[k + 1 :]
    s = parser.stats
    assert s.checksum_errors + s.framing_errors >= 1


@given(st.binary(min_size=0, max_size=300), st.integers(1, 50))
@HYPO
def test_format8_valid_packets_survive_any_junk_around_them(junk: bytes, chunk: int) -> None:
    # Whatever precedes it, a packet's own status byte ends any packet the junk began.
    stream = junk + RUN8 + junk + RUN8
    parser, items = decode(F8, stream, every(chunk, stream))
    check_accounting(parser)
    got = [g[:2] for g in packets(F8, items)]
    assert got[-1] == (72, 97) and got.count((72, 97)) >= 2 * LOCK8
