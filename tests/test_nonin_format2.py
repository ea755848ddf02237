"""Nonin Data Format 2: golden vectors, emulator round trip, what damage costs (the protocol
contract, in test_parser_contract, checks any bytes and any chunking)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols.nonin import (
    NoninFormat2Emulator,
    NoninFormat2Parser,
    encode_packet,
)
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Numeric, Stamp, WaveformBlock
from tests.pipeline_helpers import feed_chunks
from tests.protocol_helpers import ORIGIN, check_accounting, hypo, mutate

VECTORS = Path(__file__).parent / "data" / "nonin"  # copied from ../shared/data (see README)
VECTOR_FILE = VECTORS / "TestNoninOEM3.cpp.vectors.txt"
FS = 75.0
PACKET = 125
WIRE_FLAGS = frozenset({Flag.SENSOR_OFF, Flag.SEARCHING, Flag.ARTIFACT, Flag.LOW_PERFUSION})
HYPO = hypo()


# --- helpers ------------------------------------------------------------------------------------


def load_vectors() -> dict[str, bytes]:
    """The byte vectors by section: 'valid', 'checksum', 'status'."""
    sections: dict[str, bytearray] = {}
    name = None
    for line in VECTOR_FILE.read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            for key, marker in (
                ("valid", "VALID PACKET"),
                ("checksum", "CHECKSUM ERROR"),
                ("status", "STATUS BYTE ERROR"),
            ):
                if marker in line:
                    name = key
            continue
        if line and name:
            sections.setdefault(name, bytearray()).extend(bytes.fromhex(line))
    return {k: bytes(v) for k, v in sections.items()}


def byte_stamp(end: int) -> Stamp:
    """When the bytes before index ``end`` have arrived, at the device's 375 B/s, with ORIGIN
    the start of the first frame (so a frame's last byte arrives one frame after its start)."""
    return ORIGIN.shifted(end / (5 * FS) - 1 / FS)


def decode(stream: bytes, cuts: list[int] | None = None) -> tuple[NoninFormat2Parser, list]:
    """Feed ``stream`` split at ``cuts`` (default: whole), each chunk stamped by its last byte."""
    parser = NoninFormat2Parser("ox")
    return parser, feed_chunks(parser, stream, cuts, byte_stamp)


def packets(items: list) -> list[tuple]:
    """Items grouped per packet as comparable tuples: (hr, spo2, flags, samples, stamps)."""
    assert len(items) % 3 == 0
    out = []
    for i in range(0, len(items), 3):
        pr, spo2, wave = items[i : i + 3]
        assert isinstance(pr, Numeric) and pr.code is Code.PULSE_RATE
        assert isinstance(spo2, Numeric) and spo2.code is Code.SPO2
        assert isinstance(wave, WaveformBlock) and wave.code is Code.PLETH
        assert wave.fs == FS and len(wave.samples) == 25
        # The device's flags are the packet's; the output checks judge each value alone.
        checks = {Flag.OUT_OF_RANGE, Flag.QUESTIONABLE}
        assert pr.flags - checks == spo2.flags - checks == wave.flags
        out.append(
            (
                pr.value,
                spo2.value,
                pr.flags | spo2.flags,
                tuple(np.nan_to_num(wave.samples, nan=-1.0).tolist()),
                round(pr.stamp.mono, 6),
                round(wave.stamp.mono, 6),
            )
        )
    return out


def error_counts(parser: NoninFormat2Parser) -> tuple[int, int, int, int]:
    s = parser.stats
    return s.checksum_errors, s.framing_errors, s.bytes_discarded, s.packets_dropped


# A fake patient, ONLY for emulator unit tests (the real KapSession has its own test below): it
# scripts every state the wire can carry, with HR and SpO2 changing every packet. They sweep up
# and down (HR 30-245, through the 9-bit packing; SpO2 70-100) in steps a patient can make, so
# that the parsers' plausibility checks (Format 8's lock, the jump rule) take them as real.


def _sweep(x: float, height: float) -> float:
    """A triangle wave: 0 up to ``height`` and back, with slope 1."""
    return height - abs(x % (2 * height) - height)


@dataclass(frozen=True)
class FakeVitals:
    t: float
    heart_rate: float | None
    spo2: float | None
    perfusion_index: float | None
    flags: frozenset[Flag]


PHASES = (  # (start, end) seconds within a 16-s cycle, flags
    (4.0, 6.0, frozenset({Flag.SENSOR_OFF})),
    (6.0, 8.0, frozenset({Flag.SEARCHING})),
    (8.0, 10.0, frozenset({Flag.ARTIFACT})),
    (10.0, 12.0, frozenset({Flag.LOW_PERFUSION})),
    (12.0, 14.0, frozenset({Flag.ARTIFACT, Flag.LOW_PERFUSION})),
    (14.0, 15.0, frozenset({Flag.QUESTIONABLE})),  # not on the wire: must vanish
)


class FakeSession:
    duration = 3600.0

    @staticmethod
    def _flags(t: float) -> frozenset[Flag]:
        c = t % 16.0
        for a, b, flags in PHASES:
            if a <= c < b:
                return flags
        return frozenset()

    def vitals(self, t: float) -> FakeVitals:
        flags = self._flags(t)
        if flags & {Flag.SENSOR_OFF, Flag.SEARCHING}:
            return FakeVitals(t, None, None, None, flags)
        p = round(t * 3)
        return FakeVitals(t, self.hr_at(p), self.spo2_at(p), 2.0, flags)

    @staticmethod
    def hr_at(p: int) -> float:
        """The heart rate at packet ``p`` (p/3 s): 4.3 /min a packet, 12.9 a second."""
        return 30.4 + _sweep(p * 4.3, 215.0)

    @staticmethod
    def spo2_at(p: int) -> float:
        """SpO2 at packet ``p``: one point a packet."""
        return 70.0 + _sweep(p, 30.0)

    def pleth(self, t0: float, n: int, fs: float) -> np.ndarray:
        t = t0 + np.arange(n) / fs
        y = 0.5 + 0.45 * np.sin(2 * np.pi * 1.3 * t) + 0.04 * np.sin(2 * np.pi * 7.1 * t)
        off = np.array([Flag.SENSOR_OFF in self._flags(x) for x in t])
        y[off | ((t % 32.0 >= 30.1) & (t % 32.0 < 30.2))] = np.nan  # and a short dropout
        return y


def expected_packet(session, p: int) -> tuple:
    """What packet ``p`` must decode to, derived from the session by the spec (not the code)."""
    t = p * 25 / 75
    v = session.vitals(t)
    raw = np.asarray(session.pleth(t, 25, 75.0), dtype=float)
    nan = np.isnan(raw)
    q = np.rint(np.clip(np.where(nan, 0.0, raw), 0, 1) * 255)
    flags = v.flags & WIRE_FLAGS
    if Flag.SENSOR_OFF in flags:
        flags -= {Flag.LOW_PERFUSION}  # no pulse, so no perfusion colour
    if nan.any() or Flag.SENSOR_OFF in flags:
        flags |= {Flag.SENSOR_OFF}
    samples = np.where(nan | (Flag.SENSOR_OFF in v.flags), -1.0, q)
    hr = None if v.heart_rate is None else round(v.heart_rate)
    spo2 = None if v.spo2 is None else round(v.spo2)
    return hr, spo2, frozenset(flags), tuple(samples.tolist())


@functools.cache
def fake_bytes() -> bytes:
    return NoninFormat2Emulator(FakeSession()).emit(0.0, 40.0)  # 120 packets


@pytest.fixture
def fake_stream() -> bytes:
    return fake_bytes()


# --- golden vectors -----------------------------------------------------------------------------


def test_golden_valid_packet_decodes_to_hr_72_spo2_97() -> None:
    v = load_vectors()["valid"]
    assert len(v) == PACKET
    for cuts in (None, list(range(1, PACKET))):
        parser, items = decode(v, cuts)
        assert [(i.code, i.value) for i in items[:2]] == [(Code.PULSE_RATE, 72), (Code.SPO2, 97)]
        assert items[0].flags == frozenset()
        assert items[2].samples.tolist() == [1.0] * 25
        s = parser.stats
        assert (s.frames_ok, s.packets_ok) == (25, 1)
        assert error_counts(parser) == (0, 0, 0, 0) and s.resyncs == 0
        assert parser.pending_bytes == 0


@pytest.mark.parametrize(("case", "counter"), [("checksum", 0), ("status", 1)])
def test_golden_damaged_frame_is_counted_and_neighbours_decode(case: str, counter: int) -> None:
    vec = load_vectors()
    bad = vec[case]
    assert len(bad) == 10
    stream = vec["valid"] + bad + vec["valid"]
    for cuts in (None, list(range(1, len(stream)))):
        parser, items = decode(stream, cuts)
        assert [i.value for i in items if isinstance(i, Numeric)] == [72, 97, 72, 97]
        errors = error_counts(parser)
        assert errors[counter] == 1 and errors[1 - counter] == 0
        assert parser.stats.packets_dropped == 1 and parser.stats.bytes_discarded == 10
        assert parser.stats.resyncs == 1
        assert parser.stats.frames_ok == 25 + 1 + 25  # the damaged packet's first frame was good
        check_accounting(parser)


def test_golden_missed_data_drops_incomplete_packet() -> None:
    valid = load_vectors()["valid"]
    stream = valid + valid[: 23 * 5] + valid  # 23 frames, then a new SYNC frame
    parser, items = decode(stream)
    assert [i.value for i in items if isinstance(i, Numeric)] == [72, 97, 72, 97]
    assert parser.stats.packets_dropped == 1
    assert parser.stats.framing_errors == 1
    assert parser.stats.bytes_discarded == 115
    assert parser.stats.checksum_errors == 0


# --- emulator -----------------------------------------------------------------------------------


@given(st.lists(st.floats(0.0, 12.0), max_size=30))
@HYPO
def test_emit_is_frame_exact_for_any_boundaries(cuts: list[float]) -> None:
    whole = NoninFormat2Emulator(FakeSession()).emit(0.0, 12.0)
    assert len(whole) == 900 * 5
    emu = NoninFormat2Emulator(FakeSession())
    bounds = [0.0, *sorted(cuts), 12.0]
    assert b"".join(emu.emit(a, b) for a, b in itertools.pairwise(bounds)) == whole


def test_emit_covers_half_open_interval() -> None:
    emu = NoninFormat2Emulator(FakeSession())
    assert len(emu.emit(0.0, 1.0)) == 75 * 5
    assert len(emu.emit(1 / 75, 2 / 75)) == 5  # exactly frame 1
    assert emu.emit(0.5, 0.5) == b"" and emu.emit(1.0, 0.5) == b""
    assert emu.emit(0.0, 1 / 75)[:2] == b"\x01\x83"  # SYNC, bit 7, green perfusion


def test_emulator_packet_fields(fake_stream: bytes) -> None:
    p = fake_stream[PACKET * 7 : PACKET * 8]  # t = 7/3 s, normal
    fl = p[3::5]
    hr = round(FakeSession.hr_at(7))
    assert ((fl[0] & 3) << 7 | fl[1]) == hr == ((fl[13] & 3) << 7 | fl[14])
    assert ((fl[19] & 3) << 7 | fl[20]) == hr == ((fl[21] & 3) << 7 | fl[22])
    assert fl[2] == fl[8] == fl[9] == fl[10] == fl[15] == fl[16] == FakeSession.spo2_at(7)
    assert fl[3] == 48
    assert (fl[5] << 7 | fl[6]) == 7  # the timer counts packets
    assert all(b == 1 for b in p[0::5])
    assert all((sum(p[i : i + 4]) & 0xFF) == p[i + 4] for i in range(0, PACKET, 5))
    assert [s & 1 for s in p[1::5]] == [1] + [0] * 24


def test_joining_mid_packet_is_not_an_error() -> None:
    valid = load_vectors()["valid"]
    parser, items = decode(valid[37:] + valid)
    assert [i.value for i in items if isinstance(i, Numeric)] == [72, 97]
    s = parser.stats
    assert (s.resyncs, s.checksum_errors, s.framing_errors, s.bytes_discarded) == (0, 0, 0, 88)


def test_emulator_status_bits_per_patient_state(fake_stream: bytes) -> None:
    # Packet p shows the patient at p/3 s; the fake's phases repeat every 16 s (48 packets).
    want = {0: 0x82, 13: 0x88, 19: 0x92, 25: 0xA2, 31: 0x84, 37: 0xA4, 43: 0x82}
    for p, status in want.items():
        st = fake_stream[p * PACKET : (p + 1) * PACKET][1::5]
        assert st[0] == status | 1 and set(st[1:]) == {status}, f"packet {p}"


@pytest.mark.parametrize("repeat", [1, 30])  # the single-packet and the many-packet path
@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0x02, set()),  # green
        (0x06, set()),  # yellow
        (0x04, {Flag.LOW_PERFUSION}),  # red
        (0x00, set()),  # between pulses: no colour
        (0x40, {Flag.SENSOR_OFF}),  # SNSD
        (0x08 | 0x10 | 0x20, {Flag.SENSOR_OFF, Flag.SEARCHING, Flag.ARTIFACT}),
    ],
)
def test_status_bits_to_flags(status: int, flags: set[Flag], repeat: int) -> None:
    _, items = decode(encode_packet(70, 98, [5] * 25, status=status) * repeat)
    assert len(items) == 3 * repeat
    assert all(i.flags == flags for i in items)
    nan = bool(status & 0x48)
    assert all(np.isnan(i.samples).all() == nan for i in items if isinstance(i, WaveformBlock))


