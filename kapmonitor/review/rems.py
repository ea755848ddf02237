"""The esketamine REMS Patient Monitoring Form, filled in from the session record.

The form (REMS, 2024 copy) asks for: the BP before administration, near 40 minutes after it
and before completion; the total monitoring time (first device to end of monitoring, ≥ 2 h);
whether vitals were in range before administration and before completion; sedation,
dissociation and respiratory depression (Y/N); and when the patient would have been ready to
leave. :func:`rems_form` derives each field; what the record cannot tell is "not recorded",
with the reason, never a guess dressed as an answer.

**Clinician assessments.** The yes/no fields and "ready to leave" come from session events of
kind :data:`ASSESSMENT_KIND` whose text is ``"<field>: <value>"`` (write it with
:func:`assessment_text`):

- ``sedation: yes|no``, ``dissociation: yes|no``, ``respiratory depression: yes|no``;
- ``ready to leave: HH:MM`` (local time, on the day of the assessment) or an ISO 8601 time.

The latest assessment of a field that no later event amends wins (``EventRecord.amends``, as
for the dose): to correct one, add an event that amends it, with the corrected text. An
amendment of an assessment counts as an assessment whatever its kind.

**Without an assessment**:

- sedation, from the MOAA/S scores (:mod:`kapmonitor.review.scores`): "Yes" when any was <= 3,
  with the deepest, when it began and when it resolved (or that it had not by the last score),
  "No" with the lowest score otherwise; marked for the clinician to confirm, with the scorer of
  the deepest score as its author; not recorded without a MOAA/S;
- dissociation, from the dissociation scores in the same way (the stored profile's cut-off);
  for a record made before scoring existed, "Yes (marked at HH:MM)" when a ``dissociation``
  marker was set (the screen's key 1), else not recorded;
- respiratory depression, from the alarm record (issue 17): "Yes" with when the first
  breathing alarm began and when the last one ended ("resolved"), or that it had not by the end
  of the record, when a breathing alarm of respiratory depression fired (apnoea, the EtCO2 rise
  from baseline, and the profile's low-rate and high-EtCO2 limit rules); else, with breathing
  monitored and no SpO2 alarm, "No"; both marked for the clinician to confirm. Otherwise "see
  SpO2 alarms" (with their number and the lowest SpO2) when a physiological SpO2 alarm fired —
  a prompt for the clinician, not an answer — else not recorded (breathing not monitored);
- ready to leave: the discharge checklist's last confirmation ("confirmed: …" marker), else the
  end of a completed session; an interrupted or running session: not recorded.

**In range** means inside the least severe level of every limit of the session's profile (as the
discharge checklist judges SpO2 and pulse), judged on the latest SpO2, pulse (or ECG heart rate)
and NIBP reading before the dose, and before the end of monitoring. Before completion the BP
must also be below the profile's rise-from-baseline rule. Without a BP reading it is not judged.

**BP near 40 minutes**: the reading closest to 40 minutes after the dose within
:data:`BP_40_WINDOW_MIN` either side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from alarms import breathing as breath
from alarms.model import AlarmKind, LogEntry, LogEvent
from alarms.profile import Profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Numeric
from kapmonitor.record.session import EventRecord, SessionRecord, SessionStatus
from kapmonitor.review.scores import Course
from kapmonitor.review.summary import (
    RATE_CODES,
    BpPoint,
    SessionSummary,
    bp_point,
    clock,
    minutes_text,
    num,
    session_profile,
    summarise,
    usable,
    when,
)

#: The event kind of a clinician's assessment.
ASSESSMENT_KIND = "assessment"
SEDATION = "sedation"
DISSOCIATION = "dissociation"
RESPIRATORY_DEPRESSION = "respiratory depression"
READY_TO_LEAVE = "ready to leave"
YES_NO_FIELDS = (SEDATION, DISSOCIATION, RESPIRATORY_DEPRESSION)
ASSESSMENT_FIELDS = (*YES_NO_FIELDS, READY_TO_LEAVE)
#: The marker the screen's dissociation key sets (kapmonitor.core.markers.MARKERS[0]).
DISSOCIATION_MARKER = "dissociation"
#: The discharge checklist's confirmations are markers "confirmed: <item> (<operator>)".
CONFIRMED_MARKER = "confirmed"
BP_40_TARGET_MIN = 40.0
BP_40_WINDOW_MIN = 15.0
MIN_MONITORING_MIN = 120.0  #: the label's minimum monitoring time

_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false"}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True)
class Answer:
    """A form answer: Yes (True), No (False) or None (not recorded / not judged)."""

    value: bool | None
    text: str  #: what the form shows: "Yes", "No", "Yes (marked at 10:31)", "not recorded"
    source: str = ""  #: where it came from: "assessment at 11:02", "dissociation marker", …
    author: str | None = None  #: who assessed it (left out of de-identified reports)


@dataclass(frozen=True)
class RemsForm:
    """The REMS Patient Monitoring Form fields of one session."""

    bp_before: BpPoint | None  #: the last reading before the dose
    bp_before_note: str  #: why it is missing
    bp_40: BpPoint | None  #: the reading closest to 40 min after the dose (± the window)
    bp_40_note: str
    bp_end: BpPoint | None  #: the last reading of the session
    bp_end_note: str
    monitoring_start: float | None
    monitoring_end: float | None
    monitoring_minutes: float | None
    in_range_before_dose: Answer
    in_range_before_end: Answer
    sedation: Answer
    dissociation: Answer
    respiratory_depression: Answer
    ready_to_leave: float | None  #: wall clock
    ready_to_leave_note: str  #: where it came from, or why it is missing
    dose_wall: float | None

    def rows(self, *, names: bool = True) -> list[tuple[str, str]]:
        """(label, value) pairs in the form's order; ``names`` False leaves out assessors."""
        dose = self.dose_wall

        def bp(point: BpPoint | None, note: str) -> str:
            return (
                f"not recorded: {note}"
                if point is None
                else f"{point.text} {when(point.wall, dose)}"
            )

        def answer(a: Answer) -> str:
            source = a.source
            if names and a.author:
                source = f"{source} by {a.author}" if source else f"by {a.author}"
            return f"{a.text} ({source})" if source else a.text

        if self.monitoring_minutes is None:
            total = "not recorded: no device data"
        else:
            assert self.monitoring_start is not None and self.monitoring_end is not None
            total = (
                f"{self.monitoring_minutes:.0f} min (first device data "
                f"{clock(self.monitoring_start)}, end {clock(self.monitoring_end)})"
            )
            if self.monitoring_minutes < MIN_MONITORING_MIN:
                total += f"; less than the {MIN_MONITORING_MIN:.0f} min minimum"
        ready = (
            f"not recorded: {self.ready_to_leave_note}"
            if self.ready_to_leave is None
            else f"{clock(self.ready_to_leave)} ({self.ready_to_leave_note})"
        )
        return [
            ("BP before administration", bp(self.bp_before, self.bp_before_note)),
            ("BP at 40 min after administration", bp(self.bp_40, self.bp_40_note)),
            ("BP before completion (last reading)", bp(self.bp_end, self.bp_end_note)),
            ("Total monitoring time", total),
            ("Vitals in range before administration", answer(self.in_range_before_dose)),
            ("Vitals in range before completion", answer(self.in_range_before_end)),
            ("Sedation", answer(self.sedation)),
            ("Dissociation", answer(self.dissociation)),
            ("Respiratory depression", answer(self.respiratory_depression)),
            ("Ready to leave", ready),
        ]


