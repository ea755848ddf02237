"""A patient's treatment course: each session's figures side by side, oldest first.

KAP is a course, not a session: the dose is titrated from one session to the next by how the
patient answered the last. The figures of each session are those of its own review
(:func:`kapmonitor.review.summary.summarise`: the same baseline, peak and recovery
definitions), computed once and kept (:mod:`kapmonitor.record.summaries`), so a course of 50
sessions opens without reading their samples again.

The note on the last session informs the next dosing decision; it never prescribes one.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from alarms.model import Priority
from alarms.profile import CourseRule, Profile, load_profile
from kapmonitor.core.errors import UserError
from kapmonitor.record import summaries
from kapmonitor.record.session import SessionInfo, SessionRecord, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.record.summaries import SessionDetails
from kapmonitor.review.rems import rems_form
from kapmonitor.review.summary import summarise, usable


@dataclass(frozen=True)
class CourseSession:
    """One row of the course. None: not known or not recorded (never 0)."""

    session_id: int
    started: float  #: wall clock
    status: str
    interrupted: bool
    drug: str | None
    route: str | None
    dose: float | None
    dose_unit: str
    weight_kg: float | None
    dose_per_kg: float | None  #: only where the dose is in mg and a weight was given
    indication: str
    baseline_systolic: float | None
    baseline_diastolic: float | None
    peak_systolic: float | None
    peak_diastolic: float | None
    rise_systolic: float | None  #: mmHg above the baseline, after the dose
    rise_diastolic: float | None
    minutes_to_peak: float | None  #: from the dose to the post-dose systolic peak
    recovery_minutes: float | None  #: from that peak until BP was back near baseline
    lowest_spo2: float | None
    #: Breathing at its worst, where a device recorded it: the summary's figures.
    lowest_resp_rate: float | None
    highest_etco2: float | None
    deepest_sedation: float | None  #: the lowest MOAA/S; None: not scored
    #: the highest dissociation score (on the session's scale: rating 0-3 or CADSS 0-92)
    strongest_dissociation: float | None
    alarms_high: int
    alarms_medium: int
    alarms_low: int
    monitored_minutes: float | None
    discharge: float | None  #: wall clock: ready to leave
    checklist_overridden: bool
    #: The BP course for the overlay: (minutes from dose, systolic, diastolic or None).
    bp_course: tuple[tuple[float, float, float | None], ...] = ()

    def as_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["bp_course"] = [list(p) for p in self.bp_course]
        return out


@dataclass(frozen=True)
class Course:
    patient: str
    sessions: tuple[CourseSession, ...]  #: oldest first
    notes: tuple[str, ...]
    rule: CourseRule  #: the clinic's rule the notes follow, shown with them

    def as_json(self) -> dict:
        return {
            "patient": self.patient,
            "sessions": [s.as_json() for s in self.sessions],
            "notes": list(self.notes),
            "rule": {"rise_systolic": self.rule.rise_systolic, "high_alarm": self.rule.high_alarm},
        }


def session_figures(record: SessionRecord, details: SessionDetails) -> CourseSession:
    """One session's row, from the same summary its review shows."""
    info = record.info
    summary = summarise(record)
    assert summary.profile is not None
    form = rems_form(record, summary.profile, summary)
    counts = summary.alarm_counts
    base = summary.baseline
    rise_s, rise_d = summary.max_rise_systolic, summary.max_rise_diastolic
    dose_wall = summary.dose_wall
    sedation = summary.scores.sedation if summary.scores else None
    dissociation = summary.scores.dissociation if summary.scores else None

    course = tuple(
        ((r.stamp.wall - dose_wall) / 60.0, float(r.systolic), r.diastolic)
        for r in record.nibp
        if dose_wall is not None and usable(r) and r.systolic is not None
    )
    weight = details.weight_kg
    per_kg = (
        info.dose / weight
        if info.dose is not None and weight and info.dose_unit.strip().lower() == "mg"
        else None
    )
    return CourseSession(
        session_id=info.id,
        started=info.started,
        status=info.status.value,
        interrupted=info.status is SessionStatus.INTERRUPTED,
        drug=info.drug.value if info.drug else None,
        route=info.route.value if info.route else None,
        dose=info.dose,
        dose_unit=info.dose_unit,
        weight_kg=weight,
        dose_per_kg=per_kg,
        indication=details.indication,
        baseline_systolic=base.systolic if base else None,
        baseline_diastolic=base.diastolic if base else None,
        peak_systolic=summary.peak_systolic.systolic if summary.peak_systolic else None,
        peak_diastolic=(summary.peak_diastolic.diastolic if summary.peak_diastolic else None),
        rise_systolic=rise_s.value if rise_s else None,
        rise_diastolic=rise_d.value if rise_d else None,
        minutes_to_peak=rise_s.minutes_from_dose if rise_s else None,
        recovery_minutes=summary.recovery_minutes,
        lowest_spo2=summary.lowest_spo2.value if summary.lowest_spo2 else None,
        lowest_resp_rate=summary.lowest_resp_rate.value if summary.lowest_resp_rate else None,
        highest_etco2=summary.highest_etco2.value if summary.highest_etco2 else None,
        deepest_sedation=float(sedation.worst.value) if sedation else None,
        strongest_dissociation=float(dissociation.worst.value) if dissociation else None,
        alarms_high=counts.get(Priority.HIGH, 0),
        alarms_medium=counts.get(Priority.MEDIUM, 0),
        alarms_low=counts.get(Priority.LOW, 0),
        monitored_minutes=summary.monitored_minutes,
        discharge=form.ready_to_leave,
        checklist_overridden="overridden" in form.ready_to_leave_note,
        bp_course=course,
    )


