"""A recorded session laid out on one time axis, for review: plot arrays, events, alarm spans.

Everything is in minutes from the dose (T0), or from the start of the session when no dose was
marked, so the review window, its cursor read-out and the step-through share one scale. Missing
values are NaN and so are gaps: two samples of a code further apart than :data:`GAP_S` get a
NaN between them, so a plot draws the hole rather than a line across it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

import numpy as np

from alarms.model import LogEntry, LogEvent, Priority
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Stamp
from kapmonitor.record.session import EventRecord, SessionRecord
from kapmonitor.review.scores import ScoreSummary, is_score_event
from kapmonitor.review.summary import HOLD_MAX_S

#: Samples of one code further apart than this (seconds) are not joined: the same hold the
#: summary's time-beyond-limits uses, so a plotted gap and an uncounted stretch are one thing.
GAP_S = HOLD_MAX_S
#: The event kinds that are bookkeeping rather than something a clinician looks for.
QUIET_KINDS = frozenset({"nibp-scheduled", "device-state"})


@dataclass(frozen=True)
class Trace:
    """One numeric over the session: x in minutes, y with NaN for missing values and gaps."""

    code: Code
    source: str
    x: np.ndarray
    y: np.ndarray

    def value_at(self, x: float) -> float | None:
        """The last sample at or before x, if it is not older than the gap limit."""
        i = int(np.searchsorted(self.x, x, side="right")) - 1
        if i < 0 or (x - self.x[i]) * 60.0 > GAP_S or math.isnan(self.y[i]):
            return None
        return float(self.y[i])


@dataclass(frozen=True)
class Mark:
    """A session event on the axis; ``correction`` is the latest amendment's text, if any."""

    x: float
    event: EventRecord
    correction: EventRecord | None = None

    @property
    def score(self) -> bool:
        """A sedation or dissociation score said in words: the scores' lane draws it."""
        return is_score_event(self.event.kind, self.event.text)

    @property
    def text(self) -> str:
        shown = self.correction or self.event
        label = shown.kind if not shown.text else f"{shown.kind}: {shown.text}"
        return f"{label} (amended)" if self.correction else label


@dataclass(frozen=True)
class AlarmSpan:
    """One alarm condition from its start to its end (None: still active when the record ends)."""

    start: float
    end: float | None
    entry: LogEntry  #: the ACTIVE log line
    acknowledged: float | None = None
    acknowledged_by: str | None = None

    @property
    def priority(self) -> Priority | None:
        return self.entry.priority


