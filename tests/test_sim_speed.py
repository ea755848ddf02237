"""The simulator played faster than real time, read through a real pty: time never runs backwards.

At ``--speed 10`` a device's bytes arrive ten times faster than the device sends them, so a read
holds ten times the bytes of its real-time span. The parsers used to count each packet back from
the read at the device's own byte rate: 285 of 861 SpO2 stamps came out lower than the one before,
and the first value came before the connection (t = -0.75 s). Now a packet is never placed before
the previous read, nor before the port opened.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import sys

import pytest

from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import ConnectionState, DeviceEvent, Numeric
from tests.pipeline_helpers import Collector, serving

SPEED = 10.0


@contextlib.contextmanager
def running(name: str, path: str, hub: Hub):
    """The protocol's driver reading ``path`` into ``hub``, stopped afterwards."""
    driver = get_driver_class(name)(DeviceSpec.parse(f"{name}@{path}"), hub.publish)
    driver.open()
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
@pytest.mark.parametrize(("name", "per_second"), [("nonin2", 3.0), ("nonin8", 1.0)])
def test_at_ten_times_real_time_stamps_never_run_backwards(name: str, per_second: float) -> None:
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    session = KapSession(load_scenario("typical"), seed=4)
    emulator = get_driver_class(name).emulator_class(session, speed=SPEED)
    wanted = 120  # SpO2 values: 40 s of session (4 s here) for Format 2, 120 s for Format 8
    with (
        contextlib.closing(PtyEndpoint()) as endpoint,
        running(name, endpoint.path, hub),
        serving(emulator, endpoint, speed=SPEED),
    ):
        assert collector.wait_for_state(ConnectionState.CONNECTED)

        def spo2_count(items: list) -> int:
            return sum(isinstance(i, Numeric) and i.code is Code.SPO2 for i in items)

        assert collector.wait_for(lambda items: spo2_count(items) >= wanted, timeout=60)
    connected = next(
        i.stamp.mono
        for i in collector.items
        if isinstance(i, DeviceEvent) and i.state is ConnectionState.CONNECTED
    )
    stamps = [
        i.stamp.mono for i in collector.items if isinstance(i, Numeric) and i.code is Code.SPO2
    ]
    assert stamps[0] >= connected - 0.01  # the port opened a moment before CONNECTED
    backwards = sum(b < a for a, b in itertools.pairwise(stamps))
    assert backwards == 0
    # And they keep the device's rhythm, ten times faster: packets 1/3 s (1 s) apart in the
    # session arrive 1/30 s (1/10 s) apart.
    step = statistics.median(b - a for a, b in itertools.pairwise(stamps))
    assert step == pytest.approx(1 / per_second / SPEED, rel=0.5)