# --- the assessment convention ----------------------------------------------------------------


def assessment_text(field: str, value: bool | str | datetime) -> str:
    """The event text for an assessment: ``assessment_text(SEDATION, False)`` → "sedation: no".

    ``ready to leave`` takes a datetime (written as ISO 8601) or "HH:MM".
    """
    if field not in ASSESSMENT_FIELDS:
        raise ValueError(
            f"unknown assessment field '{field}' (known: {', '.join(ASSESSMENT_FIELDS)})"
        )
    if isinstance(value, bool):
        if field == READY_TO_LEAVE:
            raise ValueError("'ready to leave' takes a time, not yes/no")
        return f"{field}: {'yes' if value else 'no'}"
    if isinstance(value, datetime):
        return f"{field}: {value.isoformat(timespec='minutes')}"
    return f"{field}: {value.strip()}"


def parse_assessment(text: str) -> tuple[str, str] | None:
    """``"Sedation: Yes"`` → ("sedation", "yes"); None if the text is not an assessment."""
    name, sep, value = text.partition(":")
    name = " ".join(name.lower().split())
    if not sep or name not in ASSESSMENT_FIELDS or not value.strip():
        return None
    return name, value.strip()


def current_events(record: SessionRecord) -> list[EventRecord]:
    """The events no later event amends (originals that were corrected drop out)."""
    amended = {e.amends for e in record.events if e.amends is not None}
    return [e for e in record.events if e.id not in amended]


