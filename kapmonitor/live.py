"""What the dosing-room screen draws, kept as numpy arrays: plain Python, no Qt.

:class:`LiveBuffers` takes the hub's items (and the alarm log's entries) as they are drained on
the screen's timer tick and keeps just what the live view needs:

* a trend per numeric code (SpO2, pulse rate, heart rate, perfusion index) for the whole
  session: ``(t, value)`` in preallocated arrays that double when full, a missing value
  (``None``) kept as NaN so the plot shows a gap, never a 0;
* a gap in a trend where no value came: a device that stops sending (a pulled cable, a simulated
  unplug, a silent device) sends nothing at all, and a line drawn from the last value before to
  the first after would show a patient who was never measured. A *gap* is (1) a connection
  event of the value's device that is not "connected" (disconnected, reconnecting, no-data)
  between two values, or (2) two values further apart than :data:`GAP_FACTOR` times the trend's
  usual interval and at least :data:`GAP_MIN_S` (:data:`GAP_FIRST_S` before the interval is
  known); either way a NaN point goes between them, which
  the plot (``connect='finite'``) draws as a break;
* the NIBP readings (time, systolic, diastolic, mean, flags);
* the last 10 s of pleth per source in a ring buffer (fixed size: memory is flat however long
  the session runs), NaN samples kept and missing blocks filled with NaN; the capnogram (the CO2
  wave) the same way, in a ring of its own per source;
* the latest value per code with its flags and stamp (its age, on the monotonic clock, is
  :func:`kapmonitor.core.staleness.age`);
* the dose time (T0: the first ``SessionEvent`` DOSE), session markers and alarm starts;
* the nurse's sedation and dissociation scores (:mod:`kapmonitor.core.assessment`) as a plain
  list of :class:`Score`: they come every 15 minutes or so, and a trend's gap watch would
  break every step between two of them into a gap. Their session events (kind ``assessment``)
  are not markers: the scores' own lane shows them.

The screen reads the arrays as views (:meth:`Series.t`, :meth:`Series.v`); each buffer has a
``version`` that changes when it does, so a redraw can skip what has not changed.

Every time kept here is the items' monotonic stamp (``Stamp.mono``): what the screen shows of
them are intervals (minutes from the dose, a value's age, a gap), which a step of the wall clock
(NTP, a user changing the time) must not move. Wall time is for the record and for printing.

Times on the screen are minutes from the dose (:meth:`LiveBuffers.minutes_from_dose`); before
a dose they are minutes from the session start, and once the dose is given the pre-dose part of
the session reads as negative minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from alarms.model import LogEntry, LogEvent, Priority
from kapmonitor.core import staleness
from kapmonitor.core.assessment import SCORE_CODES
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    Flags,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)

#: The source of what the session itself publishes (the nurse's dose and markers), as opposed to
#: a device's (a simulated scenario's own dose).
SESSION_SOURCE = "session"
#: The numerics that get a trend.
TREND_CODES = (
    Code.SPO2,
    Code.PULSE_RATE,
    Code.HEART_RATE,
    Code.PERFUSION,
    # Breathing (issue 17): the rate from the chest or the airway, and the end-tidal CO2.
    Code.RESP_RATE,
    Code.AWAY_RESP_RATE,
    Code.CO2_ET,
)
#: Seconds of pleth (and of capnogram) kept per source.
PLETH_WINDOW_S = 10.0
#: The numerics of breathing: a device that sends any of them (or a CO2 wave) monitors breathing.
BREATHING_CODES = (Code.RESP_RATE, Code.AWAY_RESP_RATE, Code.CO2_ET, Code.CO2_INSP_MIN)
#: First capacity of a growing series: about an hour of 1-Hz numerics before the first doubling.
INITIAL_CAPACITY = 4096
#: A growing series never holds more than this many points: past it, neighbouring points are
#: merged pairwise (a day and a half of 1-Hz numerics before the first merge), so even a session
#: left running for days stays bounded.
MAX_POINTS = 1 << 17
#: A pleth block that starts this many sample periods after the previous one ended means samples
#: were lost (an unplugged cable): the ring gets NaN for them, so the sweep shows a gap.
PLETH_GAP_PERIODS = 1.5
#: A trend's values further apart than this many of its usual intervals have a gap between them
#: (an oximeter sends every 1/3 to 1 s, a patient monitor every 5 s)...
GAP_FACTOR = 3.0
#: ... and never less than this many seconds (the jitter of a 1-s device is no gap).
GAP_MIN_S = 5.0
#: Before a trend's usual interval is known (its first step), values this far apart have a gap.
GAP_FIRST_S = 30.0
#: Weight of the newest interval in a trend's usual interval (a running mean of intervals).
INTERVAL_WEIGHT = 0.1


class Series:
    """Columns of float64 that grow together by doubling; appends are O(1) amortised.

    Column ``t`` is the monotonic time (``Stamp.mono``); the others are values, NaN where
    there was none.
    """

    def __init__(
        self,
        columns: tuple[str, ...] = ("t", "v"),
        capacity: int = INITIAL_CAPACITY,
        max_points: int = MAX_POINTS,
    ) -> None:
        if capacity < 2 or max_points < capacity:
            raise ValueError("capacity must be at least 2 and at most max_points")
        self.columns = columns
        self.max_points = max_points
        self._data = np.full((len(columns), capacity), np.nan)
        self._index = {name: i for i, name in enumerate(columns)}
        self.n = 0
        self.version = 0  #: changes whenever the series does

    def __len__(self) -> int:
        return self.n

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def column(self, name: str) -> np.ndarray:
        """A read-only view of the first ``n`` values of a column (no copy)."""
        view = self._data[self._index[name], : self.n]
        view.flags.writeable = False
        return view

    @property
    def t(self) -> np.ndarray:
        return self.column("t")

    @property
    def v(self) -> np.ndarray:
        return self.column(self.columns[1])

    def last(self, name: str) -> float:
        """The newest value of a column (no view: cheap enough for each item)."""
        return float(self._data[self._index[name], self.n - 1])

    def append(self, *values: float) -> None:
        if self.n == self.capacity:
            self._make_room()
        self._data[:, self.n] = values
        self.n += 1
        self.version += 1

    def _make_room(self) -> None:
        # New arrays rather than in-place changes: views handed out earlier stay valid.
        if self.capacity < self.max_points:
            grown = np.full((len(self.columns), min(2 * self.capacity, self.max_points)), np.nan)
            grown[:, : self.n] = self._data
            self._data = grown
            return
        # Full at the cap: merge neighbours pairwise (time of the first, NaN if either is a gap,
        # so a gap never disappears), halving the points and the time resolution.
        half = self.n // 2
        pairs = self._data[:, : 2 * half].reshape(len(self.columns), half, 2)
        merged = pairs[:, :, 0].copy()
        merged[1:][np.isnan(pairs[1:, :, 1])] = np.nan
        data = np.full_like(self._data, np.nan)
        data[:, :half] = merged
        data[:, half : half + self.n - 2 * half] = self._data[:, 2 * half : self.n]
        self._data = data
        self.n = half + self.n - 2 * half


class PlethRing:
    """The last ``window_s`` seconds of one source's pleth (or capnogram), in a ring of fixed size.

    Sample ``k`` of the source's stream (counted from its first block) lives at ``data[k % size]``,
    so a sweep display can draw the ring as it is, at x = index / fs, with the write head at
    ``count % size``.
    """

    def __init__(self, fs: float, window_s: float = PLETH_WINDOW_S) -> None:
        if not fs > 0:
            raise ValueError("fs must be positive")
        self.fs = fs
        self.window_s = window_s
        self.size = max(2, math.ceil(window_s * fs))
        self.data = np.full(self.size, np.nan)
        self.count = 0  #: samples written since the first block (lost samples count too)
        self.end: Stamp | None = None  #: just after the newest sample
        self.flags: Flags = frozenset()  #: the newest block's flags
        self.version = 0

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    @property
    def head(self) -> int:
        """Where the next sample goes."""
        return self.count % self.size

    def add(self, block: WaveformBlock) -> None:
        if self.end is not None:
            missing = round((block.stamp.mono - self.end.mono) * self.fs)
            if missing >= PLETH_GAP_PERIODS:
                self._write(np.full(min(missing, self.size), np.nan), skip=missing)
        self._write(block.samples)
        self.end = block.stamp.shifted(len(block.samples) / self.fs)
        self.flags = block.flags
        self.version += 1

    def _write(self, samples: np.ndarray, skip: int | None = None) -> None:
        """Write ``samples`` at the head and advance it by ``skip`` (default: their number)."""
        n = len(samples)
        advance = n if skip is None else skip
        if n >= self.size:
            samples = samples[-self.size :]
            n = self.size
        start = (self.count + advance - n) % self.size
        first = min(n, self.size - start)
        self.data[start : start + first] = samples[:first]
        self.data[: n - first] = samples[first:]
        self.count += advance

    def latest(self, seconds: float | None = None) -> np.ndarray:
        """The newest samples in time order (a copy): all of the ring, or the last ``seconds``."""
        n = min(self.count, self.size)
        if seconds is not None:
            n = min(n, round(seconds * self.fs))
        idx = (self.head - n + np.arange(n)) % self.size
        return self.data[idx]

    def age(self, now: Stamp) -> float | None:
        """Seconds since the newest sample ended (None before the first block)."""
        return None if self.end is None else staleness.age(self.end, now)


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest value of a code, as a tile shows it."""

    source: str
    value: float | None
    flags: Flags
    stamp: Stamp

    def age(self, now: Stamp) -> float:
        return staleness.age(self.stamp, now)


