"""The figures of a recorded session: baseline, peaks, time beyond each limit, alarms, recovery.

One function, :func:`summarise`, computes them from a :class:`SessionRecord` for the review
window and the PDF report, so both show the same numbers. Rules:

- **Missing is None, never 0.** A figure that cannot be computed (no dose, no NIBP, no SpO2)
  is None and :meth:`SessionSummary.rows` says why; a 0 is a measured zero (no time beyond a
  limit while values were there). Counts (readings, alarms) are counts and may be 0.
- **The baseline is the alarm engine's**: the pre-dose NIBP readings are fed through
  :class:`~alarms.engine.AlarmEngine` and its baseline is read back, so review and the live
  rise-from-baseline alarm can never disagree about it. No dose: no baseline.
- **Limits are the session's own profile** (stored with the session), with any limit change
  the alarm log records applied from its time on. Without a stored profile: ``kap-default``.
- **Time beyond a limit** (per rule and level) counts a numeric as beyond from its stamp until
  the next sample of the same code from the same device, if that next sample comes within
  :data:`HOLD_MAX_S`; a longer gap (probe off, device lost) counts nothing, and neither does the
  last sample of a series. Devices measuring the same code are merged (a second counted once).
  NIBP rules arrive one reading at a time, so they count readings beyond the limit instead.
- **Back near baseline** uses the discharge checklist's margins
  (:class:`kapmonitor.core.discharge.DischargeCriteria`): the first reading at or after the
  post-dose systolic peak with systolic ≤ baseline + 20 and diastolic ≤ baseline + 10 mmHg.
- **Time to acknowledge**: from a condition's start to the first acknowledgment of the same
  condition (rule, level, device, code) before that condition starts again.
- **Breathing** (issue 17): the lowest respiratory rate (chest or airway), the highest EtCO2
  and the time with no breath, from the values the alarm engine would judge (impossible values
  and values of a sampling line that is off or blocked left out). No breath is what the alarm
  engine calls so (:func:`alarms.breathing.says_no_breath`: the no-breath flag, a rate of 0),
  each value held until the next of its stream as for time beyond a limit, streams merged.
  Without any breathing value the three are None and the summary says breathing was not
  monitored; without a capnograph the highest EtCO2 is None.
- **Scores** (issue 17): the deepest sedation (lowest MOAA/S), the strongest dissociation and
  when each resolved, from :mod:`kapmonitor.review.scores`, judged by the stored profile's
  ``[assessment]`` plan. Scores are not a device: they neither start nor end the monitored time.
  A score limit (MOAA/S low) counts the scores beyond it, as an NIBP rule counts readings: a
  score every 15 minutes is not a series to hold from one sample to the next.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from alarms import breathing as breath
from alarms.engine import SESSION, AlarmEngine, trusted
from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from alarms.profile import LimitRule, Profile, ProfileError, load_profile, parse_profile
from kapmonitor.core.assessment import SCORE_CODES
from kapmonitor.core.assessment import SOURCE as SCORE_SOURCE
from kapmonitor.core.codes import Code
from kapmonitor.core.discharge import DischargeCriteria
from kapmonitor.core.model import (
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)
from kapmonitor.record.session import SessionRecord
from kapmonitor.review.scores import Course, ScoreSummary, summarise_scores

T = TypeVar("T")

#: A sample holds its value until the next one, but across a longer gap it counts for nothing.
HOLD_MAX_S = 10.0
DEFAULT_PROFILE = "kap-default"
NIBP_CODES = frozenset({Code.NIBP_SYS, Code.NIBP_DIA, Code.NIBP_MEAN})
RATE_CODES = (Code.PULSE_RATE, Code.HEART_RATE)
PRIORITIES = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)


# --- value types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A value at a time: a peak, a lowest value, a rise from baseline."""

    value: float
    wall: float  #: seconds since the epoch
    minutes_from_dose: float | None  #: None when the session has no dose
    code: str | None = None  #: the measurement, where more than one could give it


