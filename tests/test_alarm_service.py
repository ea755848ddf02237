"""The alarm service in the live pipeline: a stalled screen never delays an alarm."""

from __future__ import annotations

import time

from alarms.model import LogEntry, LogEvent, Priority
from alarms.profile import load_profile
from alarms.service import AlarmService
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Numeric, Stamp
from tests.pipeline_helpers import Collector


def test_alarms_fire_while_the_screen_queue_is_stalled():
    hub = Hub()
    screen = hub.subscribe("screen", maxsize=10)  # a frozen screen that never reads
    service = AlarmService(hub, load_profile())
    log = Collector(service.out.subscribe("test"))
    driver = SimDriver(
        DeviceSpec.parse("sim:desaturation"), hub.publish, playback=PlaybackSettings(2000, seed=3)
    )
    driver.open()
    service.start()
    driver.start()
    try:
        assert log.wait_for(
            lambda entries: any(
                e.event is LogEvent.ACTIVE and e.condition == "spo2-low" for e in entries
            ),
            timeout=30,
        )
    finally:
        driver.stop()
        service.stop()
    assert screen.dropped > 0  # the screen lost items; the alarms did not
    assert service._sub.dropped == 0
    _, _, baseline = service.snapshot()
    assert baseline.startswith("pre-dose baseline")
    assert any(e.event is LogEvent.BASELINE for e in log.items)


def spo2_low_started(entry: LogEntry) -> bool:
    return entry.event is LogEvent.ACTIVE and entry.condition == "spo2-low"


def test_a_pending_condition_becomes_active_on_the_clock_with_no_new_item():
    hub = Hub()
    service = AlarmService(hub, load_profile())
    log = Collector(service.out.subscribe("test"))
    service.start()
    try:
        # One low SpO2 value and then silence: after the 10 s delay the service's own tick,
        # not a new item, makes the condition active.
        hub.publish(Numeric("ox", Code.SPO2, 80, Stamp.now().shifted(-9.8)))
        # (The oximeter also falls silent: no-data, at the same moment; not counted here.)
        assert log.wait_for(
            lambda entries: sum(spo2_low_started(e) for e in entries) == 2, timeout=5
        )
    finally:
        service.stop()
    active = [e for e in log.items if spo2_low_started(e)]
    assert {e.priority for e in active} == {Priority.MEDIUM, Priority.HIGH}


def test_operator_actions_from_another_thread_are_logged_with_the_operator():
    hub = Hub()
    service = AlarmService(hub, load_profile())
    log = Collector(service.out.subscribe("test"))
    service.start()
    try:
        now = Stamp.now()
        hub.publish(Numeric("ox", Code.SPO2, 80, now.shifted(-20)))
        hub.publish(Numeric("ox", Code.SPO2, 80, now))
        assert log.wait_for(lambda e: any(x.event is LogEvent.ACTIVE for x in e), timeout=5)
        alarms, audio, _ = service.snapshot()
        assert audio.priority is Priority.HIGH
        service.pause_audio("nurse A")
        alarms, audio, _ = service.snapshot()
        assert audio.priority is None and 119 < audio.paused_for <= 120
        service.acknowledge(alarms[0].id, "nurse B")
        time.sleep(0.2)
    finally:
        service.stop()
    log.wait_for(lambda e: False, timeout=0.2)
    operators = {(e.event, e.operator) for e in log.items if e.operator}
    assert operators == {(LogEvent.AUDIO_PAUSED, "nurse A"), (LogEvent.ACKNOWLEDGED, "nurse B")}