@dataclass(frozen=True, slots=True)
class Marker:
    """A labelled point in the session's time (the dose, a nurse's marker)."""

    t: float  #: monotonic time (Stamp.mono)
    kind: SessionEventKind
    text: str
    source: str = SESSION_SOURCE  #: who set it: the session (the nurse's key) or a device

    @property
    def from_device(self) -> bool:
        """Set by a device (a simulated scenario's dose), not by the nurse."""
        return self.source != SESSION_SOURCE


@dataclass(frozen=True, slots=True)
class Score:
    """A nurse's score (MOAA/S, dissociation rating or CADSS total) at its time."""

    t: float  #: monotonic time (Stamp.mono)
    code: Code
    value: float


class _GapWatch:
    """Where a trend has a gap: its usual interval, and whether its device dropped out."""

    __slots__ = ("broken", "interval", "source")

    def __init__(self) -> None:
        self.interval: float | None = None  #: running mean of the intervals between values
        self.source: str | None = None  #: the device of the newest value
        self.broken = False  #: that device's connection dropped since the newest value

    def gap_before(self, last_t: float | None, t: float) -> bool:
        """Whether a value at ``t`` after one at ``last_t`` has a gap before it; learns the
        usual interval from the steps that are not gaps."""
        if last_t is None:
            return False
        step = t - last_t
        usual = self.interval
        limit = GAP_FIRST_S if usual is None else max(GAP_MIN_S, GAP_FACTOR * usual)
        gap = self.broken or step > limit
        self.broken = False
        if not gap and step > 0:
            self.interval = step if usual is None else usual + INTERVAL_WEIGHT * (step - usual)
        return gap


