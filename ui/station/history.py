"""A room's trends from before the station heard it, read from the clinic database's record.

A station started (or restarted) in the middle of a session has received only what the room sent
since; the nurse who opens the room large needs the whole session's course (the pressure rise
after the dose, a desaturation an hour ago). When the station is given the clinic database
(``kapmonitor station --db URL``) and the room says which record it writes (the status's
``record`` uid), the large view loads that record's numerics and NIBP once, on opening, and puts
what came before the station's first received value ahead of the live data. A database that does
not answer, or lacks the session, costs the history only: the view says so in one sentence and
goes on live.

The load runs in the Qt thread when the view opens: a 2-hour session loads in about 0.15 s,
which a click can afford, and the buffers must take the older items before the live ones (they
append in time order). A PostgreSQL server that hangs rather than refuses can hold the click up
to libpq's connect timeout (10 s, :data:`kapmonitor.record.db.LIBPQ_LINE_LIMITS`); the alarms
are unaffected (the room decides them, the station's audio has its own timer).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kapmonitor.core.model import NibpReading, Numeric, Stamp
from kapmonitor.live import TREND_CODES
from kapmonitor.record.db import open_database, require_existing
from kapmonitor.record.session import SessionRecord
from kapmonitor.record.store import Store

log = logging.getLogger(__name__)

#: A live session started within this long: the record is looked up among these sessions only.
LOOKBACK_S = 24 * 3600.0
NO_ANSWER = "trends since the station started: the clinic database did not answer"
NO_RECORD = "trends since the station started: the clinic database has no record of this session"
#: A history NIBP reading this close to a received one with the same values is that one.
SAME_NIBP_S = 5.0


@dataclass(frozen=True)
class History:
    """What the record adds before the live data: items in time order, or why nothing."""

    numerics: list[Numeric]
    nibp: list[NibpReading]
    problem: str = ""  #: the sentence the view shows; "" when the record was read


class RecordHistory:
    """The clinic database, opened at the first opening of a room that records, kept open."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def record(self, uid: str) -> SessionRecord | str:
        """The record of session ``uid`` without its waves, or the sentence to show instead."""
        try:
            if self._store is None:
                require_existing(self.url)  # a mistyped path is not created as an empty database
                self._store = Store(open_database(self.url))
            since = time.time() - LOOKBACK_S
            info = next((i for i in self._store.list_sessions(since=since) if i.uid == uid), None)
            if info is None:
                return NO_RECORD
            return self._store.load_session(info.id, waves=False)
        except Exception:  # the database's trouble must never close the station's view
            log.warning("the clinic database did not answer", exc_info=True)
            self.close()
            return NO_ANSWER

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store.db.close()
            except Exception:
                log.debug("closing the clinic database failed", exc_info=True)
            self._store = None


def before_live(
    record: SessionRecord,
    room: str,
    first_numeric: float | None,
    first_nibp: float | None,
    received_nibp: list[tuple[float, float | None, float | None]],
) -> History:
    """The record's trend numerics and NIBP older than the station's first received value
    (``first_*``: wall clock; None: nothing received yet, so all of it), stamped as the feed
    stamps the bus's (wall on both sides, the room as the source). ``received_nibp``: (t, sys,
    dia) of readings the station has, so a reading received as the station started is not
    drawn twice."""
    numerics_end = float("inf") if first_numeric is None else first_numeric
    nibp_end = min(numerics_end, float("inf") if first_nibp is None else first_nibp)
    numerics = [
        Numeric(room, n.code, n.value, Stamp(n.stamp.wall, n.stamp.wall), n.flags)
        for n in record.numerics
        if n.code in TREND_CODES and n.stamp.wall < numerics_end
    ]
    numerics.sort(key=lambda n: n.stamp.wall)
    nibp = [
        NibpReading(
            room, r.systolic, r.diastolic, r.mean, Stamp(r.stamp.wall, r.stamp.wall), r.flags
        )
        for r in record.nibp
        if r.stamp.wall < nibp_end
        and not any(
            abs(t - r.stamp.wall) < SAME_NIBP_S and (sy, di) == (r.systolic, r.diastolic)
            for t, sy, di in received_nibp
        )
    ]
    nibp.sort(key=lambda r: r.stamp.wall)
    return History(numerics, nibp)
