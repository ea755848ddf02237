"""``station --watch``: the station's state as JSON lines, for testers and scripts.

One line per change of a room's state, alarms or numerics, at most one a second per room (the
state and alarms are what a script acts on; a line for every received message would flood it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kapmonitor.station.model import RoomView, StationModel

#: At most one line a second per room.
MIN_INTERVAL_S = 1.0


def room_line(view: RoomView, wall: float) -> dict[str, Any]:
    return {
        "t": round(wall, 3),
        "room": view.room,
        "state": view.state,
        "alarms": [
            {"condition": a.condition, "priority": a.priority, "state": a.state}
            for a in view.alarms
        ],
        "numerics": view.numerics,
    }


class Watcher:
    """Turns snapshots into lines: only what changed, never faster than once a second a room."""

    def __init__(self, model: StationModel, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self._clock = clock
        self._last: dict[str, tuple[Any, ...]] = {}
        self._sent_at: dict[str, float] = {}

    def lines(self) -> list[dict[str, Any]]:
        now, wall = self._clock(), time.time()
        out = []
        for view in self.model.snapshot():
            line = room_line(view, wall)
            key = (line["state"], repr(line["alarms"]), repr(sorted(line["numerics"].items())))
            if key == self._last.get(view.room):
                continue
            if now - self._sent_at.get(view.room, -MIN_INTERVAL_S) < MIN_INTERVAL_S:
                continue  # changed again within the second: the next call sends the newest
            self._last[view.room], self._sent_at[view.room] = key, now
            out.append(line)
        return out
