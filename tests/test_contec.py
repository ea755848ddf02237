"""Contec CMS50D+ protocol V7.0: golden bytes, emulator, round trips, damage, pty, command line."""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.base import DEFAULT_NO_DATA_TIMEOUT, DriverSettings
from devices.protocols.contec import (
    KEEP_ALIVE_COMMAND,
    START_COMMAND,
    STOP_COMMAND,
    ContecDriver,
    ContecEmulator,
    ContecParser,
    RealtimeFields,
    command,
    decode_packet,
    decode_realtime,
    encode_packet,
    encode_realtime,
)
from devices.protocols.contec.wire import BYTE_RATE, CAPTURED_REPLIES, LOCK_PACKETS
from devices.protocols.emulation import quantise
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import serve
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, Flag, Numeric, Stamp, WaveformBlock
from tests.pipeline_helpers import Collector, decode_cli, feed_chunks
from tests.protocol_helpers import ORIGIN, PTY, TeeEndpoint, at_byte_rate, check_accounting, hypo

DATA = Path(__file__).parent / "data" / "contec"  # copied from ../shared/data (see README)
CAPTURE = DATA / "stream_data.py.capture-excerpt.txt"
GOLDEN = bytes.fromhex("01E085B396C1E1FFFF")
FS = 60.0
HYPO = hypo(max_examples=60)


# --- helpers ------------------------------------------------------------------------------------


def load_capture() -> list[tuple[bytes, bytes]]:
    """The capture as (host command, device reply) pairs; continuation lines have no command."""
    pairs = []
    for line in CAPTURE.read_text().splitlines():
        tokens = line.split()
        if not tokens or not all(len(t) == 2 for t in tokens):
            continue
        try:
            raw = bytes.fromhex("".join(tokens))
        except ValueError:
            continue
        if raw[:2] == b"\x7d\x81":
            pairs.append((raw[:9], raw[9:]))
        else:
            pairs.append((b"", raw))
    return pairs


#: When byte ``end`` has arrived, at the device's 540 B/s: packet k (bytes 9k..9k+8) ends at
#: ORIGIN + (k + 1) / 60.
byte_stamp = at_byte_rate(BYTE_RATE)


def decode(stream: bytes, cuts=None, *, flush: bool = True) -> tuple[ContecParser, list]:
    """Feed ``stream`` split at ``cuts`` (default: whole), each chunk stamped by its last byte."""
    parser = ContecParser("ox")
    items = feed_chunks(parser, stream, cuts, byte_stamp)
    if flush:
        items += parser.flush()
    return parser, items


def comparable(items: list) -> list[tuple]:
    """Items as tuples (stamps rounded: a chunk's stamp is counted back in floating point)."""
    out = []
    for it in items:
        if isinstance(it, Numeric):
            out.append((it.code, it.value, it.flags, round(it.stamp.mono, 6)))
        else:
            assert isinstance(it, WaveformBlock) and it.code is Code.PLETH and it.fs == FS
            samples = tuple(np.nan_to_num(it.samples, nan=-1.0).tolist())
            out.append((it.code, samples, it.flags, round(it.stamp.mono, 6)))
    return out


def packet_of(stamp: Stamp) -> int:
    """The index of the packet that ends at ``stamp`` (under byte_stamp)."""
    return round((stamp.mono - ORIGIN.mono) * FS) - 1


def samples_by_packet(items: list) -> dict[int, float]:
    """Each pleth sample keyed by the index of its packet (via the block's stamp)."""
    out: dict[int, float] = {}
    for it in items:
        if isinstance(it, WaveformBlock):
            k0 = packet_of(it.stamp)
            for i, x in enumerate(it.samples.tolist()):
                assert k0 + i not in out
                out[k0 + i] = -1.0 if math.isnan(x) else x
    return out


def numerics(items: list, code: Code) -> list[Numeric]:
    return [i for i in items if isinstance(i, Numeric) and i.code is code]


def rt(**kw) -> bytes:
    """A real-time packet: a steady reading unless told otherwise."""
    base = RealtimeFields(signal_strength=5, pleth=40, bar_graph=4, pulse_rate=72, spo2=97, pi=250)
    return encode_realtime(replace(base, **kw))


def started(session: KapSession, at: float = 0.0, **kw) -> ContecEmulator:
    emu = ContecEmulator(session, **kw)
    assert emu.on_host_bytes(START_COMMAND, at) == b""
    return emu


