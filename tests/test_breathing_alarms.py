"""Breathing alarms in the engine (issue 17), driven by item stamps only, as the engine is.

The rate and EtCO2 limits, apnoea (the device's no-breath flag, a rate of 0, a breathless
capnogram), the EtCO2 rise from the pre-dose baseline, and the technical "no CO2 signal" (line
flags, or a flat capnogram while SpO2 and pulse read), kept apart: a line that is off is never
apnoea, a device with no breathing values never alarms on breathing, an impossible value never
alarms. Then the simulator's scenarios, played in process over several patients (seeds).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from alarms.breathing import APNEA, ETCO2_RISE, FlatWatch, says_no_breath
from alarms.engine import AlarmEngine
from alarms.model import AlarmKind, LogEntry, LogEvent, TechnicalCondition
from alarms.profile import Profile, load_profile
from devices.base import PlaybackSettings
from devices.registry import get_driver_class
from devices.sim.driver import SimDriver
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import (
    Flag,
    Item,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)

CAPNO = "capnostream@/dev/ttyUSB1"
OXI = "nonin@/dev/ttyUSB0"
NO_CO2 = TechnicalCondition.NO_CO2_SIGNAL.value
#: Conditions that are the patient's breathing (what an impossible value must never raise).
BREATHING_ALARMS = {"rr-low", "rr-high", "etco2-high", "etco2-low", APNEA, ETCO2_RISE}
FS = 20.0  #: capnogram samples a second, as a Capnostream's


def st(t: float) -> Stamp:
    return Stamp(t, 1.7e9 + t)


def num(code: Code, value: float | None, t: float, flags=(), source: str = CAPNO) -> Numeric:
    return Numeric(source, code, value, st(t), frozenset(flags))


def wave(t: float, samples, flags=(), source: str = CAPNO) -> WaveformBlock:
    return WaveformBlock(source, Code.CO2, st(t), FS, np.asarray(samples, float), frozenset(flags))


def capnogram(t0: float, seconds: float, rr: float, etco2: float) -> np.ndarray:
    """A square-ish capnogram: CO2 at EtCO2 through expiration (half of each breath), else 0.3."""
    t = t0 + np.arange(round(seconds * FS)) / FS
    return np.where((t * rr / 60.0) % 1.0 < 0.5, etco2, 0.3)


def second(
    t: float,
    *,
    rr: float | None = 14,
    etco2: float | None = 38,
    co2: np.ndarray | None = None,
    flags=(),
    spo2: float | None = 97,
    capno: str = CAPNO,
) -> list[Item]:
    """One second of a capnograph (rate, EtCO2, inspired CO2, a capnogram block) and an
    oximeter; ``co2`` None: a breathing capnogram at the rate and EtCO2."""
    if co2 is None:
        co2 = capnogram(t, 1.0, rr or 14, etco2 or 38)
    items: list[Item] = [
        num(Code.RESP_RATE, rr, t, flags, capno),
        num(Code.CO2_ET, etco2, t, flags, capno),
        num(Code.CO2_INSP_MIN, None if flags else 0.3, t, flags, capno),
        wave(t, co2, flags, capno),
    ]
    if spo2 is not None:
        items += [
            num(Code.SPO2, spo2, t + 0.5, source=OXI),
            num(Code.PULSE_RATE, 72, t + 0.5, source=OXI),
        ]
    return items


def run(engine: AlarmEngine, items: list[Item]) -> list[LogEntry]:
    out = [entry for item in items for entry in engine.process(item)]
    return out + engine.tick(items[-1].stamp.shifted(0.5))


def changes(entries: list[LogEntry], condition: str) -> list[tuple[str, float]]:
    return [
        (e.event.value, e.stamp.mono)
        for e in entries
        if e.condition == condition and e.event in (LogEvent.ACTIVE, LogEvent.INACTIVE)
    ]


def started(entries: list[LogEntry]) -> set[str]:
    return {e.condition or "" for e in entries if e.event is LogEvent.ACTIVE}


@pytest.fixture(scope="module")
def kap_default() -> Profile:
    return load_profile()


@pytest.fixture
def engine(kap_default) -> AlarmEngine:
    return AlarmEngine(kap_default)


# --- the judgement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "flags", "expected"),
    [
        (Code.RESP_RATE, 0.0, (), True),  # a measured rate of 0
        (Code.AWAY_RESP_RATE, 12.0, (), False),
        (Code.RESP_RATE, None, (), None),  # missing says nothing
        (Code.RESP_RATE, 12.0, (Flag.NO_BREATH,), True),  # the device's own judgement
        (Code.CO2_ET, None, (Flag.NO_BREATH,), True),  # no end tide: no breath
        (Code.CO2_ET, 38.0, (), False),  # an end-tidal value: a breath ended
        (Code.CO2_ET, 0.0, (), None),
        (Code.CO2_INSP_MIN, 0.4, (), None),  # the inspired CO2 says nothing of breaths
        (Code.CO2, None, (Flag.NO_BREATH,), True),
        # A line that is off or blocked counts no breaths: that is not the patient's apnoea.
        (Code.RESP_RATE, 0.0, (Flag.LINE_BLOCKED, Flag.NO_BREATH), None),
        (Code.RESP_RATE, 0.0, (Flag.SENSOR_OFF,), None),
        (Code.CO2_ET, None, (Flag.SENSOR_OFF, Flag.NO_BREATH), None),
        (Code.SPO2, 0.0, (Flag.NO_BREATH,), None),  # not a breathing value
    ],
)
def test_what_a_breathing_value_says_of_breaths(code, value, flags, expected):
    assert says_no_breath(code, value, frozenset(flags)) is expected


def test_a_capnogram_is_flat_only_after_a_span_of_flat_blocks():
    watch = FlatWatch()
    watch.add(0.0, 0.0, 38.0, 3.0)  # a breath: no run
    assert not watch.flat(0.0)
    for t in range(1, 22):
        watch.add(float(t), 0.1, 0.9, 3.0)
    assert watch.flat(20.0) and not watch.flat(20.5)  # flat from 1, seen at 21
    watch.add(22.0, 0.2, 3.5, 3.0)  # swings 3.4 with the run: a breath starts
    assert not watch.flat(1.0)
    watch.reset()
    assert not watch.flat(0.0)


# --- the limits ----------------------------------------------------------------------------------


def test_a_falling_rate_alarms_medium_then_high_after_15_s(engine):
    items = [i for t in range(0, 60) for i in second(t, rr=7 if t < 30 else 5)]
    entries = run(engine, items)
    assert [(e.event.value, e.priority.label, e.stamp.mono, e.value) for e in entries
            if e.condition == "rr-low"] == [
        ("active", "medium", 15.0, 7.0), ("active", "high", 45.0, 5.0),
    ]  # fmt: skip
    assert not started(entries) - {"rr-low"}


@pytest.mark.parametrize(
    ("etco2", "condition", "priority"),
    [(52, "etco2-high", "medium"), (63, "etco2-high", "high"), (18, "etco2-low", "medium")],
)
def test_etco2_limits_alarm_after_15_s(engine, etco2, condition, priority):
    items = [i for t in range(0, 30) for i in second(t, etco2=etco2)]
    entries = run(engine, items)
    active = [e for e in entries if e.event is LogEvent.ACTIVE and e.condition == condition]
    assert active[-1].stamp.mono == 15.0 and active[-1].priority.label == priority
    assert active[-1].code == Code.CO2_ET.value


def test_a_fast_rate_alarms_after_15_s(engine):
    entries = run(engine, [i for t in range(0, 20) for i in second(t, rr=34)])
    assert changes(entries, "rr-high") == [("active", 15.0)]


# --- apnoea --------------------------------------------------------------------------------------


def test_apnoea_alarms_after_20_s_of_no_breath_and_ends_when_breathing_resumes(engine):
    flat = np.full(20, 0.3)
    items = [i for t in range(0, 10) for i in second(t)]
    items += [i for t in range(10, 40) for i in second(t, rr=0, etco2=None, co2=flat,
                                                         flags=(Flag.NO_BREATH,))]  # fmt: skip
    items += [i for t in range(40, 50) for i in second(t)]
    entries = run(engine, items)
    assert changes(entries, APNEA) == [("active", 30.0), ("inactive", 40.0)]
    (alarm,) = [e for e in entries if e.condition == APNEA and e.event is LogEvent.ACTIVE]
    assert alarm.priority.label == "high" and alarm.kind is AlarmKind.PHYSIOLOGICAL
    assert NO_CO2 not in started(entries)  # a breathless capnogram is the patient, not the line


def test_a_rate_of_zero_is_apnoea_before_the_device_flags_it(engine):
    # A Capnostream sets its no-breath alarm only after its own no-breath period; the rate
    # reads 0 from the first missed breath, and the flat capnogram is not "no CO2 signal".
    flat = np.full(20, 0.2)
    items = [i for t in range(0, 5) for i in second(t)]
    items += [i for t in range(5, 40) for i in second(t, rr=0, etco2=None, co2=flat)]
    entries = run(engine, items)
    assert changes(entries, APNEA) == [("active", 25.0)]
    assert NO_CO2 not in started(entries)


def test_a_missing_rate_does_not_end_apnoea_and_one_breath_does(engine):
    items = [num(Code.RESP_RATE, 0.0, t) for t in range(0, 25)]
    items += [num(Code.RESP_RATE, None, t) for t in range(25, 35)]  # the value went missing
    items += [num(Code.RESP_RATE, 12.0, 35.0)]
    entries = run(engine, items)
    assert changes(entries, APNEA) == [("active", 20.0), ("inactive", 35.0)]


def test_a_missing_rate_interrupts_pending_apnoea(engine):
    items = [num(Code.RESP_RATE, 0.0, t) for t in range(0, 15)]
    items += [num(Code.RESP_RATE, None, 15.0)]
    items += [num(Code.RESP_RATE, 0.0, t) for t in range(16, 30)]
    entries = run(engine, items)
    assert changes(entries, APNEA) == []  # 14 s of evidence since the gap: not yet 20


def test_one_stream_saying_no_breath_is_enough(engine):
    # The chest impedance keeps counting cardiac oscillations as "breaths" while the airway
    # rate reads 0: any stream that says no breath holds the condition.
    items = []
    for t in range(0, 30):
        items += [num(Code.RESP_RATE, 11.0, t), num(Code.AWAY_RESP_RATE, 0.0, t + 0.1)]
    assert changes(run(engine, items), APNEA) == [("active", 20.1)]


def test_a_device_that_gives_no_breathing_values_is_never_apnoea(engine):
    items = [num(c, v, t, source=OXI) for t in range(0, 120) for c, v in
             ((Code.SPO2, 97.0), (Code.PULSE_RATE, 70.0))]  # fmt: skip
    entries = run(engine, items)
    assert started(entries) == set()


def test_an_old_profile_without_an_apnoea_rule_raises_none(kap_default):
    import dataclasses

    engine = AlarmEngine(dataclasses.replace(kap_default, apnea=None))
    entries = run(engine, [num(Code.RESP_RATE, 0.0, t) for t in range(0, 60)])
    assert APNEA not in started(entries) and "rr-low" in started(entries)


# --- the sampling line ---------------------------------------------------------------------------


def test_a_line_that_is_off_is_a_technical_alarm_and_never_apnoea(engine):
    items = [i for t in range(0, 10) for i in second(t)]
    off = np.zeros(20)
    items += [i for t in range(10, 60) for i in second(t, rr=None, etco2=None, co2=off,
                                                         flags=(Flag.SENSOR_OFF,))]  # fmt: skip
    items += [i for t in range(60, 70) for i in second(t)]
    entries = run(engine, items)
    assert changes(entries, NO_CO2) == [("active", 20.0), ("inactive", 60.0)]
    (alarm,) = [e for e in entries if e.condition == NO_CO2 and e.event is LogEvent.ACTIVE]
    assert alarm.kind is AlarmKind.TECHNICAL and alarm.priority.label == "medium"
    assert alarm.text == "No CO2 signal: sampling line off or blocked"
    # One alarm for the line, not a sensor-off per value, and nothing of the patient's.
    assert started(entries) == {NO_CO2}


def test_a_blocked_line_with_a_no_breath_flag_and_a_rate_of_0_is_not_apnoea(engine):
    # When no gas reaches the sensor the capnograph counts no breath: not the patient's.
    flags = (Flag.LINE_BLOCKED, Flag.NO_BREATH)
    items = [i for t in range(0, 60) for i in second(t, rr=0, etco2=None, co2=np.zeros(20),
                                                      flags=flags)]  # fmt: skip
    entries = run(engine, items)
    assert started(entries) == {NO_CO2}  # no apnoea, no rate low on a rate the line made 0


def test_a_flat_capnogram_while_spo2_and_pulse_read_is_no_co2_signal(engine):
    # The device says nothing (no flag, a rate still held): the flat line is the line.
    items = [i for t in range(0, 10) for i in second(t)]
    items += [i for t in range(10, 50) for i in second(t, co2=np.full(20, 0.4))]
    items += [i for t in range(50, 55) for i in second(t)]
    entries = run(engine, items)
    # Flat from 10, for 20 s at 30; then the 10-s condition delay: at 40. The first breath
    # after 50 comes at 51.4 (14 a minute), in the block from 51: it ends the condition.
    assert changes(entries, NO_CO2) == [("active", 40.0), ("inactive", 51.0)]
    alarm = next(e for e in entries if e.condition == NO_CO2)
    assert "capnogram flat for 20 s while SpO2 and pulse read" in alarm.text
    assert APNEA not in started(entries)


def test_a_flat_capnogram_without_spo2_and_pulse_is_not_called_a_line_fault(engine):
    items = [i for t in range(0, 60) for i in second(t, co2=np.full(20, 0.4), spo2=None)]
    assert NO_CO2 not in started(run(engine, items))


def test_slow_breathing_is_not_a_flat_capnogram(engine):
    # Four breaths a minute: 15 s from one to the next, flat between them.
    items = []
    for t in range(0, 120):
        items += second(t, rr=4, co2=capnogram(t, 1.0, 4, 45))
    entries = run(engine, items)
    assert NO_CO2 not in started(entries) and APNEA not in started(entries)
    assert "rr-low" in started(entries)  # 4 a minute is below the high limit of 6


def test_a_capnogram_of_invalid_samples_is_not_flat(engine):
    items = [i for t in range(0, 60) for i in second(t, co2=np.full(20, np.nan))]
    assert started(run(engine, items)) == set()


def test_impedance_leads_off_is_the_sensor_off_condition(engine):
    # A monitor without CO2: its rate is the chest's, and sensor-off there is leads off.
    items = [num(Code.RESP_RATE, None, t, (Flag.SENSOR_OFF,), "intellivue") for t in range(30)]
    entries = run(engine, items)
    assert started(entries) == {TechnicalCondition.SENSOR_OFF.value}


# --- EtCO2 rise from the pre-dose baseline -------------------------------------------------------


def dose(t: float) -> SessionEvent:
    return SessionEvent("session", SessionEventKind.DOSE, st(t), "dose")


def test_etco2_rise_from_the_pre_dose_mean_alarms_after_30_s(engine):
    items: list[Item] = [num(Code.CO2_ET, 36.0 + t % 2 * 2, t) for t in range(0, 60)]  # mean 37
    items.append(dose(60.0))
    items += [num(Code.CO2_ET, 46.0, t) for t in range(61, 100)]  # +9: not yet
    items += [num(Code.CO2_ET, 47.0, t) for t in range(100, 140)]  # +10
    items += [num(Code.CO2_ET, None, 140.0, (Flag.SENSOR_OFF,))]
    items += [num(Code.CO2_ET, 40.0, 141.0)]
    entries = run(engine, items)
    assert engine.etco2_baseline == 37.0
    baseline = [e for e in entries if e.event is LogEvent.BASELINE and e.code]
    assert baseline[0].text == "pre-dose EtCO2 baseline 37 mmHg (mean of 60 values)"
    rise = [e for e in entries if e.condition == ETCO2_RISE]
    assert [(e.event.value, e.stamp.mono, e.value, e.limit) for e in rise] == [
        ("active", 130.0, 10.0, 10.0), ("inactive", 141.0, 10.0, 10.0),
    ]  # fmt: skip


def test_without_etco2_before_the_dose_the_rise_rule_waits(engine):
    items: list[Item] = [dose(0.0)] + [num(Code.CO2_ET, 48.0, t) for t in range(1, 100)]
    entries = run(engine, items)
    assert engine.etco2_baseline is None and ETCO2_RISE not in started(entries)


def test_no_breath_values_are_left_out_of_the_baseline(engine):
    items = [num(Code.CO2_ET, 40.0, t) for t in range(0, 10)]
    items += [num(Code.CO2_ET, 0.0, t, (Flag.NO_BREATH,)) for t in range(10, 20)]
    items += [num(Code.CO2_ET, 50.0, t, (Flag.LINE_BLOCKED,)) for t in range(20, 30)]
    items.append(dose(30.0))
    run(engine, items)
    assert engine.etco2_baseline == 40.0


# --- impossible values ---------------------------------------------------------------------------

IMPOSSIBLE = hs.one_of(
    hs.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e308, 151.0, 1e308]),
    hs.floats(allow_nan=False).filter(lambda x: not 0.0 <= x <= 150.0),
)
BREATHING = [Code.RESP_RATE, Code.AWAY_RESP_RATE, Code.CO2_ET, Code.CO2_INSP_MIN, Code.CO2]


@hs.composite
def breathing_stream(draw) -> list[Item]:
    """Normal breathing with impossible values among it (any flags, no-breath too)."""
    items: list[Item] = []
    t = 0.0
    for _ in range(draw(hs.integers(1, 120))):
        t += draw(hs.floats(0.05, 3.0))
        if draw(hs.booleans()):
            items += second(t, rr=draw(hs.integers(12, 20)), etco2=draw(hs.integers(38, 42)))
        code = draw(hs.sampled_from(BREATHING))
        flags = draw(hs.sets(hs.sampled_from(list(Flag)), max_size=3))
        if draw(hs.booleans()):  # a value flagged out-of-range is impossible whatever it reads
            flags.add(Flag.OUT_OF_RANGE)
            value = draw(hs.floats(0.0, 150.0))
        else:
            value = draw(IMPOSSIBLE)
        if code is Code.CO2:
            samples = capnogram(t, 0.5, 14, 38)
            samples[draw(hs.integers(0, 9))] = value if not math.isnan(value) else math.inf
            if draw(hs.booleans()):
                samples[:] = math.nan  # invalid samples only: no evidence
            items.append(wave(t, samples, flags))
        else:
            items.append(num(code, value, t, flags))
        if draw(hs.integers(0, 40)) == 0:
            items.append(dose(t))
    return items


@settings(max_examples=120, deadline=None)
@given(breathing_stream())
def test_an_impossible_breathing_value_never_raises_a_breathing_alarm(items):
    engine = AlarmEngine(load_profile())
    for item in items:
        engine.process(item)
    engine.tick(items[-1].stamp.shifted(120))
    for entry in engine.log:
        assert entry.value is None or math.isfinite(entry.value), entry
        if entry.event is LogEvent.ACTIVE:
            assert entry.condition not in BREATHING_ALARMS, entry


# --- the simulator's scenarios, in process -------------------------------------------------------


@functools.cache
def scenario_log(scenario: str, seed: int, minutes: float) -> tuple[list[LogEntry], float]:
    """A simulated session's first ``minutes`` through the engine (the pleth left out: it never
    alarms); the log, and the dose's time."""
    items: list[Item] = []
    driver = SimDriver(
        DeviceSpec.parse(f"sim:{scenario}"),
        lambda i: (
            None if isinstance(i, WaveformBlock) and i.code is Code.PLETH else items.append(i)
        ),
        playback=PlaybackSettings(speed=1e9, seed=seed, until=minutes * 60),
    )
    driver.open()
    driver.start()
    assert driver.join(timeout=120)
    engine = AlarmEngine(load_profile())
    for item in items:
        engine.process(item)
    assert engine.dose is not None
    return engine.log, engine.dose.mono


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_respiratory_depression_alarms_on_breathing_minutes_before_the_spo2(seed):
    log, _ = scenario_log("respiratory-depression", seed, 40)
    active = [e for e in log if e.event is LogEvent.ACTIVE]
    breathing = min(e.stamp.mono for e in active if e.condition in BREATHING_ALARMS)
    spo2 = min(e.stamp.mono for e in active if e.code == Code.SPO2.value)
    assert spo2 - breathing >= 120.0, (breathing, spo2)