def assessments(record: SessionRecord) -> dict[str, tuple[EventRecord, str]]:
    """Per field, the assessment in force: (its event, its value as written)."""
    by_id = {e.id: e for e in record.events}

    def is_assessment(e: EventRecord, depth: int = 0) -> bool:
        if e.kind == ASSESSMENT_KIND:
            return True
        target = by_id.get(e.amends) if e.amends is not None else None
        return target is not None and depth < 50 and is_assessment(target, depth + 1)

    found: dict[str, tuple[EventRecord, str]] = {}
    for e in sorted(current_events(record), key=lambda e: e.stamp.wall):  # stable: ties by order
        parsed = parse_assessment(e.text) if is_assessment(e) else None
        if parsed is not None:
            found[parsed[0]] = (e, parsed[1])  # later ones replace earlier ones
    return found


def _yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in _YES else False if v in _NO else None


def _ready_time(value: str, written: float) -> float | None:
    """A "ready to leave" value as wall time: HH:MM on the day it was written, or ISO 8601."""
    m = _CLOCK.match(value.strip())
    if m:
        day = datetime.fromtimestamp(written)
        at = day.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3] or 0), microsecond=0)
        if not (0 <= int(m[1]) < 24 and 0 <= int(m[2]) < 60):
            return None
        # Written just after midnight about the evening before (or the reverse): nearest day.
        if at - day > timedelta(hours=12):
            at -= timedelta(days=1)
        elif day - at > timedelta(hours=12):
            at += timedelta(days=1)
        return at.timestamp()
    try:
        return datetime.fromisoformat(value.strip()).timestamp()  # naive: local time
    except ValueError:
        return None


# --- the form -------------------------------------------------------------------------------


def rems_form(
    record: SessionRecord, profile: Profile | None = None, summary: SessionSummary | None = None
) -> RemsForm:
    """The form's fields for ``record`` (``summary``: reuse one already computed)."""
    if profile is None:
        profile = summary.profile if summary and summary.profile else session_profile(record)[0]
    summary = summary or summarise(record, profile)
    dose = record.dose_stamp
    dose_wall = dose.wall if dose is not None else None
    readings = [r for r in record.nibp if usable(r)]
    found = assessments(record)

    # BP before, near 40 min, at the end.
    if dose_wall is None:
        bp_before, before_note = None, "no dose marked"
    else:
        pre = [r for r in readings if r.stamp.wall < dose_wall]
        bp_before = bp_point(pre[-1], dose_wall) if pre else None
        before_note = "" if pre else "no NIBP reading before the dose"
    bp_40, note_40 = _bp_40(readings, dose_wall)
    bp_end = bp_point(readings[-1], dose_wall) if readings else None
    end_note = "" if readings else "no NIBP reading"

    start, end = summary.monitoring_start, summary.monitoring_end
    in_before = (
        Answer(None, "not recorded", "no dose marked")
        if dose_wall is None
        else _in_range(record, profile, dose_wall, None, "before the dose")
    )
    in_end = (
        Answer(None, "not recorded", "no device data")
        if end is None
        else _in_range(record, profile, end + 1e-6, summary, "before the end")
    )
    ready, ready_note = _ready(record, found)
    return RemsForm(
        bp_before=bp_before,
        bp_before_note=before_note,
        bp_40=bp_40,
        bp_40_note=note_40,
        bp_end=bp_end,
        bp_end_note=end_note,
        monitoring_start=start,
        monitoring_end=end,
        monitoring_minutes=summary.monitored_minutes,
        in_range_before_dose=in_before,
        in_range_before_end=in_end,
        sedation=_answer(found, SEDATION)
        or _scored(summary.scores.sedation if summary.scores else None, "sedated", "deepest")
        or Answer(None, "not recorded"),
        dissociation=_answer(found, DISSOCIATION)
        or _scored(
            summary.scores.dissociation if summary.scores else None, "dissociated", "strongest"
        )
        or _dissociation_marker(record),
        respiratory_depression=_answer(found, RESPIRATORY_DEPRESSION)
        or _breathing_alarms(record, summary, profile)
        or _spo2_alarms(record, summary),
        ready_to_leave=ready,
        ready_to_leave_note=ready_note,
        dose_wall=dose_wall,
    )