def _from_kept(data: dict) -> CourseSession:
    data = dict(data)
    data["bp_course"] = tuple(tuple(p) for p in data.get("bp_course", ()))
    return CourseSession(**data)


COLUMNS: tuple[tuple[str, str], ...] = (
    ("#", "session_id"),
    ("date", "started"),
    ("drug / route", "drug"),
    ("dose", "dose"),
    ("mg/kg", "dose_per_kg"),
    ("baseline", "baseline_systolic"),
    ("peak", "peak_systolic"),
    ("rise sys/dia", "rise_systolic"),
    ("to peak min", "minutes_to_peak"),
    ("recovery min", "recovery_minutes"),
    ("SpO2 low", "lowest_spo2"),
    ("RR low / EtCO2 high", "lowest_resp_rate"),
    ("sedation / dissoc.", "deepest_sedation"),
    ("alarms H/M/L", "alarms_high"),
    ("monitored min", "monitored_minutes"),
    ("discharge", "discharge"),
    ("checklist", "checklist_overridden"),
)


def _n(value: float | None, digits: int = 0) -> str:
    """Empty, never 0, where a value is not known."""
    return "" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 0) -> str:
    if a is None and b is None:
        return ""
    return f"{_n(a, digits) or '-'}/{_n(b, digits) or '-'}"


def cells(s: CourseSession) -> list[str]:
    """The row's cells as text, in :data:`COLUMNS` order (the window shows the same)."""
    dose = "" if s.dose is None else f"{s.dose:g} {s.dose_unit}".strip()
    drug = " ".join(filter(None, (s.drug, s.route)))
    mark = "INTERRUPTED" if s.interrupted else ""
    return [
        f"{s.session_id}{' *' if s.interrupted else ''}",
        " ".join(filter(None, (time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started)), mark))),
        drug,
        dose,
        _n(s.dose_per_kg, 2),
        _pair(s.baseline_systolic, s.baseline_diastolic),
        _pair(s.peak_systolic, s.peak_diastolic),
        _pair(s.rise_systolic, s.rise_diastolic),
        _n(s.minutes_to_peak),
        _n(s.recovery_minutes),
        _n(s.lowest_spo2),
        _pair(s.lowest_resp_rate, s.highest_etco2),
        _pair(s.deepest_sedation, s.strongest_dissociation),
        f"{s.alarms_high}/{s.alarms_medium}/{s.alarms_low}",
        _n(s.monitored_minutes),
        "" if s.discharge is None else time.strftime("%H:%M", time.localtime(s.discharge)),
        "overridden" if s.checklist_overridden else "",
    ]


def course_notes(sessions: tuple[CourseSession, ...], rule: CourseRule) -> tuple[str, ...]:
    """What to have in view before the next dose (information, not advice)."""
    if not sessions:
        return ()
    notes = []
    if len(sessions) == 1:
        notes.append("One session so far: nothing to compare yet.")
    last = sessions[-1]
    reasons = []
    if last.rise_systolic is not None and last.rise_systolic >= rule.rise_systolic:
        reasons.append(
            f"a systolic rise of {last.rise_systolic:.0f} mmHg "
            f"(the clinic's rule: {rule.rise_systolic:.0f} mmHg or more)"
        )
    if rule.high_alarm and last.alarms_high:
        n = last.alarms_high
        reasons.append(f"{n} high-priority alarm{'s' if n != 1 else ''}")
    if reasons:
        notes.append(
            f"The last session (session {last.session_id}) had {' and '.join(reasons)}: "
            "keep this in view when deciding the next dose."
        )
    if last.interrupted:
        notes.append(f"The last session (session {last.session_id}) was interrupted.")
    return tuple(notes)


def unknown_patient(patient: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(patient, known, n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return UserError(f"there are no sessions for patient '{patient}'{hint}")


def open_course(
    store: Store,
    patient: str,
    rule: CourseRule | None = None,
    load: Callable[[int], SessionRecord] | None = None,
) -> Course:
    """The patient's course, computing and keeping each session's figures that are not kept
    yet or no longer match the record (an amendment, a weight set in review)."""
    infos: list[SessionInfo] = sorted(
        store.list_sessions(patient=patient), key=lambda i: (i.started, i.id)
    )
    if not infos:
        raise unknown_patient(patient, summaries.patients(store.db))
    ids = [i.id for i in infos]
    prints = summaries.fingerprints(store.db, ids)
    have = summaries.kept(store.db, ids)
    detail = summaries.details(store.db, ids)
    read = load or (lambda sid: store.load_session(sid, waves=False))
    rows = []
    for info in infos:
        kept = have.get(info.id)
        if kept is not None and kept[0] == prints[info.id]:
            rows.append(_from_kept(kept[1]))
            continue
        row = session_figures(read(info.id), detail.get(info.id, SessionDetails()))
        if info.status is not SessionStatus.ACTIVE:  # an active session is still growing
            summaries.keep(store.db, info.id, prints[info.id], row.as_json())
        rows.append(row)
    sessions = tuple(rows)
    rule = rule or course_rule()
    return Course(patient, sessions, course_notes(sessions, rule), rule)


def course_rule(profile: Profile | None = None) -> CourseRule:
    """The clinic's course rule: the profile's ``[course]``, else kap-default's (a profile
    written before the course had none)."""
    rule = profile.course if profile is not None else None
    if rule is None:
        rule = load_profile().course
    assert rule is not None, "kap-default has a [course] table"
    return rule
