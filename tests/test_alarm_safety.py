"""Alarm safety (issue 11), in the engine: conditions that never fired, values never to alarm on.

- A flag on one parameter of a multiparameter monitor is ended only by that parameter.
- A device's silence is seen from the items' own time ("no-data"), with the driver's events.
- Values flagged out-of-range, outside the physical range or not finite never meet a limit.

Driven by item stamps only (``Stamp(t, t)``), as the engine is: no test sleeps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from alarms.engine import AlarmEngine
from alarms.model import LogEntry, LogEvent
from alarms.profile import Profile, load_profile, parse_profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    DeviceValue,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)

MONITOR = "intellivue@/dev/ttyUSB0"


def st(t: float) -> Stamp:
    return Stamp(t, t)


def num(code: Code, value: float | None, t: float, flags=(), source: str = MONITOR) -> Numeric:
    return Numeric(source, code, value, st(t), frozenset(flags))


def state(s: ConnectionState, t: float, source: str = MONITOR) -> DeviceEvent:
    return DeviceEvent(source, s, st(t), "")


@pytest.fixture(scope="module")
def kap_default() -> Profile:
    return load_profile()


@pytest.fixture
def engine(kap_default) -> AlarmEngine:
    return AlarmEngine(kap_default)


def feed(engine: AlarmEngine, items: list[Item]) -> list[LogEntry]:
    return [entry for item in items for entry in engine.process(item)]


def changes(entries: list[LogEntry], condition: str) -> list[tuple[str, float]]:
    return [
        (e.event.value, e.stamp.mono)
        for e in entries
        if e.condition == condition and e.event in (LogEvent.ACTIVE, LogEvent.INACTIVE)
    ]


# --- 1. technical flags per device and parameter -----------------------------------------------


def interleaved(seconds: int, flags: set[Flag]) -> list[Item]:
    """An IntelliVue-like stream: ECG HR with no flags and SpO2 with ``flags``, every second."""
    items: list[Item] = []
    for t in range(seconds + 1):
        items.append(num(Code.HEART_RATE, 72, t))
        items.append(num(Code.SPO2, None, t + 0.5, flags))
    return items


def test_sensor_off_on_spo2_alarms_while_ecg_heart_rate_arrives_without_flags(engine):
    entries = feed(engine, interleaved(30, {Flag.SENSOR_OFF}))
    # Off from 0.5; the 10-s delay ends at 10.5 with every HR item in between unflagged.
    assert changes(entries, "sensor-off") == [("active", 10.5)]
    (alarm,) = [a for a in engine.alarms() if a.condition == "sensor-off"]
    assert (alarm.source, alarm.code) == (MONITOR, Code.SPO2.value)
    # Only the SpO2 parameter ends it.
    assert changes(engine.process(num(Code.HEART_RATE, 72, 31)), "sensor-off") == []
    assert changes(engine.process(num(Code.SPO2, 97, 31.5)), "sensor-off") == [("inactive", 31.5)]


def test_signal_quality_on_one_parameter_is_not_ended_by_another(engine):
    entries = feed(engine, interleaved(20, {Flag.ARTIFACT}))
    assert changes(entries, "signal-quality") == [("active", 10.5)]


def test_flags_on_two_parameters_are_two_conditions(engine):
    items = []
    for t in range(12):
        items.append(num(Code.HEART_RATE, None, t, {Flag.SENSOR_OFF}))  # ECG leads off
        items.append(num(Code.SPO2, None, t + 0.5, {Flag.SENSOR_OFF}))  # SpO2 probe off
    feed(engine, items)
    shown = sorted((a.condition, a.code) for a in engine.alarms())
    assert shown == [("sensor-off", Code.HEART_RATE.value), ("sensor-off", Code.SPO2.value)]


# --- 2. silence seen from the stream's own time ------------------------------------------------


def test_a_device_that_stops_is_no_data_after_the_timeout_and_ends_with_its_next_value(engine):
    entries = feed(engine, [num(Code.SPO2, 97, t) for t in range(6)])
    entries += engine.tick(st(14.9))
    assert changes(entries, "no-data") == []
    entries += engine.tick(st(40))  # noticed late: stamped when the silence reached 10 s
    assert changes(entries, "no-data") == [("active", 15.0)]
    (alarm,) = engine.alarms()
    assert (alarm.condition, alarm.source, alarm.started.mono) == ("no-data", MONITOR, 15.0)
    entries = engine.process(num(Code.SPO2, 97, 41))
    assert changes(entries, "no-data") == [("inactive", 41)]


def test_the_timeout_comes_from_the_profile(kap_default):
    text = kap_default.text.replace(
        'no_data = { priority = "medium", timeout_s = 10 }',
        'no_data = { priority = "medium", timeout_s = 4 }',
    )
    engine = AlarmEngine(parse_profile(text, "short.toml"))
    engine.process(num(Code.SPO2, 97, 0))
    assert changes(engine.tick(st(4)), "no-data") == [("active", 4)]


@pytest.mark.parametrize(
    "item",
    [
        NibpReading(MONITOR, 120, 80, 93, st(0)),
        SessionEvent(MONITOR, SessionEventKind.DOSE, st(0)),
        state(ConnectionState.CONNECTED, 0),
    ],
    ids=["nibp", "dose", "connected"],
)
def test_the_watch_starts_with_a_periodic_measurement(engine, item):
    # A cuff's readings come minutes apart: a reading alone is no promise of more each second.
    engine.process(item)
    assert changes(engine.tick(st(600)), "no-data") == []


@pytest.mark.parametrize(
    "item",
    [
        WaveformBlock(MONITOR, Code.PLETH, st(9), 75.0, np.zeros(25)),
        DeviceValue(MONITOR, "MASIMO_SPCO", 3.0, "%", st(9)),
        NibpReading(MONITOR, 120, 80, 93, st(9)),
        num(Code.SPO2, None, 9, {Flag.SENSOR_OFF}),  # the device speaks: it is not silent
    ],
    ids=["pleth", "vendor-value", "nibp", "sensor-off-value"],
)
def test_any_decoded_measurement_restarts_the_watch(engine, item):
    engine.process(num(Code.SPO2, 97, 0))
    engine.process(item)
    assert changes(engine.tick(st(18.9)), "no-data") == []
    assert changes(engine.tick(st(19)), "no-data") == [("active", 19)]


def test_values_flagged_out_of_range_are_not_data(engine):
    # A device decoding noise into impossible values is not delivering measurements.
    engine.process(num(Code.SPO2, 97, 0))
    entries = feed(engine, [num(Code.SPO2, 250, t, {Flag.OUT_OF_RANGE}) for t in range(1, 20)])
    assert changes(entries, "no-data") == [("active", 10)]


def test_the_drivers_no_data_and_the_silence_are_one_alarm(engine):
    entries = engine.process(num(Code.SPO2, 97, 0))
    entries += engine.tick(st(10))  # the engine sees the silence first
    entries += engine.process(state(ConnectionState.NO_DATA, 10.2))  # then the driver says so
    entries += engine.tick(st(30))
    assert changes(entries, "no-data") == [("active", 10)]
    assert [a.condition for a in engine.alarms()] == ["no-data"]
    # The driver's recovery and the next value end it once.
    entries = engine.process(state(ConnectionState.CONNECTED, 31))
    entries += engine.process(num(Code.SPO2, 97, 31.2))
    assert changes(entries, "no-data") == [("inactive", 31)]


def test_the_drivers_no_data_alone_still_alarms(engine):
    entries = engine.process(state(ConnectionState.NO_DATA, 3))
    assert changes(entries, "no-data") == [("active", 3)]


def test_while_disconnected_only_disconnected_is_shown(engine):
    engine.process(num(Code.SPO2, 97, 0))
    entries = engine.tick(st(12))  # silent: no-data at 10
    entries += engine.process(state(ConnectionState.DISCONNECTED, 12))
    entries += engine.process(state(ConnectionState.RECONNECTING, 12))
    entries += engine.tick(st(200))
    assert changes(entries, "no-data") == [("active", 10), ("inactive", 12)]
    assert [a.condition for a in engine.alarms()] == ["disconnected"]
    # Reconnected: silence counts from the connection, not from the last value before the loss.
    entries = engine.process(state(ConnectionState.CONNECTED, 210))
    entries += engine.tick(st(219.9))
    assert changes(entries, "no-data") == [] and engine.alarms() == []
    assert changes(engine.tick(st(220)), "no-data") == [("active", 220)]


def test_silence_is_per_device(engine):
    items = []
    for t in range(30):
        items.append(num(Code.SPO2, 97, t, source="ox1"))
        if t < 5:
            items.append(num(Code.SPO2, 97, t + 0.5, source="ox2"))
    entries = feed(engine, items)
    assert [(e.source, e.stamp.mono) for e in entries if e.condition == "no-data"] == [
        ("ox2", 14.5)
    ]


# --- 3. values that must never meet a limit ----------------------------------------------------

UNTRUSTED = [
    pytest.param(50, {Flag.OUT_OF_RANGE}, id="flagged-out-of-range"),
    pytest.param(math.nan, set(), id="nan"),
    pytest.param(-math.inf, set(), id="minus-inf"),
    pytest.param(math.inf, set(), id="inf"),
    pytest.param(-5, set(), id="below-physical-range"),
    pytest.param(1e308, set(), id="huge"),
]


@pytest.mark.parametrize(("value", "flags"), UNTRUSTED)
def test_an_untrusted_value_never_starts_a_condition(engine, value, flags):
    entries = feed(engine, [num(Code.SPO2, value, t * 0.5, flags) for t in range(60)])
    entries += feed(engine, [num(Code.PULSE_RATE, value, t * 0.5, flags) for t in range(60)])
    assert [e for e in entries if e.condition != "no-data"] == []


@pytest.mark.parametrize(("value", "flags"), UNTRUSTED)
def test_an_untrusted_value_does_not_restart_a_pending_condition(engine, value, flags):
    # Noise interleaved with a real desaturation must not keep restarting its delay: the
    # condition pending from 0 is active at 10 (its delay), as if the noise were not there.
    items = [num(Code.SPO2, 84, t) for t in range(0, 12, 2)]
    items += [num(Code.SPO2, value, t, flags) for t in range(1, 12, 2)]
    entries = feed(engine, sorted(items, key=lambda i: i.stamp.mono))
    assert changes(entries, "spo2-low") == [("active", 10), ("active", 10)]


@pytest.mark.parametrize(("value", "flags"), UNTRUSTED)
def test_an_untrusted_value_does_not_end_an_active_alarm(engine, value, flags):
    # Ending an alarm on noise would be the unsafe error: the patient may still be hypoxic.
    feed(engine, [num(Code.SPO2, 84, t) for t in range(11)])
    entries = feed(engine, [num(Code.SPO2, value, t, flags) for t in range(11, 30)])
    assert changes(entries, "spo2-low") == []
    assert {a.condition for a in engine.alarms()} >= {"spo2-low"}


def test_an_out_of_range_nibp_reading_neither_alarms_nor_sets_the_baseline(engine):
    flagged = frozenset({Flag.OUT_OF_RANGE})
    entries = engine.process(NibpReading("cuff", 290, 250, 270, st(0), flagged))
    entries += engine.process(NibpReading("cuff", 1e300, 80, 90, st(1)))
    entries += engine.process(SessionEvent("cuff", SessionEventKind.DOSE, st(2)))
    assert [e.event for e in entries] == [LogEvent.BASELINE]
    assert engine.baseline is None


@settings(max_examples=150, deadline=None)
@given(
    hs.lists(
        hs.tuples(
            hs.sampled_from(list(Code)),
            hs.one_of(hs.none(), hs.floats(allow_nan=True, allow_infinity=True)),
            hs.sets(hs.sampled_from(list(Flag)), max_size=3),
            hs.floats(min_value=0, max_value=30),
        ),
        max_size=60,
    )
)
def test_the_engine_never_crashes_and_never_alarms_on_an_impossible_value(steps):
    engine = AlarmEngine(load_profile())
    t = 0.0
    for code, value, flags, dt in steps:
        t += dt
        if code in (Code.NIBP_SYS, Code.NIBP_DIA, Code.NIBP_MEAN):
            engine.process(NibpReading("cuff", value, value, value, st(t), frozenset(flags)))
        else:
            engine.process(num(code, value, t, flags))
    engine.tick(st(t + 100))
    for entry in engine.log:
        if entry.value is not None:
            assert math.isfinite(entry.value), entry
        if entry.event is LogEvent.ACTIVE and entry.kind.value == "physiological":
            if entry.condition == "apnea":  # a device's state, no value (tests/test_breathing_
                assert entry.value is None and entry.code is None  # alarms.py: never impossible)
                continue
            assert entry.code is not None
            if "-rise" not in entry.condition:  # bp-rise-*, etco2-rise: mmHg above baseline
                low, high = Code(entry.code).physical_range
                assert low <= entry.value <= high, entry