@pytest.mark.parametrize("seed", [1, 2])
def test_sampling_line_off_is_the_technical_alarm_alone(seed):
    log, dose_mono = scenario_log("sampling-line-off", seed, 30)
    active = [e for e in log if e.event is LogEvent.ACTIVE]
    line = [e for e in active if e.condition == NO_CO2]
    assert len(line) == 1  # large monotonic readings subtract to a few ulps off a whole second:
    assert line[0].stamp.mono - dose_mono == pytest.approx(15 * 60 + 10, abs=1e-6)  # its delay
    assert not {e.condition for e in active} & BREATHING_ALARMS
    assert TechnicalCondition.SENSOR_OFF.value not in {e.condition for e in active}


@pytest.mark.parametrize("seed", [1, 2])
def test_apnoea_of_30_s_alarms_after_20_s_and_ends_with_the_next_breath(seed):
    log, dose_mono = scenario_log("apnea", seed, 32)
    times = [(e.event.value, e.stamp.mono - dose_mono) for e in log if e.condition == APNEA
             and e.event in (LogEvent.ACTIVE, LogEvent.INACTIVE)]  # fmt: skip
    start = 20 * 60  # the apnoea: 20 min after the dose, 30 s
    assert [k for k, _ in times] == ["active", "inactive"]
    assert [t for _, t in times] == pytest.approx([start + 20, start + 30], abs=1e-6)
    assert NO_CO2 not in {e.condition for e in log}


