"""Capnostream 20 host protocol: golden bytes from the documented layout, flags, the emulator's
session, hypothesis on the parser, a pty round trip, the command line (issue 17)."""

from __future__ import annotations

import itertools
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.base import DriverSettings
from devices.protocols.capnostream import (
    DISABLE_COMM,
    ENABLE_COMM,
    LINK_IS_ACTIVE,
    START_RT,
    STOP_RT,
    CapnostreamDriver,
    CapnostreamEmulator,
    CapnostreamParser,
    NumericsFields,
    command,
    decode_numerics,
    encode_message,
    encode_numerics,
    encode_wave,
)
from devices.protocols.capnostream.parser import BLOCK_SAMPLES, LOCK_FRAMES
from devices.protocols.capnostream.wire import (
    BYTE_RATE,
    CMD_INQUIRE_NUMERIC,
    CO2_NO_BREATH,
    DEVICE_ID,
    EXT_PUMP_OFF,
    FAST_INVALID,
    FAST_LINE_OFF,
    FAST_OCCLUSION,
    INVALID,
    ITEM_ETCO2,
    RSP_NUMERIC_ITEM,
    SPO2_SENSOR_OFF,
    UNITS_KPA,
    unescape_frame,
)
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import serve
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, Flag, Numeric, WaveformBlock
from tests.pipeline_helpers import Collector, decode_cli, feed_chunks
from tests.protocol_helpers import ORIGIN, PTY, TeeEndpoint, at_byte_rate, check_accounting, hypo

HYPO = hypo(max_examples=60)
byte_stamp = at_byte_rate(BYTE_RATE)

#: A numerics message built by hand from the layout (OpenICE's offsets, capnoReader's types):
#: header 85, length 1C (28: code + 27), code 01; device time 00 00 01 2C (300 s); EtCO2 26
#: (38), FiCO2 00, RR 0E (14), SpO2 61 (97), pulse 48 (72); slow status 00; event index
#: 00 00 00; CO2 alarms 00, SpO2 alarms 00, no-breath period 14 (20 s); limits EtCO2 32/14,
#: RR 1E/08, FiCO2 08, SpO2 64/5A, pulse 78/32; units 01 (mmHg); extended status 00; checksum.
GOLDEN_NUMERICS_BODY = bytes.fromhex("1C010000012C26000E61480000000000001432141E0808645A78320100")
#: A CO2 wave message: number 07, CO2 26 80 (38.5 mmHg: 0x26 + 0x80 / 256), fast status 08
#: (end of breath); the 80 goes out escaped as 80 00; checksum 05^00^07^26^80^08 = AC.
GOLDEN_WAVE = bytes.fromhex("8505000726800008AC")


def golden_numerics() -> bytes:
    body = GOLDEN_NUMERICS_BODY
    x = 0
    for b in body:
        x ^= b
    return b"\x85" + body + bytes((x,))


def decode(stream: bytes, cuts=None, *, flush: bool = True) -> tuple[CapnostreamParser, list]:
    parser = CapnostreamParser("capno")
    parser.begin(ORIGIN)
    items = feed_chunks(parser, stream, cuts, byte_stamp)
    if flush:
        items += parser.flush()
    return parser, items


def numerics(items: list, code: Code) -> list[Numeric]:
    return [i for i in items if isinstance(i, Numeric) and i.code is code]


def waves(items: list) -> list[WaveformBlock]:
    return [i for i in items if isinstance(i, WaveformBlock)]


def wave_run(n: int, start: int = 0, co2: float = 30.0, status: int = 0) -> bytes:
    return b"".join(encode_wave(start + k, co2, status) for k in range(n))


def talking(session: KapSession, at: float = 0.0, **kw) -> CapnostreamEmulator:
    emu = CapnostreamEmulator(session, **kw)
    assert emu.on_host_bytes(ENABLE_COMM + START_RT, at).startswith(b"\x85\x1f\x04")
    return emu


@pytest.fixture(scope="module")
def typical() -> KapSession:
    return KapSession(load_scenario("typical"), seed=3)


@pytest.fixture(scope="module")
def stream(typical: KapSession) -> bytes:
    """Two minutes of the device's bytes (the link never times out)."""
    return talking(typical, timeout=math.inf).emit(0.0, 120.0)


# --- golden --------------------------------------------------------------------------------------


