"""The alarm engine under the kap-default profile: conditions, delays, hysteresis, latching,
acknowledgment, audio pause, technical conditions, the baseline rule and the log.

The engine never reads a clock: every test drives it with item stamps (``Stamp(t, t)``), so no
test sleeps.
"""

from __future__ import annotations

import re

import pytest

from alarms.engine import SESSION, AlarmEngine
from alarms.model import AlarmKind, AlarmState, LogEntry, LogEvent, Priority, TechnicalCondition
from alarms.profile import Profile, ProfileError, load_profile, parse_profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)

HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW
OX = "ox"  # an oximeter
CUFF = "cuff"  # an NIBP monitor
EPS = 0.01


# --- helpers ----------------------------------------------------------------------------------


def st(t: float) -> Stamp:
    return Stamp(t, t)


def num(code: Code, value: float | None, t: float, source: str = OX, flags=()) -> Numeric:
    return Numeric(source, code, value, st(t), frozenset(flags))


def bp(
    sys_: float | None,
    dia: float | None,
    t: float,
    source: str = CUFF,
    mean: float | None = None,
    flags=(),
) -> NibpReading:
    return NibpReading(source, sys_, dia, mean, st(t), frozenset(flags))


def dose(t: float, source: str = "sim") -> SessionEvent:
    return SessionEvent(source, SessionEventKind.DOSE, st(t))


def device(state: ConnectionState, t: float, source: str = OX, detail: str = "") -> DeviceEvent:
    return DeviceEvent(source, state, st(t), detail)


@pytest.fixture(scope="module")
def kap_default() -> Profile:
    return load_profile("kap-default")


@pytest.fixture
def engine(kap_default: Profile) -> AlarmEngine:
    return AlarmEngine(kap_default)


def feed(engine: AlarmEngine, *items: Item) -> list[LogEntry]:
    out: list[LogEntry] = []
    for item in items:
        out += engine.process(item)
    return out


def hold(
    engine: AlarmEngine,
    code: Code,
    value: float | None,
    start: float,
    end: float,
    step: float = 1.0,
    source: str = OX,
    flags=(),
) -> list[LogEntry]:
    """``value`` every ``step`` seconds from ``start`` to ``end`` inclusive."""
    out: list[LogEntry] = []
    n = round((end - start) / step)
    for k in range(n + 1):
        out += engine.process(num(code, value, start + k * step, source, flags))
    return out


def events(entries: list[LogEntry], event: LogEvent, condition: str | None = None) -> list:
    return [e for e in entries if e.event is event and condition in (None, e.condition)]


def started(entries: list[LogEntry], condition: str, priority: Priority | None = None) -> list:
    return [
        e
        for e in events(entries, LogEvent.ACTIVE, condition)
        if priority is None or e.priority is priority
    ]


def shown(engine: AlarmEngine) -> list[tuple[str, Priority, str]]:
    return [(a.condition, a.priority, a.source) for a in engine.alarms()]


def profile_text() -> str:
    from importlib import resources

    return (resources.files("alarms") / "profiles" / "kap-default.toml").read_text()


def variant(old: str, new: str) -> Profile:
    text = profile_text()
    assert old in text, old
    return parse_profile(text.replace(old, new, 1), "variant.toml")


# --- the physiological limits of kap-default -----------------------------------------------------

# rule id, codes, direction, {priority: limit}, hysteresis, delay: as the issue specifies them.
LIMITS = [
    ("spo2-low", (Code.SPO2,), "low", {MEDIUM: 90, HIGH: 85}, 1, 10),
    ("pulse-low", (Code.PULSE_RATE, Code.HEART_RATE), "low", {MEDIUM: 50, HIGH: 40}, 2, 5),
    ("pulse-high", (Code.PULSE_RATE, Code.HEART_RATE), "high", {MEDIUM: 120, HIGH: 140}, 2, 5),
    ("nibp-sys-high", (Code.NIBP_SYS,), "high", {MEDIUM: 160, HIGH: 180}, 0, 0),
    ("nibp-sys-low", (Code.NIBP_SYS,), "low", {MEDIUM: 90, HIGH: 80}, 0, 0),
    ("nibp-dia-high", (Code.NIBP_DIA,), "high", {MEDIUM: 100, HIGH: 110}, 0, 0),
]


@pytest.mark.parametrize(
    ("rule_id", "codes", "direction", "levels", "hysteresis", "delay"),
    LIMITS,
    ids=[row[0] for row in LIMITS],
)
def test_kap_default_limits_are_the_issues(
    kap_default, rule_id, codes, direction, levels, hysteresis, delay
):
    rule = kap_default.limit_rule(rule_id)
    assert set(rule.codes) == set(codes)
    assert rule.direction == direction
    assert dict(rule.levels) == levels
    assert rule.hysteresis == hysteresis
    assert rule.delay_s == delay


def _apply(engine: AlarmEngine, rule_id: str, code: Code, value: float, t: float) -> list:
    """One observation of ``value`` for ``code`` at ``t``, with the other NIBP part normal."""
    if code is Code.NIBP_SYS:
        return engine.process(bp(value, 70, t))
    if code is Code.NIBP_DIA:
        return engine.process(bp(130, value, t))
    return engine.process(num(code, value, t))


