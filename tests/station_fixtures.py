"""The clinic bus under test: a real Mosquitto on loopback, real rooms, a real station.

A room here is either a real ``kapmonitor record`` process on a simulated scenario, or, where a
test must decide exactly when an alarm starts and ends, a :class:`RoomHarness`: the real
publisher fed by a real alarm service whose technical conditions the test raises and clears.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alarms.model import Alarm, TechnicalCondition
from alarms.profile import load_profile
from alarms.service import AlarmService
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item
from kapmonitor.station.broker import BrokerUrl, Credentials, parse_broker_url
from kapmonitor.station.client import StationClient
from kapmonitor.station.mosquitto import PrivateBroker, find_mosquitto
from kapmonitor.station.publisher import RoomIdentity, RoomPublisher
from tests.conftest import ROOT

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None, reason="Mosquitto is not installed (Debian package 'mosquitto')"
)

#: A scenario whose probe comes off 18 s after the dose (3 min in): a technical alarm.
EARLY_PROBE_OFF = """
name = "early-probe-off"
description = "The probe comes off 18 s into the session."
duration_min = 60
dose_at_min = 3

[baseline]
heart_rate = { mean = 72, sd = 6, min = 55, max = 95 }
spo2 = { mean = 97, sd = 0.8, min = 95, max = 100 }
systolic = { mean = 124, sd = 8, min = 105, max = 145 }
diastolic = { mean = 78, sd = 6, min = 62, max = 92 }
perfusion_index = { mean = 3.0, sd = 0.8, min = 1.0, max = 6.0 }

[response]
systolic_rise = { mean = 16, sd = 11, min = 0, max = 45 }
diastolic_rise = { mean = 11, sd = 8.5, min = 0, max = 35 }
heart_rate_rise = { mean = 8, sd = 4, min = 0, max = 25 }
peak_min = { mean = 40, sd = 4, min = 30, max = 50 }
resolve_min = 90

[nibp]
predose_readings = 1
predose_every_min = 1
schedule = [{ until_min = 60, every_min = 5 }, { every_min = 15 }]
measure_s = 35
noise_sd = 4

[[faults]]
kind = "probe-off"
start_min = 0.3
duration_min = 30
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (Debian package 'mosquitto')")
    with PrivateBroker(tmp_path / "broker") as running:
        yield running


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def station(url: str | BrokerUrl, credentials: Credentials | None = None) -> StationClient:
    parsed = parse_broker_url(url) if isinstance(url, str) else url
    client = StationClient(parsed, credentials or Credentials(), name=f"test-{time.monotonic()}")
    return client.start()


def room_process(
    room: str, scenario: str, url: str, folder: Path, speed: float = 1.0, *extra: str
) -> subprocess.Popen[bytes]:
    """A real room: ``kapmonitor record`` on a simulated device, publishing; its stderr goes
    to FOLDER/ROOM.log."""
    with (folder / f"{room}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kapmonitor",
                "record",
                "--device",
                f"sim:{scenario}",
                "--room",
                room,
                "--broker",
                url,
                "--db",
                f"sqlite:///{folder / (room + '.db')}",
                "--speed",
                str(speed),
                "--no-waves",
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


class RoomHarness:
    """A room whose alarms the test decides: the real publisher and a real alarm service."""

    def __init__(self, room: str, url: str, credentials: Credentials | None = None) -> None:
        self.hub = Hub[Item]()
        self.alarms = AlarmService(self.hub, load_profile())
        self.alarms.start()
        self.link_lost: list[bool] = []
        self.publisher = RoomPublisher(
            RoomIdentity(room, label=f"P-{room}"),
            parse_broker_url(url),
            credentials or Credentials(),
            self.hub,
            self.alarms.out,
            self,
        )
        self.publisher.start()

    def raise_(self, condition: TechnicalCondition, source: str) -> None:
        self.alarms.set_technical(condition, source, True)

    def clear(self, condition: TechnicalCondition, source: str) -> None:
        self.alarms.set_technical(condition, source, False)

    def stop(self) -> None:
        self.publisher.stop()
        self.alarms.stop()

    # RoomSource
    def alarm_state(self) -> tuple[list[Alarm], bool]:
        alarms, audio, _ = self.alarms.snapshot()
        return alarms, audio.paused_for > 0

    def device_rows(self) -> list[tuple[str, str, str]]:
        return [("sim", "connected", "")]

    def next_nibp(self) -> str:
        return "next in 5 min"

    def since_dose_s(self) -> float | None:
        return 600.0

    def set_station_link(self, lost: bool, text: str) -> None:
        self.link_lost.append(lost)