@dataclass
class Timeline:
    """The session for the review window. Build it with :meth:`from_record`."""

    record: SessionRecord
    origin: Stamp | None  #: T0 (the dose); None: minutes count from the start of the session
    origin_wall: float
    traces: dict[tuple[Code, str], Trace] = field(default_factory=dict)
    nibp_x: np.ndarray = field(default_factory=lambda: np.empty(0))
    nibp: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))  #: sys, dia, mean
    marks: list[Mark] = field(default_factory=list)
    alarms: list[AlarmSpan] = field(default_factory=list)
    x_min: float = 0.0
    x_max: float = 0.0
    #: The sedation and dissociation scores, judged by the session's plan (None: not given).
    scores: ScoreSummary | None = None

    @classmethod
    def from_record(cls, record: SessionRecord, scores: ScoreSummary | None = None) -> Timeline:
        """``scores``: the summary's (judged by the session's stored profile), for the lane."""
        dose = record.dose_stamp
        origin_wall = dose.wall if dose is not None else record.info.started
        t = cls(record, dose, origin_wall, scores=scores)
        t._numerics()
        t._nibp()
        t._marks()
        t._alarms()
        walls = [record.info.started]
        if record.info.ended is not None:
            walls.append(record.info.ended)
        walls += [n.stamp.wall for n in record.numerics[-1:]]
        walls += [r.stamp.wall for r in record.nibp[-1:]]
        t.x_min = t.minutes(min(walls))
        t.x_max = max(t.minutes(max(walls)), t.x_min + 1.0)
        return t

    @property
    def dose_relative(self) -> bool:
        return self.origin is not None

    def minutes(self, wall: float) -> float:
        return (wall - self.origin_wall) / 60.0

    def wall(self, minutes: float) -> float:
        return self.origin_wall + minutes * 60.0

    def stamp_at(self, x: float) -> Stamp:
        """A stamp for a moment of the session (a note written in review about minute x), on the
        recording's own monotonic clock where the record gives one to align with."""
        wall = self.wall(x)
        r = self.record
        firsts = [n.stamp for n in r.numerics[:1]] + [b.stamp for b in r.nibp[:1]]
        firsts += [e.stamp for e in r.events[:1]]
        ref = self.origin or (firsts[0] if firsts else None)
        return Stamp(wall if ref is None else ref.mono + (wall - ref.wall), wall)

    def trace(self, code: Code) -> Trace | None:
        """The first source's trace of a code (a session rarely has two devices for one)."""
        return next((tr for (c, _), tr in self.traces.items() if c is code), None)

    def nibp_at(self, x: float, within_min: float = 1.0) -> int | None:
        """The index of the NIBP reading nearest x, if one is within ``within_min``."""
        if not len(self.nibp_x):
            return None
        i = int(np.argmin(np.abs(self.nibp_x - x)))
        return i if abs(self.nibp_x[i] - x) <= within_min else None

    def steps(self, *, events: bool = True, alarms: bool = True) -> list[float]:
        """The times to step through, in order: events the clinician cares about, alarm starts."""
        xs: list[float] = []
        if events:
            xs += [m.x for m in self.marks if m.event.kind not in QUIET_KINDS]
        if alarms:
            xs += [a.start for a in self.alarms]
        return sorted(set(xs))

    def next_step(self, x: float, direction: int, **which: bool) -> float | None:
        """The step after (direction > 0) or before x, or None at the end."""
        xs = self.steps(**which)
        if direction > 0:
            i = bisect.bisect_right(xs, x + 1e-9)
            return xs[i] if i < len(xs) else None
        i = bisect.bisect_left(xs, x - 1e-9) - 1
        return xs[i] if i >= 0 else None

    # --- building --------------------------------------------------------------------------

    def _numerics(self) -> None:
        by_key: dict[tuple[Code, str], tuple[list[float], list[float]]] = {}
        for n in self.record.numerics:
            xs, ys = by_key.setdefault((n.code, n.source), ([], []))
            xs.append(n.stamp.wall)
            ys.append(math.nan if n.value is None else n.value)
        for (code, source), (walls, values) in by_key.items():
            x, y = _with_gaps(np.asarray(walls), np.asarray(values, dtype=float))
            self.traces[(code, source)] = Trace(code, source, (x - self.origin_wall) / 60.0, y)

    def _nibp(self) -> None:
        readings = self.record.nibp
        self.nibp_x = np.array([self.minutes(r.stamp.wall) for r in readings], dtype=float)
        self.nibp = np.array(
            [[_nan(r.systolic), _nan(r.diastolic), _nan(r.mean)] for r in readings], dtype=float
        ).reshape(-1, 3)

    def _marks(self) -> None:
        latest: dict[int, EventRecord] = {}
        for e in self.record.events:
            if e.amends is not None:
                latest[e.amends] = e  # events are in time order: the last correction wins
        for e in self.record.events:
            if e.amends is not None:
                continue
            self.marks.append(Mark(self.minutes(e.stamp.wall), e, _last_in_chain(e.id, latest)))

    def _alarms(self) -> None:
        open_: dict[tuple, int] = {}
        for entry in self.record.alarms:
            key = _alarm_key(entry)
            x = self.minutes(entry.stamp.wall)
            if entry.event is LogEvent.ACTIVE:
                open_[key] = len(self.alarms)
                self.alarms.append(AlarmSpan(x, None, entry))
            elif entry.event is LogEvent.INACTIVE and key in open_:
                i = open_.pop(key)
                self.alarms[i] = replace(self.alarms[i], end=x)
            elif entry.event is LogEvent.ACKNOWLEDGED:
                acked = open_.get(key)
                # acknowledged after it ended (latched): the last of that condition
                if acked is None:
                    acked = next(
                        (j for j in range(len(self.alarms) - 1, -1, -1)
                         if _alarm_key(self.alarms[j].entry) == key),
                        None,
                    )  # fmt: skip
                if acked is not None and self.alarms[acked].acknowledged is None:
                    self.alarms[acked] = replace(
                        self.alarms[acked], acknowledged=x, acknowledged_by=entry.operator
                    )


def _alarm_key(entry: LogEntry) -> tuple:
    """One alarm condition: a condition has a level per priority, and a source."""
    return entry.condition, entry.source, entry.priority


def _last_in_chain(event_id: int, latest: dict[int, EventRecord]) -> EventRecord | None:
    """The newest correction of an event, following corrections of corrections."""
    found = None
    seen = set()
    while event_id in latest and event_id not in seen:
        seen.add(event_id)
        found = latest[event_id]
        event_id = found.id
    return found


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _with_gaps(walls: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN point in every gap longer than GAP_S."""
    if walls.size < 2:
        return walls, values
    breaks = np.flatnonzero(np.diff(walls) > GAP_S) + 1
    if not breaks.size:
        return walls, values
    x = np.insert(walls, breaks, walls[breaks - 1] + GAP_S / 2)
    y = np.insert(values, breaks, math.nan)
    return x, y