def test_golden_commands() -> None:
    # 85, length 01 (the code alone), code, checksum = length ^ code.
    assert bytes.fromhex("85010100") == ENABLE_COMM
    assert bytes.fromhex("85010203") == DISABLE_COMM
    assert bytes.fromhex("85010405") == START_RT
    assert bytes.fromhex("85010504") == STOP_RT
    assert bytes.fromhex("85010607") == LINK_IS_ACTIVE
    assert command(CMD_INQUIRE_NUMERIC, ITEM_ETCO2) == bytes.fromhex("8502030100")


def test_golden_escapes_keep_the_header_unique() -> None:
    # A payload holding 80 and 85 goes out as 80 00 and 80 05; the checksum is over the bytes
    # they stand for.
    wire = encode_message(0x03, bytes((0x80,)))
    assert wire == bytes.fromhex("8502038000") + bytes((0x02 ^ 0x03 ^ 0x80,))
    wire = encode_message(0x03, bytes((0x85, 0x80)))
    assert wire == bytes.fromhex("85030380058000") + bytes((0x03 ^ 0x03 ^ 0x85 ^ 0x80,))
    assert wire.count(0x85) == 1
    assert unescape_frame(wire, 0) == (1, bytes((0x03, 0x03, 0x85, 0x80, 0x05)), len(wire))
    # A checksum that is itself 0x85 is escaped too: 05 ^ 00 ^ 07 ^ 87 = 85.
    escaped = encode_message(0x00, bytes((0x07, 0x87, 0x00, 0x00)))
    assert escaped.endswith(b"\x80\x05") and escaped.count(0x85) == 1


def test_golden_numerics_decode() -> None:
    msg = golden_numerics()
    assert msg == encode_numerics(
        NumericsFields(timestamp=300, etco2=38, fico2=0, rr=14, spo2=97, pulse=72)
    )
    _, items = decode(msg * LOCK_FRAMES)
    last = items[-5:]
    assert [(n.code, n.value, n.flags) for n in last] == [
        (Code.CO2_ET, 38.0, frozenset()),
        (Code.CO2_INSP_MIN, 0.0, frozenset()),
        (Code.RESP_RATE, 14.0, frozenset()),
        (Code.SPO2, 97.0, frozenset()),
        (Code.PULSE_RATE, 72.0, frozenset()),
    ]
    assert decode_numerics(GOLDEN_NUMERICS_BODY[2:]).no_breath_period == 20


def test_golden_wave_decodes_as_8_8_mmhg() -> None:
    assert encode_wave(7, 38.5, 0x08) == GOLDEN_WAVE
    stream = b"".join(encode_wave(k, 38.5, 0x08) for k in range(BLOCK_SAMPLES))
    _, items = decode(stream)
    (block,) = waves(items)
    assert block.code is Code.CO2 and block.fs == 20.0 and block.flags == frozenset()
    assert block.samples.tolist() == [38.5] * BLOCK_SAMPLES
    # Stamped at the first sample: the last message ends with the read, 9 samples before it.
    assert block.stamp.mono == pytest.approx(byte_stamp(len(stream)).mono - 9 / 20.0)


def test_device_id_is_kept() -> None:
    parser, _ = decode(encode_message(4, DEVICE_ID) + wave_run(LOCK_FRAMES))
    assert parser.device_id == DEVICE_ID.decode().strip()
    assert parser.stats.frames_other == 1


# --- flags ---------------------------------------------------------------------------------------


def test_invalid_markers_are_none_never_zero() -> None:
    msg = encode_numerics(NumericsFields(etco2=INVALID, rr=INVALID, spo2=INVALID, pulse=INVALID))
    _, items = decode(msg * LOCK_FRAMES)
    assert len(items) == 5 * LOCK_FRAMES and all(n.value is None for n in items)


def test_line_off_occlusion_and_no_breath_flags() -> None:
    # The line comes off: wave messages carry the bit (value 0), and the numerics after them.
    off = wave_run(LOCK_FRAMES, co2=0.0, status=FAST_LINE_OFF)
    line = encode_numerics(NumericsFields(etco2=INVALID, fico2=INVALID, rr=INVALID, spo2=97))
    _, items = decode(off + line)
    assert waves(items)[0].flags == {Flag.SENSOR_OFF}
    assert waves(items)[0].samples.tolist() == [0.0] * LOCK_FRAMES  # flat, as sent
    (et,) = numerics(items, Code.CO2_ET)
    assert et.value is None and et.flags == {Flag.SENSOR_OFF}
    (spo2,) = numerics(items, Code.SPO2)
    assert spo2.value == 97 and spo2.flags == frozenset()  # the oximeter is fine
    # A blocked line, the pump off, no breath: kept apart.
    blocked = wave_run(LOCK_FRAMES, status=FAST_OCCLUSION)
    apnoea = encode_numerics(NumericsFields(rr=0, co2_alarms=CO2_NO_BREATH))
    _, items = decode(blocked + apnoea)
    (rr,) = numerics(items, Code.RESP_RATE)
    assert rr.value == 0.0 and rr.flags == {Flag.LINE_BLOCKED, Flag.NO_BREATH}
    _, items = decode(wave_run(LOCK_FRAMES) + apnoea)
    assert numerics(items, Code.RESP_RATE)[0].flags == {Flag.NO_BREATH}
    pump = encode_numerics(NumericsFields(etco2=30, extended_co2_status=EXT_PUMP_OFF))
    _, items = decode(wave_run(LOCK_FRAMES) + pump)
    assert numerics(items, Code.CO2_ET)[0].flags == {Flag.LINE_BLOCKED}