@pytest.fixture(scope="module")
def typical() -> KapSession:
    return KapSession(load_scenario("typical"), seed=3)


@pytest.fixture(scope="module")
def stream(typical: KapSession) -> bytes:
    """Two minutes of the device's bytes (never timing out)."""
    return started(typical, timeout=math.inf).emit(0.0, 120.0)


# --- golden: the reference packet and the real exchange ------------------------------------------


def test_golden_reference_packet() -> None:
    f = decode_realtime(GOLDEN)
    assert (f.signal_strength, f.pleth, f.pulse_rate, f.spo2, f.pi) == (5, 51, 65, 97, 0xFFFF)
    assert (f.probe_error, f.searching_pulse, f.searching_too_long, f.bar_graph) == (0, 0, 0, 6)
    assert encode_realtime(f) == GOLDEN
    assert decode_packet(GOLDEN) == (1, bytes([5, 0x33, 0x16, 65, 97, 0xFF, 0xFF]))
    # A lone packet is what line noise makes: it is trusted only in a run of LOCK_PACKETS.
    parser, items = decode(GOLDEN)
    assert items == [] and parser.pending_bytes == len(GOLDEN)
    stream = GOLDEN * LOCK_PACKETS
    for cuts in (None, list(range(1, len(stream)))):
        parser, items = decode(stream, cuts)
        assert [(i.code, i.value, i.flags) for i in items[:3]] == [
            (Code.PULSE_RATE, 65, frozenset()),
            (Code.SPO2, 97, frozenset()),
            (Code.PERFUSION, None, frozenset()),  # FFFF: no PI, and never 0
        ]
        assert items[3].samples.tolist() == [51.0] * LOCK_PACKETS and len(items) == 4
        assert parser.stats.packets_realtime == LOCK_PACKETS and parser.stats.framing_errors == 0


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_golden_real_exchange_decodes_every_reply_and_packet(chunk: int | None) -> None:
    pairs = load_capture()
    assert len(pairs) == 16
    device = b"".join(reply for _, reply in pairs)
    cuts = None if chunk is None else list(range(chunk, len(device), chunk))
    parser, items = decode(device, cuts)
    s = parser.stats
    assert (s.packets_other, s.packets_realtime, s.packets_unknown) == (11, 7, 0)
    assert (s.framing_errors, s.bytes_discarded, s.resyncs, parser.pending_bytes) == (0, 0, 0, 0)
    check_accounting(parser)
    assert [(i.code, i.value) for i in items if isinstance(i, Numeric)] == [
        (Code.PULSE_RATE, 65),
        (Code.SPO2, 97),
        (Code.PERFUSION, None),
    ]
    waves = [i for i in items if isinstance(i, WaveformBlock)]
    assert len(waves) == 1 and waves[0].flags == frozenset()
    assert waves[0].samples.tolist() == [51, 48, 46, 44, 43, 42, 42]
    # The byte after the pleth (the bar graph, 96 then 95 raw) moves; the rest is steady.
    rt_packets = [device[i : i + 9] for i in range(len(device) - 63, len(device), 9)]
    assert [decode_realtime(p).spo2 for p in rt_packets] == [97] * 7
    assert [decode_realtime(p).bar_graph for p in rt_packets] == [6, 6, 5, 5, 5, 5, 5]


def test_golden_host_commands_and_the_emulators_replies(typical: KapSession) -> None:
    pairs = [(cmd, reply) for cmd, reply in load_capture() if cmd]
    by_code = {decode_packet(cmd)[1][0]: (cmd, reply) for cmd, reply in pairs}
    assert by_code[0xA1][0] == START_COMMAND == bytes.fromhex("7D81A1808080808080")
    assert by_code[0xA2][0] == STOP_COMMAND
    assert bytes.fromhex("7D81AF808080808080") == KEEP_ALIVE_COMMAND  # the source's cmd2
    for code, (cmd, reply) in by_code.items():
        assert cmd == command(code)
        emu = ContecEmulator(typical)
        got = emu.on_host_bytes(cmd, 1.0)
        if code == 0xA1:
            assert got == b"" and emu.emit(1.0, 1.1)[::9] == b"\x01" * 6  # the stream instead
        else:
            assert got == reply == CAPTURED_REPLIES[code], hex(code)
    assert ContecEmulator(typical).on_host_bytes(KEEP_ALIVE_COMMAND, 0.0) == b""