BOUNDARY_CASES = [
    pytest.param(rule_id, code, direction, prio, limit, delay, where, id=f"{code.name}-{rule_id}-"
                 f"{prio.label}-{where}")
    for rule_id, codes, direction, levels, _, delay in LIMITS
    for code in codes
    for prio, limit in levels.items()
    for where in ("at", "inside", "outside", "inside-0.5", "outside-0.5")
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "code", "direction", "priority", "limit", "delay", "where"), BOUNDARY_CASES
)
def test_limit_at_just_inside_and_just_outside(
    engine, rule_id, code, direction, priority, limit, delay, where
):
    outward = -1 if direction == "low" else 1
    step = 0.5 if where.endswith("0.5") else 1
    value = {"at": limit, "inside": limit - outward * step, "outside": limit + outward * step}[
        where.split("-")[0]
    ]
    entries = _apply(engine, rule_id, code, value, 0.0)
    entries += _apply(engine, rule_id, code, value, float(delay))
    entries += engine.tick(st(delay + 30.0))
    hits = started(entries, rule_id, priority)
    if where.startswith("outside"):
        assert len(hits) == 1, entries
        hit = hits[0]
        assert hit.stamp.mono == delay  # NIBP: at once; the others: after their delay
        assert (hit.value, hit.limit, hit.kind) == (value, limit, AlarmKind.PHYSIOLOGICAL)
        assert hit.source == (CUFF if code.name.startswith("NIBP") else OX)
        assert hit.code == code.value
        top = engine.alarms()[0]
        assert (top.condition, top.priority, top.state) == (rule_id, priority, AlarmState.ACTIVE)
    else:
        assert hits == []


@pytest.mark.parametrize(
    ("code", "value", "expect"),
    [
        (Code.SPO2, 84, [("spo2-low", HIGH)]),
        (Code.SPO2, 87, [("spo2-low", MEDIUM)]),
        (Code.PULSE_RATE, 39, [("pulse-low", HIGH)]),
        (Code.HEART_RATE, 45, [("pulse-low", MEDIUM)]),
        (Code.PULSE_RATE, 141, [("pulse-high", HIGH)]),
        (Code.HEART_RATE, 130, [("pulse-high", MEDIUM)]),
    ],
)
def test_each_limit_on_one_device_shows_as_one_alarm_at_its_most_urgent_level(
    engine, code, value, expect
):
    hold(engine, code, value, 0, 10)
    assert [(a.condition, a.priority) for a in engine.alarms()] == expect


# --- condition delays ---------------------------------------------------------------------------

DELAYED = [
    ("spo2-low", Code.SPO2, 88, 97, 10),
    ("pulse-low", Code.PULSE_RATE, 45, 70, 5),
    ("pulse-low", Code.HEART_RATE, 45, 70, 5),
    ("pulse-high", Code.PULSE_RATE, 130, 80, 5),
    ("pulse-high", Code.HEART_RATE, 130, 80, 5),
]


@pytest.mark.parametrize(("rule_id", "code", "bad", "good", "delay"), DELAYED)
def test_a_condition_that_clears_before_its_delay_never_alarms(
    engine, rule_id, code, bad, good, delay
):
    entries = hold(engine, code, bad, 0, delay - 1)
    entries += feed(engine, num(code, bad, delay - 2 * EPS), num(code, good, delay - EPS))
    entries += hold(engine, code, good, delay, delay + 600)  # a device that goes on measuring
    assert entries == []
    assert engine.alarms() == []


@pytest.mark.parametrize(("rule_id", "code", "bad", "good", "delay"), DELAYED)
def test_a_condition_that_lasts_exactly_its_delay_alarms(engine, rule_id, code, bad, good, delay):
    assert feed(engine, num(code, bad, 0.0), num(code, bad, delay - EPS)) == []
    entries = feed(engine, num(code, bad, float(delay)))
    assert [(e.event, e.condition, e.stamp.mono) for e in entries] == [
        (LogEvent.ACTIVE, rule_id, delay)
    ]
    alarm = engine.alarms()[0]
    assert (alarm.delay_s, alarm.started.mono) == (delay, delay)


@pytest.mark.parametrize(("rule_id", "code", "bad", "good", "delay"), DELAYED)
def test_tick_advances_a_pending_condition(engine, rule_id, code, bad, good, delay):
    assert engine.process(num(code, bad, 100.0)) == []
    assert engine.tick(st(100 + delay - EPS)) == []
    entries = engine.tick(st(100.0 + delay))
    # (After 10 s of this silence the device is also "no-data": tested with the silence.)
    assert [(e.event, e.condition, e.value) for e in entries if e.condition != "no-data"] == [
        (LogEvent.ACTIVE, rule_id, bad)
    ]
    assert rule_id in [a.condition for a in engine.alarms()]


def test_delay_restarts_after_the_value_came_back(engine):
    hold(engine, Code.SPO2, 88, 0, 8)
    engine.process(num(Code.SPO2, 95, 9))
    assert hold(engine, Code.SPO2, 88, 10, 19) == []  # pending again from 10
    assert started(engine.process(num(Code.SPO2, 88, 20)), "spo2-low")


def test_nibp_alarms_on_one_reading(engine):
    entries = engine.process(bp(185, 80, 0.0))
    assert {(e.condition, e.priority) for e in events(entries, LogEvent.ACTIVE)} == {
        ("nibp-sys-high", MEDIUM),
        ("nibp-sys-high", HIGH),
    }
    assert shown(engine) == [("nibp-sys-high", HIGH, CUFF)]
    # The next reading decides: back inside ends it (no hysteresis for NIBP).
    entries = engine.process(bp(150, 80, 300.0))
    assert {(e.condition, e.priority) for e in events(entries, LogEvent.INACTIVE)} == {
        ("nibp-sys-high", MEDIUM),
        ("nibp-sys-high", HIGH),
    }


# --- hysteresis ---------------------------------------------------------------------------------

