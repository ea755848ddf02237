"""Masimo ASCII 1: real lines, emulator round trips (in memory and over a pty), ASCII 2
detection, robustness to any bytes and any chunking, the decode command."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols.masimo import (
    ASCII2_PROBLEM,
    BYTE_RATE,
    EMULATOR_START,
    EXC_SET,
    LINE_BYTES,
    MAX_LINE,
    MasimoDriver,
    MasimoEmulator,
    MasimoParser,
    exc_bits,
    exc_flags,
    format_line,
)
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, DeviceValue, Flag, Numeric, Stamp
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector
from tests.protocol_helpers import ORIGIN, PTY, at_byte_rate, hypo, mutate

DATA = Path(__file__).parent / "data" / "masimo"  # copied from ../shared/data (see README)
EXCERPT = DATA / "masimo-capture.py.excerpt.txt"
HYPO = hypo()
CODED = (Code.SPO2, Code.PULSE_RATE, Code.PERFUSION)


# --- helpers ------------------------------------------------------------------------------------


def real_lines() -> dict[str, bytes]:
    """The device lines of the excerpt by tag (rad8s1, rad7cs1, rad7bs1), as sent on the wire:
    the wrapped comment pieces joined by single spaces, ended by CR LF."""
    lines: dict[str, list[str]] = {}
    tag = None
    for raw in EXCERPT.read_text().splitlines():
        if raw.startswith("# ["):
            tag = raw[3 : raw.index("]")]
        elif raw.startswith("#"):
            if raw.strip() == "#":
                tag = None
        elif tag and raw.strip():
            lines.setdefault(tag, []).append(raw.strip())
    return {k: (" ".join(v) + "\r\n").encode("ascii") for k, v in lines.items()}


byte_stamp = at_byte_rate(BYTE_RATE)  #: when the bytes before ``end`` have arrived


def decode(stream: bytes, cuts: list[int] | None = None, **kwargs) -> tuple[MasimoParser, list]:
    """Feed ``stream`` split at ``cuts`` (default: whole), each chunk stamped by its last byte."""
    kwargs.setdefault("vendor_values", False)  # most tests look at the coded values only
    parser = MasimoParser("ox", **kwargs)
    bounds = [0, *sorted({c for c in cuts or [] if 0 < c < len(stream)}), len(stream)]
    items = []
    for a, b in itertools.pairwise(bounds):
        items += parser.feed(stream[a:b], byte_stamp(b))
        assert parser.pending_bytes <= MAX_LINE
    return parser, items


def per_line(items: list) -> list[tuple]:
    """Items grouped by line (one stamp per line) as ``((code, value, flags), ...)`` tuples."""
    out = []
    for _, group in itertools.groupby(items, key=lambda i: round(i.stamp.mono, 6)):
        out.append(tuple((getattr(i, "code", None) or i.key, i.value, i.flags) for i in group))
    return out


def values(items: list) -> list[tuple]:
    return [(i.code, i.value, i.flags) for i in items if isinstance(i, Numeric)]


def expected(session: KapSession, k: int) -> list[tuple]:
    """What line k of the emulator shows, straight from the simulated patient."""
    v = session.vitals(float(k))
    flags = v.flags  # every flag the simulator sets has an EXC bit and comes back
    return [
        (Code.SPO2, None if v.spo2 is None else float(round(v.spo2)), flags),
        (Code.PULSE_RATE, None if v.heart_rate is None else float(round(v.heart_rate)), flags),
        (
            Code.PERFUSION,
            None if v.perfusion_index is None else round(v.perfusion_index, 2),
            flags,
        ),
    ]


def assert_matches(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want)
    for (gc, gv, gf), (wc, wv, wf) in zip(got, want, strict=True):
        assert (gc, gf) == (wc, wf)
        if wv is None or gv is None:
            assert gv is wv is None
        else:
            assert abs(gv - wv) < 0.0051


@pytest.fixture(scope="module")
def probe_off() -> KapSession:
    return KapSession(load_scenario("probe-off"), seed=3)


# --- real lines -----------------------------------------------------------------------------------


def test_the_excerpt_holds_the_three_real_lines() -> None:
    lines = real_lines()
    assert set(lines) == {"rad8s1", "rad7cs1", "rad7bs1"}
    assert lines["rad7cs1"].startswith(b"03/17/16 19:19:36 SN=---------- SPO2=098% BPM=123 ")
    assert lines["rad7cs1"].endswith(b" EXC=0000C00 EXC1=00000000\r\n")


def test_rad8_no_sensor_line_gives_missing_values_flagged_sensor_off() -> None:
    parser, items = decode(real_lines()["rad8s1"])
    off = frozenset({Flag.SENSOR_OFF})  # EXC=000001: no sensor
    assert values(items) == [(Code.SPO2, None, off), (Code.PULSE_RATE, None, off)]
    end = byte_stamp(len(real_lines()["rad8s1"]) - 1)  # the line is complete at its CR
    assert all(i.stamp.mono == pytest.approx(end.mono) for i in items)
    assert parser.device_clock == "03/19/16 13:37:12"
    assert parser.serial_number == "0000093112"
    assert parser.last_fields["ALARM"] == "0000" and parser.last_fields["SPO2"] == "---"
    assert parser.stats.frames_ok == 1 and parser.stats.framing_errors == 0
    assert parser.problem is None


def test_radical7_line_gives_spo2_pulse_rate_and_pi_with_low_signal_iq() -> None:
    parser, items = decode(real_lines()["rad7cs1"])
    q = frozenset({Flag.QUESTIONABLE})  # EXC=0000C00: low signal IQ + SET (not a fault)
    assert values(items) == [
        (Code.SPO2, 98.0, q),
        (Code.PULSE_RATE, 123.0, q),
        (Code.PERFUSION, 0.55, q),
    ]
    assert parser.device_clock == "03/17/16 19:19:36"
    assert parser.serial_number == "----------"
    assert parser.stats.frames_ok == 1 and parser.stats.bytes_discarded == 0


def test_radical7_unmapped_keys_are_kept_as_vendor_values() -> None:
    _, items = decode(real_lines()["rad7cs1"], vendor_values=True)
    vendor = [i for i in items if isinstance(i, DeviceValue)]
    assert [(v.key, v.value, v.unit, v.text) for v in vendor] == [
        ("MASIMO_SPCO", None, "%", "--"),
        ("MASIMO_SPMET", None, "%", "--.-"),
        ("MASIMO_SPHB", None, "g/dL", "--.-"),
        ("MASIMO_SPOC", None, "mL/dL", "--"),
        ("MASIMO_RESVD", None, "", "---"),
        ("MASIMO_DESAT", None, "1", "--"),
        ("MASIMO_PIDELTA", None, "%", "+--"),
        ("MASIMO_PVI", None, "%", "---"),
        ("MASIMO_ALARM", 0.0, "1", "000000"),  # raw: no alarm is derived from it
        ("MASIMO_EXC", 0xC00, "1", "0000C00"),
        ("MASIMO_EXC1", 0.0, "1", "00000000"),
    ]
    assert {v.flags for v in vendor} == {frozenset({Flag.QUESTIONABLE})}
    assert all(v.source == "ox" and v.stamp == items[0].stamp for v in vendor)


def test_vendor_values_are_kept_by_default() -> None:
    items = MasimoParser("ox").feed(real_lines()["rad7cs1"], Stamp(0.0, 0.0))
    assert [i.code for i in items if isinstance(i, Numeric)] == [
        Code.SPO2,
        Code.PULSE_RATE,
        Code.PERFUSION,
    ]
    kept = {i.key for i in items if isinstance(i, DeviceValue)}
    assert {"MASIMO_SPCO", "MASIMO_PVI", "MASIMO_EXC"} <= kept


def test_service_manual_example_with_pi_dashes() -> None:
    _, items = decode(real_lines()["rad7bs1"])
    assert values(items) == [
        (Code.SPO2, None, frozenset()),
        (Code.PULSE_RATE, None, frozenset()),
        (Code.PERFUSION, None, frozenset()),
    ]


def test_all_real_lines_in_a_row_in_any_line_ending() -> None:
    lines = real_lines()
    stream = lines["rad8s1"] + lines["rad7cs1"] + lines["rad7bs1"]
    for ending in (b"\n", b"\n\r", b"\r"):
        parser, items = decode(stream.replace(b"\r\n", ending))
        assert len(items) == 8 and parser.stats.frames_ok == 3
        assert parser.stats.framing_errors == 0


@pytest.mark.parametrize(
    ("exc", "flags"),
    [
        (0x000, set()),
        (0x800, set()),  # Masimo SET: normal
        (0x001, {Flag.SENSOR_OFF}),
        (0x002, {Flag.SENSOR_OFF}),
        (0x004, {Flag.LOW_PERFUSION}),
        (0x008, {Flag.SEARCHING}),
        (0x010, {Flag.ARTIFACT}),
        (0x020, {Flag.SENSOR_OFF}),
        (0x040, {Flag.ARTIFACT}),
        (0x080, {Flag.SENSOR_OFF}),
        (0x400, {Flag.QUESTIONABLE}),
        (0x828, {Flag.SENSOR_OFF, Flag.SEARCHING}),
        (0x1000, {Flag.SENSOR_OFF}),  # no cable (Radical-7)
        (0x200000, set()),  # SpCO low confidence: not about SpO2
    ],
)
def test_exc_bits_map_to_flags(exc: int, flags: set[Flag]) -> None:
    assert exc_flags(exc) == flags
    line = format_line(EMULATOR_START, spo2=95, bpm=70, pi=2.0, exc=exc)
    _, items = decode(line)
    assert {i.flags for i in items} == {frozenset(flags)}


def test_a_value_of_dashes_is_none_never_zero() -> None:
    line = format_line(EMULATOR_START, spo2=None, bpm=None, pi=None)
    assert b"SPO2=---% BPM=--- PI=--.--" in line
    _, items = decode(line)
    assert [i.value for i in items] == [None, None, None]


def test_unknown_keys_and_signed_values_are_read() -> None:
    line = (
        b"01/02/24 10:00:00 SPO2=097% BPM=064 PI=11.82% PIDELTA=-02 PVI=027 SPHB=13.4 "
        b"NEWKEY=abc ALARM=20 EXC=800\r\n"
    )
    _, items = decode(line, vendor_values=True)
    got = {getattr(i, "key", None) or i.code: i.value for i in items}
    assert got == {
        Code.SPO2: 97.0,
        Code.PULSE_RATE: 64.0,
        Code.PERFUSION: 11.82,
        "MASIMO_PIDELTA": -2.0,
        "MASIMO_PVI": 27.0,
        "MASIMO_SPHB": 13.4,
        "MASIMO_NEWKEY": None,
        "MASIMO_ALARM": 0x20,
        "MASIMO_EXC": 0x800,
    }


@pytest.mark.parametrize(
    "bad",
    [
        b"13/02/24 10:00:00 SPO2=097% BPM=064",  # month 13
        b"01/02/24 10:00:00 SPO2=1O7% BPM=064",  # letter O in a number
        b"01/02/24 10:00:00 SPO2=197% BPM=064",  # SpO2 above 100
        b"01/02/24 10:00:00 SPO2=097% BPM=364",  # pulse above its physical range
        b"01/02/24 10:00:00 SPO2=097% BPM=064 PI=34.20",  # PI above Masimo's 20 %
        b"01/02/24 10:00:00 SPO2=097% BPM=064 SPO2=098%",  # a key twice
        b"01/02/24 10:00:00 SPO2=097% BPM=06401/02/24 10:00:01 SPO2=097%",  # two lines run together
        b"01/02/24 10:00:00",  # nothing after the clock
        b"SPO2=097% BPM=064",  # the start of a line lost
        b"01/02/24 10:00:00 SPO2=097% BPM=064 EXC=80G",
        b"01/02/24 10:00:00 SPO2=097% B\xd0M=064",  # not ASCII
    ],
)
def test_a_malformed_line_gives_nothing_and_counts_one_framing_error(bad: bytes) -> None:
    good = format_line(EMULATOR_START, spo2=96, bpm=61, pi=1.5)
    parser, items = decode(good + bad + b"\r\n" + good)
    assert [i.value for i in items] == [96, 61, 1.5, 96, 61, 1.5]
    assert parser.stats.framing_errors == 1
    assert parser.stats.bytes_discarded == len(bad)
    assert parser.stats.frames_ok == 2 and parser.stats.resyncs == 1


# --- ASCII 2 ----------------------------------------------------------------------------------


def ascii2_lines(n: int, names: bool = True) -> bytes:
    """Rad-8 ASCII 2 (trend) lines in the manual's documented layout, one every 2 s; without
    ``names``, EXC is plain hex (other firmware may leave out the ``:OffPat,SET`` text)."""
    out = []
    for k in range(n):
        off = k % 3 == 0
        vals = "SpO2=000 PR=000 PI=00.00" if off else f"SpO2=09{k % 10} PR=07{k % 10} PI=03.12"
        exc = "820:OffPat,SET" if off else "800:SET"
        exc = exc if names else exc.split(":")[0]
        out.append(f"01/02/24 10:{k * 2 // 60:02d}:{k * 2 % 60:02d} {vals} EXC={exc}\r\n")
    return "".join(out).encode("ascii")


@pytest.mark.parametrize("names", [True, False])
def test_ascii2_output_is_recognised_and_the_user_told_how_to_switch(caplog, names) -> None:
    caplog.set_level(logging.WARNING, logger="devices.protocols.masimo")
    parser, items = decode(ascii2_lines(10, names), [7, 80, 81, 300])
    assert items == []  # its 000 means "missing": never read as a value
    assert parser.problem == ASCII2_PROBLEM
    assert "ASCII 1" in parser.problem and "Enter and Down" in parser.problem
    assert parser.stats.ascii2_lines == 10 and parser.stats.framing_errors == 10
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ASCII 2" in warnings[0].getMessage()
    # The user switches to ASCII 1: values flow and the problem goes away.
    items = parser.feed(format_line(EMULATOR_START, spo2=97, bpm=60, pi=3.0), ORIGIN)
    assert [i.value for i in items] == [97, 60, 3.0]
    assert parser.problem is None


def test_one_ascii2_like_line_is_not_yet_a_problem() -> None:
    parser, _ = decode(ascii2_lines(1))
    assert parser.problem is None and parser.stats.ascii2_lines == 1


def test_other_text_and_binary_noise_are_reported_without_raising(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="devices.protocols.masimo")
    parser, items = decode(b"SPO2=98 HR=70\r\n" * 6)  # another vendor's format
    assert items == [] and parser.problem is not None
    assert "not Masimo ASCII 1" in parser.problem and "SPO2=98 HR=70" in parser.problem
    parser, items = decode(bytes(range(256)) * 20, list(range(0, 5120, 33)))  # wrong baud rate
    assert items == [] and parser.problem is not None and "9600" in parser.problem
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_a_stream_without_line_ends_is_bounded_and_recovers() -> None:
    junk = b"x" * 100_000
    good = format_line(EMULATOR_START, spo2=93, bpm=88, pi=0.3, exc=EXC_SET | 0x004)
    stream = junk + b"\r\n" + good
    p1, whole = decode(stream)
    p2, chunked = decode(stream, list(range(64, len(stream), 64)))  # asserts pending <= MAX_LINE
    assert (
        values(whole)
        == values(chunked)
        == [
            (c, v, frozenset({Flag.LOW_PERFUSION}))
            for c, v in zip(CODED, (93, 88, 0.3), strict=True)
        ]
    )
    assert p1.stats == p2.stats
    assert p1.stats.long_lines == 1 and p1.stats.framing_errors == 1
    assert p1.stats.bytes_discarded == len(junk)


# --- emulator -------------------------------------------------------------------------------------


def test_the_emulator_sends_one_radical7_line_a_second(probe_off: KapSession) -> None:
    emulator = MasimoEmulator(probe_off)
    data = emulator.emit(0.0, 10.0)
    lines = data.split(b"\r\n")
    assert len(lines) == 11 and lines[-1] == b""
    assert all(len(line) + 2 == LINE_BYTES for line in lines[:-1])  # fixed width
    assert lines[0].startswith(b"01/15/24 09:00:00 SN=0000071234 SPO2=")
    assert lines[9].startswith(b"01/15/24 09:00:09 ")
    assert emulator.emit(0.0, 0.5) == lines[0] + b"\r\n"  # line 0 is due at t = 0
    assert emulator.emit(0.5, 1.0) == b""
    assert 150 <= MasimoDriver.byte_rate <= 190


def test_the_emulator_line_during_probe_off_has_dashes_and_exc(probe_off: KapSession) -> None:
    line = MasimoEmulator(probe_off).emit(1800.0, 1801.0)
    assert b" SPO2=---% BPM=--- PI=--.-- " in line
    assert b" EXC=0000820 " in line  # sensor off + SET, as a Rad-8 prints it
    assert exc_bits(frozenset({Flag.SENSOR_OFF})) == 0x820


@given(st.lists(st.floats(0.0, 30.0), max_size=20))
@HYPO
def test_emulator_bytes_do_not_depend_on_how_time_is_cut(cuts: list[float]) -> None:
    session = KapSession(load_scenario("typical"), seed=1)
    emulator = MasimoEmulator(session)
    bounds = [0.0, *sorted(cuts), 30.0]
    pieces = b"".join(emulator.emit(a, b) for a, b in itertools.pairwise(bounds))
    assert pieces == emulator.emit(0.0, 30.0)


@pytest.mark.parametrize(("scenario", "start"), [("probe-off", 1780), ("artifact-storm", 1490)])
def test_emulator_to_parser_gives_the_simulated_patient(scenario: str, start: int) -> None:
    session = KapSession(load_scenario(scenario), seed=3)
    wire = MasimoEmulator(session).emit(start, start + 180)
    parser, items = decode(wire, list(range(50, len(wire), 50)))
    assert parser.stats.frames_ok == 180 and parser.stats.framing_errors == 0
    want = [row for k in range(start, start + 180) for row in expected(session, k)]
    assert_matches(values(items), want)
    assert {f for i in items for f in i.flags} >= (
        {Flag.SENSOR_OFF, Flag.SEARCHING} if scenario == "probe-off" else {Flag.ARTIFACT}
    )


# --- any bytes, any chunking, damage -------------------------------------------------------------


def _stream(n: int = 24) -> bytes:
    session = KapSession(load_scenario("probe-off"), seed=3)
    return MasimoEmulator(session).emit(1795.0, 1795.0 + n)


STREAM = _stream()


@given(st.binary(max_size=700), st.integers(1, 300))
@HYPO
def test_valid_lines_after_any_junk_and_a_line_end_are_read(junk: bytes, chunk: int) -> None:
    good = format_line(EMULATOR_START, spo2=91, bpm=102, pi=4.25)
    stream = junk + b"\r\n" + good + junk + b"\n" + good
    _, items = decode(stream, list(range(chunk, len(stream), chunk)))
    assert [i.value for i in items][-6:] == [91, 102, 4.25] * 2


@given(
    st.integers(0, 23),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.integers(1, 200),
)
@HYPO
def test_a_damaged_line_does_not_affect_its_neighbours(k: int, edits: list, chunk: int) -> None:
    lines = STREAM.split(b"\r\n")[:-1]
    assert len(lines) == 24
    damaged = [*lines[:k], mutate(lines[k], edits), *lines[k + 1 :]]
    stream = b"".join(line + b"\r\n" for line in damaged)
    _, clean = decode(STREAM)
    _, items = decode(stream, list(range(chunk, len(stream), chunk)))
    # ASCII 1 has no checksum: a damaged digit can still read as a plausible value, and the
    # next line's value may then be flagged as a jump from it. That flag is the output check's
    # judgement, not damage: untouched lines are compared without QUESTIONABLE.
    clean_lines = per_line(_without_questionable(clean))
    got = per_line(_without_questionable(items))
    want = clean_lines[:k] + clean_lines[k + 1 :]
    it = iter(got)
    assert all(w in it for w in want), "an untouched line was lost"  # in order
    assert len(got) <= len(clean_lines) + len(edits)


def _without_questionable(items: list) -> list:
    return [dataclasses.replace(i, flags=i.flags - {Flag.QUESTIONABLE}) for i in items]


# --- the driver over a pseudo-terminal --------------------------------------------------------


def test_the_registry_names_the_masimo_driver() -> None:
    assert get_driver_class("masimo") is MasimoDriver
    s = MasimoDriver.serial_settings
    assert (s.baudrate, s.bytesize, s.parity, s.stopbits, s.rtscts) == (9600, 8, "N", 1, False)
    assert MasimoDriver.parser_class is MasimoParser
    assert MasimoDriver.emulator_class is MasimoEmulator


@PTY
def test_a_masimo_stream_over_a_pty_reaches_the_hub_as_the_scenario(probe_off) -> None:
    start = 1780
    wire = MasimoEmulator(probe_off).emit(start, start + 180)  # three minutes around probe-off
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    endpoint = PtyEndpoint()
    driver = MasimoDriver(DeviceSpec.parse(f"masimo@{endpoint.path}"), hub.publish)
    try:
        driver.open()
        driver.start()
        assert collector.wait_for_state(ConnectionState.CONNECTED)

        def device():  # in odd-sized pieces, like a UART FIFO
            for i in range(0, len(wire), 97):
                endpoint.write(wire[i : i + 97])
                time.sleep(0.0005)

        writer = threading.Thread(target=device)
        writer.start()
        assert collector.wait_for(lambda items: len(values(items)) >= 3 * 180, timeout=30)
        writer.join()
        assert endpoint.dropped == 0
    finally:
        driver.stop()
        endpoint.close()
    want = [row for k in range(start, start + 180) for row in expected(probe_off, k)]
    assert_matches(values(collector.items), want)
    assert driver.parser.stats.framing_errors == 0 and driver.parser.problem is None
    assert driver.parser.device_clock == "01/15/24 09:32:39"  # EMULATOR_START + 1959 s


@PTY
def test_kapmonitor_simulate_masimo_pty_is_read_by_the_driver() -> None:
    cmd = [sys.executable, "-m", "kapmonitor", "simulate", "--protocol", "masimo"]
    cmd += ["--scenario", "typical", "--pty", "--seed", "5", "--speed", "8"]
    with subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            path = proc.stdout.readline().strip()
            assert path.startswith("/dev/pts/") and os.path.exists(path)
            hub = Hub()
            collector = Collector(hub.subscribe("test"))
            driver = MasimoDriver(DeviceSpec.parse(f"masimo@{path}"), hub.publish)
            driver.open()
            driver.start()
            try:
                assert collector.wait_for(lambda items: len(values(items)) >= 3 * 6, timeout=20)
            finally:
                driver.stop()
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr
    spo2 = [v for c, v, _ in values(collector.items) if c is Code.SPO2]
    assert spo2 and all(90 <= v <= 100 for v in spo2)


# --- the decode command ------------------------------------------------------------------------


def _decode_cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kapmonitor", "decode", "--protocol", "masimo", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kapmonitor_decode_reads_a_masimo_byte_file(tmp_path: Path, probe_off) -> None:
    path = tmp_path / "rad7.txt"
    path.write_bytes(MasimoEmulator(probe_off).emit(1790, 1850) + real_lines()["rad7cs1"])
    result = _decode_cli(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kept = [r for r in lines if "key" in r]  # values with no IEEE 11073 code, kept by key
    assert {"MASIMO_SPCO", "MASIMO_PVI"} <= {r["key"] for r in kept}
    records = [r for r in lines if "code" in r]
    assert len(records) == 3 * 61
    spo2 = [r for r in records if r["code"] == Code.SPO2.value]
    want = [expected(probe_off, k)[0][1] for k in range(1790, 1850)] + [98.0]
    assert [r["value"] for r in spo2] == want
    times = [r["t"] for r in spo2]
    assert all(abs(b - a - 1.0) < 0.02 for a, b in itertools.pairwise(times))  # a line a second
    assert records[-1] == {
        "t": records[-1]["t"],
        "code": Code.PERFUSION.value,
        "value": 0.55,
        "unit": "%",
        "flags": ["questionable"],
    }
    assert any(r["value"] is None and "sensor-off" in r["flags"] for r in records)


def test_kapmonitor_decode_of_ascii2_says_how_to_switch(tmp_path: Path) -> None:
    path = tmp_path / "rad8-ascii2.txt"
    path.write_bytes(ascii2_lines(5))
    result = _decode_cli(path)
    assert result.returncode == 2  # nothing decoded: the parser's diagnosis, then the verdict
    assert result.stdout == ""
    assert "ASCII 2" in result.stderr and "setup menu level 3" in result.stderr
    assert "5 framing errors" in result.stderr