def test_packet_codec_round_trips_the_high_bit_byte() -> None:
    assert encode_packet(0x0C, b"") == b"\x0c\x80"
    data = bytes([0x00, 0xFF, 0x80, 0x7F, 0x01, 0xFE, 0x81])
    wire = encode_packet(0x05, data)
    assert wire[1] == 0x80 | 0b1100110 and all(x >= 0x80 for x in wire[1:])
    assert decode_packet(wire) == (0x05, data)
    with pytest.raises(ValueError):
        encode_packet(0x80, b"")


# --- emulator -----------------------------------------------------------------------------------


def test_the_emulator_is_silent_until_the_start_command(typical: KapSession) -> None:
    emu = ContecEmulator(typical)
    assert emu.emit(0.0, 30.0) == b""
    assert emu.on_host_bytes(KEEP_ALIVE_COMMAND, 1.0) == b""  # a keep-alive starts nothing
    assert emu.emit(1.0, 30.0) == b""
    emu.on_host_bytes(START_COMMAND, 2.0)
    assert len(emu.emit(2.0, 3.0)) == 60 * 9


@given(st.lists(st.floats(0.0, 12.0), max_size=30))
@HYPO
def test_emit_is_frame_exact_for_any_boundaries(cuts: list[float]) -> None:
    session = KapSession(load_scenario("typical"), seed=3)
    whole = started(session, timeout=math.inf).emit(0.0, 12.0)
    assert len(whole) == 720 * 9
    emu = started(session, timeout=math.inf)
    bounds = [0.0, *sorted(cuts), 12.0]
    assert b"".join(emu.emit(a, b) for a, b in itertools.pairwise(bounds)) == whole


def run_device(emu: ContecEmulator, until: float, commands: dict[float, bytes]) -> bytes:
    """Play ``emu`` as serve() does, in 0.1-s ticks; ``commands`` arrive at their tick."""
    out = bytearray()
    for k in range(round(until * 10)):
        t = k / 10
        for at, cmd in commands.items():
            if math.isclose(at, t):
                out += emu.on_host_bytes(cmd, t)
        out += emu.emit(t, (k + 1) / 10)
    return bytes(out)


def test_the_stream_stops_five_seconds_after_the_last_keep_alive(typical: KapSession) -> None:
    emu = ContecEmulator(typical)
    data = run_device(emu, 20.0, {0.0: START_COMMAND})
    assert len(data) == 301 * 9  # packets 0..300: t <= 5.0 s
    emu = ContecEmulator(typical)
    cmds = {0.0: START_COMMAND, 3.0: KEEP_ALIVE_COMMAND, 10.0: KEEP_ALIVE_COMMAND}
    data = run_device(emu, 20.0, cmds)
    assert len(data) == 481 * 9  # the AF at 3 s carries it to 8 s; the one at 10 s is too late
    assert not emu.streaming(10.0) and len(emu.runs) == 1
    emu = ContecEmulator(typical)
    data = run_device(emu, 20.0, {**cmds, 12.0: START_COMMAND})  # a new start restarts it
    assert len(data) == (481 + 301) * 9 and len(emu.runs) == 2
    assert data[481 * 9 :] == emu.packets(720, 1021)


def test_keep_alives_every_second_keep_it_streaming(typical: KapSession) -> None:
    emu = ContecEmulator(typical)
    cmds = {0.0: START_COMMAND} | {float(s): KEEP_ALIVE_COMMAND for s in range(1, 30)}
    data = run_device(emu, 30.0, cmds)
    assert len(data) == 30 * 60 * 9 and data == emu.packets(0, 1800)
    assert len(emu.runs) == 1 and emu.streaming(30.0)


def test_the_stop_command_stops_the_stream_and_is_answered(typical: KapSession) -> None:
    emu = ContecEmulator(typical)
    data = run_device(emu, 5.0, {0.0: START_COMMAND, 2.0: STOP_COMMAND})
    assert len(data) == 120 * 9 + 2 and data[120 * 9 :] == b"\x0c\x80"
    assert not emu.streaming(2.0)


