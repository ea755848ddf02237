"""`kapmonitor decode` places a plain byte file on the device's own clock (issue 15).

A plain file has no arrival times. It used to be cut into 10 ms pieces at an assumed byte rate,
so a Masimo stream (one line a second, lines of varying length) came out shorter than it was.
Now a Masimo line sits at its own timestamp, a Nonin format 2 packet on the 75 frames/s clock
(3 packets a second), and the output does not depend on the size of the reads.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols.capnostream.wire import NumericsFields, encode_numerics
from devices.protocols.ge_s5.emulator import SIM_EPOCH, GeS5Emulator
from devices.protocols.ge_s5.records import BasicClass, phdb_record
from devices.protocols.ge_s5.wire import frame
from devices.protocols.masimo import BYTE_RATE
from devices.protocols.nonin import NoninFormat2Emulator
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.cli import decode as decode_module
from kapmonitor.cli import main
from kapmonitor.cli.decode_clocks import LineClock, clock_for
from kapmonitor.cli.shared import serial_driver_class
from kapmonitor.core.model import Measurement, Stamp, WaveformBlock
from tests.protocol_helpers import hypo
from tests.test_masimo import real_lines

HYPO = hypo()
START = datetime(2016, 3, 17, 19, 19, 36)  # the golden Radical-7 line's own clock


def masimo_file(tmp_path: Path, seconds: list[float]) -> Path:
    """The golden Radical-7 line (tests/data/masimo), its clock set to START + each second."""
    golden = real_lines()["rad7cs1"]
    lines = [
        golden.replace(
            b"03/17/16 19:19:36", f"{START + timedelta(seconds=s):%m/%d/%y %H:%M:%S}".encode()
        )
        for s in seconds
    ]
    path = tmp_path / "masimo.bin"
    path.write_bytes(b"".join(lines))
    return path


def decoded(path: Path, protocol: str) -> list[dict[str, object]]:
    out = io.StringIO()
    assert main(["decode", "--protocol", protocol, str(path)], out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def times(records: list[dict[str, object]], code: str) -> list[float]:
    return [float(r["t"]) for r in records if r.get("code") == code]  # type: ignore[arg-type]


def test_masimo_lines_sit_one_second_apart_on_the_device_clock(tmp_path: Path) -> None:
    t = times(decoded(masimo_file(tmp_path, list(range(25))), "masimo"), "MDC_PULS_OXIM_SAT_O2")
    assert len(t) == 25
    assert [round(b - a, 6) for a, b in pairwise(t)] == [1.0] * 24
    assert t[-1] - t[0] == pytest.approx(24.0)  # 25 s of lines, not 19 as the byte rate said


def test_masimo_gap_and_clock_set_back(tmp_path: Path) -> None:
    # Lines 0, 1, then a 5 s gap (the device sent nothing), then its clock set back an hour.
    t = times(
        decoded(masimo_file(tmp_path, [0, 1, 6, 7, -3600, -3599]), "masimo"), "MDC_PULS_OXIM_SAT_O2"
    )
    steps = [round(b - a, 6) for a, b in pairwise(t)]
    # The gap kept; the line set back moves on by its own length at the byte rate (never
    # backwards, never the same instant as the line before), and the next line follows its clock.
    set_back = len(real_lines()["rad7cs1"].rstrip(b"\n")) / BYTE_RATE  # the line up to its CR
    assert set_back > 0.5
    assert steps == pytest.approx([1.0, 5.0, 1.0, set_back, 1.0], abs=1e-3)  # t has 4 decimals


def nonin2_file(tmp_path: Path, seconds: int) -> Path:
    emulator = NoninFormat2Emulator(KapSession(load_scenario("typical"), seed=1))
    path = tmp_path / "nonin2.bin"
    path.write_bytes(emulator.emit(0.0, float(seconds)))
    return path


def test_nonin2_three_packets_a_second_on_the_frame_clock(tmp_path: Path) -> None:
    records = decoded(nonin2_file(tmp_path, 10), "nonin2")
    t = times(records, "MDC_PULS_OXIM_SAT_O2")
    assert len(t) == 30
    assert t == [round((k + 1) / 3, 4) for k in range(30)]  # each packet at its last frame
    pleth = times(records, "MDC_PULS_OXIM_PLETH")
    assert pleth == [round(k / 3 + 1 / 75, 4) for k in range(30)]  # its first frame


@pytest.mark.parametrize("protocol", ["nonin2", "masimo"])
def test_small_and_large_reads_decode_alike(
    tmp_path: Path, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = (
        nonin2_file(tmp_path, 20)
        if protocol == "nonin2"
        else masimo_file(tmp_path, list(range(30)))
    )
    large = decoded(path, protocol)
    monkeypatch.setattr(decode_module, "READ_SIZE", 7)
    small = decoded(path, protocol)
    assert small == large and len(large) > 30


@HYPO
@given(
    seconds=st.lists(st.integers(-100, 100), min_size=1, max_size=20),
    cuts=st.lists(st.integers(1, 400), max_size=30),
    junk=st.binary(max_size=40),
)
def test_line_clock_keeps_every_byte_and_never_runs_backwards(
    seconds: list[int], cuts: list[int], junk: bytes
) -> None:
    golden = real_lines()["rad7cs1"]
    data = junk + b"".join(
        golden.replace(b"19:19:36", f"{START + timedelta(seconds=100 + s):%H:%M:%S}".encode())
        for s in seconds
    )
    clock = LineClock(120.0)
    pieces: list[tuple[float, bytes]] = []
    pos = 0
    for cut in cuts:
        pieces += clock.pieces(data[pos : pos + cut])
        pos += cut
    pieces += clock.pieces(data[pos:])
    pieces += clock.end()
    assert b"".join(p for _, p in pieces) == data
    stamps = [t for t, _ in pieces]
    assert stamps == sorted(stamps) and all(t >= 0 for t in stamps)


#: What each protocol's emulator sends: numerics every ``period`` seconds on the device's clock.
CADENCE = {"contec": 1.0, "nonin8": 1.0, "capnostream": 1.0, "ge-s5": 5.0, "intellivue": None}


@pytest.mark.parametrize("protocol", sorted(CADENCE))
def test_a_minute_of_every_protocol_decodes_as_a_minute(tmp_path: Path, protocol: str) -> None:
    """60 s of the emulator's bytes (after the driver's handshake) span 60 s, within a period."""
    from benchmarks.bench_decode import build_stream
    from devices.registry import get_driver_class

    path = tmp_path / f"{protocol}.bin"
    path.write_bytes(build_stream(get_driver_class(protocol), 60.0))
    records = decoded(path, protocol)
    numeric = next(str(r["code"]) for r in records if "value" in r)  # its first numeric's code
    wave = next((str(r["code"]) for r in records if "fs" in r), None)  # nonin8 sends none
    t = times(records, numeric)
    pleth = times(records, wave) if wave else [t[-1]]
    assert t == sorted(t) and pleth == sorted(pleth)
    period = CADENCE[protocol]
    if period is None:  # IntelliVue: the monitor's own poll period, whatever it is
        period = (t[-1] - t[0]) / (len(t) - 1)
        assert 0.9 < period < 1.2
    # The end of the minute, give or take a period and the handshake's second.
    assert max(t[-1], pleth[-1]) == pytest.approx(60.0, abs=period + 1.0)
    assert [round(b - a, 2) for a, b in pairwise(t)] == pytest.approx(
        [period] * (len(t) - 1), abs=0.05
    )
    if protocol in ("ge-s5", "capnostream"):  # on the device's own seconds: exactly its period
        assert [round(b - a, 4) for a, b in pairwise(t)] == [period] * (len(t) - 1)


S5_BASIC = BasicClass(ecg_status=3, hr=72, spo2_status=3, spo2=9700, spo2_pr=72)


def s5_numerics_file(tmp_path: Path, seconds: list[int]) -> Path:
    """S/5 displayed-value records whose record time is SIM_EPOCH + each of ``seconds``."""
    path = tmp_path / "s5.bin"
    path.write_bytes(b"".join(frame(phdb_record(S5_BASIC, SIM_EPOCH + s)) for s in seconds))
    return path


def test_s5_numerics_on_the_record_time_gap_kept_set_back_held(tmp_path: Path) -> None:
    # Every 5 s, then 20 s with no record, then the monitor's clock set back 100 s.
    t = times(
        decoded(s5_numerics_file(tmp_path, [0, 5, 10, 30, 35, -65, -60]), "ge-s5"),
        "MDC_ECG_HEART_RATE",
    )
    # The set-back record holds at the one before (never backwards) and the next follows it.
    assert [round(b - a, 4) for a, b in pairwise(t)] == [5.0, 5.0, 20.0, 5.0, 0.0, 5.0]


def s5_wave_stream(indices: list[int]) -> bytes:
    emulator = GeS5Emulator(KapSession(load_scenario("typical"), seed=1))
    return b"".join(frame(emulator.wave_packet(k)) for k in indices)


def test_s5_pleth_follows_its_samples_and_a_lost_stretch_stays_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "s5.bin"
    path.write_bytes(s5_wave_stream([*range(12), *range(52, 64)]))  # 10 s of records lost
    t = times(decoded(path, "ge-s5"), "MDC_PULS_OXIM_PLETH")
    steps = [round(b - a, 4) for a, b in pairwise(t)]
    assert steps[:11] == [0.25] * 11 and steps[12:] == [0.25] * 11  # 25 samples at 100 Hz
    assert 9.0 <= steps[11] <= 11.0  # the 10 s the monitor's record time says were lost


def capnostream_file(tmp_path: Path, seconds: list[int]) -> Path:
    """Capnostream numerics messages whose device time is 1000 + each of ``seconds``."""
    path = tmp_path / "capno.bin"
    fields = NumericsFields(etco2=38, fico2=0, rr=14, spo2=97, pulse=72)
    path.write_bytes(
        b"".join(encode_numerics(replace(fields, timestamp=1000 + s)) for s in seconds)
    )
    return path


def test_capnostream_numerics_on_the_device_time(tmp_path: Path) -> None:
    t = times(
        decoded(capnostream_file(tmp_path, [0, 1, 2, 10, 11, -500, -499]), "capnostream"),
        "MDC_PULS_OXIM_SAT_O2",
    )
    assert [round(b - a, 4) for a, b in pairwise(t)] == [1.0, 1.0, 8.0, 1.0, 0.0, 1.0]


def device_stream(protocol: str) -> bytes:
    """20 s of the emulator's bytes, built once per protocol."""
    from benchmarks.bench_decode import build_stream
    from devices.registry import get_driver_class

    if protocol not in _STREAMS:
        _STREAMS[protocol] = build_stream(get_driver_class(protocol), 20.0)
    return _STREAMS[protocol]