def test_missing_markers_on_the_wire_and_none_after_decoding() -> None:
    p = encode_packet(None, None, [0] * 25)
    fl = p[3::5]
    assert (fl[0], fl[1], fl[2]) == (0x03, 0x7F, 127)
    _, items = decode(p)
    assert [i.value for i in items[:2]] == [None, None]


@pytest.mark.parametrize(
    ("fmt", "t", "reply"),
    [(2, 0.0, b"\x06"), (2, 4.9, b"\x06"), (7, 1.0, b"\x15"), (8, 1.0, b"\x15"), (2, 5.0, b"")],
)
def test_set_format_command(fmt: int, t: float, reply: bytes) -> None:
    emu = NoninFormat2Emulator(FakeSession())
    assert emu.on_host_bytes(bytes([0x02, 0x70, 0x02, 0x02, fmt, 0x03]), t) == reply


def test_set_format_command_split_and_surrounded_by_junk() -> None:
    emu = NoninFormat2Emulator(FakeSession())
    assert emu.on_host_bytes(b"\x00\x02\x70\x02", 0.1) == b""
    assert emu.on_host_bytes(b"\x02\x02\x03\xff", 0.2) == b"\x06"
    assert emu.on_host_bytes(b"\x02\x70\x02\x02\x02\x04", 0.3) == b""  # no ETX: not a command


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip_values_pleth_and_flags(fake_stream: bytes) -> None:
    session = FakeSession()
    parser, items = decode(fake_stream, list(range(64, len(fake_stream), 64)))
    got = packets(items)
    assert len(got) == 120
    seen_flags = set()
    for p, g in enumerate(got):
        assert g[:4] == expected_packet(session, p), f"packet {p}"
        seen_flags |= g[2]
    assert seen_flags == WIRE_FLAGS  # every flag made the trip
    assert any(g[0] is not None and g[0] > 127 for g in got)  # the 9-bit HR packing
    assert error_counts(parser) == (0, 0, 0, 0)