@given(
    st.lists(st.sampled_from([0xA1, 0xAF, 0xAA, 0xB0, 0x42]), min_size=1, max_size=8),
    st.lists(st.binary(max_size=3).filter(lambda j: 0x7D not in j), min_size=8, max_size=8),
    st.lists(st.integers(1, 200), max_size=20),
)
@HYPO
def test_host_commands_are_parsed_in_any_chunking(codes, junk, cuts) -> None:
    session = KapSession(load_scenario("typical"), seed=3)
    wire = b"".join(j + command(c) for j, c in zip(junk, codes, strict=False))
    whole = ContecEmulator(session)
    want = whole.on_host_bytes(wire, 1.0)
    emu = ContecEmulator(session)
    bounds = [0, *sorted(c for c in set(cuts) if c < len(wire)), len(wire)]
    got = b"".join(emu.on_host_bytes(wire[a:b], 1.0) for a, b in itertools.pairwise(bounds))
    assert got == want == b"".join(CAPTURED_REPLIES.get(c, b"") for c in codes)
    assert [c for _, c in emu.commands] == codes == [c for _, c in whole.commands]


@dataclass(frozen=True)
class FakeVitals:
    t: float
    heart_rate: float | None
    spo2: float | None
    perfusion_index: float | None
    flags: frozenset[Flag]


class LowPerfusionSession:
    """A patient with a weak pulse: the emulator sends signal strength 0."""

    duration = 60.0

    def vitals(self, t: float) -> FakeVitals:
        return FakeVitals(t, 80.4, 93.6, 0.25, frozenset({Flag.LOW_PERFUSION}))

    def pleth(self, t0: float, n: int, fs: float) -> np.ndarray:
        return 0.5 + 0.4 * np.sin(t0 + np.arange(n) / fs)


def test_low_perfusion_is_strength_zero_and_reads_as_questionable() -> None:
    emu = started(LowPerfusionSession(), timeout=math.inf)
    data = emu.emit(0.0, 2.0)
    f = decode_realtime(data[:9])
    assert (f.signal_strength, f.pulse_rate, f.spo2, f.pi, f.pi_valid) == (0, 80, 94, 25, True)
    _, items = decode(data)
    assert {i.flags for i in items} == {frozenset({Flag.QUESTIONABLE})}
    assert [i.value for i in items[:3]] == [80, 94, 0.25]


# --- flags and missing values -------------------------------------------------------------------

NONE = frozenset()


Q, S, OFF = (
    frozenset({Flag.QUESTIONABLE}),
    frozenset({Flag.SEARCHING}),
    frozenset({Flag.SENSOR_OFF}),
)
FF = {"pulse_rate": 0xFF, "spo2": 0x7F, "pi": 0xFFFF}


@pytest.mark.parametrize(
    ("fields", "values", "flags", "pleth_flags"),
    [
        ({}, (72, 97, 2.5), NONE, NONE),
        ({"probe_error": True, "signal_strength": 0}, (72, 97, 2.5), OFF, OFF),
        ({"probe_error": True, **FF}, (None, None, None), OFF, OFF),
        ({"searching_pulse": True}, (72, 97, 2.5), S, S),
        ({"searching_too_long": True}, (72, 97, 2.5), S, S),
        ({"pulse_rate": 0xFF, "spo2": 0x7F}, (None, None, 2.5), S, NONE),  # no reading yet
        ({"pulse_rate": 0, "spo2": 0, "pi": 0}, (None, None, None), S, NONE),
        ({"signal_strength": 0}, (72, 97, 2.5), Q, Q),
        ({"signal_strength": 0, "spo2": 0x7F}, (72, None, 2.5), S, Q),
        ({"pulse_rate": 201, "pi": 0xFFFF}, (201, 97, None), NONE, NONE),  # PR needs bit 7
        ({"low_spo2": True, "pulse_beep": True, "bar_graph": 15}, (72, 97, 2.5), NONE, NONE),
    ],
)
# The shortest run the parser trusts, and the numpy path for long runs.
@pytest.mark.parametrize("repeat", [LOCK_PACKETS, 600])
def test_status_bits_and_markers(fields, values, flags, pleth_flags, repeat) -> None:
    _, items = decode(rt(**fields) * repeat)
    nums = [i for i in items if isinstance(i, Numeric)]
    assert len(nums) == 3 * math.ceil(repeat / 60)
    assert tuple(i.value for i in nums[:3]) == values
    assert all(i.value != 0 for i in nums)  # a missing value is None, never 0
    assert {i.flags for i in nums} == {flags}
    waves = [i for i in items if isinstance(i, WaveformBlock)]
    assert {w.flags for w in waves} == {pleth_flags}
    samples = np.concatenate([w.samples for w in waves])
    assert len(samples) == repeat
    if Flag.SENSOR_OFF in flags:
        assert np.isnan(samples).all()  # no signal: no pleth to show
    else:
        assert (samples == 40).all()


