"""Device → pty → pyserial → reader thread → parser → hub, as with a real oximeter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from devices.base import DEFAULT_NO_DATA_TIMEOUT, DriverSettings
from devices.protocols.base import Parser, SerialSettings
from devices.protocols.nonin import (
    Nonin2Driver,
    NoninFormat2Emulator,
    NoninFormat2Parser,
    NoninFormat7Emulator,
)
from devices.serial_driver import SerialDriver
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint, serve
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, Flag, Numeric, Stamp, WaveformBlock
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector, serving

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def _values(items) -> list[tuple]:
    """What a packet carries, without its arrival time: (code, value or samples)."""
    out = []
    for it in items:
        if isinstance(it, Numeric):
            out.append((it.code, it.value, it.flags))
        elif isinstance(it, WaveformBlock):
            out.append((it.code, tuple(it.samples.tolist()), it.flags))
    return out


@pytest.fixture
def pipeline():
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    drivers = []

    def start(url: str, no_data_timeout: float = DEFAULT_NO_DATA_TIMEOUT) -> Nonin2Driver:
        settings = DriverSettings(no_data_timeout)
        driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{url}"), hub.publish, settings)
        driver.open()
        driver.start()
        drivers.append(driver)
        return driver

    yield start, collector
    for driver in drivers:
        driver.stop()


def test_a_nonin_format2_stream_arrives_with_every_value_intact(pipeline):
    start, collector = pipeline
    session = KapSession(load_scenario("typical"), seed=3)
    wire = NoninFormat2Emulator(session).emit(0.0, 120.0)  # two minutes of the device's bytes
    expected = _values(NoninFormat2Parser("ref").feed(wire, Stamp.now()))
    assert len(expected) == 3 * 120 * 3  # HR, SpO2 and a pleth block per packet, 3 packets/s

    endpoint = PtyEndpoint()
    try:
        start(endpoint.path)
        assert collector.wait_for_state(ConnectionState.CONNECTED)

        def device():  # writes as the line allows, in odd-sized pieces like a UART FIFO
            for i in range(0, len(wire), 97):
                endpoint.write(wire[i : i + 97])
                time.sleep(0.0005)

        writer = threading.Thread(target=device)
        writer.start()
        assert collector.wait_for(lambda items: len(_values(items)) >= len(expected), timeout=30)
        writer.join()
        assert endpoint.dropped == 0
    finally:
        endpoint.close()
    assert _values(collector.items) == expected
    # …and what arrived is the simulated patient: the pulse rates of the session, not zeros.
    rates = [it.value for it in collector.of_type(Numeric) if it.code is Code.PULSE_RATE]
    truth = [round(session.vitals(k / 3).heart_rate) for k in range(len(rates))]
    assert np.allclose(rates, truth, atol=1)


def test_the_reader_reconnects_after_the_port_goes_away_and_comes_back(pipeline, tmp_path):
    start, collector = pipeline
    link = tmp_path / "oximeter"
    endpoint = PtyEndpoint(link)
    session = KapSession(load_scenario("typical"), seed=1)
    emulator = NoninFormat2Emulator(session)
    stop = threading.Event()

    def device():
        t = 0.0
        while not stop.is_set():
            endpoint.write(emulator.emit(t, t + 0.1))
            t += 0.1
            time.sleep(0.1)

    writer = threading.Thread(target=device)
    writer.start()
    try:
        start(str(link))
        assert collector.wait_for(lambda items: any(isinstance(i, Numeric) for i in items))
        endpoint.unplug()  # the USB cable is pulled: the pty and the link vanish
        assert collector.wait_for_state(ConnectionState.DISCONNECTED)
        assert collector.wait_for_state(ConnectionState.RECONNECTING)
        before = len(collector.items)
        time.sleep(0.5)  # the driver keeps trying while nothing is there
        endpoint.replug()  # plugged back in: a new pty behind the same link
        n_states = len(collector.states())
        assert collector.wait_for_state(ConnectionState.CONNECTED, after=n_states - 1)
        assert collector.wait_for(
            lambda items: any(isinstance(i, Numeric) for i in items[before:]), timeout=10
        )
    finally:
        stop.set()
        writer.join()
        endpoint.close()
    states = collector.states()
    assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    assert states[2:5] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.RECONNECTING,
        ConnectionState.CONNECTED,
    ]


def test_a_silent_device_is_in_no_data_until_it_speaks_again(pipeline):
    start, collector = pipeline
    endpoint = PtyEndpoint()
    try:
        start(endpoint.path, no_data_timeout=0.5)
        assert collector.wait_for_state(ConnectionState.NO_DATA, timeout=5)
        session = KapSession(load_scenario("typical"), seed=1)
        endpoint.write(NoninFormat2Emulator(session).emit(0.0, 1.0))
        assert collector.wait_for_state(ConnectionState.CONNECTED, after=2, timeout=5)
    finally:
        endpoint.close()
    event = next(e for e in collector.items if getattr(e, "state", None) is ConnectionState.NO_DATA)
    assert event.detail == "no data from the device for 0.5 s"
    assert collector.states() == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.NO_DATA,
        ConnectionState.CONNECTED,
    ]


def test_the_simulator_plays_a_device_unplug_that_the_reader_survives(pipeline, tmp_path):
    """The device-unplug scenario over a real pty: the host sees the outage and recovers."""
    start, collector = pipeline
    session = KapSession(load_scenario("device-unplug"), seed=0)
    gaps = [t for t in np.arange(0, session.duration, 1.0) if not session.connected(t)]
    assert gaps, "the scenario should unplug the device"
    link = tmp_path / "sim-oximeter"
    endpoint = PtyEndpoint(link)
    stop = threading.Event()
    # Start shortly before the unplug, at a pace any machine keeps up with.
    speed = 10.0
    begin = float(gaps[0]) - 20.0
    server = threading.Thread(
        target=serve,
        args=(NoninFormat2Emulator(session), endpoint),
        kwargs={"speed": speed, "start": begin, "stop": stop},
    )
    try:
        start(str(link))
        server.start()
        assert collector.wait_for_state(ConnectionState.DISCONNECTED, timeout=30)
        n = len(collector.states())
        assert collector.wait_for_state(ConnectionState.CONNECTED, after=n, timeout=60)
    finally:
        stop.set()
        server.join(10)
        endpoint.close()


def test_kapmonitor_simulate_pty_streams_a_session_to_the_parser(tmp_path):
    """The command a tester types, in its own process, read by the real driver."""
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kapmonitor",
            "simulate",
            "--scenario",
            "typical",
            "--protocol",
            "nonin2",
            "--pty",
            "--seed",
            "5",
            "--speed",
            "4",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            path = proc.stdout.readline().strip()
            assert path.startswith("/dev/pts/") and os.path.exists(path)
            hub = Hub()
            collector = Collector(hub.subscribe("test"))
            driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{path}"), hub.publish)
            driver.open()
            driver.start()
            try:
                assert collector.wait_for(lambda items: len(collector.of_type(WaveformBlock)) >= 20)
            finally:
                driver.stop()
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr
    assert proc.returncode in (0, 130, -15)
    assert driver.parser.stats.checksum_errors == 0
    spo2 = [i.value for i in collector.of_type(Numeric) if i.code is Code.SPO2]
    assert spo2 and all(90 <= v <= 100 for v in spo2)
    blocks = collector.of_type(WaveformBlock)
    assert all(b.fs == 75.0 and len(b.samples) == 25 for b in blocks)


# --- the watchdog counts measurements, not bytes (issue 11) -----------------------------------


def _no_data_event(collector):
    return next(e for e in collector.items if getattr(e, "state", None) is ConnectionState.NO_DATA)


def _stream(endpoint: PtyEndpoint, chunks, stop: threading.Event) -> threading.Thread:
    """Write ``chunks()`` pieces to the pty every 0.1 s until ``stop``: a device at line rate."""

    def device():
        while not stop.is_set():
            endpoint.write(chunks())
            stop.wait(0.1)

    writer = threading.Thread(target=device, daemon=True)
    writer.start()
    return writer


def test_a_device_in_another_data_format_is_no_data_with_the_reason(pipeline):
    """A Nonin set to format 7, read as format 2: bytes flow, none decode, and that is said."""
    start, collector = pipeline
    session = KapSession(load_scenario("typical"), seed=2)
    endpoint = PtyEndpoint()
    timeout = 2.0
    try:
        with serving(NoninFormat7Emulator(session), endpoint, speed=1.0):
            began = time.monotonic()
            driver = start(endpoint.path, no_data_timeout=timeout)
            assert collector.wait_for_state(ConnectionState.NO_DATA, timeout=timeout + 1.0)
            assert time.monotonic() - began <= timeout + 1.0
            assert "wrong data format suspected" in driver.status()
            assert driver.parser.stats.bytes_in > 0
    finally:
        endpoint.close()
    event = _no_data_event(collector)
    assert re.fullmatch(
        r"bytes arrive \(\d+ framing/checksum errors, [1-9]\d* bytes skipped\) but none decode: "
        r"wrong data format suspected — is the device set to nonin2\?",
        event.detail,
    ), event.detail
    assert not collector.of_type(Numeric) and not collector.of_type(WaveformBlock)


def test_noise_at_line_rate_is_no_data_and_valid_packets_bring_it_back(pipeline):
    """A noise burst the parser rightly rejects is no data, not a silent "connected"."""
    start, collector = pipeline
    rng = np.random.default_rng(11)
    endpoint = PtyEndpoint()
    stop = threading.Event()
    writer = _stream(endpoint, lambda: rng.integers(0, 256, 96, dtype=np.uint8).tobytes(), stop)
    try:
        driver = start(endpoint.path, no_data_timeout=1.5)
        assert collector.wait_for_state(ConnectionState.NO_DATA, timeout=2.5)
        stop.set()
        writer.join(5)
        assert driver.parser.stats.bytes_discarded > 0
        session = KapSession(load_scenario("typical"), seed=1)
        endpoint.write(NoninFormat2Emulator(session).emit(0.0, 2.0))
        assert collector.wait_for_state(ConnectionState.CONNECTED, after=3, timeout=5)
    finally:
        stop.set()
        endpoint.close()
    assert "wrong data format suspected" in _no_data_event(collector).detail
    assert collector.states() == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.NO_DATA,
        ConnectionState.CONNECTED,
    ]
    assert "no-data" not in driver.status()


def test_a_real_format2_stream_stays_connected(pipeline):
    start, collector = pipeline
    session = KapSession(load_scenario("typical"), seed=4)
    endpoint = PtyEndpoint()
    try:
        with serving(NoninFormat2Emulator(session), endpoint, speed=1.0):
            driver = start(endpoint.path, no_data_timeout=1.0)
            assert not collector.wait_for_state(ConnectionState.NO_DATA, timeout=4.0)
            assert driver.status().startswith(f"{driver.source}: connected;")
    finally:
        endpoint.close()
    assert collector.states() == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    assert len(collector.of_type(Numeric)) >= 2 * 3 * 3


class _SpO2LineParser(Parser):
    """A minimal line protocol ("S 97\\n" is SpO2 97 %), so the watchdog can be shown a stream
    whose every value decodes but lies outside the physical range."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self._line = b""

    def _feed(self, data: bytes, stamp: Stamp) -> list:
        *lines, self._line = (self._line + data).split(b"\n")
        self.stats.frames_ok += len(lines)
        return [Numeric(self.source, Code.SPO2, float(line[2:]), stamp) for line in lines]


