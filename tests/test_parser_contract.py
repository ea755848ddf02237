"""The contract every wire protocol's parser keeps, whatever arrives (issue 11).

For every registered protocol: random bytes at the line's rate, floods, any chunking, damage
inserted into what the device emulator sends, and chunk stamps that even go backwards. Whatever
comes in, the parser never raises, no value outside its code's physical range leaves it
unflagged, and the stamps of each stream (a code's numerics, the NIBP readings, a waveform, a
vendor value) never decrease, and every byte is decoded, discarded or held. Any chunking of the
same bytes gives the same items and counters, one byte at a time too; after damage the stream is
found again. Clean emulator output round-trips: the values are the simulated patient's. And
noise is not a patient: a Nonin format 8 or a Contec read from a noisy line gives no values and
raises no alarm.

This is the one place for those checks: a protocol's own test file keeps what is particular to
it (its golden bytes, its flags, what exactly a damaged packet costs).
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarms.engine import AlarmEngine
from alarms.model import AlarmKind, LogEvent
from alarms.profile import load_profile
from devices.capture import CaptureWriter, Kind
from devices.protocols.base import OutputChecks, SerialSettings
from devices.protocols.ge_s5.wire import LINE_RATE
from devices.registry import get_driver_class, protocol_names
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import (
    DeviceValue,
    Flag,
    NibpReading,
    Numeric,
    Stamp,
    WaveformBlock,
)
from tests.pipeline_helpers import decode_cli, feed_chunks
from tests.protocol_helpers import (
    ORIGIN,
    at_byte_rate,
    check_accounting,
    comparable,
    every,
    hypo,
)

PROTOCOLS = protocol_names()
DATA = Path(__file__).parent / "data"
HYPO = hypo(max_examples=25)
EACH = pytest.mark.parametrize("name", PROTOCOLS)
VITALS = (Code.SPO2, Code.PULSE_RATE, Code.HEART_RATE)


def test_every_built_in_protocol_is_under_contract() -> None:
    builtin = {"nonin2", "nonin7", "nonin8", "masimo", "contec", "ge-s5", "intellivue"}
    builtin |= {"capnostream"}
    assert builtin <= set(PROTOCOLS)


# --- helpers ------------------------------------------------------------------------------------


def line_rate(settings_: SerialSettings) -> float:
    """Bytes a second the line carries: start bit, data bits, parity, stop bits."""
    bits = 1 + settings_.bytesize + (settings_.parity != "N") + settings_.stopbits
    return settings_.baudrate / bits


def new_parser(name: str):
    parser = get_driver_class(name).parser_class(name)
    parser.begin(ORIGIN)
    return parser


def byte_rate(name: str) -> float:
    """The rate a parser counts back by from a read's stamp, so that chunks stamped at it place
    every item exactly, however the stream is cut: the device's average byte rate, but GE S/5's
    line rate (its records come in bursts at the line's speed)."""
    if name == "ge-s5":
        return LINE_RATE
    return get_driver_class(name).byte_rate


def feed(parser, chunks: list[tuple[bytes, Stamp]]) -> list[tuple[Stamp, list]]:
    """Each chunk's stamp with the items it completed (the end of the stream flushed last)."""
    out = [(stamp, parser.feed(data, stamp)) for data, stamp in chunks]
    last = chunks[-1][1] if chunks else ORIGIN
    return [*out, (last, parser.flush())]


def at_line_rate(data: bytes, cuts: list[int], rate: float) -> list[tuple[bytes, Stamp]]:
    """``data`` cut at ``cuts``, each chunk stamped when its last byte arrived at ``rate``."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [(data[a:b], ORIGIN.shifted(b / rate)) for a, b in itertools.pairwise(bounds)]


def stream_key(item) -> object:
    if isinstance(item, Numeric):
        return item.code
    if isinstance(item, WaveformBlock):
        return ("wave", item.code)
    if isinstance(item, DeviceValue):
        return ("value", item.key)
    return type(item)


def check_contract(fed: list[tuple[Stamp, list]]) -> list:
    """Assert the contract on what a parser gave; return all items."""
    last: dict[object, float] = {}
    items = []
    for _, got in fed:
        for item in got:
            items.append(item)
            key = stream_key(item)
            assert item.stamp.mono >= last.get(key, -math.inf), f"time ran backwards: {item}"
            last[key] = item.stamp.mono
            if isinstance(item, Numeric):
                parts = [(item.code, item.value)]
            elif isinstance(item, NibpReading):
                parts = list(item.parts())
            else:
                continue
            for code, value in parts:
                if value is None:
                    continue
                assert math.isfinite(value), item
                low, high = code.physical_range
                assert low <= value <= high or Flag.OUT_OF_RANGE in item.flags, item
    return items


@functools.cache
def emulated(name: str, scenario: str = "typical", start: float = 0.0, seconds: float = 120.0):
    """What the device sends in ``seconds`` from session time ``start``, as the real driver hears
    it (greeting, keep-alives and replies answered), in quarter-second reads: ``(bytes, session
    time of arrival)`` per read, and the session."""
    driver_cls = get_driver_class(name)
    session = KapSession(load_scenario(scenario), seed=5)
    driver = driver_cls(DeviceSpec.parse(f"{name}@loop://"), lambda item: None)
    emulator = driver_cls.emulator_class(session)
    host = driver.greeting()
    reads: list[tuple[bytes, float]] = []
    keep_alive_at = start
    steps = int(seconds * 4)
    for k in range(steps):
        t0, t1 = start + k / 4, start + (k + 1) / 4
        if driver.keep_alive_interval is not None and t0 >= keep_alive_at:
            host += driver.keep_alive()
            keep_alive_at = t0 + driver.keep_alive_interval
        sent = emulator.on_host_bytes(host, t0) if host else b""
        sent += emulator.emit(t0, t1)
        driver.parser.feed(sent, ORIGIN.shifted(t1 - start))  # the handshake needs the parser
        host = driver.reply()
        if sent:
            reads.append((sent, t1 - start))
    return tuple(reads), session


def byte_times(reads) -> tuple[bytes, np.ndarray]:
    """The emulated stream and each byte's arrival (seconds from the start), spread evenly over
    the read it came in."""
    data = b"".join(r[0] for r in reads)
    times = np.empty(len(data))
    pos, prev = 0, 0.0
    for chunk, t in reads:
        times[pos : pos + len(chunk)] = np.linspace(prev, t, len(chunk) + 1)[1:]
        pos += len(chunk)
        prev = t
    return data, times


# --- any bytes ----------------------------------------------------------------------------------


@EACH
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(1, 3000), max_size=30))
@HYPO
def test_random_bytes_at_the_line_rate(name: str, data: bytes, cuts: list[int]) -> None:
    parser = new_parser(name)
    chunks = at_line_rate(data, cuts, line_rate(parser.SERIAL))
    items = check_contract(feed(parser, chunks))
    for item in items:  # never in the future, never before the connection
        assert item.stamp.mono <= ORIGIN.mono + len(data) / line_rate(parser.SERIAL) + 1e-9
    check_accounting(parser)
    assert parser.stats.bytes_in == len(data)
    assert not [i for i in items if isinstance(i, Numeric) and i.value == 0]  # missing is None


@EACH
@given(
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(1, 2000), max_size=20),
    times=st.lists(st.floats(-1e3, 1e3), min_size=21, max_size=21),
)
@HYPO
def test_stamps_never_decrease_even_when_the_chunks_stamps_do(
    name: str, data: bytes, cuts: list[int], times: list[float]
) -> None:
    # A stream with packets in it, so that items come out; the chunk stamps are arbitrary.
    stream, _ = byte_times(emulated(name)[0])
    parts = [stream[: 2000 + len(data)], data, stream[2000 + len(data) : 6000]]
    whole = b"".join(parts)
    bounds = [0, *sorted({c * 3 for c in cuts if 0 < c * 3 < len(whole)}), len(whole)]
    chunks = [
        (whole[a:b], ORIGIN.shifted(t))
        for (a, b), t in zip(itertools.pairwise(bounds), times, strict=False)
    ]
    check_contract(feed(new_parser(name), chunks))


@EACH
@given(
    junk=st.lists(st.tuples(st.integers(0, 10**9), st.binary(min_size=1, max_size=40)), max_size=8),
    flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), max_size=8),
    cuts=st.lists(st.integers(1, 10**9), max_size=40),
)
@HYPO
def test_damage_in_emulator_output_in_any_chunking(
    name: str, junk: list, flips: list, cuts: list[int]
) -> None:
    stream, times = byte_times(emulated(name)[0])
    data = bytearray(stream[:20000])
    for at, bit in flips:
        data[at % len(data)] ^= 1 << bit
    for at, piece in sorted(junk, reverse=True):
        data[at % len(data) : at % len(data)] = piece
    data = bytes(data)
    cuts = sorted({c % len(data) for c in cuts})
    bounds = [0, *[c for c in cuts if c], len(data)]
    chunks = [
        (data[a:b], ORIGIN.shifted(float(times[min(b, len(times)) - 1])))
        for a, b in itertools.pairwise(bounds)
    ]
    parser = new_parser(name)
    check_contract(feed(parser, chunks))
    check_accounting(parser)


@EACH
@given(
    damage=st.lists(
        st.tuples(st.integers(0, 10**9), st.binary(max_size=40), st.integers(0, 40)), max_size=3
    ),
    read=st.integers(4, 240),
)
@HYPO
def test_after_damage_the_stream_is_found_again(name: str, damage: list, read: int) -> None:
    # Junk put in and bytes cut out of one read early on: the rest of the two minutes decodes
    # as it would have, codes and waves alike.
    reads, _ = emulated(name)
    reads = list(reads)
    chunk, t = reads[read % (len(reads) // 4)]
    for at, junk, cut in damage:
        at %= len(chunk) + 1
        chunk = chunk[:at] + junk + chunk[at + cut :]
    hit = read % (len(reads) // 4)
    damaged = [*reads[:hit], (chunk, t), *reads[hit + 1 :]]
    tail = reads[-1][1] - 40.0  # the last 40 s: well after the damage, found again by then

    def kinds(fed: list[tuple[Stamp, list]]) -> dict[object, int]:
        counts: dict[object, int] = {}
        for item in itertools.chain.from_iterable(got for _, got in fed):
            if item.stamp.mono - ORIGIN.mono >= tail and not isinstance(item, DeviceValue):
                key = stream_key(item)
                counts[key] = counts.get(key, 0) + 1
        return counts

    want = kinds(feed(new_parser(name), [(c, ORIGIN.shifted(t)) for c, t in reads]))
    parser = new_parser(name)
    got = kinds(feed(parser, [(c, ORIGIN.shifted(t)) for c, t in damaged]))
    check_accounting(parser)
    assert want and set(got) == set(want)
    for key, count in want.items():  # a block or a second may fall either side of the edge
        assert got[key] >= count - 2, (key, got, want)


# --- any chunking -------------------------------------------------------------------------------


#: Bytes real devices sent, where tests/data holds them (the public MP90 session's slice).
RECORDED = {"intellivue": DATA / "intellivue-mp90" / "1A.wire.DERIVED.bin"}
#: Each protocol's emulator, and the real devices' bytes where there are some.
SAMPLES = pytest.mark.parametrize(
    ("name", "source"),
    [*((name, "emulator") for name in PROTOCOLS), *((name, "recorded") for name in RECORDED)],
)


def clean_stream(name: str, source: str, size: int) -> bytes:
    """The first ``size`` bytes the device sends: its emulator through an artifact storm (the
    whole of Nonin 8's two minutes), or a real one's."""
    if source == "recorded":
        return RECORDED[name].read_bytes()[:size]
    return b"".join(c for c, _ in emulated(name, "artifact-storm", 1490.0)[0])[:size]


def decoded(name: str, stream: bytes, cuts: list[int] | None):
    """A parser fed ``stream`` cut at ``cuts``, each chunk stamped at the device's byte rate."""
    parser = new_parser(name)
    items = feed_chunks(parser, stream, cuts, at_byte_rate(byte_rate(name)))
    return parser, items + parser.flush()


def assert_same_decoding(name: str, a, b) -> None:
    """Two decodings of the same bytes gave the same items and stamps, counters and state."""
    (pa, ia), (pb, ib) = a, b
    assert comparable(ia) == comparable(ib)
    assert same([x.stamp for x in ia], [y.stamp for y in ib])
    assert pa.stats == pb.stats and pa.pending_bytes == pb.pending_bytes
    assert same(public_state(pa), public_state(pb))
    check_accounting(pb)


def public_state(parser) -> dict[str, object]:
    """What a parser shows besides its items and counters (its problem, a device's clock...)."""
    return {k: v for k, v in vars(parser).items() if not k.startswith("_") and k != "stats"}


def same(a: object, b: object) -> bool:
    """Equal, times within a microsecond (the same instant, counted back through other reads)."""
    if isinstance(a, Stamp) and isinstance(b, Stamp):
        return same(a.mono, b.mono) and same(a.wall, b.wall)
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 1e-6 or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple, collections.deque)) and isinstance(b, type(a)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@SAMPLES
@given(
    damaged=st.booleans(),
    at=st.integers(0, 12_000),
    junk=st.binary(max_size=60),
    cut=st.integers(0, 60),
    cuts=st.lists(st.integers(1, 12_100), max_size=60),
)
@HYPO
def test_any_chunking_gives_the_same_items_and_counters(
    name: str, source: str, damaged: bool, at: int, junk: bytes, cut: int, cuts: list[int]
) -> None:
    stream = clean_stream(name, source, 40_000 if source == "recorded" else 12_000)
    if damaged:
        at %= len(stream)
        stream = stream[:at] + junk + stream[at + cut :]
    whole = decoded(name, stream, None)
    assert_same_decoding(name, whole, decoded(name, stream, cuts))


@SAMPLES
def test_one_byte_at_a_time_equals_whole(name: str, source: str) -> None:
    stream = clean_stream(name, source, 20_000 if source == "recorded" else 6000)
    whole = decoded(name, stream, None)
    assert whole[1], "the stream decodes"
    assert_same_decoding(name, whole, decoded(name, stream, every(1, stream)))


@EACH
@given(noise=st.binary(min_size=2000, max_size=20000), lead=st.integers(10, 30))
@HYPO
def test_a_flood_is_placed_after_the_read_before_it(name: str, noise: bytes, lead: int) -> None:
    # A backlog: `lead` seconds read as they came, then 60 s of the device and noise in one read
    # 10 ms later. What the flood completes arrived after the read before it.
    reads = emulated(name)[0]
    before = [(c, ORIGIN.shifted(t)) for c, t in reads if t <= lead]
    backlog = b"".join(c for c, t in reads if lead < t <= lead + 60)
    previous = before[-1][1]
    flood = ORIGIN.shifted(lead + 0.01)
    fed = feed(new_parser(name), [*before, (backlog + noise, flood)])
    check_contract(fed)
    flooded = fed[len(before)][1]
    assert flooded, "the backlog decodes"
    for item in flooded:
        assert item.stamp.mono <= flood.mono
        if isinstance(item, Numeric):
            assert item.stamp.mono >= previous.mono, item


# --- round trip ---------------------------------------------------------------------------------


@EACH
def test_emulator_output_round_trips_to_the_patient(name: str) -> None:
    # Two minutes into the desaturation scenario's fall: SpO2 and pulse are on the move.
    session = KapSession(load_scenario("desaturation"), seed=5)
    fall = next(t for t in range(int(session.duration)) if (session.vitals(t).spo2 or 100) < 93)
    start = float(fall - 60)
    reads, session = emulated(name, "desaturation", start)
    fed = feed(new_parser(name), [(c, ORIGIN.shifted(t)) for c, t in reads])
    items = check_contract(fed)
    grid = np.arange(start - 7.0, start + 121.0, 0.05)
    truth = {
        Code.SPO2: np.array([_or_nan(session.vitals(t).spo2) for t in grid]),
        Code.PULSE_RATE: np.array([_or_nan(session.vitals(t).heart_rate) for t in grid]),
    }
    truth[Code.HEART_RATE] = truth[Code.PULSE_RATE]  # the scenario has one heart rate
    seen = {code: 0 for code in VITALS}
    for item in items:
        if not (isinstance(item, Numeric) and item.code in VITALS and item.value is not None):
            continue
        assert not item.flags & {Flag.OUT_OF_RANGE, Flag.QUESTIONABLE}, item
        # The device shows a value it measured up to one update period (GE: 5 s) before it
        # was sent, rounded as its wire format rounds.
        t = start + item.stamp.mono - ORIGIN.mono
        window = truth[item.code][(grid >= t - 6.5) & (grid <= t + 0.05)]
        window = window[~np.isnan(window)]
        assert len(window), item
        assert window.min() - 1.0 <= item.value <= window.max() + 1.0, (item, t)
        seen[item.code] += 1
    assert seen[Code.SPO2] >= 20 and seen[Code.PULSE_RATE] + seen[Code.HEART_RATE] >= 20


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else x


# --- noise is not a patient ---------------------------------------------------------------------


def noise_items(name: str, seconds: float, seed: int) -> list:
    """``seconds`` of random bytes at the line's full rate, read 64 bytes at a time."""
    parser = new_parser(name)
    rate = line_rate(parser.SERIAL)
    data = random.Random(seed).randbytes(int(rate * seconds))
    fed = feed(parser, at_line_rate(data, list(range(64, len(data), 64)), rate))
    return check_contract(fed)


def physiological_alarms(items: list) -> list:
    engine = AlarmEngine(load_profile("kap-default"))
    entries = []
    for item in items:
        entries += engine.process(item)
    if items:
        entries += engine.tick(items[-1].stamp.shifted(60.0))
    return [e for e in entries if e.kind is AlarmKind.PHYSIOLOGICAL and e.event is LogEvent.ACTIVE]


def test_nonin8_line_noise_gives_no_values_and_no_alarm() -> None:
    # Ten minutes of random bytes at 960 bytes a second: Format 8 has no checksum, and before
    # the lock this decoded into thousands of SpO2 and pulse values (SpO2 over 100, HR over
    # 300) and hundreds of high-priority alarms.
    items = noise_items("nonin8", 600.0, seed=8)
    values = [i for i in items if isinstance(i, Numeric) and i.value is not None]
    assert values == []
    assert physiological_alarms(items) == []


@pytest.mark.parametrize("name", ["contec", "nonin2", "nonin7", "masimo", "ge-s5", "capnostream"])
def test_line_noise_gives_no_values_and_no_alarm(name: str) -> None:
    # Contec's lone "real-time packets" in noise gave pulse, SpO2 and a PI of 342 %.
    items = noise_items(name, 60.0, seed=2)
    assert [i for i in items if isinstance(i, (Numeric, NibpReading))] == []
    assert physiological_alarms(items) == []


def test_a_value_outside_its_physical_range_keeps_its_number_flagged() -> None:
    # Contec sends PI in 0.01 %: 34200 is 342 %, which no perfusion index can be.
    from devices.protocols.contec import RealtimeFields, encode_realtime
    from devices.protocols.contec.wire import LOCK_PACKETS

    packet = encode_realtime(
        RealtimeFields(signal_strength=5, pleth=40, pulse_rate=72, spo2=97, pi=34200)
    )
    parser = new_parser("contec")
    items = parser.feed(packet * LOCK_PACKETS, ORIGIN.shifted(1.0))
    pi = [i for i in items if isinstance(i, Numeric) and i.code is Code.PERFUSION]
    assert [(i.value, Flag.OUT_OF_RANGE in i.flags) for i in pi] == [(342.0, True)]
    assert physiological_alarms(items) == []


# --- the shared checks, one rule at a time -----------------------------------------------------


def checked(*items):
    return OutputChecks()(list(items))


def num(code: Code, value, t: float, flags=frozenset()) -> Numeric:
    return Numeric("dev", code, value, ORIGIN.shifted(t), frozenset(flags))


def test_a_jump_no_patient_makes_is_questionable_for_at_most_its_window() -> None:
    got = checked(
        num(Code.SPO2, 97, 0.0),
        num(Code.SPO2, 60, 1.0),  # 37 points in 1 s: a probe sliding off, not a patient
        num(Code.SPO2, 96, 1.5),  # back: judged against 97, the last value that passed
        num(Code.SPO2, 60, 2.0),
        num(Code.SPO2, 61, 3.6),  # 2.1 s after the last value that passed: a new level
        num(Code.SPO2, 62, 4.0),
    )
    q = [Flag.QUESTIONABLE in i.flags for i in got]
    assert q == [False, True, False, True, False, False]
    assert [i.value for i in got] == [97, 60, 96, 60, 61, 62]  # flagged, never dropped
    pulse = checked(num(Code.PULSE_RATE, 70, 0.0), num(Code.PULSE_RATE, 175, 1.0))
    assert [Flag.QUESTIONABLE in i.flags for i in pulse] == [False, True]
    rise = checked(num(Code.PULSE_RATE, 70, 0.0), num(Code.PULSE_RATE, 165, 1.0))
    assert not rise[1].flags  # 95 /min in a second: steep, but not impossible


def test_values_outside_the_physical_range_keep_their_number_flagged() -> None:
    got = checked(
        num(Code.SPO2, 101, 0.0),
        num(Code.PULSE_RATE, 400, 0.0),
        num(Code.PULSE_RATE, 10, 1.0),
        num(Code.HEART_RATE, math.inf, 1.0),
        num(Code.PERFUSION, math.nan, 1.0),
        num(Code.PERFUSION, 19.5, 2.0),
    )
    assert [(i.value, Flag.OUT_OF_RANGE in i.flags) for i in got[:3]] == [
        (101, True),
        (400, True),
        (10, True),
    ]
    assert [(i.value, i.flags) for i in got[3:5]] == [(None, {Flag.OUT_OF_RANGE})] * 2
    assert got[5].flags == frozenset()


def test_nibp_out_of_range_or_inconsistent_is_flagged() -> None:
    def bp(s, d, m, t):
        return NibpReading("dev", s, d, m, ORIGIN.shifted(t))

    fine, high, upside, odd_mean = checked(
        bp(120, 80, 93, 0), bp(320, 80, 93, 1), bp(80, 120, 93, 2), bp(120, 80, 130, 3)
    )
    assert fine.flags == frozenset()
    assert (high.systolic, high.flags) == (320, {Flag.OUT_OF_RANGE})
    assert upside.flags == odd_mean.flags == {Flag.QUESTIONABLE}


def test_an_item_stamped_before_its_stream_is_moved_up_others_are_not() -> None:
    wave = WaveformBlock("dev", Code.PLETH, ORIGIN.shifted(0.5), 75.0, np.zeros(25))
    got = checked(
        num(Code.SPO2, 97, 1.0),
        wave,  # a pleth block starts before the numerics of its packet: another stream
        num(Code.SPO2, 97, 0.9),
        num(Code.PULSE_RATE, 70, 0.2),
    )
    assert [i.stamp.mono - ORIGIN.mono for i in got] == pytest.approx([1.0, 0.5, 1.0, 0.2])
    assert got[2].stamp.wall - got[2].stamp.mono == ORIGIN.wall - ORIGIN.mono


def test_a_backlog_is_spread_over_the_time_since_the_read_before_it() -> None:
    # 30 s of Format 2 (11,250 bytes) read at once, 0.1 s after the read before it: at the
    # device's rate its first packet would be placed 30 s back.
    reads = emulated("nonin2")[0]
    head = b"".join(c for c, t in reads if t <= 5)
    backlog = b"".join(c for c, t in reads if 5 < t <= 35)
    parser = new_parser("nonin2")
    previous, now = ORIGIN.shifted(5.0), ORIGIN.shifted(5.1)
    parser.feed(head, previous)
    items = parser.feed(backlog, now)
    spo2 = [i.stamp.mono for i in items if getattr(i, "code", None) is Code.SPO2]
    assert len(spo2) == 90
    assert min(spo2) > previous.mono and max(spo2) <= now.mono
    assert spo2 == sorted(spo2) and len(set(spo2)) == 90  # in order, spread, not piled up


def test_the_first_read_is_not_placed_before_the_connection() -> None:
    reads = emulated("nonin2")[0]
    first = b"".join(c for c, t in reads if t <= 3)  # 3 s of bytes in the first read, 0.2 s in
    parser = new_parser("nonin2")
    numerics = [i for i in parser.feed(first, ORIGIN.shifted(0.2)) if isinstance(i, Numeric)]
    assert numerics and min(i.stamp.mono for i in numerics) >= ORIGIN.mono
    # (A pleth block is stamped at its first sample, which the device measured 24 frames
    # before it sent the last: that may be before the port opened, and is true.)


def test_decode_of_a_capture_whose_first_read_is_a_backlog_starts_at_zero(tmp_path) -> None:
    # A capture that begins with a backlog: 10 s of Format 8 read 0.5 s after the port opened.
    # Counted back at 4 bytes a second, its first values came out at t = -9.5 s.
    reads = emulated("nonin8")[0]
    backlog = b"".join(c for c, t in reads if t <= 10)
    path = tmp_path / "backlog.kapcap"
    writer = CaptureWriter(path, "nonin8", "/dev/ttyUSB0", SerialSettings(9600))
    writer.write(Kind.FROM_DEVICE, 0.5, backlog)
    writer.close()
    lines = decode_cli("nonin8", path)
    assert len(lines) == 2 * 10 and min(x["t"] for x in lines) >= 0.0
