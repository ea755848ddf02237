"""Breathing in review (issue 17): the summary's lowest rate, highest EtCO2 and time with no
breath, the REMS form's respiratory depression from the alarm record, the PDF, the course.

Hand-built sessions with answers worked out by hand for the edge cases (impossible values, a
line that is off, no capnograph, no breathing at all); then real simulated recordings (``record
--device sim:respiratory-depression`` and ``sim:apnea`` into SQLite), whose figures are worked
out here from the stored record itself, not taken from the summary under test.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math

import pytest
from pypdf import PdfReader

from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from kapmonitor.cli import main
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Numeric, Stamp
from kapmonitor.export import export_session
from kapmonitor.record import summaries
from kapmonitor.record.db import open_database
from kapmonitor.record.session import EventRecord, SessionInfo, SessionRecord, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review.course import cells, open_course
from kapmonitor.review.rems import ASSESSMENT_KIND, rems_form
from kapmonitor.review.summary import clock, summarise

START = 1767261600.0  # 2026-01-01T10:00:00Z
DOSE_AT = 600.0
CAPNO = "capnostream"


def st(t: float) -> Stamp:
    return Stamp(5000.0 + t, START + t)


def num(t: float, code: Code, value: float | None, flags=(), source: str = CAPNO) -> Numeric:
    return Numeric(source, code, value, st(t), frozenset(flags))


def info() -> SessionInfo:
    return SessionInfo(
        id=17, uid="0f0e0d0c-0000-4000-8000-000000000017", patient="P-0017",
        clinician="Dr Kay", operator="RN Lee", drug=None, route=None, dose=None,
        dose_unit="mg", started=START, ended=START + 3600, status=SessionStatus.COMPLETED,
        alarm_profile="kap-default",
    )  # fmt: skip


def session(numerics: list[Numeric], alarms: list[LogEntry] = (), events=()) -> SessionRecord:
    dose = EventRecord(1, st(DOSE_AT), "dose", "dose given")
    oximeter = [num(t, c, v, source="oximeter") for t in range(0, 3600, 30)
                for c, v in ((Code.SPO2, 97.0), (Code.PULSE_RATE, 72.0))]  # fmt: skip
    return SessionRecord(
        info(),
        numerics=sorted([*numerics, *oximeter], key=lambda n: n.stamp.wall),
        events=[dose, *events],
        alarms=list(alarms),
    )


def breathing(t0: int, t1: int, rr: float = 14, etco2: float = 38) -> list[Numeric]:
    return [num(t, c, v) for t in range(t0, t1) for c, v in
            ((Code.RESP_RATE, rr), (Code.CO2_ET, etco2))]  # fmt: skip


def row(summary, label: str) -> str:
    return dict(summary.rows())[label]


# --- the summary, by hand ------------------------------------------------------------------------


def test_lowest_rate_highest_etco2_and_time_with_no_breath():
    values = breathing(0, 1000)
    values += breathing(1000, 1060, rr=6, etco2=57)  # depressed at +6.7 min
    values += [num(t, Code.RESP_RATE, 0.0, (Flag.NO_BREATH,)) for t in range(1060, 1090)]
    values += [num(t, Code.CO2_ET, None, (Flag.NO_BREATH,)) for t in range(1060, 1090)]
    values += breathing(1090, 1200)
    # What no rule judges: impossible values, a line that is blocked.
    values += [num(1200.5, Code.RESP_RATE, 999.0, (Flag.OUT_OF_RANGE,)),
               num(1201.5, Code.CO2_ET, math.inf), num(1202.5, Code.CO2_ET, -3.0),
               num(1203.5, Code.CO2_ET, 140.0, (Flag.LINE_BLOCKED,)),
               num(1204.5, Code.RESP_RATE, 0.0, (Flag.LINE_BLOCKED, Flag.NO_BREATH))]  # fmt: skip
    values += breathing(1205, 1300)
    s = summarise(session(values))
    assert s.breathing_monitored
    assert s.lowest_resp_rate is not None and s.highest_etco2 is not None
    assert (s.lowest_resp_rate.value, s.lowest_resp_rate.wall) == (0.0, START + 1060)
    assert s.lowest_resp_rate.minutes_from_dose == pytest.approx(460 / 60)
    assert (s.highest_etco2.value, s.highest_etco2.wall) == (57.0, START + 1000)
    assert s.no_breath_seconds == 30.0  # 1060 to 1090, each 0 held to the next value
    assert row(s, "Lowest respiratory rate") == f"0 /min at {clock(START + 1060)} (+8 min)"
    assert row(s, "Highest EtCO2") == f"57 mmHg at {clock(START + 1000)} (+7 min)"
    assert row(s, "Time with no breath") == "30 s"


def test_without_breathing_values_breathing_was_not_monitored():
    s = summarise(session([]))
    assert not s.breathing_monitored
    assert (s.lowest_resp_rate, s.highest_etco2, s.no_breath_seconds) == (None, None, None)
    labels = dict(s.rows())
    assert labels["Breathing"] == "not monitored: no respiratory rate or CO2 was recorded"
    assert "Time with no breath" not in labels


def test_a_chest_rate_without_a_capnograph_has_no_etco2():
    s = summarise(session([num(t, Code.RESP_RATE, 16.0, source="intellivue") for t in range(99)]))
    assert s.lowest_resp_rate is not None and s.lowest_resp_rate.value == 16.0
    assert s.highest_etco2 is None and s.no_breath_seconds == 0.0  # measured: none
    assert row(s, "Highest EtCO2") == "not recorded: no EtCO2 (no capnograph)"


def test_a_line_off_all_session_is_monitored_but_measures_nothing():
    off = [num(t, c, None, (Flag.SENSOR_OFF,)) for t in range(99)
           for c in (Code.RESP_RATE, Code.CO2_ET)]  # fmt: skip
    s = summarise(session(off))
    assert s.breathing_monitored and s.lowest_resp_rate is None and s.highest_etco2 is None
    assert s.no_breath_seconds == 0.0  # a line that is off is not the patient's apnoea


# --- the REMS form -------------------------------------------------------------------------------


def alarm(t: float, event: LogEvent, condition: str, text: str, code: Code | None = None):
    return LogEntry(st(t), event, condition=condition, priority=Priority.MEDIUM,
                    kind=AlarmKind.PHYSIOLOGICAL, source=CAPNO,
                    code=code.value if code else None, text=text)  # fmt: skip


RR_LOW = ("rr-low", "Respiratory rate low", Code.RESP_RATE)
ETCO2_HIGH = ("etco2-high", "EtCO2 high", Code.CO2_ET)


def test_respiratory_depression_yes_with_when_it_began_and_resolved():
    alarms = [
        alarm(1000, LogEvent.ACTIVE, *ETCO2_HIGH),
        alarm(1100, LogEvent.ACTIVE, *RR_LOW),
        alarm(1300, LogEvent.INACTIVE, *ETCO2_HIGH),
        alarm(1500, LogEvent.INACTIVE, *RR_LOW),
    ]
    answer = rems_form(session(breathing(0, 2000), alarms)).respiratory_depression
    assert answer.value is True
    assert answer.text == (
        f"Yes: breathing alarm from {clock(START + 1000)} (EtCO2 high, Respiratory rate low), "
        f"resolved at {clock(START + 1500)}"
    )
    assert answer.source == "from the alarm record, to be confirmed"


def test_respiratory_depression_not_resolved_by_the_end():
    alarms = [alarm(1000, LogEvent.ACTIVE, "apnea", "No breath (apnoea)")]
    answer = rems_form(session(breathing(0, 2000), alarms)).respiratory_depression
    assert answer.value is True and answer.text.endswith("not resolved by the end of the record")


def test_a_fast_rate_or_a_low_etco2_is_not_respiratory_depression():
    alarms = [alarm(1000, LogEvent.ACTIVE, "rr-high", "Respiratory rate high", Code.RESP_RATE),
              alarm(1100, LogEvent.ACTIVE, "etco2-low", "EtCO2 low", Code.CO2_ET)]  # fmt: skip
    answer = rems_form(session(breathing(0, 2000), alarms)).respiratory_depression
    assert (answer.value, answer.text) == (False, "No")
    assert (
        answer.source
        == "no breathing alarm with breathing monitored; from the alarm record, to be confirmed"
    )


def test_a_desaturation_without_a_breathing_alarm_is_a_prompt_not_a_no():
    spo2 = dataclasses.replace(
        alarm(1200, LogEvent.ACTIVE, "spo2-low", "SpO2 low", Code.SPO2), source="oximeter"
    )
    answer = rems_form(session(breathing(0, 2000), [spo2])).respiratory_depression
    assert answer.value is None and answer.text.startswith("see SpO2 alarms (1 alarm")


def test_without_breathing_the_record_cannot_say():
    answer = rems_form(session([])).respiratory_depression
    assert (answer.value, answer.text, answer.source) == (
        None, "not recorded", "breathing not monitored",
    )  # fmt: skip


def test_the_clinicians_assessment_wins_over_the_record():
    alarms = [alarm(1000, LogEvent.ACTIVE, *RR_LOW)]
    said = EventRecord(5, st(3000), ASSESSMENT_KIND, "respiratory depression: no", None, "Dr Kay")
    answer = rems_form(session(breathing(0, 2000), alarms, [said])).respiratory_depression
    assert (answer.value, answer.text) == (False, "No")
    assert answer.source.startswith("assessment at")


# --- recorded sessions: summary, REMS, PDF, course -----------------------------------------------


def record(url: str, scenario: str, minutes: int, seed: int) -> None:
    argv = ["record", "--device", f"sim:{scenario}", "--speed", "5000", "--duration",
            f"{minutes}m", "--no-waves", "--seed", str(seed), "--db", url,
            "--patient", "KAP-B-17", "--drug", "ketamine", "--route", "iv"]  # fmt: skip
    assert main(argv, out=io.StringIO()) == 0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[str, list[SessionRecord]]:
    folder = tmp_path_factory.mktemp("breathing")
    url = f"sqlite:///{folder / 'k.sqlite3'}"
    record(url, "respiratory-depression", 45, 3)
    record(url, "apnea", 35, 4)
    store = Store(open_database(url))
    try:
        sessions = sorted(store.list_sessions(patient="KAP-B-17"), key=lambda i: i.started)
        return url, [store.load_session(i.id, waves=False) for i in sessions]
    finally:
        store.db.close()


def judged(rec: SessionRecord, codes: set[Code]) -> list[Numeric]:
    return [n for n in rec.numerics if n.code in codes and n.value is not None
            and not n.flags & {Flag.OUT_OF_RANGE, Flag.SENSOR_OFF, Flag.LINE_BLOCKED}]  # fmt: skip


def test_a_recorded_respiratory_depression_in_summary_rems_and_pdf(recorded, tmp_path):
    rec = recorded[1][0]
    rates = judged(rec, {Code.RESP_RATE, Code.AWAY_RESP_RATE})
    etco2 = judged(rec, {Code.CO2_ET})
    low = min(n.value for n in rates)
    high = max(n.value for n in etco2)
    s = summarise(rec)
    assert s.lowest_resp_rate is not None and s.lowest_resp_rate.value == low <= 6
    assert s.highest_etco2 is not None and s.highest_etco2.value == high >= 60
    assert s.no_breath_seconds == 0.0  # slow, but breathing
    # REMS: from the first breathing alarm to the end of the last, read off the alarm log.
    breathing_alarms = [e for e in rec.alarms if e.condition in
                        {"rr-low", "etco2-high", "etco2-rise"}]  # fmt: skip
    first = min(e.stamp.wall for e in breathing_alarms if e.event is LogEvent.ACTIVE)
    last = max(e.stamp.wall for e in breathing_alarms if e.event is LogEvent.INACTIVE)
    answer = rems_form(rec).respiratory_depression
    assert answer.value is True
    assert answer.text.startswith(f"Yes: breathing alarm from {clock(first)} (")
    assert answer.text.endswith(f"resolved at {clock(last)}")
    # The PDF prints the figures, the breathing trends and the REMS answer.
    path = tmp_path / "report.pdf"
    export_session(rec, "pdf", path)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(path).pages)
    for part in (
        f"Lowest respiratory rate {low:.0f} /min at {clock(s.lowest_resp_rate.wall)}",
        f"Highest EtCO2 {high:.0f} mmHg at {clock(s.highest_etco2.wall)}",
        "Time with no breath 0 s",
        "Respiratory rate, /min",
        "EtCO2, mmHg",
        f"Yes: breathing alarm from {clock(first)}",
    ):
        assert part in text, part


def test_a_recorded_apnoea_counts_its_30_seconds(recorded):
    rec = recorded[1][1]
    s = summarise(rec)
    assert s.no_breath_seconds == pytest.approx(30.0)
    apnoea = [e for e in rec.alarms if e.condition == "apnea"]
    assert [e.event for e in apnoea] == [LogEvent.ACTIVE, LogEvent.INACTIVE]
    answer = rems_form(rec).respiratory_depression
    assert "No breath (apnoea)" in answer.text
    assert answer.text.endswith(f"resolved at {clock(apnoea[1].stamp.wall)}")


def test_the_course_shows_each_sessions_lowest_rate_and_highest_etco2(recorded):
    url, records = recorded
    store = Store(open_database(url))
    try:
        course = open_course(store, "KAP-B-17")
    finally:
        store.db.close()
    for row, rec in zip(course.sessions, records, strict=True):
        s = summarise(rec)
        assert s.lowest_resp_rate is not None and s.highest_etco2 is not None
        assert row.lowest_resp_rate == s.lowest_resp_rate.value
        assert row.highest_etco2 == s.highest_etco2.value
        assert f"{s.lowest_resp_rate.value:.0f}/{s.highest_etco2.value:.0f}" in cells(row)
    out = io.StringIO()
    assert main(["course", "KAP-B-17", "--db", url, "--json"], out=out) == 0
    kept = json.loads(out.getvalue())["sessions"]  # read back from the kept figures
    assert [r["highest_etco2"] for r in kept] == [r.highest_etco2 for r in course.sessions]
    assert "lowest_etco2" not in kept[0]


def test_a_summary_kept_before_breathing_is_computed_again(recorded):
    url, _ = recorded
    store = Store(open_database(url))
    try:
        open_course(store, "KAP-B-17")  # keeps the figures
        ids = [i.id for i in store.list_sessions(patient="KAP-B-17")]
        for sid, (fingerprint, data) in summaries.kept(store.db, ids).items():
            # The shape of version 1: the lowest EtCO2, no highest.
            data = {k: v for k, v in data.items() if k != "highest_etco2"} | {"lowest_etco2": 1.0}
            old = fingerprint.replace(f"{summaries.SUMMARY_VERSION}|", "1|", 1)
            summaries.keep(store.db, sid, old, data)
        course = open_course(store, "KAP-B-17")
        assert all(r.highest_etco2 is not None for r in course.sessions)
    finally:
        store.db.close()


def test_the_rows_place_breathing_after_the_lowest_spo2():
    labels = [label for label, _ in summarise(session(breathing(0, 100))).rows()]
    i = labels.index("Lowest SpO2")
    assert labels[i + 1 : i + 4] == [
        "Lowest respiratory rate",
        "Highest EtCO2",
        "Time with no breath",
    ]