def _bp_40(readings, dose_wall: float | None) -> tuple[BpPoint | None, str]:
    if dose_wall is None:
        return None, "no dose marked"
    if not readings:
        return None, "no NIBP reading"
    after = [r for r in readings if r.stamp.wall >= dose_wall]
    if not after:
        return None, "no NIBP reading after the dose"

    def off(r) -> float:
        return abs((r.stamp.wall - dose_wall) / 60.0 - BP_40_TARGET_MIN)

    best = min(after, key=off)  # the first of equally close readings: the earlier one
    if off(best) > BP_40_WINDOW_MIN:
        lo, hi = BP_40_TARGET_MIN - BP_40_WINDOW_MIN, BP_40_TARGET_MIN + BP_40_WINDOW_MIN
        nearest = minutes_text((best.stamp.wall - dose_wall) / 60.0)
        return None, (f"no reading {lo:.0f}–{hi:.0f} min after the dose (nearest at {nearest})")
    return bp_point(best, dose_wall), ""


def _answer(found: dict[str, tuple[EventRecord, str]], field: str) -> Answer | None:
    if field not in found:
        return None
    event, value = found[field]
    yes = _yes_no(value)
    source = f"assessment at {clock(event.stamp.wall)}"
    if yes is None:
        return Answer(None, f"not recorded (unreadable assessment '{value}')", source, event.author)
    return Answer(yes, "Yes" if yes else "No", source, event.author)


def _scored(course: Course | None, state: str, worst_is: str) -> Answer | None:
    """Yes (from when, the worst score, resolved when) or No (the worst score), from the
    scores, for the clinician to confirm; None without any score of the effect."""
    if course is None:
        return None
    w = course.worst
    n = len(course.scores)
    confirm = f"from {n} score{'s' if n != 1 else ''}, to be confirmed; the {worst_is} scored"
    worst = f"{worst_is} {w.scale.name} {w.value} at {clock(w.wall)}"
    if not course.stretches:
        return Answer(False, f"No: at most {worst}", confirm, w.author)
    first = course.stretches[0].start
    last = course.stretches[-1]
    end = (
        f"resolved at {clock(last.resolved.wall)}"
        if last.resolved is not None
        else f"not resolved by the last score at {clock(course.scores[-1].wall)}"
    )
    return Answer(
        True,
        f"Yes: {state} ({course.threshold}) from {clock(first.wall)}, {worst}, {end}",
        confirm,
        w.author,
    )


def _markers(record: SessionRecord, name: str) -> list[EventRecord]:
    """Current markers whose text begins with ``name`` (followed by ":", " (" or nothing)."""
    out = []
    for e in current_events(record):
        text = e.text.strip().lower()
        if e.kind == "marker" and (text == name or text.startswith((name + ":", name + " ("))):
            out.append(e)
    return out