HYSTERESIS = [
    # code, the value that starts it, values that keep it, the value that ends it, priority
    ("spo2-low", Code.SPO2, 89, [90], 91, MEDIUM),
    ("spo2-low", Code.SPO2, 84, [85], 86, HIGH),
    ("pulse-low", Code.PULSE_RATE, 49, [50, 51], 52, MEDIUM),
    ("pulse-low", Code.HEART_RATE, 39, [40, 41], 42, HIGH),
    ("pulse-high", Code.PULSE_RATE, 121, [120, 119], 118, MEDIUM),
    ("pulse-high", Code.HEART_RATE, 141, [140, 139], 138, HIGH),
    ("nibp-sys-high", Code.NIBP_SYS, 161, [], 160, MEDIUM),
    ("nibp-sys-low", Code.NIBP_SYS, 89, [], 90, MEDIUM),
    ("nibp-dia-high", Code.NIBP_DIA, 111, [], 110, HIGH),
]


@pytest.mark.parametrize(("rule_id", "code", "start", "keep", "end", "priority"), HYSTERESIS)
def test_hysteresis(engine, kap_default, rule_id, code, start, keep, end, priority):
    delay = kap_default.limit_rule(rule_id).delay_s
    t = 0.0
    entries = _apply(engine, rule_id, code, start, t)
    entries += _apply(engine, rule_id, code, start, t + delay)
    assert started(entries, rule_id, priority)
    for value in keep:
        t += 60
        entries = _apply(engine, rule_id, code, value, t)
        assert events(entries, LogEvent.INACTIVE, rule_id) == [], value
        assert any(a.condition == rule_id and a.priority == priority for a in engine.alarms())
    t += 60
    entries = _apply(engine, rule_id, code, end, t)
    ended = [e for e in events(entries, LogEvent.INACTIVE, rule_id) if e.priority == priority]
    assert len(ended) == 1
    assert ended[0].stamp.mono == t


# --- priorities and order -----------------------------------------------------------------------


def test_alarms_are_ordered_most_urgent_first_then_oldest(engine):
    feed(engine, bp(None, None, 0.0, flags={Flag.MEASUREMENT_FAILED}))  # low, technical, t=0
    feed(engine, device(ConnectionState.NO_DATA, 1.0, source="ecg"))  # medium, t=1
    hold(engine, Code.PULSE_RATE, 130, 2, 7)  # medium pulse-high at t=7
    hold(engine, Code.SPO2, 84, 5, 15)  # high spo2-low at t=15
    feed(engine, bp(200, 80, 16.0, source="cuff2"))  # high nibp-sys-high at t=16
    assert [(a.condition, a.priority) for a in engine.alarms()] == [
        ("spo2-low", HIGH),
        ("nibp-sys-high", HIGH),
        ("no-data", MEDIUM),
        ("pulse-high", MEDIUM),
        ("nibp-failed", LOW),
    ]
    assert engine.audio().priority is HIGH


# --- latching and acknowledgment ----------------------------------------------------------------


def _spo2_high_then_recover(engine: AlarmEngine) -> None:
    hold(engine, Code.SPO2, 84, 0, 10)
    engine.process(num(Code.SPO2, 97, 20))


def test_a_high_priority_physiological_alarm_latches_until_acknowledged(engine):
    _spo2_high_then_recover(engine)
    (alarm,) = engine.alarms()
    assert (alarm.condition, alarm.priority, alarm.state) == ("spo2-low", HIGH, AlarmState.LATCHED)
    assert engine.audio().priority is HIGH  # still sounding
    hold(engine, Code.SPO2, 97, 21, 600, step=10)
    assert engine.alarms()[0].state is AlarmState.LATCHED  # no time limit on a latch
    entries = engine.acknowledge(alarm.id, "nurse-j", st(601))
    (ack,) = entries
    assert (ack.event, ack.operator, ack.stamp.mono, ack.condition, ack.priority) == (
        LogEvent.ACKNOWLEDGED,
        "nurse-j",
        601,
        "spo2-low",
        HIGH,
    )
    assert engine.alarms() == []
    assert engine.audio().priority is None


@pytest.mark.parametrize(
    ("code", "bad", "good", "rule_id"),
    [
        (Code.SPO2, 88, 97, "spo2-low"),
        (Code.PULSE_RATE, 45, 70, "pulse-low"),
        (Code.PULSE_RATE, 130, 70, "pulse-high"),
    ],
)
def test_medium_alarms_do_not_latch_in_kap_default(engine, code, bad, good, rule_id):
    hold(engine, code, bad, 0, 10)
    assert shown(engine) == [(rule_id, MEDIUM, OX)]
    engine.process(num(code, good, 11))
    assert engine.alarms() == []
    assert engine.audio().priority is None


def test_technical_alarms_do_not_latch(engine):
    feed(engine, device(ConnectionState.DISCONNECTED, 0), device(ConnectionState.CONNECTED, 5))
    assert engine.alarms() == []


def test_a_profile_where_medium_latches_too():
    profile = variant(
        "latching = { high = true, medium = false, low = false }",
        "latching = { high = true, medium = true, low = false }",
    )
    assert profile.latching == {HIGH: True, MEDIUM: True, LOW: False}
    engine = AlarmEngine(profile)
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.process(num(Code.SPO2, 97, 11))
    (alarm,) = engine.alarms()
    assert (alarm.priority, alarm.state) == (MEDIUM, AlarmState.LATCHED)
    assert engine.audio().priority is MEDIUM
    engine.acknowledge(alarm.id, "nurse", st(12))
    assert engine.alarms() == []