def test_missing_values_are_none_never_zero(fake_stream: bytes) -> None:
    _, items = decode(fake_stream)
    numerics = [i for i in items if isinstance(i, Numeric)]
    assert any(i.value is None for i in numerics)
    assert all(i.value != 0 for i in numerics)
    for i in numerics:
        if i.value is None:
            assert i.flags & {Flag.SENSOR_OFF, Flag.SEARCHING}


def test_stamps_follow_the_frame_clock(fake_stream: bytes) -> None:
    stream = fake_stream[: PACKET * 10]
    for cuts in (None, list(range(5, len(stream), 5)), list(range(64, len(stream), 64))):
        _, items = decode(stream, cuts)
        for p, g in enumerate(packets(items)):
            assert g[4] == pytest.approx(ORIGIN.mono + (25 * p + 24) / FS, abs=1e-6)
            assert g[5] == pytest.approx(ORIGIN.mono + 25 * p / FS, abs=1e-6)


@pytest.mark.parametrize("scenario_name", ["typical", "probe-off", "artifact-storm"])
def test_round_trip_with_real_kap_session(scenario_name: str) -> None:
    session = KapSession(load_scenario(scenario_name), seed=1)
    # Five minutes from the start, and five around the first flagged second (probe off...).
    windows = [(0.0, 300.0)]
    flagged = next((t for t in range(int(session.duration)) if session.vitals(t).flags), None)
    if flagged is not None:
        windows.append((float(max(0, flagged - 60)), float(max(0, flagged - 60) + 300)))
    seen: set[Flag] = set()
    for t0, t1 in windows:
        emu = NoninFormat2Emulator(session)
        stream = b"".join(emu.emit(t, t + emu.tick) for t in np.arange(t0, t1, emu.tick))
        parser, items = decode(stream, list(range(64, len(stream), 64)))
        got = packets(items)
        first = round(t0 * 3)
        assert len(got) == round((t1 - t0) * 3)
        for k, g in enumerate(got):
            assert g[:4] == expected_packet(session, first + k), f"packet {first + k}"
            seen |= g[2]
        assert error_counts(parser) == (0, 0, 0, 0)
    want = {"probe-off": {Flag.SENSOR_OFF, Flag.SEARCHING}, "artifact-storm": {Flag.ARTIFACT}}
    assert want.get(scenario_name, set()) <= seen