def test_an_invalid_sample_is_nan_and_the_probe_off_is_sensor_off() -> None:
    stream = wave_run(2) + encode_wave(2, 12.0, FAST_INVALID) + wave_run(7, start=3)
    stream += encode_numerics(
        NumericsFields(spo2=INVALID, pulse=INVALID, spo2_alarms=SPO2_SENSOR_OFF)
    )
    _, items = decode(stream)
    (block,) = waves(items)
    assert math.isnan(block.samples[2]) and not np.isnan(np.delete(block.samples, 2)).any()
    spo2 = numerics(items, Code.SPO2)[0]
    assert spo2.value is None and spo2.flags == {Flag.SENSOR_OFF}


def test_co2_in_kpa_is_left_out_with_a_problem() -> None:
    msg = encode_numerics(NumericsFields(etco2=5, rr=14, units=UNITS_KPA))
    parser, items = decode(msg * LOCK_FRAMES + wave_run(BLOCK_SAMPLES))
    assert numerics(items, Code.CO2_ET)[0].value is None
    assert numerics(items, Code.RESP_RATE)[0].value == 14.0
    assert np.isnan(waves(items)[0].samples).all()
    assert parser.problem is not None and "mmHg" in parser.problem


def test_a_lost_wave_message_cuts_the_block() -> None:
    stream = wave_run(5) + wave_run(10, start=7)  # messages 5 and 6 lost
    parser, items = decode(stream)
    assert [len(w.samples) for w in waves(items)] == [5, 10]
    assert parser.stats.waves_skipped == 2


# --- lock and damage ----------------------------------------------------------------------------


def test_fewer_than_three_good_messages_between_noise_are_not_trusted() -> None:
    msg = encode_numerics(NumericsFields(etco2=38, rr=14, spo2=97, pulse=72))
    junk = b"\x00\x11\x22"
    parser, items = decode(junk + msg + msg + junk + msg + junk)
    assert items == []
    assert parser.stats.frames_unconfirmed == 3
    check_accounting(parser)
    parser, items = decode(junk + msg * 3 + junk)
    assert len(numerics(items, Code.SPO2)) == 3  # the held ones come out with their own stamps
    stamps = [n.stamp.mono for n in numerics(items, Code.SPO2)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_a_corrupt_message_costs_only_itself(stream: bytes) -> None:
    base_parser, base = decode(stream)
    i = stream.index(b"\x85", 5000)
    damaged = stream[: i + 3] + bytes((stream[i + 3] ^ 0x10,)) + stream[i + 4 :]
    parser, items = decode(damaged)
    assert parser.stats.frames_ok >= base_parser.stats.frames_ok - 1 - LOCK_FRAMES
    assert parser.stats.bytes_discarded > 0
    check_accounting(parser)
    assert len(numerics(items, Code.CO2_ET)) >= len(numerics(base, Code.CO2_ET)) - 1


@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(1, 4000), max_size=20))
@HYPO
def test_any_bytes_never_raise_and_every_byte_is_accounted_for(
    data: bytes, cuts: list[int]
) -> None:
    parser, items = decode(data, cuts)
    check_accounting(parser)
    for n in items:
        if isinstance(n, Numeric) and n.value is not None:
            low, high = n.code.physical_range
            assert low <= n.value <= high or Flag.OUT_OF_RANGE in n.flags


