"""The session summary and the REMS form on hand-built sessions with answers worked out by hand.

Each session is small and its numbers chosen so the expected figure is plain arithmetic: a
baseline of 125/75 from two pre-dose readings, a peak of 170/100 at 40 minutes, ten seconds of
SpO2 below 90 %, and so on. Edge cases: no dose, no NIBP, no data at all, gaps, two devices,
an amended dose, amended assessments, a limit changed during the session.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from alarms.engine import AlarmEngine
from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from alarms.profile import load_profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, NibpReading, Numeric, SessionEvent, SessionEventKind, Stamp
from kapmonitor.record.session import (
    EventRecord,
    SessionInfo,
    SessionRecord,
    SessionStatus,
)
from kapmonitor.review.rems import (
    ASSESSMENT_KIND,
    DISSOCIATION,
    READY_TO_LEAVE,
    RESPIRATORY_DEPRESSION,
    SEDATION,
    assessment_text,
    parse_assessment,
    rems_form,
)
from kapmonitor.review.summary import HOLD_MAX_S, clock, summarise

START = 1767261600.0  # 2026-01-01T10:00:00Z
DOSE_AT = 600.0  # seconds after the start
MIN = 60.0


def stamp(t: float) -> Stamp:
    """``t`` seconds after the start of the session."""
    return Stamp(5000.0 + t, START + t)


def at_dose(minutes: float) -> float:
    """Seconds after the start of ``minutes`` from the dose."""
    return DOSE_AT + minutes * MIN


def info(**changes) -> SessionInfo:
    base = SessionInfo(
        id=7,
        uid="0f0e0d0c-0000-4000-8000-000000000007",
        patient="P-0042",
        clinician="Dr Kay",
        operator="RN Lee",
        drug=None,
        route=None,
        dose=None,
        dose_unit="mg",
        started=START,
        ended=START + at_dose(120),
        status=SessionStatus.COMPLETED,
        alarm_profile="kap-default",
    )
    return dataclasses.replace(base, **changes)


def bp(t: float, sys: float | None, dia: float | None, mean: float | None = None, **kw):
    return NibpReading("monitor", sys, dia, mean, stamp(t), **kw)


def num(t: float, code: Code, value: float | None, source: str = "oximeter") -> Numeric:
    return Numeric(source, code, value, stamp(t))


def event(id_: int, t: float, kind: str, text: str = "", *, amends=None, author=None):
    return EventRecord(id_, stamp(t), kind, text, None, author, amends)


def dose_event(id_: int = 1, t: float = DOSE_AT) -> EventRecord:
    return event(id_, t, "dose", "dose given (RN Lee)")


#: Pre-dose 120/80 and 130/70 (a failed reading between them), then the surge and recovery.
READINGS = [
    bp(at_dose(-10), 120, 80, 93),
    bp(at_dose(-7), None, None, None, flags=frozenset({Flag.MEASUREMENT_FAILED})),
    bp(at_dose(-5), 130, 70, 90),
    bp(at_dose(20), 150, 90, 110),
    bp(at_dose(30), 160, 96, 117),
    bp(at_dose(44), 170, 100, 123),
    bp(at_dose(60), 140, 95, 110),
    bp(at_dose(90), 135, 82, 100),
    bp(at_dose(110), 128, 78, 95),
]


def session(**changes) -> SessionRecord:
    """The standard session: the readings above, a dose, SpO2 and pulse once a second."""
    record = SessionRecord(info(), nibp=list(READINGS), events=[dose_event()])
    record.numerics = sorted(
        [num(t, Code.SPO2, 97) for t in range(0, int(at_dose(120)), 30)]
        + [num(t, Code.PULSE_RATE, 80) for t in range(0, int(at_dose(120)), 30)],
        key=lambda n: n.stamp.wall,
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


# --- baseline, peaks, rise, recovery ----------------------------------------------------------


def test_the_baseline_is_the_alarm_engines_mean_of_the_pre_dose_readings():
    s = summarise(session())
    assert s.baseline is not None
    assert (s.baseline.systolic, s.baseline.diastolic, s.baseline.readings) == (125, 75, 2)
    # The very rule the live alarm uses: the engine fed the same readings agrees.
    engine = AlarmEngine(load_profile("kap-default"))
    for r in READINGS[:3]:
        engine.process(r)
    engine.process(SessionEvent("session", SessionEventKind.DOSE, stamp(DOSE_AT), ""))
    assert engine.baseline == (s.baseline.systolic, s.baseline.diastolic)
    assert ("Baseline (pre-dose)", "125/75 mmHg (mean of 2 readings)") in s.rows()


def test_peaks_rises_and_the_return_near_baseline_have_their_times_from_the_dose():
    s = summarise(session())
    assert s.peak_systolic.systolic == 170 and s.peak_systolic.diastolic == 100
    assert s.peak_systolic.minutes_from_dose == pytest.approx(44)
    assert s.peak_diastolic.diastolic == 100
    assert s.max_rise_systolic.value == 45 and s.max_rise_systolic.minutes_from_dose == 44
    assert s.max_rise_diastolic.value == 25
    # Near = at most +20/+10 over 125/75, i.e. <= 145/85: 140/95 at 60 min is not (diastolic),
    # 135/82 at 90 min is: 46 minutes after the 44-minute peak.
    assert s.back_near_baseline.systolic == 135
    assert s.back_near_baseline.minutes_from_dose == pytest.approx(90)
    assert s.recovery_minutes == pytest.approx(46)
    assert s.nibp_readings == 8 and s.nibp_failed == 1
    rows = dict(s.rows())
    peak_time = clock(START + at_dose(44))
    assert rows["Peak systolic"] == f"170/100 mmHg at {peak_time} (+44 min)"
    assert rows["Largest rise, systolic"] == f"+45 mmHg at {peak_time} (+44 min)"
    assert rows["NIBP readings"] == "8 (1 failed)"


def test_bp_not_back_near_baseline_by_the_last_reading_is_none_with_the_reason():
    record = session(nibp=READINGS[:6])  # ends on the 44-minute peak
    s = summarise(record)
    assert s.back_near_baseline is None and s.recovery_minutes is None
    assert "not by the last reading" in s.recovery_note


def test_an_amended_dose_moves_t0_and_with_it_the_baseline():
    # The nurse pressed "dose" 10 minutes early; the correction puts T0 after the 20-minute
    # reading, which becomes a pre-dose reading: baseline (120 + 130 + 150) / 3.
    events = [dose_event(1), event(2, at_dose(25), "dose", "dose given", amends=1)]
    s = summarise(session(events=events))
    assert s.dose_wall == START + at_dose(25)
    assert (s.baseline.systolic, s.baseline.diastolic, s.baseline.readings) == (
        pytest.approx(400 / 3),
        pytest.approx(80),
        3,
    )
    assert s.peak_systolic.minutes_from_dose == pytest.approx(19)


def test_monitoring_runs_from_the_first_device_data_to_the_end_of_the_session():
    record = session()
    record.numerics.insert(0, num(-90, Code.PERFUSION, 3.1))
    s = summarise(record)
    assert s.monitoring_start == START - 90
    assert s.monitored_minutes == pytest.approx((at_dose(120) + 90) / MIN)


# --- time beyond the limits ---------------------------------------------------------------


def spo2_run(values: dict[int, float | None], source: str = "oximeter") -> list[Numeric]:
    return [num(t, Code.SPO2, v, source) for t, v in sorted(values.items())]


def exposure(s, rule: str, priority: Priority):
    return next(e for e in s.exposures if e.rule == rule and e.priority is priority)


def test_time_below_a_limit_counts_each_sample_until_the_next_and_not_across_gaps():
    values: dict[int, float | None] = {t: 97 for t in range(0, 100)}
    values |= {t: 88 for t in range(10, 20)}  # 10 s below 90
    values |= {t: 84 for t in range(30, 35)}  # 5 s below 90 and below 85
    values[40] = None  # missing: never beyond, and breaks nothing else
    for t in range(51, 70):
        del values[t]  # a 20 s gap after a low value: not counted
    values[50] = 80
    values[99] = 70  # the last sample: no next sample, not counted
    s = summarise(session(numerics=spo2_run(values)))
    assert HOLD_MAX_S < 20
    assert exposure(s, "spo2-low", Priority.MEDIUM).seconds == pytest.approx(15)
    assert exposure(s, "spo2-low", Priority.HIGH).seconds == pytest.approx(5)
    # No pulse at all: unknown, not 0.
    assert exposure(s, "pulse-low", Priority.MEDIUM).seconds is None
    rows = dict(s.rows())
    assert rows["Beyond: SpO2 low (< 90 %, medium)"] == "15 s"
    assert rows["Beyond: Pulse rate low (< 50 /min, medium)"] == "no values"


def test_two_oximeters_low_at_the_same_time_count_that_time_once():
    first = spo2_run({t: 88 if 10 <= t < 20 else 97 for t in range(0, 40)})
    second = spo2_run({t: 87 if 15 <= t < 25 else 97 for t in range(0, 40)}, "oximeter-2")
    record = session(numerics=sorted(first + second, key=lambda n: n.stamp.wall))
    assert exposure(summarise(record), "spo2-low", Priority.MEDIUM).seconds == pytest.approx(15)


def test_a_limit_changed_during_the_session_applies_from_its_time():
    numerics = spo2_run({t: 91 if t < 20 else 97 for t in range(0, 30)})
    change = LogEntry(stamp(10), LogEvent.LIMIT_CHANGED, condition="spo2-low",
                      priority=Priority.MEDIUM, limit=92, operator="RN Lee")  # fmt: skip
    s = summarise(session(numerics=numerics, alarms=[change]))
    e = exposure(s, "spo2-low", Priority.MEDIUM)
    assert e.seconds == pytest.approx(10) and e.limit_changed and e.limit == 90


def test_nibp_limits_count_readings_beyond_them():
    s = summarise(session())
    e = exposure(s, "nibp-sys-high", Priority.MEDIUM)
    assert (e.readings, e.of_readings, e.seconds) == (1, 8, None)  # 170 > 160; 160 is not
    assert dict(s.rows())["Beyond: NIBP systolic high (> 160 mmHg, medium)"] == "1 of 8 readings"


def test_the_sessions_own_profile_judges_the_limits():
    text = load_profile("kap-default").text.replace(
        "medium = 90\nhigh = 85", "medium = 92\nhigh = 85"
    )
    assert text != load_profile("kap-default").text
    numerics = spo2_run({t: 91 for t in range(0, 11)})
    record = session(numerics=numerics, profile_text=text)
    assert exposure(summarise(record), "spo2-low", Priority.MEDIUM).seconds == pytest.approx(10)
    assert summarise(record).profile_note == "as recorded with the session"
    # Without a stored profile, the default (90): 91 is in range.
    record.profile_text = ""
    s = summarise(record)
    assert exposure(s, "spo2-low", Priority.MEDIUM).seconds == 0
    assert "default" in s.profile_note
    # An explicit profile wins over the stored one.
    record.profile_text = text
    s = summarise(record, load_profile("kap-default"))
    assert exposure(s, "spo2-low", Priority.MEDIUM).seconds == 0


# --- alarms ---------------------------------------------------------------------------------


def alarm(t: float, event: LogEvent, condition: str, priority: Priority, **kw) -> LogEntry:
    kind = kw.pop("kind", AlarmKind.PHYSIOLOGICAL)
    return LogEntry(stamp(t), event, condition=condition, priority=priority, kind=kind,
                    source="oximeter", **kw)  # fmt: skip


def test_alarm_counts_and_time_to_acknowledge_per_priority():
    H, M, L = Priority.HIGH, Priority.MEDIUM, Priority.LOW
    log = [
        alarm(100, LogEvent.ACTIVE, "spo2-low", H, code=Code.SPO2.value),
        alarm(112, LogEvent.ACKNOWLEDGED, "spo2-low", H, code=Code.SPO2.value, operator="RN"),
        alarm(150, LogEvent.INACTIVE, "spo2-low", H, code=Code.SPO2.value),
        alarm(200, LogEvent.ACTIVE, "pulse-high", H, code=Code.PULSE_RATE.value),
        alarm(210, LogEvent.INACTIVE, "pulse-high", H, code=Code.PULSE_RATE.value),
        # latched: acknowledged after its condition ended, 30 s after it started
        alarm(230, LogEvent.ACKNOWLEDGED, "pulse-high", H, code=Code.PULSE_RATE.value),
        alarm(300, LogEvent.ACTIVE, "spo2-low", M, code=Code.SPO2.value),
        alarm(400, LogEvent.ACTIVE, "sensor-off", L, kind=AlarmKind.TECHNICAL),
        alarm(500, LogEvent.AUDIO_PAUSED, None, None),
    ]
    s = summarise(session(alarms=log))
    high, medium, low = s.alarms
    assert (high.count, high.acknowledged, high.ack_median_s, high.ack_max_s) == (2, 2, 21, 30)
    assert (medium.count, medium.acknowledged, medium.ack_median_s) == (1, 0, None)
    assert (low.count, low.technical, low.physiological) == (1, 1, 0)
    assert s.alarm_counts == {H: 2, M: 1, L: 1}
    rows = dict(s.rows())
    assert rows["Alarms, high"] == (
        "2 (2 physiological); acknowledged 2, median 21 s, max 30 s to acknowledge"
    )
    assert rows["Alarms, medium"] == "1 (1 physiological); none acknowledged"


# --- missing data ---------------------------------------------------------------------------


def test_without_a_dose_there_is_no_baseline_and_no_times_from_the_dose():
    record = session(events=[])
    s = summarise(record)
    assert s.baseline is None and s.baseline_note == "no dose marked"
    assert s.max_rise_systolic is None and s.back_near_baseline is None
    assert s.peak_systolic.systolic == 170 and s.peak_systolic.minutes_from_dose is None
    rows = dict(s.rows())
    assert rows["Baseline (pre-dose)"] == "none: no dose marked"
    assert rows["Largest rise, systolic"] == "not recorded: no baseline"
    assert rows["Peak systolic"] == f"170/100 mmHg at {clock(START + at_dose(44))}"
    form = rems_form(record)
    assert form.bp_before is None and form.bp_before_note == "no dose marked"
    assert form.bp_40 is None and form.bp_40_note == "no dose marked"
    assert form.bp_end.systolic == 128
    assert form.in_range_before_dose.value is None


def test_without_nibp_every_bp_figure_is_none_never_zero():
    record = session(nibp=[])
    s = summarise(record)
    assert s.baseline is None and s.baseline_note == "no NIBP reading before the dose"
    assert s.peak_systolic is None and s.peak_diastolic is None
    assert s.nibp_readings == 0 and s.recovery_minutes is None
    assert exposure(s, "nibp-sys-high", Priority.MEDIUM).readings is None
    assert s.lowest_spo2.value == 97
    rows = dict(s.rows())
    assert rows["Peak systolic"] == "not recorded: no NIBP reading"
    assert rows["Beyond: NIBP systolic high (> 160 mmHg, medium)"] == "no NIBP reading"
    form = rems_form(record)
    assert (form.bp_before, form.bp_40, form.bp_end) == (None, None, None)
    assert form.in_range_before_dose.value is None
    assert "no BP reading" in form.in_range_before_dose.source


def test_a_session_with_no_data_at_all_summarises_to_nones():
    record = SessionRecord(info(ended=None, status=SessionStatus.INTERRUPTED))
    s = summarise(record)
    assert s.monitored_minutes is None and s.monitoring_start is None
    assert s.peak_heart_rate is None and s.lowest_spo2 is None and s.baseline is None
    assert all(e.seconds is None and e.readings is None for e in s.exposures)
    assert [a.count for a in s.alarms] == [0, 0, 0]
    rows = dict(s.rows())
    assert rows["Monitored"] == "not recorded: no device data"
    assert rows["Lowest SpO2"] == "not recorded: no SpO2"
    assert "0" not in rows["Lowest SpO2"]
    form = rems_form(record)
    assert form.monitoring_minutes is None and form.ready_to_leave is None
    assert form.ready_to_leave_note == "the session was interrupted"
    assert all(value for _, value in form.rows())


# --- the REMS form ------------------------------------------------------------------------


def test_rems_bp_before_near_40_minutes_and_at_the_end():
    form = rems_form(session())
    assert (form.bp_before.systolic, form.bp_before.diastolic) == (130, 70)  # the last before
    assert form.bp_40.systolic == 170 and form.bp_40.minutes_from_dose == pytest.approx(44)
    assert form.bp_end.systolic == 128
    rows = dict(form.rows())
    assert rows["BP at 40 min after administration"] == (
        f"170/100 mmHg at {clock(START + at_dose(44))} (+44 min)"
    )
    assert rows["BP before administration"].startswith("130/70 mmHg")


def test_rems_bp_at_40_minutes_takes_the_closest_reading_within_15_minutes_or_says_why():
    # 30 and 44 minutes: 44 is closer (4 min off against 10).
    assert rems_form(session()).bp_40.minutes_from_dose == pytest.approx(44)
    # Readings at 20 and 60 min only: both 20 minutes off, beyond the window.
    readings = [READINGS[0], READINGS[2], READINGS[3], READINGS[6]]
    form = rems_form(session(nibp=readings))
    assert form.bp_40 is None
    assert form.bp_40_note == "no reading 25–55 min after the dose (nearest at +20 min)"
    # The edge of the window counts.
    form = rems_form(session(nibp=[READINGS[0], bp(at_dose(55), 150, 90)]))
    assert form.bp_40.minutes_from_dose == pytest.approx(55)


def test_rems_monitoring_time_and_vitals_in_range():
    record = session(nibp=READINGS[:6])  # ends on 170/100: systolic above 160
    form = rems_form(record)
    assert form.monitoring_minutes == pytest.approx(130)
    assert form.in_range_before_dose.value is True
    assert form.in_range_before_dose.source == "SpO2 97 %, pulse 80 /min, BP 130/70 mmHg"
    assert form.in_range_before_end.value is False
    assert "NIBP systolic high (170 > 160)" in form.in_range_before_end.source
    assert "risen from the baseline" in form.in_range_before_end.source
    form = rems_form(session())  # ends on 128/78
    assert form.in_range_before_end.value is True


def test_rems_answers_come_from_the_latest_assessment_not_amended():
    events = [
        dose_event(1),
        event(2, at_dose(50), ASSESSMENT_KIND, "sedation: yes", author="Dr Kay"),
        # corrected: the sedation was not there
        event(3, at_dose(55), ASSESSMENT_KIND, "sedation: no", amends=2, author="Dr Kay"),
        event(4, at_dose(60), ASSESSMENT_KIND, "Respiratory depression: No"),
        event(5, at_dose(70), ASSESSMENT_KIND, "respiratory depression: yes"),  # the later
        event(6, at_dose(30), "marker", "dissociation (RN Lee)"),
        event(7, at_dose(80), ASSESSMENT_KIND, "dissociation: no"),  # the clinician decides
        event(8, at_dose(100), ASSESSMENT_KIND, "ready to leave: 12:15"),
    ]
    form = rems_form(session(events=events))
    assert (form.sedation.value, form.sedation.text) == (False, "No")
    assert form.sedation.author == "Dr Kay"
    assert form.respiratory_depression.value is True
    assert form.dissociation.value is False
    written = datetime.fromtimestamp(START + at_dose(100))
    assert form.ready_to_leave == written.replace(hour=12, minute=15, second=0).timestamp()
    rows = dict(form.rows())
    assert rows["Sedation"] == f"No (assessment at {clock(START + at_dose(55))} by Dr Kay)"
    assert "Dr Kay" not in dict(form.rows(names=False))["Sedation"]


def test_an_amended_assessment_with_nothing_in_force_falls_back_to_the_default():
    events = [
        dose_event(1),
        event(2, at_dose(20), ASSESSMENT_KIND, "dissociation: no"),
        event(3, at_dose(21), "note", "entered by mistake", amends=2),  # withdrawn
        event(4, at_dose(30), "marker", "dissociation"),
    ]
    form = rems_form(session(events=events))
    assert form.dissociation.value is True
    assert form.dissociation.text == f"Yes (marked at {clock(START + at_dose(30))})"


def test_rems_defaults_without_assessments():
    spo2_alarm = LogEntry(stamp(at_dose(15)), LogEvent.ACTIVE, condition="spo2-low",
                          priority=Priority.MEDIUM, kind=AlarmKind.PHYSIOLOGICAL,
                          source="oximeter", code=Code.SPO2.value, value=88, limit=90)  # fmt: skip
    form = rems_form(session(alarms=[spo2_alarm]))
    assert form.sedation.value is None and form.sedation.text == "not recorded"
    assert form.dissociation.text == "not recorded"
    assert form.respiratory_depression.value is None
    assert form.respiratory_depression.text.startswith("see SpO2 alarms (1 alarm")
    assert form.ready_to_leave == START + at_dose(120)  # the end of the completed session
    assert form.ready_to_leave_note == "end of the session"
    assert rems_form(session()).respiratory_depression.text == "not recorded"
    # The discharge checklist's confirmation, when recorded, is the better answer.
    confirmed = event(9, at_dose(118), "marker", "confirmed: patient alert and oriented (RN Lee)")
    form = rems_form(session(events=[dose_event(), confirmed]))
    assert form.ready_to_leave == START + at_dose(118)
    assert form.ready_to_leave_note == "discharge checklist confirmed"


def test_assessment_text_round_trips_and_refuses_unknown_fields():
    for field in (SEDATION, DISSOCIATION, RESPIRATORY_DEPRESSION):
        assert parse_assessment(assessment_text(field, True)) == (field, "yes")
        assert parse_assessment(assessment_text(field, False)) == (field, "no")
    when = datetime(2026, 1, 1, 12, 15)
    assert parse_assessment(assessment_text(READY_TO_LEAVE, when)) == (
        READY_TO_LEAVE,
        "2026-01-01T12:15",
    )
    assert parse_assessment("patient talking") is None
    assert parse_assessment("sedation:") is None
    with pytest.raises(ValueError):
        assessment_text("mood", True)
    with pytest.raises(ValueError):
        assessment_text(READY_TO_LEAVE, True)
