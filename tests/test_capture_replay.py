"""Capture a device's raw traffic, decode the capture, and replay it on a pty with its timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from devices.capture import MAGIC, CaptureWriter, Kind, read_capture
from devices.protocols.base import SerialSettings
from devices.protocols.nonin import Nonin2Driver, NoninFormat2Emulator, NoninFormat2Parser
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint, replay
from kapmonitor.cli import EXIT_USER_ERROR, main
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Numeric, Stamp, WaveformBlock
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def _values(items) -> list[tuple]:
    """Comparable (code, value or samples) pairs; NaN samples become None (NaN != NaN)."""
    return [
        (i.code, i.value)
        if isinstance(i, Numeric)
        else (i.code, tuple(None if s != s else s for s in i.samples.tolist()))
        for i in items
        if isinstance(i, Numeric | WaveformBlock)
    ]


def test_a_capture_file_round_trips_and_survives_a_torn_tail(tmp_path):
    path = tmp_path / "c.kapcap"
    writer = CaptureWriter(path, "nonin2", "/dev/ttyUSB0", SerialSettings(9600))
    writer.write(Kind.FROM_HOST, 0.0, b"\x02\x70\x02\x02\x02\x03")
    writer.write(Kind.FROM_DEVICE, 0.5, b"\x06")
    writer.write(Kind.FROM_DEVICE, 1.25, bytes(range(256)))
    writer.write(Kind.NOTE, 2.0, b"disconnected: unplugged")
    writer.close()
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    header, records = read_capture(data)
    assert (header.protocol, header.port, header.serial["baudrate"]) == (
        "nonin2",
        "/dev/ttyUSB0",
        9600,
    )
    assert [(r.kind, r.t, r.data) for r in records] == [
        (Kind.FROM_HOST, 0.0, b"\x02\x70\x02\x02\x02\x03"),
        (Kind.FROM_DEVICE, 0.5, b"\x06"),
        (Kind.FROM_DEVICE, 1.25, bytes(range(256))),
        (Kind.NOTE, 2.0, b"disconnected: unplugged"),
    ]
    # A crash mid-record loses that record only.
    _, torn = read_capture(data[:-5])
    assert len(torn) == 3
    with pytest.raises(UserError, match="not a kapmonitor capture"):
        read_capture(b"garbage", "x.bin")
    with pytest.raises(UserError, match="damaged header"):
        read_capture(MAGIC + b"{not json\n", "x.bin")


def test_capture_records_a_device_then_decode_and_replay_give_the_same_values(tmp_path):
    session = KapSession(load_scenario("probe-off"), seed=2)
    # Start in the probe-off episode so the capture holds flags and missing values too.
    start = session.dose_time + 20 * 60 + 5
    emulator = NoninFormat2Emulator(session)
    device = PtyEndpoint()
    stop = threading.Event()

    def oximeter():  # the device streams in real time from the probe-off episode
        t, t_wall = start, time.monotonic()
        while not stop.is_set():
            now = start + (time.monotonic() - t_wall)
            device.write(emulator.emit(t, now))
            t = now
            time.sleep(0.05)

    streaming = threading.Thread(target=oximeter)
    streaming.start()
    capture = tmp_path / "incident.kapcap"
    try:
        status = main(["capture", "--device", f"nonin2@{device.path}", "-o", str(capture),
                       "--duration", "3s"])  # fmt: skip
    finally:
        stop.set()
        streaming.join()
        device.close()
    assert status == 0
    header, records = read_capture(capture.read_bytes())
    assert header.protocol == "nonin2"
    notes = [r.data.decode() for r in records if r.kind is Kind.NOTE]
    assert notes[:2] == ["connecting", "connected"]
    device_bytes = b"".join(r.data for r in records if r.kind is Kind.FROM_DEVICE)
    assert len(device_bytes) > 2 * 375  # ~3 s at 375 B/s
    times = [r.t for r in records if r.kind is Kind.FROM_DEVICE]
    assert times == sorted(times) and times[-1] - times[0] > 2.0
    expected = _values(NoninFormat2Parser("ref").feed(device_bytes, Stamp(0, 0)))
    assert any(v is None for code, v in expected if not isinstance(v, tuple))

    # decode reads the capture (no --protocol needed) with the capture's own times.
    out = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "decode", str(capture)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(x["code"], x.get("value", tuple(x.get("samples", ())))) for x in lines] == [
        (code.value, v) for code, v in expected
    ]
    assert times[0] - 0.1 <= lines[0]["t"] <= times[-1] + 0.1

    # simulate --replay plays it back on a pty with its timing; the real driver reads it.
    replay_pty = PtyEndpoint()
    hub = Hub()
    collector = Collector(hub.subscribe("test"))
    driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{replay_pty.path}"), hub.publish)
    driver.open()
    driver.start()
    try:
        began = time.monotonic()
        replay(records, replay_pty)
        took = time.monotonic() - began
        assert collector.wait_for(lambda items: len(_values(items)) >= len(expected), timeout=10)
    finally:
        driver.stop()
        replay_pty.close()
    assert _values(collector.items) == expected
    assert took == pytest.approx(times[-1], abs=0.5)  # the original timing


def test_simulate_replay_prints_the_pty_and_plays(tmp_path):
    session = KapSession(load_scenario("typical"), seed=1)
    capture = tmp_path / "c.kapcap"
    writer = CaptureWriter(capture, "nonin2", "x", SerialSettings(9600))
    emulator = NoninFormat2Emulator(session)
    for k in range(20):  # 2 s of traffic, as read in 100 ms chunks
        writer.write(Kind.FROM_DEVICE, 0.5 + k / 10, emulator.emit(k / 10, (k + 1) / 10))
    writer.close()
    with subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "simulate", "--replay", str(capture), "--pty",
         "--speed", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        path = proc.stdout.readline().strip()
        assert os.path.exists(path)
        hub = Hub()
        collector = Collector(hub.subscribe("test"))
        driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{path}"), hub.publish)
        driver.open()
        driver.start()
        try:
            assert collector.wait_for(
                lambda items: len(collector.of_type(WaveformBlock)) >= 3, timeout=20
            )
        finally:
            driver.stop()
        proc.wait(20)
        assert proc.returncode == 0
        assert "capture" in proc.stderr.read()


def test_capture_of_a_missing_port_is_refused_without_creating_a_file(tmp_path, capsys):
    out = tmp_path / "never.kapcap"
    assert main(["capture", "--device", "nonin2@/dev/ttyKAP-none", "-o", str(out)]) == (
        EXIT_USER_ERROR
    )
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_the_capture_header_keeps_the_line_settings_the_device_was_opened_with(tmp_path):
    out = tmp_path / "mp90.kapcap"
    args = ["capture", "--device", "intellivue+19200@loop://", "-o", str(out), "--duration", "1s"]
    assert main(args) == 0
    header, _ = read_capture(out.read_bytes())
    assert header.protocol == "intellivue"
    assert header.serial["baudrate"] == 19200  # the +19200 option, not the class's 115200