# --- chunking and damage ------------------------------------------------------------------------


@given(st.binary(min_size=0, max_size=600), st.integers(1, 300))
@HYPO
def test_arbitrary_bytes_around_valid_packets(junk: bytes, chunk: int) -> None:
    valid = encode_packet(80, 95, list(range(25)))
    stream = junk + valid + junk + valid
    parser, items = decode(stream, list(range(chunk, len(stream), chunk)))
    packets(items)  # well-formed triples, whatever the junk
    check_accounting(parser)
    assert [i.value for i in items if isinstance(i, Numeric)][-4:] == [80, 95, 80, 95]


@given(
    st.integers(0, 40 * PACKET),
    st.integers(1, 300),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
    st.integers(1, 200),
)
@HYPO
def test_damage_in_one_region_spares_untouched_packets(
    lo: int, width: int, edits: list, chunk: int
) -> None:
    fake_stream = fake_bytes()
    stream = fake_stream[: 40 * PACKET]
    hi = min(lo + width, len(stream))
    damaged = stream[:lo] + mutate(stream[lo:hi], edits) + stream[hi:]
    _, clean = decode(stream)
    parser, items = decode(damaged, list(range(chunk, len(damaged), chunk)))
    check_accounting(parser)
    got = [g[:4] for g in packets(items)]
    want = [
        g[:4] for k, g in enumerate(packets(clean)) if (k + 1) * PACKET <= lo or k * PACKET >= hi
    ]
    it = iter(got)
    assert all(w in it for w in want), "an untouched packet was lost"  # in order, as a subsequence