class LiveBuffers:
    """Everything the live view draws, fed by :meth:`ingest` on the screen's timer tick.

    Not thread-safe: one thread (the Qt main thread) ingests and reads. Items from a hub
    subscription's ``drain()`` and alarm :class:`~alarms.model.LogEntry` objects may be mixed.
    """

    def __init__(
        self,
        session_start: float | None = None,
        *,
        pleth_window_s: float = PLETH_WINDOW_S,
        capacity: int = INITIAL_CAPACITY,
    ) -> None:
        #: Monotonic time of the session start; by default the first item's stamp.
        self.session_start = session_start
        self.pleth_window_s = pleth_window_s
        self.trends: dict[Code, Series] = {code: Series(capacity=capacity) for code in TREND_CODES}
        self._gaps: dict[Code, _GapWatch] = {code: _GapWatch() for code in TREND_CODES}
        #: NIBP readings; a failed reading is a row of NaN values (its flags say why).
        self.nibp = Series(("t", "sys", "dia", "mean"), capacity=64)
        self.nibp_flags: list[Flags] = []
        self.latest_nibp: NibpReading | None = None
        self.last_valid_nibp: NibpReading | None = None
        self.pleth: dict[str, PlethRing] = {}
        #: The capnogram per source: the same ring as the pleth's, at the CO2 wave's rate.
        self.co2: dict[str, PlethRing] = {}
        self.latest: dict[Code, Latest] = {}
        self.devices: dict[str, DeviceEvent] = {}  #: the newest connection state per source
        self.dose_time: float | None = None  #: monotonic time of T0
        self.markers: list[Marker] = []  #: dose and nurse markers, in arrival order
        self.alarm_log: list[LogEntry] = []
        #: Alarm starts (LogEvent.ACTIVE): monotonic time, priority (1-3), value or NaN.
        self.alarm_starts = Series(("t", "priority", "value"), capacity=64)
        self.alarm_start_codes: list[str | None] = []
        #: Sedation and dissociation scores in arrival order, never in a gap-watched trend.
        self.scores: list[Score] = []
        self.scores_version = 0  #: changes whenever a score arrives
        self.version = 0  #: changes whenever anything does
        #: Changes whenever anything but a wave does: the numbers, NIBP, events, the alarm log.
        self.values_version = 0

    # --- input --------------------------------------------------------------------------------

    def ingest(self, items: Iterable[object]) -> int:
        """Take hub items and alarm log entries; return how many were used."""
        used = 0
        for item in items:
            used += self.add(item)
        return used

    def add(self, item: object) -> bool:
        """Take one item; False for what the live view does not show (e.g. device values)."""
        stamp = getattr(item, "stamp", None)
        if isinstance(stamp, Stamp) and self.session_start is None:
            self.session_start = stamp.mono
        if isinstance(item, WaveformBlock):
            if item.code is Code.PLETH:
                rings = self.pleth
            elif item.code is Code.CO2:
                rings = self.co2
            else:
                return False
            ring = rings.get(item.source)
            if ring is None or ring.fs != item.fs:
                ring = rings[item.source] = PlethRing(item.fs, self.pleth_window_s)
            ring.add(item)
            self.version += 1
            return True  # a wave: no value the numbers show changed
        if isinstance(item, Numeric) and item.code in SCORE_CODES:
            if item.value is None:
                return False  # a score is a number a nurse chose: there is no missing one
            self.scores.append(Score(item.stamp.mono, item.code, item.value))
            self.scores_version += 1
        elif isinstance(item, Numeric):
            self.latest[item.code] = Latest(item.source, item.value, item.flags, item.stamp)
            series = self.trends.get(item.code)
            if series is not None:
                t = item.stamp.mono
                watch = self._gaps[item.code]
                last_t = series.last("t") if series.n else None
                gap = watch.gap_before(last_t, t)  # learns the interval: called for every value
                if gap and last_t is not None and not math.isnan(series.last("v")):
                    series.append((last_t + t) / 2, math.nan)  # a break, between the two
                watch.source = item.source
                series.append(t, _nan(item.value))
        elif isinstance(item, NibpReading):
            self.nibp.append(
                item.stamp.mono, _nan(item.systolic), _nan(item.diastolic), _nan(item.mean)
            )
            self.nibp_flags.append(item.flags)
            self.latest_nibp = item
            if item.systolic is not None and item.diastolic is not None:
                self.last_valid_nibp = item
        elif isinstance(item, SessionEvent):
            if item.kind in (SessionEventKind.NIBP_SCHEDULED, SessionEventKind.SCORE):
                return False
            if item.kind is SessionEventKind.DOSE:
                if self.dose_time is not None:
                    return False  # T0 is the first dose
                self.dose_time = item.stamp.mono
            self.markers.append(Marker(item.stamp.mono, item.kind, item.text, item.source))
        elif isinstance(item, DeviceEvent):
            self.devices[item.source] = item
            if item.state is not ConnectionState.CONNECTED:
                for watch in self._gaps.values():
                    if watch.source == item.source:
                        watch.broken = True
        elif isinstance(item, LogEntry):
            self.alarm_log.append(item)
            if item.event is LogEvent.ACTIVE:
                priority = float(item.priority or Priority.LOW)
                self.alarm_starts.append(item.stamp.mono, priority, _nan(item.value))
                self.alarm_start_codes.append(item.code)
        else:
            return False
        self.version += 1
        self.values_version += 1
        return True

    # --- time ---------------------------------------------------------------------------------

    @property
    def origin(self) -> float | None:
        """Monotonic time of minute 0 on the screen: the dose, else the session start."""
        return self.dose_time if self.dose_time is not None else self.session_start

    def minutes_from_dose(self, t):
        """Minutes from the dose (before one: from the session start) of monotonic time ``t``;
        works on arrays too."""
        origin = self.origin
        if origin is None:  # nothing has arrived: every time is minute 0
            origin = t
        if isinstance(t, np.ndarray):
            return (t - origin) / 60.0
        return (float(t) - origin) / 60.0

    # --- reading ------------------------------------------------------------------------------

    def first_pleth(self) -> PlethRing | None:
        """The ring of the first source that sent pleth (what a one-oximeter screen shows)."""
        return next(iter(self.pleth.values()), None)

    def first_co2(self) -> PlethRing | None:
        """The capnogram ring of the first source that sent a CO2 wave."""
        return next(iter(self.co2.values()), None)

    @property
    def breathing_monitored(self) -> bool:
        """Whether any device has sent a breathing value or a CO2 wave this session: without
        one the screen must say breathing is not monitored, not show empty tiles that look like
        monitoring."""
        return bool(self.co2) or any(code in self.latest for code in BREATHING_CODES)

    def nbytes(self) -> int:
        """Bytes held in the numpy buffers (trends, NIBP, pleth and CO2 rings, alarm starts)."""
        return (
            sum(s.nbytes for s in self.trends.values())
            + self.nibp.nbytes
            + self.alarm_starts.nbytes
            + sum(r.nbytes for r in self.pleth.values())
            + sum(r.nbytes for r in self.co2.values())
        )


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