def _dissociation_marker(record: SessionRecord) -> Answer:
    marks = _markers(record, DISSOCIATION_MARKER)
    if not marks:
        return Answer(None, "not recorded")
    first = min(marks, key=lambda e: e.stamp.wall)
    return Answer(True, f"Yes (marked at {clock(first.stamp.wall)})", "dissociation marker")


def depression_conditions(profile: Profile) -> frozenset[str]:
    """The alarm conditions that are respiratory depression: apnoea, the EtCO2 rise, and the
    profile's limit rules on a falling rate or a rising EtCO2 (not a fast rate or a low EtCO2,
    which are hyperventilation or a leaking line)."""
    rules = {
        r.id
        for r in profile.limits
        if (r.direction == "low" and set(r.codes) & breath.RATE_CODES)
        or (r.direction == "high" and Code.CO2_ET in r.codes)
    }
    return frozenset({breath.APNEA, breath.ETCO2_RISE, *rules})


def _breathing_alarms(
    record: SessionRecord, summary: SessionSummary, profile: Profile
) -> Answer | None:
    """Yes with when it began and resolved, No, or None: not for this record to say."""
    if not summary.breathing_monitored:
        return None
    conditions = depression_conditions(profile)
    entries = sorted(
        (
            e
            for e in record.alarms
            if e.condition in conditions
            and e.kind is AlarmKind.PHYSIOLOGICAL
            and e.event in (LogEvent.ACTIVE, LogEvent.INACTIVE)
        ),
        key=lambda e: e.stamp.wall,
    )
    confirm = "from the alarm record, to be confirmed"
    if not any(e.event is LogEvent.ACTIVE for e in entries):
        if any(e.event is LogEvent.ACTIVE and e.code == Code.SPO2.value for e in record.alarms):
            return None  # SpO2 fell without a breathing alarm: a prompt, not a No
        return Answer(False, "No", f"no breathing alarm with breathing monitored; {confirm}")
    first = next(e for e in entries if e.event is LogEvent.ACTIVE)
    resolved = _resolved(entries)
    names = sorted({e.text or str(e.condition) for e in entries if e.event is LogEvent.ACTIVE})
    end = (
        f"resolved at {clock(resolved)}"
        if resolved is not None
        else "not resolved by the end of the record"
    )
    return Answer(
        True,
        f"Yes: breathing alarm from {clock(first.stamp.wall)} ({', '.join(names)}), {end}",
        confirm,
    )


def _resolved(entries: list[LogEntry]) -> float | None:
    """When the last of the conditions ended (wall), None if one was still on at the end."""
    on: set[tuple] = set()
    last = None
    for e in entries:
        key = (e.condition, e.priority, e.source, e.code)
        if e.event is LogEvent.ACTIVE:
            on.add(key)
        elif key in on:
            on.discard(key)
            if not on:
                last = e.stamp.wall
    return None if on else last


def _spo2_alarms(record: SessionRecord, summary: SessionSummary) -> Answer:
    fired = [
        e
        for e in record.alarms
        if e.event is LogEvent.ACTIVE
        and e.kind is AlarmKind.PHYSIOLOGICAL
        and e.code == Code.SPO2.value
    ]
    if not fired:  # with breathing monitored the record answered already
        return Answer(None, "not recorded", "breathing not monitored")
    low = summary.lowest_spo2
    lowest = f", lowest SpO2 {num(low.value)} % at {clock(low.wall)}" if low else ""
    n = len(fired)
    return Answer(
        None, f"see SpO2 alarms ({n} alarm{'s' if n != 1 else ''}{lowest})", "to be assessed"
    )


