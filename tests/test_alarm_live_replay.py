"""The live alarm system and ``kapmonitor alarms replay`` give the same timeline (issue 11).

Two runs of the same stream, silence included: live, a real playback device publishes it on its
own session clock at 200x into the hub, and the alarm service ticks on that clock; offline, the
stream as JSON lines goes through ``alarms replay``. Then the real pipeline: ``record`` of a
simulated session at high speed, replayed from its own output, gives record's own alarm lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alarms.model import LogEvent
from alarms.profile import load_profile
from alarms.replay import timeline_record
from alarms.service import AlarmService
from devices.base import PlaybackDriver, PlaybackSettings
from kapmonitor.core import jsonl
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    ConnectionState,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector

SPEED = 200.0
END = 150.0  #: session seconds the stream lasts
DEVICE = "sim:stream"


def stream() -> list[tuple[float, str, object]]:
    """(session time, kind, value): a desaturation, a silence of 40 s, a pulse drop."""
    out: list[tuple[float, str, object]] = [(0.0, "nibp", (120, 80, 93)), (1.0, "dose", None)]
    for t in range(2, 120):
        if 40 <= t < 80:
            continue  # the device falls silent: nothing at all
        spo2 = 84 if 10 <= t < 30 else 97
        pulse = 38 if 90 <= t < 100 else 72
        out.append((float(t), "spo2", spo2))
        out.append((t + 0.5, "pulse", pulse))
    return out


class StreamDriver(PlaybackDriver):
    """A playback device that plays a fixed stream on its session clock, then stops."""

    name = "stream"

    def _run(self) -> None:
        self._set_state(ConnectionState.CONNECTED, stamp=self.origin)
        self.begin()
        for t, kind, value in stream():
            if not self.wait_until(t):
                return
            self._publish(as_item(self.source, kind, value, self.at(t)))
        self.wait_until(END)


def as_item(source: str, kind: str, value, stamp) -> Item:
    if kind == "nibp":
        return NibpReading(source, *value, stamp)
    if kind == "dose":
        return SessionEvent(source, SessionEventKind.DOSE, stamp, "dose")
    code = Code.SPO2 if kind == "spo2" else Code.PULSE_RATE
    return Numeric(source, code, value, stamp)


def live_timeline() -> list[dict]:
    hub = Hub()
    driver = StreamDriver(
        DeviceSpec.parse(DEVICE), hub.publish, playback=PlaybackSettings(speed=SPEED)
    )
    service = AlarmService(hub, load_profile(), clock=driver.session_now)
    log = Collector(service.out.subscribe("test"))
    driver.open()
    service.start()
    driver.start()
    try:
        assert driver.join(timeout=30)
        # The service keeps to session time after the stream: wait until it has passed the end.
        deadline = time.monotonic() + 10
        while service.engine.now is None or service.engine.now.mono < driver.at(END).mono:
            assert time.monotonic() < deadline, "the alarm service's clock did not move on"
            time.sleep(0.02)
        log.collect_rest()
    finally:
        driver.stop()
        service.stop()
    origin = driver.origin.mono
    return [
        timeline_record(e, origin)
        for e in log.items
        if e.event in (LogEvent.ACTIVE, LogEvent.INACTIVE) and e.stamp.mono - origin <= END
    ]


def replay_timeline(tmp_path: Path) -> list[dict]:
    lines = [{"t": 0.0, "state": "connected", "detail": "", "device": DEVICE}]
    for t, kind, value in stream():
        item = as_item(DEVICE, kind, value, Stamp(t, t))
        lines += jsonl.records(item, 0.0)
    lines.append({"t": END})  # the time the live run went on to, with nothing in it
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(jsonl.dumps(x) + "\n" for x in lines))
    proc = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "alarms", "replay", "--in", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def key(record: dict) -> tuple:
    return (round(record["t"], 2), record["condition"], record["priority"], record["state"])


def test_live_and_replay_give_the_same_timeline_silence_included(tmp_path):
    live = live_timeline()
    offline = replay_timeline(tmp_path)
    # The silence from 40 to 80 is seen in both: no data at 49.5 (10 s after the last pulse
    # value at 39.5), ended by the first value at 80.
    assert (49.5, "no-data", "medium", "active") in [key(r) for r in offline]
    assert (80.0, "no-data", "medium", "inactive") in [key(r) for r in offline]
    assert sorted(map(key, live)) == sorted(map(key, offline))


# --- record -> alarms replay, the documented workflow ------------------------------------------


def record_then_replay(tmp_path: Path, scenario: str, *extra: str) -> tuple[list, list]:
    out = tmp_path / "s.jsonl"
    with out.open("w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "kapmonitor", "record", "--device", f"sim:{scenario}",
             "--speed", "600", "--no-waves", "--db", f"sqlite:///{tmp_path / 'k.sqlite3'}",
             *extra],
            cwd=ROOT, stdout=f, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    recorded = [line for line in lines if "condition" in line]
    replay = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "alarms", "replay", "--in", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert replay.returncode == 0 and replay.stderr == "", replay.stderr
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]
    return recorded, replayed


@pytest.mark.parametrize(
    ("scenario", "extra", "expected"),
    [
        ("desaturation", ("--duration", "60m"), "spo2-low"),
        ("device-unplug", ("--duration", "75m"), "disconnected"),
    ],
)
def test_record_then_replay_gives_records_own_alarms(tmp_path, scenario, extra, expected):
    recorded, replayed = record_then_replay(tmp_path, scenario, *extra)
    assert any(r["condition"] == expected for r in recorded)
    # Each alarm once: the alarm lines record wrote were not read back as measurements.
    assert sorted(map(key, replayed)) == sorted(map(key, recorded))
    assert len({json.dumps(r, sort_keys=True) for r in replayed}) == len(replayed)