@given(
    fields=st.builds(
        NumericsFields,
        timestamp=st.integers(0, 2**32 - 1),
        etco2=st.integers(0, 255),
        fico2=st.integers(0, 255),
        rr=st.integers(0, 255),
        spo2=st.integers(0, 255),
        pulse=st.integers(0, 255),
        co2_alarms=st.integers(0, 255),
        spo2_alarms=st.integers(0, 255),
        units=st.integers(0, 255),
        extended_co2_status=st.integers(0, 255),
    ),
    cuts=st.lists(st.integers(1, 200), max_size=10),
)
@HYPO
def test_numerics_round_trip_any_field_values_any_chunking(fields: NumericsFields, cuts) -> None:
    # Escapes appear wherever a field holds 80 or 85: the decoded fields are the sent ones.
    msg = encode_numerics(fields)
    parser, items = decode(msg * LOCK_FRAMES, cuts)
    assert parser.stats.frames_numerics == LOCK_FRAMES and parser.stats.bytes_discarded == 0
    got = {n.code: n.value for n in items[-5:]}
    mmhg = fields.units == 1
    for code, raw in (
        (Code.RESP_RATE, fields.rr),
        (Code.SPO2, fields.spo2),
        (Code.PULSE_RATE, fields.pulse),
        (Code.CO2_ET, fields.etco2 if mmhg else INVALID),
    ):
        assert got[code] == (None if raw == INVALID else float(raw))


# --- the emulator --------------------------------------------------------------------------------


def codes_of(data: bytes) -> list[int]:
    """The codes of the messages in ``data``, in order (every message well formed)."""
    out, pos = [], 0
    while pos < len(data):
        status, body, pos = unescape_frame(data, pos)
        assert status == 1
        out.append(body[1])
    return out


def test_the_emulator_is_silent_until_enabled_and_answers_with_its_id(typical) -> None:
    emu = CapnostreamEmulator(typical)
    assert emu.emit(0.0, 5.0) == b""
    assert emu.on_host_bytes(LINK_IS_ACTIVE + START_RT, 1.0) == b""  # not enabled yet
    reply = emu.on_host_bytes(ENABLE_COMM, 2.0)
    assert reply == encode_message(4, DEVICE_ID)
    data = emu.emit(2.0, 6.0)  # numerics at 2..5 s, no wave before "start real-time"
    assert codes_of(data) == [1, 1, 1, 1]
    emu.on_host_bytes(START_RT, 6.0)
    assert codes_of(emu.emit(6.0, 7.0)) == [1] + [0] * 20


def test_emit_is_message_exact_for_any_boundaries(typical) -> None:
    whole = talking(typical, timeout=math.inf).emit(0.0, 30.0)
    emu = talking(typical, timeout=math.inf)
    edges = [0.0, 0.013, 0.05, 0.98, 1.0, 1.5, 7.77, 12.0, 29.99, 30.0]
    assert b"".join(emu.emit(a, b) for a, b in itertools.pairwise(edges)) == whole


def test_the_link_drops_without_host_messages_and_keep_alives_hold_it(typical) -> None:
    emu = talking(typical, timeout=15.0)
    assert not emu.talking(15.5) and emu.emit(16.0, 20.0) == b""
    emu = talking(typical, timeout=15.0)
    for t in range(5, 60, 5):
        emu.on_host_bytes(LINK_IS_ACTIVE, float(t))
    assert emu.talking(59.0)
    emu.on_host_bytes(STOP_RT, 60.0)
    assert codes_of(emu.emit(60.0, 62.0)) == [1, 1]  # numerics go on, the wave stops
    emu.on_host_bytes(DISABLE_COMM, 62.0)
    assert emu.emit(62.0, 70.0) == b""


def test_inquire_numeric_item_is_answered(typical) -> None:
    emu = talking(typical, timeout=math.inf)
    reply = emu.on_host_bytes(command(CMD_INQUIRE_NUMERIC, ITEM_ETCO2), 30.0)
    et = typical.breathing(30.0).etco2
    assert reply == encode_message(RSP_NUMERIC_ITEM, bytes((round(et),)))