def test_a_profile_where_high_does_not_latch():
    profile = variant("latching = { high = true,", "latching = { high = false,")
    engine = AlarmEngine(profile)
    _spo2_high_then_recover(engine)
    assert engine.alarms() == []


def test_acknowledging_silences_but_the_visual_stays_while_the_condition_lasts(engine):
    hold(engine, Code.SPO2, 84, 0, 10)
    (alarm,) = engine.alarms()
    assert engine.audio().priority is HIGH
    engine.acknowledge(alarm.id, "nurse-j", st(12))
    (after,) = engine.alarms()
    assert (after.id, after.state, after.acknowledged) == (alarm.id, AlarmState.ACTIVE, True)
    assert engine.audio().priority is None
    hold(engine, Code.SPO2, 84, 13, 300, step=10)
    assert engine.alarms()[0].acknowledged and engine.audio().priority is None
    # Acknowledged, the high alarm does not latch: it goes when its condition ends.
    engine.process(num(Code.SPO2, 97, 301))
    assert engine.alarms() == []


def test_acknowledging_one_alarm_leaves_the_others_sounding(engine):
    hold(engine, Code.SPO2, 84, 0, 10)
    hold(engine, Code.PULSE_RATE, 150, 5, 10, source="ecg")
    spo2, pulse = engine.alarms()
    engine.acknowledge(spo2.id, "nurse", st(11))
    assert engine.audio().priority is HIGH
    engine.acknowledge(pulse.id, "nurse", st(12))
    assert engine.audio().priority is None
    assert len(engine.alarms()) == 2