@given(st.integers(1, 39), st.integers(0, 24), st.integers(1, 255))
@HYPO
def test_checksum_failure_is_counted(k: int, frame: int, delta: int) -> None:
    fake_stream = fake_bytes()[: 40 * PACKET]  # long enough for the many-packet path
    stream = bytearray(fake_stream)
    i = k * PACKET + frame * 5 + 4
    stream[i] = (stream[i] + delta) & 0xFF
    _, clean = decode(fake_stream)
    parser, items = decode(bytes(stream))
    assert parser.stats.checksum_errors == 1
    assert parser.stats.framing_errors == 0
    assert parser.stats.packets_dropped == (1 if frame else 0)
    want = packets(clean)
    assert packets(items) == want[:k] + want[k + 1 :]


@pytest.mark.parametrize("chunk", [None, 64])
@pytest.mark.parametrize(("k", "frame"), [(3, 24), (20, 0), (25, 12), (39, 1)])
def test_lost_frame_drops_only_its_packet(k: int, frame: int, chunk: int | None) -> None:
    stream = fake_bytes()[: 40 * PACKET]
    i = k * PACKET + frame * 5
    damaged = stream[:i] + stream[i + 5 :]
    _, clean = decode(stream)
    cuts = None if chunk is None else list(range(chunk, len(damaged), chunk))
    parser, items = decode(damaged, cuts)
    want = [g[:4] for g in packets(clean)]
    assert [g[:4] for g in packets(items)] == want[:k] + want[k + 1 :]
    s = parser.stats
    if k == 39:  # the last packet is short and nothing follows: still waiting, nothing counted
        assert (s.framing_errors, s.packets_dropped, parser.pending_bytes) == (0, 0, 120)
    else:
        assert (s.framing_errors, s.checksum_errors) == (1, 0)
        assert s.packets_dropped == (0 if frame == 0 else 1)  # no SYNC frame, no packet began


