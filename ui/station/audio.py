"""The station's alarm sound: the most urgent unacknowledged alarm of all rooms, and its pause.

The station sounds what the rooms decided, with the generated IEC 60601-1-8 bursts of
:mod:`alarms.tones` (played by :class:`ui.sound.AlarmSound`, as in the dosing room). An alarm
somebody acknowledged in its room is silent here too: acknowledging belongs to the room. The
station's own "room link lost" sounds as any medium-priority alarm.

The audio pause is station-wide and timed, as the room's: it lasts the alarm profile's
``audio_pause_s`` (default 2 min) and always ends by itself; there is no permanent off. As in the
room's engine, an alarm of higher priority than any that sounded when the pause began sounds at
once: a pause given for a yellow alarm must not hide a red one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from alarms.model import AudioDue, Priority
from alarms.profile import load_profile
from kapmonitor.station.model import RoomView
from ui.sound import AlarmSound


def default_pause_s() -> float:
    """The default alarm profile's audio pause: the same length as a room's."""
    return load_profile().audio_pause_s


@dataclass(frozen=True)
class _Pause:
    until: float  #: monotonic
    priority: Priority  #: the most urgent sound when it began


def sounding(views: Iterable[RoomView]) -> Priority | None:
    """The most urgent alarm nobody acknowledged, over every room; None: nothing to sound."""
    ranks = [a.rank for v in views for a in v.alarms if not a.acknowledged_by]
    return Priority(max(ranks)) if ranks else None


class StationAudio:
    """Decides the station's sound on each tick and plays it through ``sound``."""

    def __init__(
        self,
        sound: AlarmSound,
        pause_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sound = sound
        self.pause_s = default_pause_s() if pause_s is None else pause_s
        self._clock = clock
        self._pause: _Pause | None = None
        self._sounding: Priority | None = None
        self.due = AudioDue(None, 0.0)  #: what was last asked of the loudspeaker

    def update(self, views: Iterable[RoomView]) -> AudioDue:
        """Sound the most urgent unacknowledged alarm unless the pause covers it."""
        now = self._clock()
        if self._pause is not None and now >= self._pause.until:
            self._pause = None  # the pause always ends by itself
        self._sounding = sounding(views)
        due = self._sounding
        if self._pause is not None and due is not None and due <= self._pause.priority:
            due = None
        self.due = AudioDue(due, self.paused_for())
        self.sound.play(self.due)
        return self.due

    def pause(self) -> None:
        """Silence the station for :attr:`pause_s`; pressing it again starts the time again."""
        self._pause = _Pause(self._clock() + self.pause_s, self._sounding or Priority.LOW)

    def paused_for(self) -> float:
        """Seconds of pause left (0: not paused)."""
        if self._pause is None:
            return 0.0
        return max(0.0, self._pause.until - self._clock())

    def close(self) -> None:
        self.sound.play(AudioDue(None, 0.0))
        self.sound.close()