# --- signal quality, for the SpO2 tile -------------------------------------------------------

#: Perfusion index (%) below which the signal is called weak.
WEAK_PI = 1.0
LOW_PI = 0.4


def signal_quality(flags: Flags, perfusion: float | None) -> tuple[int, str]:
    """How far to trust the SpO2 reading: (0 none .. 3 good, a word for the tile)."""
    if Flag.SENSOR_OFF in flags:
        return 0, "sensor off"
    if Flag.SEARCHING in flags:
        return 0, "searching"
    if flags & {Flag.ARTIFACT, Flag.QUESTIONABLE, Flag.OUT_OF_RANGE}:
        return 1, "poor (artifact)" if Flag.ARTIFACT in flags else "poor"
    if Flag.LOW_PERFUSION in flags or (perfusion is not None and perfusion < LOW_PI):
        return 1, "low perfusion"
    if perfusion is not None and perfusion < WEAK_PI:
        return 2, "weak"
    return 3, "good"


FLAG_TEXT = {
    Flag.SENSOR_OFF: "sensor off",
    Flag.SEARCHING: "searching",
    Flag.ARTIFACT: "artifact",
    Flag.OUT_OF_RANGE: "out of range",
    Flag.QUESTIONABLE: "questionable",
    Flag.LOW_PERFUSION: "low perfusion",
    Flag.MEASUREMENT_FAILED: "measurement failed",
}


def flags_text(flags: Flags) -> str:
    """The flags in words, most important first: "sensor off", "searching, artifact"."""
    return ", ".join(FLAG_TEXT[f] for f in FLAG_TEXT if f in flags)


def age_text(seconds: float | None) -> str:
    """How old a reading is, as a nurse says it: "just now", "40 s ago", "3 min ago"."""
    if seconds is None or math.isnan(seconds):
        return ""
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    return f"{minutes // 60} h {minutes % 60} min ago"