@dataclass(frozen=True)
class BpPoint:
    """One NIBP reading, with its time from the dose."""

    systolic: float
    diastolic: float | None
    mean: float | None
    wall: float
    minutes_from_dose: float | None

    @property
    def text(self) -> str:
        """``124/78 mmHg`` (``124/--- mmHg`` when the diastolic is missing)."""
        return f"{num(self.systolic)}/{num(self.diastolic)} mmHg"


@dataclass(frozen=True)
class Baseline:
    systolic: float
    diastolic: float
    readings: int  #: how many pre-dose readings the mean is of


@dataclass(frozen=True)
class LimitExposure:
    """How long (numerics) or how often (NIBP) the values were beyond one level of one rule."""

    rule: str  #: the profile's rule id, e.g. "spo2-low"
    message: str
    priority: Priority
    direction: str  #: "low" or "high"
    limit: float  #: the limit at the start of the session
    limit_changed: bool  #: a limit change in the alarm log applied during the session
    unit: str
    seconds: float | None  #: numerics: time beyond; None without any value of its codes
    readings: int | None  #: NIBP: readings beyond the limit; None for numeric rules or no reading
    of_readings: int | None  #: NIBP: readings judged (0: none); None for numeric rules
    counted: str = "readings"  #: what ``readings`` counts: NIBP readings, or scores

    @property
    def label(self) -> str:
        sign = "<" if self.direction == "low" else ">"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.message} ({sign} {num(self.limit)}{unit}, {self.priority.label})"


@dataclass(frozen=True)
class AlarmStats:
    """The alarm conditions of one priority, and how fast people acknowledged them."""

    priority: Priority
    count: int  #: conditions that became active
    physiological: int
    technical: int
    acknowledged: int
    ack_median_s: float | None
    ack_max_s: float | None