def test_spo2_above_100_is_out_of_range_not_a_value() -> None:
    _, items = decode(rt(spo2=0x7E) * LOCK_PACKETS)
    spo2 = numerics(items, Code.SPO2)[0]
    assert spo2.value is None and Flag.OUT_OF_RANGE in spo2.flags
    assert Flag.OUT_OF_RANGE not in numerics(items, Code.PULSE_RATE)[0].flags


# --- round trip with the simulated patient --------------------------------------------------------


def first_time(session: KapSession, flag: Flag) -> int:
    return next(t for t in range(int(session.duration)) if flag in session.vitals(t).flags)


@pytest.mark.parametrize(
    ("scenario", "where"),
    [
        ("typical", "start"),
        ("desaturation", "start"),
        ("probe-off", "off"),
        ("artifact-storm", "art"),
    ],
)
def test_round_trip_values_equal_the_scenarios(scenario: str, where: str) -> None:
    session = KapSession(load_scenario(scenario), seed=7)
    t0 = 0
    if where == "off":
        t0 = first_time(session, Flag.SENSOR_OFF) - 10
    elif where == "art":
        t0 = first_time(session, Flag.ARTIFACT) - 5
    seconds = 120
    emu = started(session, float(t0), timeout=math.inf)
    data = emu.emit(float(t0), float(t0 + seconds))
    k0 = t0 * 60
    parser, items = decode(data)
    assert parser.stats.bytes_discarded == 0 and parser.stats.packets_realtime == seconds * 60
    # Numerics once a second, from the stream's first packet on; each shows its second's vitals.
    for code in (Code.PULSE_RATE, Code.SPO2, Code.PERFUSION):
        assert [packet_of(n.stamp) for n in numerics(items, code)] == list(range(0, 7200, 60))
    seen = set()
    codes = (Code.PULSE_RATE, Code.SPO2, Code.PERFUSION)
    for pr, spo2, pi in zip(*(numerics(items, c) for c in codes), strict=True):
        v = session.vitals((k0 + packet_of(pr.stamp)) // 60)
        want = (
            None if v.heart_rate is None else round(v.heart_rate),
            None if v.spo2 is None else round(v.spo2),
            None if v.perfusion_index is None else round(v.perfusion_index * 100) / 100,
        )
        assert (pr.value, spo2.value, pi.value) == want
        wire_flags = v.flags & {Flag.SENSOR_OFF, Flag.SEARCHING}
        if Flag.LOW_PERFUSION in v.flags and not wire_flags:
            wire_flags = frozenset({Flag.QUESTIONABLE})
        assert pr.flags == spo2.flags == pi.flags == wire_flags
        seen |= wire_flags
    if where == "off":
        assert seen == {Flag.SENSOR_OFF, Flag.SEARCHING}
    # Every pleth sample, after 7-bit quantisation; NaN where the probe is off.
    truth = session.pleth(float(t0), seconds * 60, FS)
    got = samples_by_packet(items)
    assert sorted(got) == list(range(seconds * 60))
    want = np.where(np.isnan(truth), -1.0, quantise(truth, 127.0))
    assert np.array_equal([got[k] for k in range(seconds * 60)], want)
    assert all(len(w.samples) == 15 for w in items if isinstance(w, WaveformBlock))


def test_stamps_follow_the_packet_clock(stream: bytes) -> None:
    _, items = decode(stream, list(range(7, len(stream), 61)))
    for it in items:
        k = packet_of(it.stamp)
        assert math.isclose(it.stamp.mono, ORIGIN.mono + (k + 1) / FS, abs_tol=1e-9)
        assert it.stamp.wall - it.stamp.mono == pytest.approx(ORIGIN.wall - ORIGIN.mono)
    blocks = [i for i in items if isinstance(i, WaveformBlock)]
    assert [packet_of(b.stamp) for b in blocks] == list(range(0, 7200, 15))


# --- framing, damage and chunking ----------------------------------------------------------------


def test_joining_mid_packet_is_not_an_error(stream: bytes) -> None:
    parser, _ = decode(stream[4 : 9 * 40])
    s = parser.stats
    assert (s.bytes_discarded, s.framing_errors, s.resyncs, s.packets_realtime) == (5, 0, 0, 39)


def test_replies_are_skipped_by_length_and_junk_is_counted_once() -> None:
    replies = b"".join(CAPTURED_REPLIES.values())
    stream = rt() * 20 + replies + rt() * 20 + b"\xff\xfe\xfd" + rt() * 20
    parser, items = decode(stream)
    s = parser.stats
    assert (s.packets_realtime, s.packets_other, s.packets_unknown) == (60, 11, 0)
    assert (s.framing_errors, s.bytes_discarded, s.resyncs) == (1, 3, 1)
    # Other packets or junk between real-time packets end a pleth block early: no gaps inside.
    assert [len(w.samples) for w in items if isinstance(w, WaveformBlock)] == [15, 5, 15, 5, 15, 5]
    check_accounting(parser)


def test_a_cut_packet_costs_only_itself() -> None:
    lock = LOCK_PACKETS
    stream = rt(pleth=1) * lock + rt(pleth=2)[:5] + rt(pleth=3) * lock
    parser, items = decode(stream)
    samples = np.concatenate([w.samples for w in items if isinstance(w, WaveformBlock)])
    assert samples.tolist() == [1] * lock + [3] * lock
    s = parser.stats
    assert (s.framing_errors, s.bytes_discarded, s.resyncs) == (1, 5, 1)
    assert s.packets_realtime == 2 * lock


def test_unknown_types_are_skipped_to_the_next_packet() -> None:
    unknown = bytes([0x3A, 0x80, 0x91, 0xA2, 0xB3, 0xC4, 0xD5, 0xE6, 0xF7, 0x88, 0x99])
    lock = LOCK_PACKETS
    parser, items = decode(rt(pleth=1) * lock + unknown + rt(pleth=2) * lock)
    s = parser.stats
    assert (s.packets_unknown, s.framing_errors, s.bytes_discarded) == (1, 0, len(unknown))
    samples = [w.samples.tolist() for w in items if isinstance(w, WaveformBlock)]
    assert samples == [[1.0] * lock, [2.0] * lock]


def test_a_pause_in_the_stream_starts_a_new_block_and_numerics_at_once(stream: bytes) -> None:
    parser = ContecParser("ox")
    first = parser.feed(stream[: 9 * 70], ORIGIN)  # 70 packets: numerics at 0 and 60
    later = ORIGIN.shifted(30.0)
    second = parser.feed(stream[9 * 70 : 9 * 80], later)  # the device was stopped, restarted
    assert len(numerics(first, Code.SPO2)) == 2
    blocks = [i for i in second if isinstance(i, WaveformBlock)]
    assert [len(b.samples) for b in blocks] == [10]  # packets 60..69, flushed before the gap
    assert numerics(second, Code.SPO2)[0].stamp.mono == pytest.approx(later.mono - 9 / 60)


def damaged_stream(data: bytes, where: int, junk: bytes) -> bytes:
    return data[:where] + junk + data[where + len(junk) :]


def test_long_runs_through_numpy_equal_one_block_at_a_time(stream: bytes) -> None:
    head = stream[: 9 * 1000]
    whole, items = decode(head)  # complete blocks of a long run go through numpy
    one, one_items = decode(head, list(range(1, len(head))))  # and here one block at a time
    assert comparable(one_items) == comparable(items) and one.stats == whole.stats
    assert len(items) == 17 * 3 + 67  # numerics at 0, 60, … 960; 66 blocks and 10 samples
    whole, items = decode(stream)
    _, chunked = decode(stream, list(range(64, len(stream), 64)))  # serial-read sized
    assert comparable(chunked) == comparable(items)
    assert whole.stats.packets_realtime == 7200 and whole.stats.framing_errors == 0


@given(st.integers(0, 9 * 600), st.binary(min_size=1, max_size=60))
@HYPO
def test_damage_in_one_region_spares_every_packet_outside_it(where: int, junk: bytes) -> None:
    session = KapSession(load_scenario("probe-off"), seed=1)
    t0 = first_time(session, Flag.SENSOR_OFF) - 5  # the patient's state changes on the way
    clean = started(session, float(t0), timeout=math.inf).emit(float(t0), t0 + 10.0)
    bad = damaged_stream(clean, where, junk)
    _, clean_items = decode(clean)
    parser, items = decode(bad)
    check_accounting(parser)
    first_bad, last_bad = where // 9, (where + len(junk) - 1) // 9
    # Spared: outside the damage, and not in a run before or after it too short to be trusted
    # (a run at the end of the stream is held until it is long enough, and it never is).
    after_ok = 599 - last_bad >= LOCK_PACKETS
    spared = [k for k in range(600) if (k > last_bad and after_ok) or LOCK_PACKETS <= first_bad > k]
    want = samples_by_packet(clean_items)
    got = samples_by_packet(items)
    assert all(got[k] == want[k] for k in spared)
    # Numerics from spared packets carry that packet's own values.
    by_packet = {}
    for it in clean_items:
        if isinstance(it, Numeric):
            by_packet.setdefault(packet_of(it.stamp), []).append((it.code, it.value, it.flags))
    rt_of = {k: clean[9 * k : 9 * k + 9] for k in spared}
    for k, group in itertools.groupby(
        [i for i in items if isinstance(i, Numeric)], key=lambda i: packet_of(i.stamp)
    ):
        if k in rt_of:
            values = [(i.code, i.value, i.flags) for i in group]
            _, ref = decode(rt_of[k] * LOCK_PACKETS, flush=False)
            assert values == [(i.code, i.value, i.flags) for i in ref if isinstance(i, Numeric)]
    # …and keep coming about once a second after the damage.
    after = [
        packet_of(n.stamp) for n in numerics(items, Code.SPO2) if packet_of(n.stamp) > last_bad
    ]
    assert len(after) >= (599 - last_bad) // 60


# --- driver, registry, command line ---------------------------------------------------------------


def test_the_registry_names_the_driver_with_its_wire_settings() -> None:
    cls = get_driver_class("contec")
    assert cls is ContecDriver
    assert cls.serial_settings.baudrate == 115200
    assert (cls.serial_settings.bytesize, cls.serial_settings.parity) == (8, "N")
    assert cls.byte_rate == 540 and cls.keep_alive_interval == 1.0
    driver = ContecDriver(DeviceSpec.parse("contec@/dev/null-oximeter"), lambda item: None)
    assert driver.greeting() == START_COMMAND and driver.keep_alive() == KEEP_ALIVE_COMMAND
    driver.state = ConnectionState.NO_DATA  # a silent device is asked to start again
    assert driver.keep_alive() == START_COMMAND
    assert cls.emulator_class is ContecEmulator and cls.parser_class is ContecParser


def test_kapmonitor_decode_reads_a_contec_file(tmp_path: Path, stream: bytes) -> None:
    path = tmp_path / "cms50d.bin"
    path.write_bytes(stream[: 9 * 600])  # ten seconds
    records = decode_cli("contec", path, unexpected="framing")
    spo2 = [r for r in records if r["code"] == Code.SPO2.value]
    assert len(spo2) == 10 and all(90 <= r["value"] <= 100 for r in spo2)
    assert [r["t"] for r in spo2] == pytest.approx([(1 + 60 * k) / 60 for k in range(10)], abs=1e-4)
    waves = [r for r in records if r["code"] == Code.PLETH.value]
    assert len(waves) == 40 and all(r["fs"] == 60.0 and len(r["samples"]) == 15 for r in waves)


class SilentHost(ContecDriver):
    """The driver, but a host that never sends the keep-alive."""

    keep_alive_interval = None


@pytest.fixture
def pipeline():
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    endpoint = TeeEndpoint()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    drivers: list[ContecDriver] = []

    def start(
        cls: type[ContecDriver],
        emulator: ContecEmulator,
        speed: float,
        no_data_timeout: float = DEFAULT_NO_DATA_TIMEOUT,
    ) -> ContecDriver:
        settings = DriverSettings(no_data_timeout)
        driver = cls(DeviceSpec.parse(f"contec@{endpoint.path}"), hub.publish, settings)
        driver.open()
        driver.start()
        drivers.append(driver)
        server = threading.Thread(
            target=serve, args=(emulator, endpoint), kwargs={"speed": speed, "stop": stop}
        )
        server.start()
        threads.append(server)
        return driver

    yield start, collector, endpoint, stop
    stop.set()
    for t in threads:
        t.join(10)
    for d in drivers:
        d.stop()
    endpoint.close()


def pleth_count(items) -> int:
    return sum(len(i.samples) for i in items if isinstance(i, WaveformBlock))


@PTY
def test_round_trip_over_a_pty_with_the_drivers_greeting_and_keep_alives(pipeline) -> None:
    start, collector, endpoint, stop = pipeline
    session = KapSession(load_scenario("typical"), seed=5)
    emulator = ContecEmulator(session)
    speed = 2.0  # a keep-alive every ~2 s of session time, well inside the 5-s timeout
    driver = start(ContecDriver, emulator, speed)
    assert collector.wait_for(lambda items: pleth_count(items) >= 12 * 60, timeout=30)
    stop.set()
    time.sleep(0.3)  # the device has stopped writing
    assert endpoint.dropped == 0
    assert len(emulator.runs) == 1  # one start, never timed out …
    assert emulator.commands[0][1] == 0xA1 and {c for _, c in emulator.commands} == {0xA1, 0xAF}
    n_keep_alives = sum(c == 0xAF for _, c in emulator.commands)
    assert n_keep_alives >= 5
    # … and the host decoded exactly what the device sent: values, flags and pleth.
    parser, offline = decode(bytes(endpoint.sent), flush=False)

    def measurements(items):
        return [i for i in items if isinstance(i, (Numeric, WaveformBlock))]

    assert collector.wait_for(lambda items: len(measurements(items)) >= len(offline), timeout=10)
    got = measurements(collector.items)

    def values(items):
        return [c[:3] for c in comparable(items)]

    assert values(got) == values(offline)
    assert driver.parser.stats.framing_errors == parser.stats.framing_errors == 0
    assert driver.parser.stats.packets_realtime == len(endpoint.sent) // 9 > 10 * 60
    # The values are the simulated patient's (held per second; the stream began at ~0 s).
    spo2 = [n.value for n in numerics(got, Code.SPO2)]
    truth = {round(session.vitals(s).spo2) for s in range(40)}
    assert spo2 and set(spo2) <= truth
    assert collector.states()[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]


@PTY
def test_without_keep_alives_the_device_stops_after_five_seconds(pipeline) -> None:
    start, collector, endpoint, stop = pipeline
    session = KapSession(load_scenario("typical"), seed=5)
    emulator = ContecEmulator(session)
    speed = 4.0
    start(SilentHost, emulator, speed)
    assert collector.wait_for(lambda items: pleth_count(items) >= 250, timeout=20)
    time.sleep(9.0 / speed)  # another 9 s of session time: the stream must have stopped
    stop.set()
    sent = len(endpoint.sent) // 9
    assert [c for _, c in emulator.commands] == [0xA1]
    t_start = emulator.runs[0].start
    assert sent == math.floor((t_start + 5.0) * 60 + 1e-9) + 1 - math.ceil(t_start * 60 - 1e-9)
    assert 295 <= sent <= 301 and not emulator.streaming(t_start + 6.0)
    whole_blocks = sent - sent % 15  # the rest waits for a block to fill
    assert collector.wait_for(lambda items: pleth_count(items) >= whole_blocks, timeout=10)
    time.sleep(0.2)
    collector.wait_for(lambda items: False, timeout=0.2)
    assert pleth_count(collector.items) == whole_blocks


@PTY
def test_a_device_that_stopped_is_started_again(pipeline) -> None:
    """The device stops between keep-alives (its timeout is short here); the driver notices the
    silence and sends the start command again, as it must after the oximeter is switched off."""
    start, collector, _, _ = pipeline
    session = KapSession(load_scenario("typical"), seed=5)
    emulator = ContecEmulator(session, timeout=1.0)
    start(ContecDriver, emulator, 4.0, no_data_timeout=0.5)  # keep-alives 4 s apart: too late
    assert collector.wait_for(lambda items: len(emulator.runs) >= 2, timeout=20)
    assert collector.wait_for(lambda items: pleth_count(items) >= 2 * 60, timeout=10)
    states = collector.states()
    assert ConnectionState.NO_DATA in states
    assert states[states.index(ConnectionState.NO_DATA) + 1] is ConnectionState.CONNECTED
    codes = [c for _, c in emulator.commands]
    assert codes[:2] == [0xA1, 0xA1]  # the greeting, then a start instead of a keep-alive