def _ready(
    record: SessionRecord, found: dict[str, tuple[EventRecord, str]]
) -> tuple[float | None, str]:
    if READY_TO_LEAVE in found:
        event, value = found[READY_TO_LEAVE]
        at = _ready_time(value, event.stamp.wall)
        if at is not None:
            return at, f"assessment at {clock(event.stamp.wall)}"
        unreadable = f"unreadable assessment '{value}'"
    else:
        unreadable = ""
    confirmed = _markers(record, CONFIRMED_MARKER)
    if confirmed:
        last = max(confirmed, key=lambda e: e.stamp.wall)
        return last.stamp.wall, "discharge checklist confirmed"
    info = record.info
    if info.status is SessionStatus.COMPLETED and info.ended is not None:
        overridden = _markers(record, "discharge checklist overridden")
        how = "; discharge checklist overridden" if overridden else ""
        return info.ended, f"end of the session{how}"
    why = {
        SessionStatus.INTERRUPTED: "the session was interrupted",
        SessionStatus.STOPPED_BY_SYSTEM: "the system stopped the recording (no discharge check)",
        SessionStatus.ACTIVE: "the session has not ended",
    }.get(info.status, "no end recorded")
    return None, f"{unreadable}; {why}" if unreadable else why


def _in_range(
    record: SessionRecord,
    profile: Profile,
    before: float,
    summary: SessionSummary | None,
    what: str,
) -> Answer:
    """Whether the latest SpO2, pulse and BP before ``before`` are inside every limit."""
    spo2_item = _latest(record, (Code.SPO2,), before)
    rate_item = _latest(record, RATE_CODES, before)
    spo2 = spo2_item.value if spo2_item is not None else None
    rate = rate_item.value if rate_item is not None else None
    bp = next((r for r in reversed(record.nibp) if usable(r) and r.stamp.wall < before), None)
    judged: list[str] = []
    out: list[str] = []
    values: list[tuple[Code, float]] = []
    if spo2 is not None:
        values.append((Code.SPO2, spo2))
        judged.append(f"SpO2 {num(spo2)} %")
    if rate_item is not None and rate is not None:
        values.append((rate_item.code, rate))
        judged.append(f"pulse {num(rate)} /min")
    if bp is None or bp.systolic is None:  # a usable reading has a systolic
        seen = ", ".join(judged)
        return Answer(None, "not recorded", f"no BP reading {what}" + (f"; {seen}" if seen else ""))
    for code, value in bp.parts():
        if value is not None:
            values.append((code, value))
    judged.append(f"BP {num(bp.systolic)}/{num(bp.diastolic)} mmHg")
    for rule in profile.limits:
        level = rule.levels[0][1]  # the least severe level: "in range" is inside all of them
        for code, value in values:
            if code in rule.codes and rule.beyond(value, level):
                sign = "<" if rule.direction == "low" else ">"
                out.append(f"{rule.message} ({num(value)} {sign} {num(level)})")
    rise = profile.baseline_rise
    if summary is not None and rise is not None and summary.baseline is not None:
        base = summary.baseline
        if bp.systolic - base.systolic >= rise.systolic or (
            bp.diastolic is not None and bp.diastolic - base.diastolic >= rise.diastolic
        ):
            out.append(
                f"BP risen from the baseline {num(base.systolic)}/{num(base.diastolic)} "
                f"by >= +{num(rise.systolic)}/+{num(rise.diastolic)}"
            )
    missing = [name for name, v in (("SpO2", spo2), ("pulse", rate)) if v is None]
    tail = f"; no {' or '.join(missing)}" if missing else ""
    if out:
        return Answer(False, "No", "; ".join(out) + tail)
    return Answer(True, "Yes", ", ".join(judged) + tail)


def _latest(record: SessionRecord, codes: tuple[Code, ...], before: float) -> Numeric | None:
    """The latest numeric of ``codes`` with a value, stamped before ``before``."""
    for n in reversed(record.numerics):
        if n.stamp.wall < before and n.code in codes and n.value is not None:
            return n
    return None


__all__ = [
    "ASSESSMENT_FIELDS",
    "ASSESSMENT_KIND",
    "BP_40_TARGET_MIN",
    "BP_40_WINDOW_MIN",
    "DISSOCIATION",
    "READY_TO_LEAVE",
    "RESPIRATORY_DEPRESSION",
    "SEDATION",
    "YES_NO_FIELDS",
    "Answer",
    "RemsForm",
    "assessment_text",
    "assessments",
    "current_events",
    "parse_assessment",
    "rems_form",
]