class _SpO2LineDriver(SerialDriver[_SpO2LineParser]):
    name = "spo2-lines"
    parser_class = _SpO2LineParser
    serial_settings = SerialSettings(9600)
    byte_rate = 960.0


def test_values_that_are_all_out_of_range_are_no_measurement(tmp_path):
    """Like the alarm engine's silence watch, the driver's counts no impossible value: a line
    that decodes only into SpO2 of 250 % is not a device delivering data."""
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=100_000))
    endpoint = PtyEndpoint()
    stop = threading.Event()
    values = iter([97.0] * 5 + [250.0] * 1_000)
    writer = _stream(endpoint, lambda: f"S {next(values)}\n".encode(), stop)
    driver = _SpO2LineDriver(DeviceSpec.parse(f"spo2-lines@{endpoint.path}"), hub.publish,
                             DriverSettings(no_data_timeout=1.0))  # fmt: skip
    driver.open()
    driver.start()
    try:
        assert collector.wait_for_state(ConnectionState.NO_DATA, timeout=5)
    finally:
        stop.set()
        writer.join(5)
        driver.stop()
        endpoint.close()
    spo2 = collector.of_type(Numeric)
    assert spo2 and spo2[0].value == 97.0 and Flag.OUT_OF_RANGE not in spo2[0].flags
    assert any(Flag.OUT_OF_RANGE in item.flags for item in spo2)
    assert "but none decode" in _no_data_event(collector).detail