@dataclass(frozen=True)
class SessionSummary:
    """The session's figures; see the module docstring for how each is computed."""

    profile_name: str
    profile_note: str  #: where the profile came from
    dose_wall: float | None
    monitoring_start: float | None  #: the first device data
    monitoring_end: float | None  #: the end of the session (or its last data)
    monitored_minutes: float | None
    nibp_readings: int  #: readings with a value
    nibp_failed: int
    baseline: Baseline | None
    baseline_note: str  #: why there is none, or what it is
    peak_systolic: BpPoint | None
    peak_diastolic: BpPoint | None
    peak_heart_rate: Point | None  #: pulse rate or ECG heart rate, whichever is higher
    lowest_spo2: Point | None
    max_rise_systolic: Point | None  #: value: mmHg above the baseline (negative: below)
    max_rise_diastolic: Point | None
    back_near_baseline: BpPoint | None  #: the first reading near baseline after the peak
    recovery_minutes: float | None  #: from the post-dose systolic peak to that reading
    recovery_note: str
    bp_margin: tuple[float, float]  #: (systolic, diastolic) mmHg: "near" the baseline
    exposures: tuple[LimitExposure, ...]
    alarms: tuple[AlarmStats, ...]  #: high, medium, low
    #: Breathing: any respiratory rate or CO2 value recorded (else the three below are None).
    breathing_monitored: bool = False
    lowest_resp_rate: Point | None = None  #: chest (impedance) or airway rate
    highest_etco2: Point | None = None  #: None also without a capnograph
    no_breath_seconds: float | None = None  #: time with no breath; 0: breathing throughout
    #: The sedation and dissociation scores and what they show (None: not computed).
    scores: ScoreSummary | None = None
    #: The profile the figures were judged by (the REMS form judges "in range" by it too).
    profile: Profile | None = field(default=None, repr=False, compare=False)

    @property
    def alarm_counts(self) -> dict[Priority, int]:
        return {a.priority: a.count for a in self.alarms}

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs in reading order, for the review window and the PDF."""
        dose = self.dose_wall
        rows: list[tuple[str, str]] = []
        if self.monitored_minutes is None:
            rows.append(("Monitored", "not recorded: no device data"))
        else:
            assert self.monitoring_start is not None and self.monitoring_end is not None
            rows.append(
                (
                    "Monitored",
                    f"{self.monitored_minutes:.0f} min ({clock(self.monitoring_start)}–"
                    f"{clock(self.monitoring_end)})",
                )
            )
        failed = f" ({self.nibp_failed} failed)" if self.nibp_failed else ""
        rows.append(("NIBP readings", f"{self.nibp_readings}{failed}"))
        if self.baseline is None:
            rows.append(("Baseline (pre-dose)", f"none: {self.baseline_note}"))
        else:
            b = self.baseline
            rows.append(
                (
                    "Baseline (pre-dose)",
                    # Whole mmHg, as the alarm engine states it on screen.
                    f"{b.systolic:.0f}/{b.diastolic:.0f} mmHg (mean of {b.readings} "
                    f"reading{'s' if b.readings != 1 else ''})",
                )
            )
        for label, bp in (
            ("Peak systolic", self.peak_systolic),
            ("Peak diastolic", self.peak_diastolic),
        ):
            rows.append((label, _missing("no NIBP reading", bp, lambda p: _bp_when(p, dose))))
        for label, rise in (
            ("Largest rise, systolic", self.max_rise_systolic),
            ("Largest rise, diastolic", self.max_rise_diastolic),
        ):
            why = "no baseline" if self.baseline is None else "no NIBP reading after the dose"
            rows.append(
                (label, _missing(why, rise, lambda p: f"{p.value:+.0f} mmHg {when(p.wall, dose)}"))
            )
        margin = f"within +{num(self.bp_margin[0])}/+{num(self.bp_margin[1])} mmHg"
        if self.back_near_baseline is None:
            rows.append((f"BP back near baseline ({margin})", self.recovery_note))
        else:
            p = self.back_near_baseline
            rows.append(
                (
                    f"BP back near baseline ({margin})",
                    f"{p.text} {when(p.wall, dose)}, {self.recovery_minutes:.0f} min after "
                    f"the peak" + (f" ({self.recovery_note})" if self.recovery_note else ""),
                )
            )
        rows.append(
            (
                "Peak pulse/heart rate",
                _missing(
                    "no pulse or heart rate", self.peak_heart_rate,
                    lambda p: f"{num(p.value)} /min {when(p.wall, dose)}",
                ),
            )
        )  # fmt: skip
        rows.append(
            (
                "Lowest SpO2",
                _missing(
                    "no SpO2", self.lowest_spo2, lambda p: f"{num(p.value)} % {when(p.wall, dose)}"
                ),
            )
        )
        rows += self.breathing_rows()
        rows += self.score_rows()
        for e in self.exposures:
            changed = " (limit changed during the session)" if e.limit_changed else ""
            if e.of_readings is not None:
                value = (
                    f"{e.readings} of {e.of_readings} {e.counted}"
                    if e.readings is not None
                    else ("not scored" if e.counted == "scores" else "no NIBP reading")
                )
            elif e.seconds is None:
                value = "no values"
            else:
                value = duration(e.seconds)
            rows.append((f"Beyond: {e.label}", value + changed))
        for a in self.alarms:
            if not a.count:
                rows.append((f"Alarms, {a.priority.label}", "none"))
                continue
            kinds = ", ".join(
                f"{n} {k}"
                for n, k in ((a.physiological, "physiological"), (a.technical, "technical"))
                if n
            )
            ack = (
                f"acknowledged {a.acknowledged}, median {duration(a.ack_median_s)}, "
                f"max {duration(a.ack_max_s)} to acknowledge"
                if a.acknowledged
                else "none acknowledged"
            )
            rows.append((f"Alarms, {a.priority.label}", f"{a.count} ({kinds}); {ack}"))
        rows.append(("Alarm profile", f"{self.profile_name} ({self.profile_note})"))
        return rows

    def breathing_rows(self) -> list[tuple[str, str]]:
        """Lowest rate, highest EtCO2, time with no breath; or that breathing was not monitored."""
        if not self.breathing_monitored:
            return [("Breathing", "not monitored: no respiratory rate or CO2 was recorded")]
        dose = self.dose_wall
        return [
            (
                "Lowest respiratory rate",
                _missing(
                    "no respiratory rate", self.lowest_resp_rate,
                    lambda p: f"{num(p.value)} /min {when(p.wall, dose)}",
                ),
            ),
            (
                "Highest EtCO2",
                _missing(
                    "no EtCO2 (no capnograph)", self.highest_etco2,
                    lambda p: f"{num(p.value)} mmHg {when(p.wall, dose)}",
                ),
            ),
            ("Time with no breath", duration(self.no_breath_seconds)),
        ]  # fmt: skip

    def score_rows(self) -> list[tuple[str, str]]:
        """Deepest sedation, strongest dissociation, and when each resolved; or "not scored"."""
        scores = self.scores
        if scores is None or not scores.scored:
            return [("Sedation and dissociation", "not scored")]
        dose = self.dose_wall
        rows: list[tuple[str, str]] = []
        for course, worst_label, state in (
            (scores.sedation, "Deepest sedation", "Sedated"),
            (scores.dissociation, "Strongest dissociation", "Dissociated"),
        ):
            if course is None:
                rows.append((worst_label, "not scored"))
                continue
            w = course.worst
            rows.append((worst_label, f"{w.words} {when(w.wall, dose)}"))
            rows.append((f"{state} ({course.threshold})", stretch_text(course, dose)))
        return rows


def stretch_text(course: Course, dose_wall: float | None) -> str:
    """``from 10:40 (+15 min), resolved at 11:10 (+45 min) (30 min 00 s)``; a later stretch
    follows with "again"; ``none (4 scores)`` when no score was in the state."""
    if not course.stretches:
        n = len(course.scores)
        return f"none ({n} score{'s' if n != 1 else ''})"
    parts = []
    for i, s in enumerate(course.stretches):
        start = f"{'again ' if i else ''}from {clock_dose(s.start.wall, dose_wall)}"
        if s.resolved is None:
            last = course.scores[-1]
            parts.append(
                f"{start}, not resolved by the last score ({last.scale.name} {last.value} at "
                f"{clock(last.wall)})"
            )
        else:
            parts.append(
                f"{start}, resolved at {clock_dose(s.resolved.wall, dose_wall)} "
                f"({duration(s.resolved.wall - s.start.wall)})"
            )
    return "; ".join(parts)


def clock_dose(wall: float, dose_wall: float | None) -> str:
    """``10:48 (+38 min)``: the clock time and, with a dose, the minutes from it."""
    if dose_wall is None:
        return clock(wall)
    return f"{clock(wall)} ({minutes_text((wall - dose_wall) / 60.0)})"


# --- formatting shared with the REMS form and the report --------------------------------------


def clock(wall: float) -> str:
    """Local clock time, HH:MM: what a clinician reads on a report."""
    return time.strftime("%H:%M", time.localtime(wall))


def when(wall: float, dose_wall: float | None) -> str:
    """``at 10:48 (+38 min)``: the clock time and, with a dose, the minutes from it."""
    if dose_wall is None:
        return f"at {clock(wall)}"
    return f"at {clock(wall)} ({minutes_text((wall - dose_wall) / 60.0)})"


def minutes_text(minutes: float) -> str:
    """``+38 min`` / ``-5 min``: minutes from the dose, rounded to whole minutes."""
    m = round(minutes)
    return f"{'-' if m < 0 else '+'}{abs(m)} min"


def duration(seconds: float | None) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def num(value: float | None) -> str:
    """A whole number as a clinician writes it; ``---`` when missing (never 0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "---"
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def unit_text(ucum: str) -> str:
    """A UCUM unit as printed on a chart: ``mm[Hg]`` → ``mmHg``."""
    return {"mm[Hg]": "mmHg", "{score}": ""}.get(ucum, ucum)


def _bp_when(p: BpPoint, dose_wall: float | None) -> str:
    return f"{p.text} {when(p.wall, dose_wall)}"


def _missing(why: str, value, fmt) -> str:
    return f"not recorded: {why}" if value is None else fmt(value)


# --- the profile ------------------------------------------------------------------------------


def session_profile(record: SessionRecord) -> tuple[Profile, str]:
    """The profile the session ran with, and a note saying where it came from.

    A stored profile that no longer parses (a newer profile format) falls back to the default
    rather than losing the whole review; the note says so.
    """
    text = record.profile_text
    if text.strip():
        try:
            return parse_profile(text, f"{record.info.alarm_profile or 'profile'} (stored)"), (
                "as recorded with the session"
            )
        except ProfileError as exc:
            return load_profile(
                DEFAULT_PROFILE
            ), f"default: the stored profile is unreadable: {exc}"
    return load_profile(DEFAULT_PROFILE), "default: the session has no stored profile"


# --- the figures --------------------------------------------------------------------------


def usable(reading: NibpReading) -> bool:
    """A reading the alarm engine judges (and takes into the baseline): a measured systolic."""
    return reading.systolic is not None and Flag.MEASUREMENT_FAILED not in reading.flags


def bp_point(reading: NibpReading, dose_wall: float | None) -> BpPoint:
    assert reading.systolic is not None
    return BpPoint(
        reading.systolic,
        reading.diastolic,
        reading.mean,
        reading.stamp.wall,
        None if dose_wall is None else (reading.stamp.wall - dose_wall) / 60.0,
    )


def engine_baseline(record: SessionRecord, profile: Profile) -> tuple[Baseline | None, str]:
    """The pre-dose baseline exactly as the alarm engine sets it at the dose, and a note."""
    dose = record.dose_stamp
    if dose is None:
        return None, "no dose marked"
    engine = AlarmEngine(profile)
    before = [r for r in record.nibp if r.stamp.wall < dose.wall]
    for reading in before:
        engine.process(reading)
    engine.process(SessionEvent(SESSION, SessionEventKind.DOSE, dose, ""))
    base = engine.baseline
    if base is None:
        return None, "no NIBP reading before the dose"
    # The engine keeps the readings it averaged privately; these are the ones it accepts.
    n = sum(1 for r in before if usable(r) and r.diastolic is not None)
    return Baseline(base[0], base[1], n), f"mean of {n} pre-dose readings"


def summarise(
    record: SessionRecord,
    profile: Profile | None = None,
    criteria: DischargeCriteria | None = None,
) -> SessionSummary:
    """The figures of one session. ``profile`` None: the one the session was recorded with."""
    if profile is None:
        profile, note = session_profile(record)
    else:
        note = "chosen for this review"
    if criteria is None:
        criteria = DischargeCriteria()
    dose = record.dose_stamp
    dose_wall = dose.wall if dose is not None else None
    readings = [r for r in record.nibp if usable(r)]
    start, end = monitoring_span(record)
    baseline, baseline_note = engine_baseline(record, profile)

    systolic = _valued(readings, lambda r: r.systolic)  # every usable reading has one
    diastolic = _valued(readings, lambda r: r.diastolic)
    peak_sys = max(systolic, key=_first, default=None)
    peak_dia = max(diastolic, key=_first, default=None)
    rates = _valued((n for n in record.numerics if n.code in RATE_CODES), lambda n: n.value)
    peak_rate = max(rates, key=_first, default=None)
    spo2 = _valued((n for n in record.numerics if n.code is Code.SPO2), lambda n: n.value)
    low_spo2 = min(spo2, key=_first, default=None)

    def point(value: float, stamp: Stamp, code: str | None = None) -> Point:
        minutes = None if dose_wall is None else (stamp.wall - dose_wall) / 60.0
        return Point(value, stamp.wall, minutes, code)

    rise_sys = rise_dia = None
    back = None
    recovery_minutes = None
    margin = (criteria.bp_margin_systolic, criteria.bp_margin_diastolic)
    if baseline is None or dose_wall is None:  # a baseline is set at the dose: both or neither
        recovery_note = f"not known: {baseline_note}"
    else:
        after = [(v, r) for v, r in systolic if r.stamp.wall >= dose_wall]
        top = max(after, key=_first, default=None)
        if top is not None:
            rise_sys = point(top[0] - baseline.systolic, top[1].stamp)
        after_dia = [(v, r) for v, r in diastolic if r.stamp.wall >= dose_wall]
        top = max(after_dia, key=_first, default=None)
        if top is not None:
            rise_dia = point(top[0] - baseline.diastolic, top[1].stamp)
        back, recovery_minutes, recovery_note = _recovery(after, baseline, margin, dose_wall)

    breathing = [n for n in record.numerics if n.code in breath.BREATHING_CODES]
    rates = _breathing_values(breathing, breath.RATE_CODES)
    low_rate = min(rates, key=_first, default=None)
    etco2 = _breathing_values(breathing, frozenset({Code.CO2_ET}))
    high_etco2 = max(etco2, key=_first, default=None)

    return SessionSummary(
        profile_name=profile.name,
        profile_note=note,
        dose_wall=dose_wall,
        monitoring_start=start,
        monitoring_end=end,
        monitored_minutes=None if start is None or end is None else (end - start) / 60.0,
        nibp_readings=len(readings),
        nibp_failed=len(record.nibp) - len(readings),
        baseline=baseline,
        baseline_note=baseline_note,
        peak_systolic=bp_point(peak_sys[1], dose_wall) if peak_sys else None,
        peak_diastolic=bp_point(peak_dia[1], dose_wall) if peak_dia else None,
        peak_heart_rate=point(peak_rate[0], peak_rate[1].stamp, peak_rate[1].code.value)
        if peak_rate
        else None,
        lowest_spo2=point(low_spo2[0], low_spo2[1].stamp, low_spo2[1].code.value)
        if low_spo2
        else None,
        max_rise_systolic=rise_sys,
        max_rise_diastolic=rise_dia,
        back_near_baseline=back,
        recovery_minutes=recovery_minutes,
        recovery_note=recovery_note,
        bp_margin=margin,
        exposures=exposures(record, profile),
        alarms=alarm_stats(record.alarms),
        profile=profile,
        breathing_monitored=bool(breathing),
        lowest_resp_rate=point(low_rate[0], low_rate[1].stamp, low_rate[1].code.value)
        if low_rate
        else None,
        highest_etco2=point(high_etco2[0], high_etco2[1].stamp) if high_etco2 else None,
        no_breath_seconds=no_breath_seconds(breathing) if breathing else None,
        scores=summarise_scores(record, profile.assessment),
    )


def _breathing_values(
    items: Sequence[Numeric], codes: frozenset[Code]
) -> list[tuple[float, Numeric]]:
    """Each value a breathing rule judges: not impossible, not from a line off or blocked."""
    return [
        (v, n)
        for n in items
        if n.code in codes
        and not n.flags & breath.LINE_FLAGS
        and (v := trusted(n.code, n.value, n.flags)) is not None
    ]


def no_breath_seconds(items: Sequence[Numeric]) -> float:
    """Seconds during which any breathing stream said no breath (see the module docstring)."""
    series: dict[tuple[str, Code], tuple[list[float], list[bool]]] = {}
    for n in items:
        value = trusted(n.code, n.value, n.flags)
        if value is None and n.value is not None:
            continue  # impossible: says nothing, as to the alarm engine
        walls, said = series.setdefault((n.source, n.code), ([], []))
        walls.append(n.stamp.wall)
        said.append(breath.says_no_breath(n.code, value, n.flags) is True)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for walls, said in series.values():
        w = np.asarray(walls, dtype=float)
        held = (np.diff(w) <= HOLD_MAX_S) & np.asarray(said[:-1], dtype=bool)
        starts.append(w[:-1][held])
        ends.append(w[1:][held])
    return _union_length(np.concatenate(starts), np.concatenate(ends)) if starts else 0.0


def monitoring_span(record: SessionRecord) -> tuple[float | None, float | None]:
    """From the first device data to the end of the session, or to its last data when that is
    later: a simulated session's data run on the device's clock, ahead of the real end at
    --speed > 1, and an interrupted session's end is its last commit
    (kapmonitor.record.simulated)."""
    firsts = [items[0].stamp.wall for items in _device_lists(record) if items]
    if not firsts:
        return None, None
    start = min(firsts)
    last = max(items[-1].stamp.wall for items in _device_lists(record) if items)
    return start, max(record.info.ended or last, last)


def _device_lists(record: SessionRecord) -> Iterable[Sequence]:
    """What the devices recorded: the numerics without the scores, which a nurse takes."""
    numerics = [n for n in record.numerics if n.source != SCORE_SOURCE]
    return (numerics, record.nibp, record.waves, record.values)


def _valued(items: Iterable[T], value: Callable[[T], float | None]) -> list[tuple[float, T]]:
    """Each item with its value, in order; an item without one (None) is left out."""
    return [(v, item) for item in items if (v := value(item)) is not None]


def _first(pair: tuple[float, object]) -> float:
    return pair[0]


def _recovery(
    after: list[tuple[float, NibpReading]],
    baseline: Baseline,
    margin: tuple[float, float],
    dose_wall: float,
) -> tuple[BpPoint | None, float | None, str]:
    """The first reading near baseline at or after the post-dose systolic peak; ``after`` holds
    each post-dose reading with its systolic."""
    if not after:
        return None, None, "not known: no NIBP reading after the dose"

    def near(systolic: float, r: NibpReading) -> bool:
        return systolic <= baseline.systolic + margin[0] and (
            r.diastolic is None or r.diastolic <= baseline.diastolic + margin[1]
        )

    peak_i = max(range(len(after)), key=lambda i: after[i][0])
    peak = after[peak_i][1]
    for systolic, r in after[peak_i:]:
        if near(systolic, r):
            note = "the BP never rose beyond it" if r is peak else ""
            return bp_point(r, dose_wall), (r.stamp.wall - peak.stamp.wall) / 60.0, note
    last = after[-1][1]
    return (
        None,
        None,
        f"not by the last reading ({bp_point(last, dose_wall).text} at {clock(last.stamp.wall)})",
    )


def _limit_changes(
    alarms: Sequence[LogEntry],
) -> dict[tuple[str, Priority], tuple[list[float], list[float]]]:
    """Per (rule, level): the times (wall) of limit changes and the new limits, in order."""
    out: dict[tuple[str, Priority], tuple[list[float], list[float]]] = {}
    for e in alarms:
        if e.event is LogEvent.LIMIT_CHANGED and e.condition and e.priority and e.limit is not None:
            walls, limits = out.setdefault((e.condition, e.priority), ([], []))
            walls.append(e.stamp.wall)
            limits.append(e.limit)
    return out


def exposures(record: SessionRecord, profile: Profile) -> tuple[LimitExposure, ...]:
    """Time (numerics) or readings (NIBP) beyond each level of each limit rule."""
    series: dict[tuple[str, Code], tuple[list[float], list[float]]] = {}
    for n in record.numerics:
        walls, values = series.setdefault((n.source, n.code), ([], []))
        walls.append(n.stamp.wall)
        values.append(math.nan if n.value is None else n.value)
    arrays = {
        key: (np.asarray(w, dtype=float), np.asarray(v, dtype=float))
        for key, (w, v) in series.items()
    }
    readings = [r for r in record.nibp if usable(r)]
    changes = _limit_changes(record.alarms)
    out = []
    for rule in profile.limits:
        for priority, limit in rule.levels:
            walls, new_limits = changes.get((rule.id, priority), ([], []))
            out.append(_exposure(rule, priority, limit, walls, new_limits, arrays, readings))
    return tuple(out)


def _exposure(
    rule: LimitRule,
    priority: Priority,
    limit: float,
    change_walls: list[float],
    change_limits: list[float],
    arrays: dict[tuple[str, Code], tuple[np.ndarray, np.ndarray]],
    readings: list[NibpReading],
) -> LimitExposure:
    def limits_at(walls: np.ndarray) -> np.ndarray:
        if not change_walls:
            return np.full(walls.shape, limit)
        table = np.asarray([limit, *change_limits])
        return table[np.searchsorted(np.asarray(change_walls), walls, side="right")]

    def beyond(values: np.ndarray, limits: np.ndarray) -> np.ndarray:
        # NaN (a missing value) compares False: missing is never beyond a limit.
        return values < limits if rule.direction == "low" else values > limits

    unit = unit_text(rule.codes[0].unit)
    numeric_codes = [c for c in rule.codes if c not in NIBP_CODES and c not in SCORE_CODES]
    nibp_codes = [c for c in rule.codes if c in NIBP_CODES]
    if any(c in SCORE_CODES for c in rule.codes):
        return _score_exposure(rule, priority, limit, change_walls, limits_at, beyond, arrays)
    seconds = None
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for (_, code), (walls, values) in arrays.items():
        if code not in numeric_codes:
            continue
        seconds = 0.0  # there are values of the rule's codes: beyond time is known
        if walls.size < 2:
            continue
        held = (np.diff(walls) <= HOLD_MAX_S) & beyond(values[:-1], limits_at(walls[:-1]))
        starts.append(walls[:-1][held])
        ends.append(walls[1:][held])
    if starts:
        seconds = _union_length(np.concatenate(starts), np.concatenate(ends))
    count = judged = None
    if nibp_codes:
        count = judged = 0
        for r in readings:
            for code, value in r.parts():
                if code in nibp_codes and value is not None:
                    judged += 1
                    wall = np.asarray([r.stamp.wall])
                    if beyond(np.asarray([value]), limits_at(wall))[0]:
                        count += 1
        if not judged:
            count = None  # no reading: unknown, not "none beyond"
    return LimitExposure(
        rule.id,
        rule.message,
        priority,
        rule.direction,
        limit,
        bool(change_walls),
        unit,
        seconds,
        count,
        judged,
    )


def _score_exposure(
    rule: LimitRule,
    priority: Priority,
    limit: float,
    change_walls: list[float],
    limits_at: Callable[[np.ndarray], np.ndarray],
    beyond: Callable[[np.ndarray, np.ndarray], np.ndarray],
    arrays: dict[tuple[str, Code], tuple[np.ndarray, np.ndarray]],
) -> LimitExposure:
    """Scores beyond a score limit, of the scores taken (None: not scored)."""
    count = judged = 0
    for (_, code), (walls, values) in arrays.items():
        if code in rule.codes:
            judged += int(np.count_nonzero(~np.isnan(values)))
            count += int(np.count_nonzero(beyond(values, limits_at(walls))))
    return LimitExposure(
        rule.id,
        rule.message,
        priority,
        rule.direction,
        limit,
        bool(change_walls),
        unit_text(rule.codes[0].unit),
        None,
        count if judged else None,
        judged,
        "scores",
    )


def _union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total length of the union of intervals [start, end) (devices overlapping count once)."""
    if not starts.size:
        return 0.0
    order = np.argsort(starts, kind="stable")
    total = 0.0
    cur_s, cur_e = float(starts[order[0]]), float(ends[order[0]])
    for i in order[1:]:
        s, e = float(starts[i]), float(ends[i])
        if s > cur_e:
            total += cur_e - cur_s
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    return total + cur_e - cur_s


def alarm_stats(log: Sequence[LogEntry]) -> tuple[AlarmStats, ...]:
    """Per priority: conditions that became active, and their time to acknowledge."""
    ack_times: dict[Priority, list[float]] = {p: [] for p in PRIORITIES}
    counts = {p: [0, 0] for p in PRIORITIES}  # physiological, technical
    pending: dict[tuple, float] = {}  # condition key -> start (wall), until acknowledged
    for e in sorted(log, key=lambda e: e.stamp.wall):
        if e.priority is None:
            continue
        key = (e.condition, e.priority, e.source, e.code)
        if e.event is LogEvent.ACTIVE:
            counts[e.priority][0 if e.kind is not AlarmKind.TECHNICAL else 1] += 1
            pending[key] = e.stamp.wall  # a new start: an unacknowledged earlier one stays so
        elif e.event is LogEvent.ACKNOWLEDGED and key in pending:
            ack_times[e.priority].append(e.stamp.wall - pending.pop(key))
    out = []
    for p in PRIORITIES:
        times = ack_times[p]
        phys, tech = counts[p]
        out.append(
            AlarmStats(
                p,
                phys + tech,
                phys,
                tech,
                len(times),
                statistics.median(times) if times else None,
                max(times) if times else None,
            )
        )
    return tuple(out)