def test_an_acknowledged_condition_that_comes_back_sounds_again(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.acknowledge(engine.alarms()[0].id, "nurse", st(11))
    engine.process(num(Code.SPO2, 97, 12))
    hold(engine, Code.SPO2, 88, 20, 30)
    (alarm,) = engine.alarms()
    assert not alarm.acknowledged and engine.audio().priority is MEDIUM


def test_acknowledging_nothing_is_refused(engine):
    with pytest.raises(KeyError):
        engine.acknowledge("spo2-low/high@ox", "nurse", st(1))
    assert engine.log == []


# --- audio pause --------------------------------------------------------------------------------


def test_audio_pause_counts_down_keeps_the_visual_and_ends_by_itself(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    before = engine.alarms()
    (paused,) = engine.pause_audio("nurse-j", st(10))
    assert (paused.event, paused.operator, paused.stamp.mono) == (
        LogEvent.AUDIO_PAUSED,
        "nurse-j",
        10,
    )
    assert "120" in paused.text
    audio = engine.audio()
    assert (audio.priority, audio.paused_for) == (None, 120)
    hold(engine, Code.SPO2, 88, 11, 40)
    assert engine.audio().paused_for == pytest.approx(90)
    assert engine.alarms() == before  # the visual signal stays
    hold(engine, Code.SPO2, 88, 41, 129)
    assert engine.tick(st(130 - EPS)) == []
    assert engine.audio().paused_for == pytest.approx(EPS)
    (resumed,) = engine.tick(st(130))
    assert (resumed.event, resumed.stamp.mono) == (LogEvent.AUDIO_RESUMED, 130)
    assert engine.tick(st(131)) == []  # it resumed once
    assert engine.audio() == engine.audio().__class__(MEDIUM, 0.0)


@pytest.mark.parametrize("pause_s", [60, 90, 120, 180])
def test_the_pause_lasts_the_profiles_pause_never_longer(pause_s):
    profile = variant("audio_pause_s = 120", f"audio_pause_s = {pause_s}")
    engine = AlarmEngine(profile)
    hold(engine, Code.SPO2, 84, 0, 10)
    engine.pause_audio("nurse", st(10))
    assert engine.audio().paused_for == pause_s
    engine.tick(st(10 + pause_s - EPS))
    assert engine.audio().priority is None
    entries = engine.tick(st(10 + pause_s))
    assert events(entries, LogEvent.AUDIO_RESUMED)
    assert engine.audio().priority is HIGH
    # Nothing else ends it, and nothing makes it permanent.
    assert engine.audio().paused_for == 0


def test_a_new_condition_of_higher_priority_sounds_at_once_during_a_pause(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.pause_audio("nurse", st(10))
    # A new medium one waits with the paused medium one ...
    hold(engine, Code.PULSE_RATE, 130, 11, 16)
    assert ("pulse-high", MEDIUM, OX) in shown(engine)
    assert engine.audio().priority is None
    # ... a high one sounds at once.
    feed(engine, bp(190, 80, 20))
    audio = engine.audio()
    assert audio.priority is HIGH and audio.paused_for == pytest.approx(110)


@pytest.mark.parametrize(
    ("items", "sounds"),
    [
        ([bp(None, None, 5, flags={Flag.MEASUREMENT_FAILED})], None),  # low waits
        ([device(ConnectionState.DISCONNECTED, 5)], MEDIUM),
        ([bp(170, 80, 5)], MEDIUM),
        ([bp(190, 80, 5)], HIGH),
    ],
)
def test_a_pause_ahead_of_any_alarm_holds_back_only_low_priority(engine, items, sounds):
    engine.pause_audio("nurse", st(0))
    feed(engine, *items)
    assert engine.alarms()
    assert engine.audio().priority is sounds


def test_pausing_again_restarts_the_pause_but_it_still_ends(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.pause_audio("a", st(10))
    engine.pause_audio("b", st(100))
    assert engine.audio().paused_for == 120
    engine.tick(st(220))
    assert engine.audio().priority is MEDIUM
    assert [e.operator for e in events(engine.log, LogEvent.AUDIO_PAUSED)] == ["a", "b"]


# --- the log ------------------------------------------------------------------------------------


def test_the_log_has_start_and_end_with_priority_value_and_limit(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.process(num(Code.SPO2, 87.5, 11))
    engine.process(num(Code.SPO2, 92, 12))
    start, end = (e for e in engine.log if e.condition == "spo2-low")
    for entry, event, t in ((start, LogEvent.ACTIVE, 10), (end, LogEvent.INACTIVE, 12)):
        assert entry.event is event and entry.stamp == st(t)
        assert (entry.priority, entry.kind, entry.source, entry.code) == (
            MEDIUM,
            AlarmKind.PHYSIOLOGICAL,
            OX,
            Code.SPO2.value,
        )
        assert (entry.value, entry.limit) == (88, 90)  # the triggering value, the limit in force
        assert entry.text == "SpO2 low"


def test_the_log_keeps_the_whole_session_in_order(engine):
    hold(engine, Code.SPO2, 88, 0, 10)
    engine.pause_audio("nurse-a", st(11))
    engine.acknowledge(engine.alarms()[0].id, "nurse-b", st(12))
    hold(engine, Code.SPO2, 97, 13, 130)
    engine.tick(st(131))
    assert [(e.event, e.operator, e.stamp.mono) for e in engine.log] == [
        (LogEvent.ACTIVE, None, 10),
        (LogEvent.AUDIO_PAUSED, "nurse-a", 11),
        (LogEvent.ACKNOWLEDGED, "nurse-b", 12),
        (LogEvent.INACTIVE, None, 13),
        (LogEvent.AUDIO_RESUMED, None, 131),
    ]


# --- limits changed during a session ------------------------------------------------------------


def test_a_limit_change_is_logged_and_applies(engine):
    assert hold(engine, Code.SPO2, 97, 0, 4) == []  # the conditions exist before the change
    (entry,) = engine.set_limit("spo2-low", MEDIUM, 92, "dr-k", st(5))
    assert (entry.event, entry.operator, entry.stamp.mono) == (LogEvent.LIMIT_CHANGED, "dr-k", 5)
    assert (entry.condition, entry.priority, entry.limit) == ("spo2-low", MEDIUM, 92)
    assert "from 90 to 92" in entry.text
    assert dict(engine.profile.limit_rule("spo2-low").levels)[MEDIUM] == 92
    entries = hold(engine, Code.SPO2, 91, 10, 20)
    (hit,) = started(entries, "spo2-low")
    assert (hit.value, hit.limit) == (91, 92)


def test_a_limit_made_wider_applies_to_new_values(engine):
    engine.set_limit("pulse-high", MEDIUM, 130, "dr-k", st(0))
    assert hold(engine, Code.PULSE_RATE, 125, 1, 20) == []


def test_a_limit_change_applies_to_an_alarm_already_active(engine):
    hold(engine, Code.SPO2, 89, 0, 10)
    # 89 is inside 88 by the hysteresis (1): the change ends the alarm at once, judged on the
    # latest value, without waiting for the next one.
    entries = engine.set_limit("spo2-low", MEDIUM, 88, "dr-k", st(11))
    assert events(entries, LogEvent.INACTIVE, "spo2-low")
    assert engine.alarms() == []
    assert not events(engine.process(num(Code.SPO2, 89, 12)), LogEvent.ACTIVE, "spo2-low")


@pytest.mark.parametrize(
    ("rule_id", "priority", "limit"),
    [
        ("spo2-low", MEDIUM, 84),  # below the high limit 85
        ("spo2-low", HIGH, 90),  # equal to the medium limit
        ("pulse-high", HIGH, 110),  # below the medium limit 120
        ("nibp-sys-high", LOW, 150),  # no low level
        ("no-such-rule", MEDIUM, 1),
    ],
)
def test_a_limit_change_that_breaks_the_profile_is_refused(engine, rule_id, priority, limit):
    before = engine.profile
    with pytest.raises(ProfileError) as info:
        engine.set_limit(rule_id, priority, limit, "dr-k", st(1))
    assert rule_id in str(info.value) and "\n" not in str(info.value)
    assert engine.profile is before
    assert engine.log == []


# --- technical conditions -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [Code.SPO2, Code.PULSE_RATE, Code.PERFUSION])
def test_sensor_off_alarms_after_10_s(engine, code):
    off = {Flag.SENSOR_OFF}
    assert hold(engine, code, None, 0, 9.5, step=0.5, flags=off) == []
    entries = engine.process(num(code, None, 10, flags=off))
    (hit,) = events(entries, LogEvent.ACTIVE)
    assert (hit.condition, hit.priority, hit.kind, hit.source) == (
        "sensor-off",
        MEDIUM,
        AlarmKind.TECHNICAL,
        OX,
    )
    entries = engine.process(num(code, 97, 11))
    assert events(entries, LogEvent.INACTIVE, "sensor-off")
    assert engine.alarms() == []


def test_sensor_off_for_less_than_10_s_never_alarms(engine):
    hold(engine, Code.SPO2, None, 0, 9, flags={Flag.SENSOR_OFF})
    hold(engine, Code.SPO2, 97, 9.9, 60.9)
    assert engine.log == []


@pytest.mark.parametrize(
    "flag", [Flag.SEARCHING, Flag.ARTIFACT, Flag.QUESTIONABLE, Flag.LOW_PERFUSION]
)
def test_signal_quality_flags_give_the_signal_quality_alarm(engine, flag):
    assert hold(engine, Code.SPO2, 97, 0, 9, flags={flag}) == []
    assert engine.tick(st(10 - EPS)) == []
    (hit,) = engine.tick(st(10))
    assert (hit.event, hit.condition, hit.priority, hit.kind) == (
        LogEvent.ACTIVE,
        "signal-quality",
        LOW,
        AlarmKind.TECHNICAL,
    )
    engine.process(num(Code.SPO2, 97, 11))
    assert engine.alarms() == []


def test_sensor_off_wins_over_signal_quality(engine):
    hold(engine, Code.SPO2, None, 0, 20, flags={Flag.SENSOR_OFF, Flag.SEARCHING})
    assert [a.condition for a in engine.alarms()] == ["sensor-off"]


@pytest.mark.parametrize("flag", [Flag.OUT_OF_RANGE])
def test_other_flags_are_not_a_technical_alarm(engine, flag):
    hold(engine, Code.SPO2, 97, 0, 30, flags={flag})
    assert engine.alarms() == []


@pytest.mark.parametrize(
    ("state", "condition"),
    [
        (ConnectionState.NO_DATA, "no-data"),
        (ConnectionState.DISCONNECTED, "disconnected"),
        (ConnectionState.RECONNECTING, "disconnected"),
    ],
)
def test_device_states_give_technical_alarms_until_connected(engine, state, condition):
    entries = engine.process(device(state, 5, detail="port vanished"))
    (hit,) = events(entries, LogEvent.ACTIVE)
    assert (hit.condition, hit.priority, hit.kind, hit.source, hit.stamp.mono) == (
        condition,
        MEDIUM,
        AlarmKind.TECHNICAL,
        OX,
        5,
    )
    assert engine.alarms()[0].message.endswith(": port vanished")
    entries = engine.process(device(ConnectionState.CONNECTED, 9))
    assert [(e.event, e.condition, e.stamp.mono) for e in entries] == [
        (LogEvent.INACTIVE, condition, 9)
    ]
    assert engine.alarms() == []


def test_disconnected_then_reconnecting_is_one_alarm(engine):
    entries = feed(
        engine,
        device(ConnectionState.CONNECTED, 0),
        device(ConnectionState.DISCONNECTED, 5),
        device(ConnectionState.RECONNECTING, 5),
        device(ConnectionState.RECONNECTING, 35),
    )
    assert [(e.event, e.condition) for e in entries] == [(LogEvent.ACTIVE, "disconnected")]
    entries = engine.process(device(ConnectionState.CONNECTED, 40))
    assert [(e.event, e.condition) for e in entries] == [(LogEvent.INACTIVE, "disconnected")]


def test_no_data_then_disconnected_swaps_the_alarm(engine):
    feed(engine, device(ConnectionState.NO_DATA, 0))
    feed(engine, device(ConnectionState.DISCONNECTED, 5))
    assert [a.condition for a in engine.alarms()] == ["disconnected"]


@pytest.mark.parametrize(
    "reading",
    [
        bp(None, None, 5, flags={Flag.MEASUREMENT_FAILED}),
        bp(120, 80, 5, flags={Flag.MEASUREMENT_FAILED}),  # values with the flag: not trusted
        bp(None, None, 5),  # no systolic: nothing was measured
    ],
)
def test_a_failed_nibp_measurement(engine, reading):
    entries = engine.process(reading)
    assert [(e.event, e.condition, e.priority, e.kind, e.source) for e in entries] == [
        (LogEvent.ACTIVE, "nibp-failed", LOW, AlarmKind.TECHNICAL, CUFF)
    ]
    entries = engine.process(bp(120, 80, 65))
    assert [(e.event, e.condition) for e in entries] == [(LogEvent.INACTIVE, "nibp-failed")]


def test_recording_failing_comes_from_outside_the_engine(engine):
    entries = engine.set_technical(
        TechnicalCondition.RECORDING_FAILING, SESSION, True, st(3), "disk full"
    )
    (hit,) = entries
    assert (hit.event, hit.condition, hit.priority, hit.kind, hit.source) == (
        LogEvent.ACTIVE,
        "recording-failing",
        MEDIUM,
        AlarmKind.TECHNICAL,
        SESSION,
    )
    assert engine.alarms()[0].message == "Recording is failing: disk full"
    assert engine.audio().priority is MEDIUM
    entries = engine.set_technical(TechnicalCondition.RECORDING_FAILING, SESSION, False, st(8))
    assert [(e.event, e.stamp.mono) for e in entries] == [(LogEvent.INACTIVE, 8)]
    assert engine.alarms() == []


# --- NIBP overdue -------------------------------------------------------------------------------

T0 = 1000.0  # the dose, in engine seconds
GRACE = 120.0
SCHEDULE = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 75, 90, 105]


def _on_schedule_until(engine: AlarmEngine, minute: float) -> None:
    """Dose at T0, then every scheduled reading on time before ``minute``."""
    assert engine.process(dose(T0)) == [e for e in engine.log if e.event is LogEvent.BASELINE]
    for m in SCHEDULE:
        if m >= minute:
            break
        assert engine.tick(st(T0 + m * 60 - 1)) == []
        assert engine.process(bp(120, 80, T0 + m * 60)) == []


@pytest.mark.parametrize("minute", [5, 10, 35, 40, 45, 60, 75, 90])
def test_a_scheduled_reading_falls_overdue_after_its_grace(engine, minute):
    _on_schedule_until(engine, minute)
    assert engine.tick(st(T0 + minute * 60 + GRACE - EPS)) == []
    entries = engine.tick(st(T0 + minute * 60 + GRACE))
    (hit,) = entries
    assert (hit.event, hit.condition, hit.priority, hit.kind, hit.source) == (
        LogEvent.ACTIVE,
        "nibp-overdue",
        LOW,
        AlarmKind.TECHNICAL,
        SESSION,
    )
    (alarm,) = engine.alarms()
    assert f"the {minute}-minute reading after the dose" in alarm.message
    assert ("40-minute blood pressure check" in alarm.message) == (minute == 40)


def test_the_schedule_changes_to_every_15_minutes_after_an_hour(engine):
    _on_schedule_until(engine, 75)
    # 65 and 70 minutes are not due once the hour is past.
    assert engine.tick(st(T0 + 74 * 60)) == []


def test_a_reading_clears_the_overdue_alarm(engine):
    _on_schedule_until(engine, 40)
    engine.tick(st(T0 + 40 * 60 + GRACE))
    assert [a.condition for a in engine.alarms()] == ["nibp-overdue"]
    engine.process(bp(120, 80, T0 + 43 * 60))
    engine.tick(st(T0 + 43 * 60 + 0.1))  # the service ticks every 0.1 s
    assert engine.alarms() == []
    assert events(engine.log, LogEvent.INACTIVE, "nibp-overdue")
    assert engine.tick(st(T0 + 44.9 * 60 + GRACE)) == []  # the 45-minute one is not overdue yet


def test_the_reading_itself_ends_the_overdue_alarm(engine):
    _on_schedule_until(engine, 40)
    engine.tick(st(T0 + 40 * 60 + GRACE))
    entries = engine.process(bp(120, 80, T0 + 43 * 60))
    assert [(e.event, e.condition, e.stamp.mono) for e in entries] == [
        (LogEvent.INACTIVE, "nibp-overdue", T0 + 43 * 60)
    ]


def test_no_reading_is_overdue_before_the_dose(engine):
    assert engine.tick(st(5 * 3600)) == []
    assert engine.alarms() == []


def test_a_failed_reading_does_not_count_as_the_scheduled_one(engine):
    _on_schedule_until(engine, 5)
    engine.process(bp(None, None, T0 + 300, flags={Flag.MEASUREMENT_FAILED}))
    engine.tick(st(T0 + 300 + GRACE))
    assert {a.condition for a in engine.alarms()} == {"nibp-failed", "nibp-overdue"}


# --- rise from the pre-dose baseline ------------------------------------------------------------


def _with_baseline(engine: AlarmEngine) -> None:
    # Two pre-dose readings: baseline 110/65.
    feed(engine, bp(100, 60, 0), bp(120, 70, 300), dose(600))


@pytest.mark.parametrize(
    ("sys_", "dia", "expect"),
    [
        (150, 70, {"bp-rise-systolic": 40}),  # +40 exactly
        (149, 70, {}),  # +39
        (149.9, 70, {}),
        (120, 90, {"bp-rise-diastolic": 25}),  # +25 exactly
        (120, 89, {}),  # +24
        (150, 90, {"bp-rise-systolic": 40, "bp-rise-diastolic": 25}),
        (155, 95, {"bp-rise-systolic": 45, "bp-rise-diastolic": 30}),
        (70, 40, {}),  # a fall is not a rise (nibp-sys-low alarms instead)
    ],
)
def test_rise_from_the_pre_dose_baseline(engine, kap_default, sys_, dia, expect):
    _with_baseline(engine)
    assert engine.baseline == (110, 65)
    entries = engine.process(bp(sys_, dia, 900))
    rises = {
        e.condition: e for e in events(entries, LogEvent.ACTIVE) if e.condition.startswith("bp-")
    }
    assert {k: e.value for k, e in rises.items()} == expect
    rule = kap_default.baseline_rise
    for name, entry in rises.items():
        assert entry.priority is MEDIUM and entry.kind is AlarmKind.PHYSIOLOGICAL
        assert entry.limit == (rule.systolic if name.endswith("systolic") else rule.diastolic)
    # The next reading back near the baseline ends it.
    entries = engine.process(bp(115, 68, 1200))
    ended = {e.condition for e in events(entries, LogEvent.INACTIVE)}
    assert {c for c in ended if c.startswith("bp-rise")} == set(expect)


def test_the_baseline_is_logged_and_stated_at_the_dose(engine):
    _with_baseline(engine)
    (entry,) = events(engine.log, LogEvent.BASELINE)
    assert entry.stamp.mono == 600
    assert engine.baseline_status() == "pre-dose baseline 110/65 mmHg (mean of 2 readings)"
    assert entry.text == engine.baseline_status()


def test_readings_after_the_dose_and_later_doses_do_not_move_the_baseline(engine):
    _with_baseline(engine)
    feed(engine, bp(90, 50, 700), dose(800), bp(130, 80, 900))
    assert engine.baseline == (110, 65)
    assert len(events(engine.log, LogEvent.BASELINE)) == 1


def test_a_failed_pre_dose_reading_is_not_part_of_the_baseline(engine):
    feed(
        engine,
        bp(120, 70, 0),
        bp(None, None, 100, flags={Flag.MEASUREMENT_FAILED}),
        bp(0, 0, 200, flags={Flag.MEASUREMENT_FAILED}),
        dose(300),
    )
    assert engine.baseline == (120, 70)
    assert engine.baseline_status().endswith("(mean of 1 reading)")


def test_no_pre_dose_reading_makes_the_rule_inactive_and_says_so(engine):
    feed(engine, dose(0))
    sentence = "no NIBP reading before the dose: the rise-from-baseline rule is inactive"
    assert engine.baseline is None
    assert engine.baseline_status() == sentence
    assert [e.text for e in events(engine.log, LogEvent.BASELINE)] == [sentence]
    entries = feed(engine, bp(150, 95, 300), bp(155, 99, 600))
    assert not [e for e in entries if e.condition and e.condition.startswith("bp-rise")]
    # A reading after the dose is not taken as a baseline either.
    assert engine.baseline is None and engine.baseline_status() == sentence


def test_before_the_dose_the_status_does_not_deny_readings_taken(engine):
    feed(engine, bp(100, 60, 0), bp(120, 70, 300))
    assert "no NIBP reading" not in engine.baseline_status()


def test_before_any_reading_the_status_says_none_yet(engine):
    assert engine.baseline_status() == (
        "no NIBP reading yet: the rise-from-baseline rule is inactive"
    )


def test_a_profile_without_the_baseline_rule_says_so():
    text = profile_text()
    text = re.sub(r"\[baseline_rise\]\n(?:\w+ = .*\n)+", "", text)
    engine = AlarmEngine(parse_profile(text, "no-baseline.toml"))
    feed(engine, bp(100, 60, 0), dose(10))
    assert engine.process(bp(150, 90, 300)) == []
    assert "not part of this alarm profile" in engine.baseline_status()


# --- missing values -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [Code.SPO2, Code.PULSE_RATE, Code.HEART_RATE])
def test_missing_values_never_alarm_and_never_count_as_zero(engine, code):
    assert hold(engine, code, None, 0, 600, step=0.5) == []
    assert engine.alarms() == []


def test_a_missing_value_does_not_end_an_active_alarm(engine):
    hold(engine, Code.SPO2, 84, 0, 10)
    assert hold(engine, Code.SPO2, None, 11, 60) == []
    assert shown(engine) == [("spo2-low", HIGH, OX)]


def test_a_missing_value_interrupts_a_pending_condition(engine):
    hold(engine, Code.SPO2, 88, 0, 8)
    engine.process(num(Code.SPO2, None, 9))
    assert hold(engine, Code.SPO2, 88, 10, 19) == []


@pytest.mark.parametrize(
    "reading",
    [bp(120, None, 0, mean=None), bp(120, 80, 0, mean=None), bp(120, None, 0, mean=90)],
    ids=["no-dia-no-mean", "no-mean", "no-dia"],
)
def test_missing_nibp_parts_never_alarm(engine, reading):
    assert engine.process(reading) == []


# --- several devices ----------------------------------------------------------------------------


def test_several_devices_are_separate_conditions(engine):
    hold(engine, Code.SPO2, 84, 0, 10, source="ox1")
    hold(engine, Code.SPO2, 97, 0, 10, source="ox2")
    assert shown(engine) == [("spo2-low", HIGH, "ox1")]
    hold(engine, Code.SPO2, 84, 11, 21, source="ox2")
    hold(engine, Code.SPO2, 84, 11, 21, source="ox1")
    first, second = engine.alarms()
    assert (first.source, second.source) == ("ox1", "ox2") and first.id != second.id
    # One device recovering does not end the other's alarm, and each is acknowledged alone.
    engine.process(num(Code.SPO2, 97, 30, source="ox1"))
    engine.process(num(Code.SPO2, 84, 30, source="ox2"))
    engine.acknowledge(first.id, "nurse", st(31))
    assert shown(engine) == [("spo2-low", HIGH, "ox2")]
    assert engine.audio().priority is HIGH


def test_one_device_s_values_do_not_interrupt_another_s_pending_condition(engine):
    for t in range(11):
        engine.process(num(Code.SPO2, 88, t, source="ox1"))
        engine.process(num(Code.SPO2, 98, t + 0.5, source="ox2"))
    assert shown(engine) == [("spo2-low", MEDIUM, "ox1")]


def test_technical_conditions_are_per_device(engine):
    feed(engine, device(ConnectionState.DISCONNECTED, 0, source="ox1"))
    feed(engine, device(ConnectionState.CONNECTED, 1, source="ox2"))
    assert shown(engine) == [("disconnected", MEDIUM, "ox1")]


def test_heart_rate_and_pulse_rate_from_one_device_do_not_cancel_each_other(engine):
    for t in range(11):
        engine.process(num(Code.HEART_RATE, 130, t, source="monitor"))
        engine.process(num(Code.PULSE_RATE, 100, t, source="monitor"))
    assert [(a.condition, a.code) for a in engine.alarms()] == [
        ("pulse-high", Code.HEART_RATE.value)
    ]


# --- time --------------------------------------------------------------------------------------


def test_time_never_goes_back(engine):
    hold(engine, Code.SPO2, 88, 100, 110)
    engine.tick(st(50))  # an item stamped earlier (another device) does not rewind the engine
    assert engine.now == st(110)


def test_the_same_input_gives_the_same_log(kap_default):
    def run() -> list[LogEntry]:
        engine = AlarmEngine(kap_default)
        feed(engine, bp(110, 70, 0), dose(60))
        hold(engine, Code.SPO2, 84, 100, 130)
        feed(engine, bp(160, 96, 400), device(ConnectionState.DISCONNECTED, 500))
        engine.tick(st(3600))
        return engine.log

    assert run() == run()


def test_the_engine_cannot_be_given_a_profile_without_limits():
    without = re.sub(r"\[\[limit\]\]\n(?:\w+ = .*\n)+", "", profile_text())
    assert "[[limit]]" not in without
    with pytest.raises(ProfileError, match="'limit' is missing"):
        parse_profile(without, "x.toml")
    with pytest.raises(ProfileError, match="at least one limit"):
        parse_profile("limit = []\n" + without, "x.toml")