def patch_frame(stream: bytes, k: int, frame: int, byte: int, value: int) -> bytes:
    """Set one byte of frame ``frame`` of packet ``k`` and keep the frame's checksum valid."""
    out = bytearray(stream)
    f = k * PACKET + frame * 5
    out[f + byte] = value
    out[f + 4] = sum(out[f : f + 4]) & 0xFF
    return bytes(out)


@pytest.mark.parametrize("k", [3, 50])  # the single-packet and the many-packet path
@pytest.mark.parametrize(
    ("frame", "byte", "value", "framing", "dropped"),
    [
        (7, 0, 0x00, 1, 1),  # no start byte, checksum consistent
        (7, 1, 0x02, 1, 1),  # status bit 7 clear, checksum consistent
        (0, 1, 0x82, 1, 0),  # SYNC missing: no packet starts here
        (12, 1, 0x83, 2, 2),  # SYNC in the middle: two short packets
    ],
)
def test_structure_errors_with_good_checksums(
    k: int, frame: int, byte: int, value: int, framing: int, dropped: int
) -> None:
    stream = fake_bytes()[: 60 * PACKET]
    assert stream[k * PACKET + frame * 5 + 1] == 0x82 | (frame == 0)  # a normal-phase packet
    _, clean = decode(stream)
    parser, items = decode(patch_frame(stream, k, frame, byte, value))
    want = [g[:4] for g in packets(clean)]
    assert [g[:4] for g in packets(items)] == want[:k] + want[k + 1 :]
    s = parser.stats
    assert (s.framing_errors, s.checksum_errors, s.packets_dropped) == (framing, 0, dropped)


@pytest.mark.parametrize("k", [3, 50])
def test_values_come_from_their_own_frames(k: int) -> None:
    stream = fake_bytes()[: 60 * PACKET]
    for frame in range(3, 25):  # every field after HR and SpO2 set to something else
        stream = patch_frame(stream, k, frame, 3, 0x55)
    _, clean = decode(fake_bytes()[: 60 * PACKET])
    _, items = decode(stream)
    assert packets(items) == packets(clean)
