"""A room's data as the dosing-room widgets read it: the station's model into LiveBuffers.

The large view reuses the room screen's own trend plot and pleth sweep (:mod:`ui.trends`,
:mod:`ui.pleth`), which read a :class:`~kapmonitor.live.LiveBuffers`. This feed turns what the
station received (numerics trend, NIBP readings, the dose time, alarm starts, pleth blocks) into
the items those buffers take, only what is new on each call. Times are the room's wall clock,
used on both sides of the buffers' clock pair: the station has no other clock of the room's, and
a clinic's machines keep their clocks in step (NTP). A missing value stays a gap (None).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

import numpy as np

from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.live import TREND_CODES, LiveBuffers
from kapmonitor.station.model import NibpView, RoomView, StationModel

_TREND = {code.value: code for code in TREND_CODES}
#: NIBP readings kept per room: a session has a few dozen.
NIBP_READINGS = 500


class NibpLog:
    """Every NIBP reading the station saw, per room and session: the model keeps only the
    latest, and a room's large view shows them all on its trend. Fed by the window's redraw."""

    def __init__(self) -> None:
        self._readings: dict[str, deque[NibpView]] = {}
        self._sessions: dict[str, str] = {}

    def record(self, views: Iterable[RoomView]) -> None:
        for view in views:
            if self._sessions.get(view.room) != view.session:  # a new session: a clean slate
                self._sessions[view.room] = view.session
                self._readings[view.room] = deque(maxlen=NIBP_READINGS)
            readings = self._readings[view.room]
            if view.nibp is not None and (not readings or view.nibp.t > readings[-1].t):
                readings.append(view.nibp)

    def readings(self, room: str) -> list[NibpView]:
        return list(self._readings.get(room, ()))


def _stamp(wall: float) -> Stamp:
    return Stamp(wall, wall)


class RoomFeed:
    """Feeds one room's :attr:`buffers` from the model; call :meth:`update` on each tick."""

    def __init__(self, room: str, nibp: NibpLog) -> None:
        self.room = room
        self._nibp_log = nibp
        self.buffers = LiveBuffers()
        self._last_t: dict[str, float] = {}
        self._nibp_t = -np.inf
        self._event_seen = -np.inf  #: station clock of the newest alarm event taken
        self._pleth_t = -np.inf

    def update(self, model: StationModel) -> bool:
        """Take what arrived since the last call; True when anything did."""
        before = self.buffers.version
        self._numerics(model)
        view = model.room(self.room)
        since = None if view is None else view.minutes_since_dose
        if since is not None and self.buffers.dose_time is None:
            dose = time.time() - since * 60
            self.buffers.add(SessionEvent(self.room, SessionEventKind.DOSE, _stamp(dose)))
        for nibp in self._nibp_log.readings(self.room):
            if nibp.t > self._nibp_t:
                self._nibp_t = nibp.t
                self.buffers.add(
                    NibpReading(self.room, nibp.systolic, nibp.diastolic, nibp.mean, _stamp(nibp.t))
                )
        self._alarm_starts(model)
        self.update_pleth(model)
        return self.buffers.version != before

    def _numerics(self, model: StationModel) -> None:
        items: list[Numeric] = []
        for name, points in model.trend(self.room).items():
            code = _TREND.get(name)
            if code is None:
                continue
            last = self._last_t.get(name, -np.inf)
            for t, value in points:
                if t > last:
                    items.append(Numeric(self.room, code, value, _stamp(t)))
            if points:
                self._last_t[name] = max(last, points[-1][0])
        items.sort(key=lambda n: n.stamp.mono)
        self.buffers.ingest(items)

    def _alarm_starts(self, model: StationModel) -> None:
        for event in model.alarm_events(self.room):
            if event.received <= self._event_seen:
                continue
            self._event_seen = event.received
            alarm = event.alarm
            if event.phase != "start":
                continue
            self.buffers.add(
                LogEntry(
                    _stamp(alarm.started or event.t),
                    LogEvent.ACTIVE,
                    condition=alarm.condition,
                    priority=Priority(alarm.rank),
                    kind=AlarmKind(alarm.kind) if alarm.kind in set(AlarmKind) else None,
                    source=alarm.source,
                    text=alarm.message,
                )
            )

    def update_pleth(self, model: StationModel) -> None:
        """Only the pleth (cheap: a few blocks), for the sweep's faster timer."""
        for t, fs, samples in model.pleth(self.room):
            if t <= self._pleth_t or not fs > 0:
                continue
            self._pleth_t = t
            data = np.asarray(samples, dtype=float)
            data.flags.writeable = False
            self.buffers.add(WaveformBlock(self.room, Code.PLETH, _stamp(t), fs, data))
