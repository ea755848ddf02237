"""The recorder: a thread that writes the session from the hub, in batches, and never blocks.

It is one more consumer of the hub (and of the alarm service's log), with a queue of its own:
neither the alarms nor the screen ever wait on the database. It commits at least once a second,
so a killed process loses at most its last second.

When the database fails, batches go to the recorder's own spool (see
:mod:`~kapmonitor.record.spool`) and it says so (the "recording failing" technical alarm); when
the disk is full too, they stay in memory, bounded: beyond :data:`MEMORY_LIMIT` the oldest
waveform blocks are dropped (counted and logged), never numerics, NIBP, events or alarms. All is
written as soon as the database answers again. Each batch is named (writer, number), so one
written twice is stored once. A SQLite file deleted or replaced under it is restored (see
:meth:`~kapmonitor.record.db.Database.check_file`), with the same alarm. Whatever fails, the
thread goes on: a recorder that dies loses the rest of the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from alarms.model import LogEntry
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item, WaveformBlock
from kapmonitor.record.batch import Batch
from kapmonitor.record.db import local_folder, open_database
from kapmonitor.record.spool import Spool, new_writer, orphans
from kapmonitor.record.store import Store

log = logging.getLogger(__name__)

#: Seconds between commits: at most this much is lost when the process is killed.
FLUSH_INTERVAL = 0.5
#: Seconds between attempts to reach a database that failed.
RETRY_INTERVAL = 2.0
#: Seconds between heartbeats when nothing arrives (renews the session's lease).
HEARTBEAT_INTERVAL = 5.0
#: Seconds between moves of the rows written into compact blocks (see Store.compact).
COMPACT_INTERVAL = 60.0
#: Seconds the alarm stays up after a database file was found deleted and restored.
NOTICE_TIME = 30.0
#: Seconds a write may hang (a server that went silent) before the alarm is raised anyway.
STALL_AFTER = 10.0
QUEUE_SIZE = 1_000_000
#: Bytes of batches held in memory when neither the database nor the spool takes them; beyond
#: it the oldest waveform blocks are dropped. Two hours of a 75-Hz pleth are about 45 MB.
MEMORY_LIMIT = 256 * 1024 * 1024

#: What failing to write looks like: the database's errors, the file system's.
WRITE_ERRORS = (SQLAlchemyError, OSError, sqlite3.Error)

#: Told ``(failing, reason)`` when recording starts or stops failing.
StatusCallback = Callable[[bool, str], None]


def spool_dir(db_url: str) -> Path:
    """Beside a SQLite file (the default layout: in the data folder); else the data folder."""
    return local_folder(db_url) / "spool"


def spool_prefix(db_url: str) -> str:
    """The spools of one database share this prefix (the URL's digest: no name in the file)."""
    return hashlib.sha256(db_url.encode()).hexdigest()[:16]


class Recorder:
    def __init__(
        self,
        store: Store,
        session_id: int,
        hub: Hub[Item],
        alarm_log: Hub[LogEntry] | None = None,
        *,
        spool_folder: Path | None = None,
        on_status: StatusCallback | None = None,
        memory_limit: int = MEMORY_LIMIT,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.writer = new_writer()
        self.spool = Spool.create(
            spool_folder or spool_dir(store.db.url), spool_prefix(store.db.url), self.writer
        )
        self.failing = False
        self.written = 0  #: items committed to the database
        self.dropped_waves = 0  #: waveform blocks dropped because memory and spool were full
        self.lost = 0  #: items that could be written nowhere when the recorder stopped
        #: The latest item's wall-clock stamp: the session's end, for a device that runs ahead
        #: of the wall clock (a simulator at --speed 60).
        self.last_wall: float | None = None
        self._on_status = on_status
        self._items = hub.subscribe("recorder", maxsize=QUEUE_SIZE)
        self._alarms = alarm_log.subscribe("recorder", maxsize=QUEUE_SIZE) if alarm_log else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="recorder-watch", daemon=True)
        self._status = threading.Lock()  # the alarm is raised by either thread
        self._busy_since: float | None = None  #: when the write under way began
        self._next_retry = 0.0
        self._notice_until = 0.0
        self._seq = 0
        self._next_compact = time.monotonic() + COMPACT_INTERVAL
        self._memory: deque[Batch] = deque()
        self._memory_bytes = 0
        self._memory_limit = memory_limit

    def start(self) -> None:
        self._thread.start()
        self._watchdog.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything still queued (to the spool if the database is down), then stop.

        An empty spool is removed; one still holding batches stays locked until the process
        ends, then the next start writes it out.
        """
        self._stop.set()
        self._thread.join(timeout)
        if not len(self.spool):
            self.spool.close(remove=True)

    @property
    def held(self) -> int:
        """Items held in memory, waiting for the database or the spool."""
        return sum(len(b) for b in self._memory)

    def _run(self) -> None:
        last_write = time.monotonic()
        while True:
            stopping = self._stop.wait(FLUSH_INTERVAL)
            try:
                if self._cycle(stopping, time.monotonic() - last_write >= HEARTBEAT_INTERVAL):
                    last_write = time.monotonic()
            except Exception as exc:  # the recorder must never die: it would lose the rest
                log.exception("the recorder met an unexpected error; it goes on")
                self._failed(exc)
            if stopping:
                self._give_up()
                return

    def _cycle(self, stopping: bool, heartbeat_due: bool) -> bool:
        """Take what arrived and write what can be written; True if the database was asked."""
        items: list[Item] = self._items.drain()
        if items:
            self.last_wall = max(self.last_wall or 0.0, max(i.stamp.wall for i in items))
        alarms: list[LogEntry] = self._alarms.drain() if self._alarms else []
        if items or alarms:
            self._hold(Batch(self.writer, self._seq, self.session_id, items, alarms))
            self._seq += 1
        elif not (heartbeat_due or self.failing or stopping):
            return False
        if self.failing and not stopping and time.monotonic() < self._next_retry:
            self._spill()
            return False
        self._busy_since = time.monotonic()
        try:
            self._write()
        except WRITE_ERRORS as exc:
            self._failed(exc)
            self._spill()
            return True
        finally:
            self._busy_since = None
        with self._status:
            if self.failing and time.monotonic() >= self._notice_until:
                self.failing = False
                log.warning("recording works again: everything kept is in the database")
                if self._on_status:
                    self._on_status(False, "")
        self._compact()
        return True

    def _compact(self) -> None:
        """Every :data:`COMPACT_INTERVAL`, the rows written so far into compact blocks, a slice
        a cycle (a short transaction: the next batch waits for no more than that) until none is
        left. A failure waits for the next time: the rows are readable as rows meanwhile."""
        if time.monotonic() < self._next_compact:
            return
        self._next_compact = time.monotonic() + COMPACT_INTERVAL
        self._busy_since = time.monotonic()  # a server that hangs now raises the alarm too
        try:
            if self.store.compact(self.session_id, slices=1):
                self._next_compact = 0.0  # maybe more: the next slice at the next cycle
        except WRITE_ERRORS as exc:
            log.warning("recording: the rows could not be put into blocks yet: %s", exc)
        finally:
            self._busy_since = None

    def _watch(self) -> None:
        """A write that hangs (a server that stopped answering, with no error) raises the
        alarm too: the recorder thread cannot say so while it waits."""
        while not self._stop.wait(1.0):
            began = self._busy_since
            if began is not None and time.monotonic() - began > STALL_AFTER:
                self._notice(f"the database has not answered for {STALL_AFTER:.0f} s; "
                             "measurements wait and are written when it answers")  # fmt: skip

    def _write(self) -> None:
        """The spool (older), then memory (newer), to the database; the lease renewed."""
        restored = self.store.db.check_file()
        if restored:
            self._notice(restored, hold=NOTICE_TIME)
        if len(self.spool):
            for batch in self.spool.batches():
                if self.store.write(batch.session_id, batch.items, batch.alarms,
                                    (batch.writer, batch.seq)):  # fmt: skip
                    self.written += len(batch.items)
            if self.spool.torn:
                log.warning("%d damaged batches in the spool %s were skipped", self.spool.torn,
                            self.spool.path)  # fmt: skip
            self.spool.clear()
        if not self._memory:
            self.store.write(self.session_id, [], [])  # the heartbeat: the lease renewed
        while self._memory:
            batch = self._memory[0]
            if self.store.write(batch.session_id, batch.items, batch.alarms,
                                (batch.writer, batch.seq)):  # fmt: skip
                self.written += len(batch.items)
            self._forget()

    def _hold(self, batch: Batch) -> None:
        """Keep ``batch`` in memory; while writing fails, past the limit drop the oldest waveform
        blocks, only them."""
        self._memory.append(batch)
        self._memory_bytes += batch.size()
        if not self.failing:
            return  # it is written at once: nothing to drop
        dropped = 0
        for old in self._memory:
            if self._memory_bytes <= self._memory_limit:
                break
            if old.bare:
                continue
            kept = []
            for item in old.items:
                if self._memory_bytes > self._memory_limit and isinstance(item, WaveformBlock):
                    self._memory_bytes -= item.samples.nbytes + 200
                    dropped += 1
                else:
                    kept.append(item)
            old.items = kept
            old.bare = self._memory_bytes > self._memory_limit  # it has no waves left
        if dropped:
            if not self.dropped_waves:
                log.warning("recording: memory for unwritten measurements is full; the oldest "
                            "pleth blocks are dropped (numerics, NIBP, events and alarms are "
                            "kept)")  # fmt: skip
            self.dropped_waves += dropped

    def _spill(self) -> None:
        """Memory to the spool, oldest first; what the disk does not take stays in memory."""
        while self._memory:
            batch = self._memory[0]
            if self.spool.full():
                kept: list[Item] = [i for i in batch.items if not isinstance(i, WaveformBlock)]
                self.spool.dropped_waves += len(batch.items) - len(kept)
                batch.items = kept
            try:
                self.spool.append(batch)
            except OSError as exc:
                self._failed(exc, retry=False)  # the database may answer before the disk does
                return
            self._forget()

    def _forget(self) -> None:
        """The oldest batch in memory is stored: let it go."""
        self._memory_bytes -= self._memory.popleft().size()

    def _give_up(self) -> None:
        self.lost = self.held
        if self.lost:
            log.error("recording: %d items could be written neither to the database nor to the "
                      "spool (%s) and are lost", self.lost, self.spool.path)  # fmt: skip
        if self.dropped_waves:
            log.warning("recording: %d pleth blocks were dropped while memory was full",
                        self.dropped_waves)  # fmt: skip

    def _failed(self, exc: BaseException, *, retry: bool = True) -> None:
        if retry:
            self._next_retry = time.monotonic() + RETRY_INTERVAL
        if not self.failing:
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
            self._notice(
                f"the database is unavailable ({reason}); measurements are kept in a spool, or "
                "in memory while the disk is full, and written when it answers"
            )

    def _notice(self, text: str, hold: float = 0.0) -> None:
        """Raise the "recording failing" alarm, up for at least ``hold`` seconds: a failure
        over at once (a deleted file restored) is still seen by the nurse."""
        with self._status:
            self._notice_until = max(self._notice_until, time.monotonic() + hold)
            if not self.failing:
                self.failing = True
                log.warning("recording is failing: %s", text)
                if self._on_status:
                    self._on_status(True, text)


def write_orphans(store: Store, folder: Path | None = None) -> int:
    """Write out the spools of this database's recorders that died; return the batches written.

    A live recorder's spool is locked and left alone. Batches already committed are skipped
    (they are named), so a spool written out twice is stored once. The dead recorder's lease is
    not renewed: its session stays interrupted.
    """
    count = 0
    sessions: set[int] = set()
    for spool in orphans(folder or spool_dir(store.db.url), spool_prefix(store.db.url)):
        try:
            for batch in spool.batches():
                store.write(batch.session_id, batch.items, batch.alarms,
                            (batch.writer, batch.seq), lease=False)  # fmt: skip
                count += 1
                sessions.add(batch.session_id)
        except WRITE_ERRORS as exc:
            log.warning("the spool %s could not be written yet (it is kept): %s", spool.path, exc)
            spool.close(remove=False)
            continue
        if spool.torn:
            log.warning("%d damaged batch(es) in the spool %s (a crash mid-write) skipped; the "
                        "rest is written", spool.torn, spool.path)  # fmt: skip
        spool.close(remove=True)
    if count:
        log.warning("measurements kept in the spool are now in the database")
    for session_id in sorted(sessions):
        with contextlib.suppress(*WRITE_ERRORS):  # they stay rows, readable, until next time
            store.compact(session_id)
    return count


def open_store(url: str | None) -> tuple[Store, list[int]]:
    """The session database ready for a new start: interrupted sessions marked (their ids are
    returned, to tell the user) and what dead recorders left in their spools written out."""
    store = Store(open_database(url))
    interrupted = store.recover_interrupted()
    write_orphans(store)
    return store, interrupted