# --- from the wire: every protocol that carries breathing ----------------------------------------


def wire_log(protocol: str, scenario: str, t0: int, t1: int) -> list[LogEntry]:
    """Session seconds ``t0``..``t1`` of the protocol's emulator on the scenario, decoded by its
    parser (each second's bytes stamped on arrival) and judged by the engine."""
    cls = get_driver_class(protocol)
    driver = cls(DeviceSpec.parse(f"{protocol}@loop://"), lambda item: None)
    emulator = cls.emulator_class(KapSession(load_scenario(scenario), seed=5))
    parser = cls.parser_class(protocol)
    engine = AlarmEngine(load_profile())
    host = driver.greeting()
    for second in range(t0, t1):
        if driver.keep_alive_interval is not None:
            host += driver.keep_alive()
        sent = emulator.on_host_bytes(host, float(second)) if host else b""
        sent += emulator.emit(float(second), second + 1.0)
        driver.parser.feed(sent, st(second + 1.0))  # the driver's side of the session
        host = driver.reply()
        for item in parser.feed(sent, st(second + 1.0)):
            engine.process(item)
    return engine.log


WIRE = ["capnostream", "ge-s5", "intellivue"]


@pytest.mark.parametrize("protocol", WIRE)
def test_apnoea_from_the_wire(protocol):
    # The apnoea: 1800 to 1830 s of the session (20 min after the dose at 10).
    log = wire_log(protocol, "apnea", 1750, 1880)
    times = changes(log, APNEA)
    assert [s for s, _ in times] == ["active", "inactive"]
    assert 1820 <= times[0][1] <= 1821.5 and 1830 <= times[1][1] <= 1831.5, times
    # Not the line, and no "poor signal" for an end tide that is missing for want of a breath.
    assert started(log) <= {APNEA, "rr-low"}


@pytest.mark.parametrize("protocol", WIRE)
def test_sampling_line_off_from_the_wire(protocol):
    # The line is off from 1500 to 1620 s: each device says so its own way (Capnostream and
    # S/5: line flags; IntelliVue: its CO2 values invalid).
    log = wire_log(protocol, "sampling-line-off", 1450, 1680)
    times = changes(log, NO_CO2)
    assert [s for s, _ in times] == ["active", "inactive"]
    assert 1510 <= times[0][1] <= 1511.5 and 1620 <= times[1][1] <= 1622, times
    assert started(log) == {NO_CO2}
