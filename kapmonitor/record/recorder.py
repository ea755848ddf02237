"""The recorder: a thread that writes the session from the hub, in batches, and never blocks.

It is one more consumer of the hub (and of the alarm service's log), with a queue of its own:
neither the alarms nor the screen ever wait on the database. It commits at least once a second,
so a killed process loses at most its last second. When the database fails, batches go to a
local spool and the recorder says so (the "recording failing" technical alarm); they are written
as soon as the database answers again. Nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from alarms.model import LogEntry
from kapmonitor.hub import Hub
from kapmonitor.model import Item, WaveformBlock
from kapmonitor.record.db import default_path, open_database
from kapmonitor.record.spool import Spool
from kapmonitor.record.store import Store

log = logging.getLogger(__name__)

#: Seconds between commits: at most this much is lost when the process is killed.
FLUSH_INTERVAL = 0.5
#: Seconds between attempts to reach a database that failed.
RETRY_INTERVAL = 2.0
#: Seconds between heartbeats when nothing arrives (shows the session is still being recorded).
HEARTBEAT_INTERVAL = 5.0
QUEUE_SIZE = 1_000_000

#: Told ``(failing, reason)`` when recording starts or stops failing.
StatusCallback = Callable[[bool, str], None]


def spool_path(db_url: str) -> Path:
    """One spool per database, beside the default database file."""
    digest = hashlib.sha256(db_url.encode()).hexdigest()[:16]
    return default_path().parent / "spool" / f"{digest}.spool"


def flush_spool(store: Store, spool: Spool) -> int:
    """Write what a spool holds to the database, then empty it; return the batches written.

    Raises the database's error if it is still unavailable (the spool is kept).
    """
    written = 0
    for session_id, items, alarms in spool.batches():
        store.write(session_id, items, alarms)
        written += 1
    spool.clear()
    return written


class Recorder:
    def __init__(
        self,
        store: Store,
        session_id: int,
        hub: Hub,
        alarm_log: Hub | None = None,
        *,
        spool: Spool | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.spool = spool or Spool(spool_path(store.db.url))
        self.failing = False
        self.written = 0  #: items committed to the database
        #: The latest item's wall-clock stamp: the session's end, for a device that runs ahead
        #: of the wall clock (a simulator at --speed 60).
        self.last_wall: float | None = None
        self._on_status = on_status
        self._items = hub.subscribe("recorder", maxsize=QUEUE_SIZE)
        self._alarms = alarm_log.subscribe("recorder", maxsize=QUEUE_SIZE) if alarm_log else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._next_retry = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything still queued (to the spool if the database is down), then stop."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        last_write = time.monotonic()
        while True:
            stopping = self._stop.wait(FLUSH_INTERVAL)
            items: list[Item] = self._items.drain()
            if items:
                self.last_wall = max(self.last_wall or 0.0, max(i.stamp.wall for i in items))
            alarms: list[LogEntry] = self._alarms.drain() if self._alarms else []
            quiet = time.monotonic() - last_write < HEARTBEAT_INTERVAL
            if items or alarms or not quiet or self.failing or stopping:
                self._flush(items, alarms, force_retry=stopping)
                last_write = time.monotonic()
            if stopping:
                return

    def _flush(self, items: list[Item], alarms: list[LogEntry], *, force_retry: bool) -> None:
        if len(self.spool) and (force_retry or time.monotonic() >= self._next_retry):
            try:
                flush_spool(self.store, self.spool)
            except (SQLAlchemyError, OSError) as exc:
                self._failed(exc)
        if len(self.spool):
            self._to_spool(items, alarms)
            return
        try:
            self.store.write(self.session_id, items, alarms)
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)
            self._to_spool(items, alarms)
            return
        self.written += len(items)
        if self.failing:
            self.failing = False
            log.warning("recording works again: the database answered and the spool is written")
            if self._on_status:
                self._on_status(False, "")

    def _to_spool(self, items: list[Item], alarms: list[LogEntry]) -> None:
        if not items and not alarms:
            return
        if self.spool.full():
            # Keep what alarms and the record need most; the pleth can be lost first.
            kept = [i for i in items if not isinstance(i, WaveformBlock)]
            self.spool.dropped_waves += len(items) - len(kept)
            items = kept
        self.spool.append((self.session_id, items, alarms))

    def _failed(self, exc: BaseException) -> None:
        self._next_retry = time.monotonic() + RETRY_INTERVAL
        if not self.failing:
            self.failing = True
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
            text = f"the database is unavailable ({reason}); measurements are kept in a spool"
            log.warning("recording is failing: %s", text)
            if self._on_status:
                self._on_status(True, text)


def open_store(url: str | None) -> tuple[Store, list[int]]:
    """The session database ready for a new start: interrupted sessions marked (their ids are
    returned, to tell the user) and what an earlier run left in the spool written out."""
    store = Store(open_database(url))
    interrupted = store.recover_interrupted()
    spool = Spool(spool_path(store.db.url))
    if len(spool):
        try:
            flush_spool(store, spool)
            log.warning("measurements kept in the spool are now in the database")
        except (SQLAlchemyError, OSError) as exc:
            log.warning("the spool could not be written yet (it is kept): %s", exc)
    return store, interrupted