_STREAMS: dict[str, bytes] = {}


def clock_decoded(protocol: str, data: bytes, cuts: list[int]) -> list[Measurement]:
    """``data`` read in pieces of ``cuts`` bytes (the rest at once) as ``decode`` feeds it."""
    driver = serial_driver_class(protocol)
    parser = driver.parser_class("file")
    parser.guessed_arrivals = True
    parser.begin(Stamp(0.0, 0.0))
    clock = clock_for(protocol, driver.byte_rate)
    items: list[Measurement] = []
    pos = 0
    for cut in [*cuts, len(data)]:
        for t, piece in clock.pieces(data[pos : pos + cut]):
            items += parser.feed(piece, Stamp(t, t))
        pos += cut
    for t, piece in clock.end():
        items += parser.feed(piece, Stamp(t, t))
    return items + parser.flush()


@HYPO
@given(
    protocol=st.sampled_from(["ge-s5", "capnostream"]),
    cuts=st.lists(st.integers(1, 3000), max_size=40),
    drop=st.tuples(st.integers(0, 200_000), st.integers(0, 20_000)),
)
def test_any_reads_of_a_device_clock_file_give_the_same_stamps_never_backwards(
    protocol: str, cuts: list[int], drop: tuple[int, int]
) -> None:
    full = device_stream(protocol)
    at, size = drop
    data = full[:at] + full[at + size :]  # a stretch lost: a gap, or a damaged message
    whole = clock_decoded(protocol, data, [])
    cut = clock_decoded(protocol, data, cuts)
    assert [(series(i), i.stamp.mono) for i in cut] == [
        (series(i), pytest.approx(i.stamp.mono, abs=1e-9)) for i in whole
    ]
    ends: dict[str, float] = {}
    for item in cut:
        assert item.stamp.mono >= ends.get(series(item), -math.inf) - 1e-9  # never backwards
        span = item.duration if isinstance(item, WaveformBlock) else 0.0
        ends[series(item)] = item.stamp.mono + span


def series(item: Measurement) -> str:
    """The series an item belongs to: its code, vendor key or kind."""
    return str(getattr(item, "code", None) or getattr(item, "key", type(item).__name__))