@pytest.mark.parametrize(
    ("scenario", "minute"), [("typical", 30), ("apnea", 30.25), ("sampling-line-off", 26)]
)
def test_round_trip_values_equal_the_scenarios(scenario: str, minute: float) -> None:
    session = KapSession(load_scenario(scenario), seed=5)
    t0 = minute * 60 - 30
    emu = talking(session, t0, timeout=math.inf)
    parser, items = decode(emu.emit(t0, t0 + 60.0))
    assert parser.stats.bytes_discarded == 0 and parser.stats.frames_unconfirmed == 0
    for code in (Code.RESP_RATE, Code.CO2_ET):
        got = numerics(items, code)
        assert len(got) == 60  # one on each second
        for k, n in enumerate(got):
            b = session.breathing(math.ceil(t0) + float(k))
            truth = b.resp_rate if code is Code.RESP_RATE else b.etco2
            assert n.value == (None if truth is None else round(truth))
    co2 = np.concatenate([w.samples for w in waves(items)])
    truth = session.capnogram(t0, len(co2), 20.0)
    off = np.array(
        [Flag.SENSOR_OFF in session.breathing(t0 + k / 20).flags for k in range(len(co2))]
    )
    np.testing.assert_allclose(co2[~off], truth[~off], atol=1 / 256)
    assert (co2[off] == 0).all()
    if scenario == "apnea":
        no_breath = [n for n in numerics(items, Code.RESP_RATE) if Flag.NO_BREATH in n.flags]
        assert len(no_breath) == 10  # seconds 20-29 of the 30-s apnoea: past the 20-s period
    if scenario == "sampling-line-off":
        assert any(w.flags == {Flag.SENSOR_OFF} for w in waves(items))
        assert all(n.value is not None for n in numerics(items, Code.SPO2))


# --- driver, registry, command line -------------------------------------------------------------


def test_the_registry_names_the_driver_with_its_wire_settings() -> None:
    cls = get_driver_class("capnostream")
    assert cls is CapnostreamDriver and cls.parser_class is CapnostreamParser
    assert cls.emulator_class is CapnostreamEmulator
    assert (cls.serial_settings.baudrate, cls.serial_settings.parity) == (115200, "N")
    driver = CapnostreamDriver(DeviceSpec.parse("capnostream@/dev/null-capno"), lambda i: None)
    assert driver.greeting() == ENABLE_COMM + START_RT
    assert driver.keep_alive() == LINK_IS_ACTIVE and driver.keep_alive_interval == 5.0
    driver.state = ConnectionState.NO_DATA
    assert driver.keep_alive() == ENABLE_COMM + START_RT
    assert driver.farewell() == STOP_RT + DISABLE_COMM


def test_kapmonitor_decode_reads_a_capnostream_file(tmp_path: Path, stream: bytes) -> None:
    path = tmp_path / "capnostream.bin"
    path.write_bytes(stream)
    records = decode_cli("capnostream", path, unexpected="framing")
    et = [r for r in records if r["code"] == Code.CO2_ET.value]
    assert len(et) == 120 and all(25 <= r["value"] <= 50 for r in et)
    co2 = [r for r in records if r["code"] == Code.CO2.value]
    assert sum(len(r["samples"]) for r in co2) == 120 * 20


# --- over a pty ---------------------------------------------------------------------------------


@pytest.fixture
def pipeline():
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    endpoint = TeeEndpoint()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    drivers: list[CapnostreamDriver] = []

    def start(emulator: CapnostreamEmulator, speed: float) -> CapnostreamDriver:
        driver = CapnostreamDriver(
            DeviceSpec.parse(f"capnostream@{endpoint.path}"), hub.publish, DriverSettings()
        )
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


@PTY
def test_round_trip_over_a_pty_with_the_drivers_greeting_and_link_messages(pipeline) -> None:
    start, collector, endpoint, stop = pipeline
    session = KapSession(load_scenario("apnea"), seed=5)
    # 40 s of session in 10 s: a link message every ~20 s of session time, and the device's
    # 15-s link timeout (real time) is 60 s of it.
    emulator = CapnostreamEmulator(session, speed=4.0)
    driver = start(emulator, 4.0)
    assert collector.wait_for(lambda items: len(numerics(items, Code.CO2_ET)) >= 40, timeout=30)
    stop.set()
    time.sleep(0.3)
    assert endpoint.dropped == 0
    codes = [c for _, c in emulator.commands]
    assert codes[:2] == [1, 4] and 6 in codes and len(emulator.runs) == 1
    # The host decoded exactly what the device sent.
    parser, offline = decode(bytes(endpoint.sent), flush=False)
    got = [i for i in collector.items if isinstance(i, (Numeric, WaveformBlock))]
    assert collector.wait_for(
        lambda items: (
            len([i for i in items if isinstance(i, (Numeric, WaveformBlock))]) >= len(offline)
        ),
        timeout=10,
    )
    got = [i for i in collector.items if isinstance(i, (Numeric, WaveformBlock))]

    def values(items):
        return [
            (i.code, i.value, i.flags) if isinstance(i, Numeric) else (i.code, len(i.samples))
            for i in items
        ]

    assert values(got[: len(offline)]) == values(offline)
    assert driver.parser.stats.framing_errors == parser.stats.framing_errors == 0
    assert driver.parser.device_id == DEVICE_ID.decode().strip()
    assert collector.states()[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
