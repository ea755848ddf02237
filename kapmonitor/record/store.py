"""Reading and writing sessions in the database: the only module that speaks SQL for them."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Float,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from alarms.profile import Profile
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    DeviceEvent,
    DeviceValue,
    Flag,
    Flags,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    Stamp,
    WaveformBlock,
)
from kapmonitor.record import compaction
from kapmonitor.record.compaction import MISSING, numeric_block, wave_block
from kapmonitor.record.db import Database
from kapmonitor.record.schema import (
    AlarmRow,
    AuditRow,
    BatchRow,
    BatchRunRow,
    CodeRow,
    DeviceRow,
    EventRow,
    NibpRow,
    NumericBlockRow,
    NumericRow,
    SessionRow,
    ValueRow,
    WaveBlockRow,
    WaveRow,
)
from kapmonitor.record.session import (
    DeviceInfo,
    Drug,
    EventRecord,
    Route,
    SessionInfo,
    SessionRecord,
    SessionSetup,
    SessionStatus,
)
from kapmonitor.record.summaries import SessionDetailsRow

#: The recorder's lease, in seconds of the database's own clock: a session whose recorder has
#: not committed for this long is taken as cut off (its recorder dead or gone for good). It is
#: well beyond the outages a live recorder rides out with its spool (a PostgreSQL restart, a
#: network cut of a minute or two): a second client must never mark a live session interrupted.
#: A recorder on this host whose process is gone is found at once, without waiting for the lease.
LEASE = 300.0


def _flags_text(flags: Flags) -> str:
    return ";".join(sorted(f.value for f in flags))


@functools.lru_cache(maxsize=256)
def _flags(text: str) -> Flags:
    return frozenset(Flag(f) for f in text.split(";") if f)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Store:
    """Sessions in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._devices: dict[tuple[int, str], int] = {}

    # --- writing ----------------------------------------------------------------------------

    def create_session(
        self, setup: SessionSetup, profile: Profile | None = None, started: float | None = None
    ) -> int:
        """A new, active session with ``setup`` as its header. ``profile``: the alarm profile it
        runs with, kept whole (review judges limits by the profile in force); None for a session
        no alarm system watched (an import)."""
        started = time.time() if started is None else started
        with Session(self.db.engine) as s, s.begin():
            row = SessionRow(
                uid=str(uuid.uuid4()),
                patient=setup.patient,
                clinician=setup.clinician,
                operator=setup.operator,
                drug=setup.drug.value if setup.drug else None,
                route=setup.route.value if setup.route else None,
                dose=setup.dose,
                dose_unit=setup.dose_unit,
                started=started,
                status=SessionStatus.ACTIVE.value,
                alarm_profile=profile.name if profile else "",
                alarm_profile_text=profile.text if profile else "",
                owner=_owner(),
                heartbeat=_db_clock(self.db),
            )
            s.add(row)
            s.flush()
            if setup.weight_kg is not None or setup.indication:
                s.add(SessionDetailsRow(session_id=row.id, weight_kg=setup.weight_kg,
                                        indication=setup.indication))  # fmt: skip
            s.add(AuditRow(session_id=row.id, at=time.time(), who=setup.operator or "kapmonitor",
                           action="session-started", detail=setup.patient))  # fmt: skip
            return row.id

    def write(
        self,
        session_id: int,
        items: Sequence[Item],
        alarms: Sequence[LogEntry] = (),
        batch: tuple[str, int] | None = None,
        *,
        lease: bool = True,
    ) -> bool:
        """Write a batch in one transaction: all of it is stored, or none (and it is retried).

        ``batch`` names it (writer, number): a named batch already committed is not written
        again, and False is returned. With ``lease`` (the session's own recorder writing) it
        renews the session's lease, and resumes a session marked interrupted while its recorder
        was cut off for longer than the lease; a dead recorder's spool is written without.
        """
        devices = dict(self._devices)  # ids of devices added in a transaction that fails are void
        try:
            with Session(self.db.engine) as s, s.begin():
                if batch is not None:
                    if self._committed(s, *batch):
                        return False
                    s.add(BatchRow(session_id=session_id, writer=batch[0], seq=batch[1]))
                self._insert(s, session_id, items, alarms)
                if lease:
                    self._renew(s, session_id)
            return True
        except IntegrityError:
            self._devices = devices
            if batch is not None:
                with Session(self.db.engine) as s:
                    if self._committed(s, *batch):
                        return False  # committed by another writer of the same spool meanwhile
            raise
        except BaseException:
            self._devices = devices
            raise

    @staticmethod
    def _committed(s: Session, writer: str, seq: int) -> bool:
        # one query: the batch's own row, or a run of that writer's batches once compacted
        named = exists().where(BatchRow.writer == writer, BatchRow.seq == seq)
        in_run = exists().where(BatchRunRow.writer == writer, BatchRunRow.first_seq <= seq,
                                BatchRunRow.last_seq >= seq)  # fmt: skip
        return bool(s.scalar(select(or_(named, in_run))))

    def compact(self, session_id: int, slices: int | None = None) -> int:
        """Move the session's row-per-item numerics and waveform blocks into compact blocks
        (see :mod:`~kapmonitor.record.compaction`), a bounded slice per transaction; the rows
        moved; at most ``slices`` of them (None: all). The recorder calls it every minute a
        slice at a time, :meth:`end_session` at the end. Another client doing the same at the
        same moment is not an error: this one gives way."""
        total, done = 0, 0
        try:
            while slices is None or done < slices:  # a slice a transaction: short, small
                with self.db.engine.begin() as conn:
                    moved = compaction.compact(conn, session_id)
                if not moved:
                    break
                total, done = total + moved, done + 1
            return total
        except compaction.Conflict:
            return total

    def _insert(
        self, s: Session, session_id: int, items: Sequence[Item], alarms: Sequence[LogEntry]
    ) -> None:
        rows: dict[type, list[dict]] = {}
        for item in items:
            table, row = self._row(s, session_id, item)
            rows.setdefault(table, []).append(row)
        for entry in alarms:
            rows.setdefault(AlarmRow, []).append(_alarm_row(session_id, entry))
        for table, values in rows.items():
            s.execute(insert(table), values)

    def _renew(self, s: Session, session_id: int) -> None:
        this = SessionRow.id == session_id
        s.execute(update(SessionRow).where(this).values(heartbeat=_db_clock(self.db)))
        resumed = s.execute(
            update(SessionRow)
            .where(this, SessionRow.status == SessionStatus.INTERRUPTED.value)
            .values(status=SessionStatus.ACTIVE.value, ended=None)
        )
        if isinstance(resumed, CursorResult) and resumed.rowcount:  # DML: a cursor result
            s.add(AuditRow(session_id=session_id, at=time.time(), who="kapmonitor",
                           action="session-resumed",
                           detail=f"recorder {_owner()} reached the database again and wrote; "
                                  "it was marked interrupted while cut off"))  # fmt: skip

    def _device(self, s: Session, session_id: int, source: str) -> int:
        key = (session_id, source)
        device_id = self._devices.get(key)
        if device_id is None:
            device_id = s.scalar(
                select(DeviceRow.id).where(
                    DeviceRow.session_id == session_id, DeviceRow.source == source
                )
            )
            if device_id is None:
                protocol, port = _protocol_and_port(source)
                row = DeviceRow(session_id=session_id, source=source, protocol=protocol, port=port)
                s.add(row)
                s.flush()
                device_id = row.id
            self._devices[key] = device_id
        return device_id

    def _row(self, s: Session, session_id: int, item: Item) -> tuple[type, dict]:
        base = {"session_id": session_id, "t_wall": item.stamp.wall, "t_mono": item.stamp.mono}
        if isinstance(item, DeviceEvent | SessionEvent):
            kind = "device-state" if isinstance(item, DeviceEvent) else item.kind.value
            text = (
                f"{item.state}: {item.detail}" if isinstance(item, DeviceEvent) and item.detail
                else str(item.state) if isinstance(item, DeviceEvent) else item.text
            )  # fmt: skip
            # getattr: a spool written before events had authors still loads
            author = getattr(item, "author", None) if isinstance(item, SessionEvent) else None
            return EventRow, {**base, "kind": kind, "text": text, "source": item.source,
                              "author": author, "amends": None}  # fmt: skip
        base["device_id"] = self._device(s, session_id, item.source)
        if isinstance(item, Numeric):
            return NumericRow, {**base, "code": item.code.value, "value": item.value,
                                "flags": _flags_text(item.flags)}  # fmt: skip
        if isinstance(item, NibpReading):
            return NibpRow, {**base, "systolic": item.systolic, "diastolic": item.diastolic,
                             "mean": item.mean, "flags": _flags_text(item.flags)}  # fmt: skip
        if isinstance(item, WaveformBlock):
            data = zlib.compress(item.samples.astype("<f4").tobytes(), 6)
            return WaveRow, {**base, "code": item.code.value, "fs": item.fs,
                             "n": len(item.samples), "data": data,
                             "flags": _flags_text(item.flags)}  # fmt: skip
        if isinstance(item, DeviceValue):
            return ValueRow, {**base, "key": item.key, "value": item.value, "unit": item.unit,
                              "text": item.text, "flags": _flags_text(item.flags)}  # fmt: skip
        raise TypeError(f"cannot store {item!r}")

    def add_event(
        self,
        session_id: int,
        kind: str,
        text: str,
        author: str,
        stamp: Stamp | None = None,
        amends: int | None = None,
        reason: str = "",
    ) -> int:
        """A marker, a note or an amendment; audited with who and when (and why, if said).

        An amendment is a new event naming the one it corrects: the original stays as it was.
        """
        stamp = stamp or Stamp.now()
        with Session(self.db.engine) as s, s.begin():
            row = EventRow(session_id=session_id, kind=kind, text=text, source=None,
                           author=author, amends=amends, t_wall=stamp.wall,
                           t_mono=stamp.mono)  # fmt: skip
            s.add(row)
            s.flush()
            action = "amended" if amends is not None else f"{kind}-added"
            detail = f"event {row.id}" + (f" amends event {amends}" if amends else "")
            if reason:
                detail += f" (reason: {reason})"
            s.add(AuditRow(session_id=session_id, at=time.time(), who=author, action=action,
                           detail=f"{detail}: {text}"))  # fmt: skip
            return row.id

    def end_session(
        self, session_id: int, status: SessionStatus, ended: float | None = None, who: str = ""
    ) -> None:
        self.compact(session_id)
        with Session(self.db.engine) as s, s.begin():
            s.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id)
                .values(status=status.value, ended=time.time() if ended is None else ended)
            )
            s.add(AuditRow(session_id=session_id, at=time.time(), who=who or "kapmonitor",
                           action=f"session-{status.value}", detail=""))  # fmt: skip

    def recover_interrupted(self, lease: float = LEASE) -> list[int]:
        """Mark sessions whose recorder died as interrupted; return their ids.

        A session is cut off when its recorder process is gone from this host, or when its
        lease has expired: no commit for ``lease`` seconds by the database's own clock (so no
        client's clock, and no client's view of the network, decides). Its end is its last
        commit; the audit trail says which of the two decided it.
        """
        here = socket.gethostname()
        found = []
        with Session(self.db.engine) as s, s.begin():
            now = s.scalars(select(_db_clock(self.db))).one()
            for row in s.scalars(
                select(SessionRow).where(SessionRow.status == SessionStatus.ACTIVE.value)
            ):
                host, _, pid = row.owner.rpartition(":")
                if host == here and pid.isdigit() and not _alive(int(pid)):
                    how = f"process {pid} is no longer running on {here}"
                elif row.heartbeat is None or now - row.heartbeat > lease:
                    silent = "never" if row.heartbeat is None else f"{now - row.heartbeat:.0f} s"
                    how = f"lease expired: no commit for {silent} by the database clock " \
                          f"(lease {lease:.0f} s)"  # fmt: skip
                else:
                    continue
                row.status = SessionStatus.INTERRUPTED.value
                row.ended = row.heartbeat
                s.add(AuditRow(session_id=row.id, at=time.time(), who="kapmonitor",
                               action="session-interrupted",
                               detail=f"recorder {row.owner} stopped writing; {how}"))  # fmt: skip
                found.append(row.id)
        for session_id in found:
            # Their rows into blocks; a database busy now only leaves them rows (readable) until
            # the next start: marking them interrupted is what must not fail.
            with contextlib.suppress(SQLAlchemyError):
                self.compact(session_id)
        return found

    # --- reading ----------------------------------------------------------------------------

    def list_sessions(
        self,
        *,
        patient: str | None = None,
        clinician: str | None = None,
        status: SessionStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[SessionInfo]:
        # Only the header's columns: a session row also holds its alarm profile's text, which a
        # list of thousands of sessions has no use for.
        query = select(*(getattr(SessionRow, c) for c in _INFO_COLUMNS)).order_by(
            SessionRow.started.desc(), SessionRow.id.desc()
        )
        if patient:
            query = query.where(SessionRow.patient == patient)
        if clinician:
            query = query.where(SessionRow.clinician == clinician)
        if status:
            query = query.where(SessionRow.status == status.value)
        if since is not None:
            query = query.where(SessionRow.started >= since)
        if until is not None:
            query = query.where(SessionRow.started < until)
        if limit:
            query = query.limit(limit)
        with Session(self.db.engine) as s:
            return [_header(*row) for row in s.execute(query)]

    def load_waves(
        self, session_id: int, since: float | None = None, until: float | None = None
    ) -> list[WaveformBlock]:
        """The waveform blocks that start in [since, until) (wall clock): review loads the pleth
        only when it is shown, and only the part on screen."""
        with _no_cycle_collection(), self.db.engine.connect() as conn:
            source = _sources(conn, session_id)

            def read() -> list[WaveformBlock]:
                return _waves(conn, session_id, source, since, until)

            return _settled(conn, session_id, read)[0]

    def audit_log(self, session_id: int) -> list[AuditEntry]:
        """Who changed what in this session's record, oldest first."""
        query = (
            select(AuditRow.at, AuditRow.who, AuditRow.action, AuditRow.detail)
            .where(AuditRow.session_id == session_id)
            .order_by(AuditRow.at, AuditRow.id)
        )
        with Session(self.db.engine) as s:
            return [AuditEntry(*row) for row in s.execute(query)]

    def session_info(self, session_id: int) -> SessionInfo:
        with Session(self.db.engine) as s:
            return self._header_and_profile(s, session_id)[0]

    def _header_and_profile(self, s: Session, session_id: int) -> tuple[SessionInfo, str]:
        """A session's header and its alarm profile's text, in one query."""
        columns = (*(getattr(SessionRow, c) for c in _INFO_COLUMNS), SessionRow.alarm_profile_text)
        row = s.execute(select(*columns).where(SessionRow.id == session_id)).first()
        if row is None:
            raise UserError(f"there is no session {session_id} in {self.db.url}")
        return _header(*row[:-1]), row[-1] or ""

    def load_session(self, session_id: int, *, waves: bool = True) -> SessionRecord:
        """The whole session, measurements in time order."""
        with _no_cycle_collection(), Session(self.db.engine) as s:
            # The profile as it was when the session ran: review judges the limits by it.
            info, profile_text = self._header_and_profile(s, session_id)
            record = SessionRecord(info, profile_text=profile_text)
            devices = {
                row.id: row
                for row in s.scalars(select(DeviceRow).where(DeviceRow.session_id == session_id))
            }
            record.devices = [
                DeviceInfo(d.source, d.protocol, d.port, d.serial_number) for d in devices.values()
            ]

            def rows(table, *columns):
                # Plain column tuples, not ORM objects: loading a 2-hour session for review
                # builds tens of thousands of items, and ORM instances would triple the time.
                return conn.execute(
                    select(*(getattr(table, c) for c in columns))
                    .where(table.session_id == session_id)
                    .order_by(table.t_wall, table.id)
                ).all()

            conn = s.connection()  # Core rows: the ORM's per-row loading is not needed here
            source = {i: d.source for i, d in devices.items()}
            record.numerics, record.waves = _settled(
                conn, session_id, lambda: _numerics(conn, session_id, source),
                (lambda: _waves(conn, session_id, source)) if waves else list,
            )  # fmt: skip
            record.nibp = [
                NibpReading(source[d], sy, di, me, Stamp(m, w), _flags(f))
                for d, sy, di, me, m, w, f in rows(
                    NibpRow, "device_id", "systolic", "diastolic", "mean", "t_mono", "t_wall",
                    "flags",
                )
            ]  # fmt: skip
            record.values = [
                DeviceValue(source[d], k, v, u, Stamp(m, w), _flags(f), t)
                for d, k, v, u, m, w, f, t in rows(
                    ValueRow, "device_id", "key", "value", "unit", "t_mono", "t_wall", "flags",
                    "text",
                )
            ]  # fmt: skip
            record.events = [
                EventRecord(i, Stamp(m, w), k, t, so, a, am)
                for i, m, w, k, t, so, a, am in rows(
                    EventRow, "id", "t_mono", "t_wall", "kind", "text", "source", "author",
                    "amends",
                )
            ]  # fmt: skip
            record.alarms = [
                _log_entry(r) for r in s.scalars(
                    select(AlarmRow).where(AlarmRow.session_id == session_id)
                    .order_by(AlarmRow.t_wall, AlarmRow.id)
                )
            ]  # fmt: skip
        return record


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a session's items are built: a 2-hour session is
    some 200,000 new objects, each allocation counted towards a collection that scans the whole
    heap (a third of the load time), and none of them can form a cycle (frozen dataclasses of
    numbers, strings and arrays). Reference counting frees memory as always; the collector
    runs again, as it was, when the load is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _samples(data: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), dtype="<f4").astype(np.float64)


def _sources(conn: Connection, session_id: int) -> dict[int, str]:
    query = select(DeviceRow.id, DeviceRow.source).where(DeviceRow.session_id == session_id)
    return {i: src for i, src in conn.execute(query)}


def _settled(conn: Connection, session_id: int, *reads: Callable[[], list]) -> tuple[list, ...]:
    """``reads`` of blocks and rows that no compaction cut in two.

    A read takes a session's blocks, then its rows; a compaction committed between the two
    (the recorder's, every minute, while the session is reviewed or replayed live) would hide
    the rows it moved. Each query sees what is committed when it runs (SQLite without an
    explicit transaction, PostgreSQL read committed), so the blocks' newest ids are checked
    before and after: when they moved, the reads are done again (the next compaction is a
    minute away)."""
    for _ in range(_SETTLE_TRIES):
        before = _newest_blocks(conn, session_id)
        out = tuple(read() for read in reads)
        if _newest_blocks(conn, session_id) == before:
            break
    return out


_SETTLE_TRIES = 5


def _newest_blocks(conn: Connection, session_id: int) -> tuple:
    return tuple(
        conn.execute(select(func.max(t.id)).where(t.session_id == session_id)).scalar()
        for t in (NumericBlockRow, WaveBlockRow)
    )


def _in_order(items: list, walls: list[np.ndarray], ids: list[np.ndarray]) -> list:
    """``items`` (from blocks and rows, in pieces) in wall-time order, then in the order they
    were written (row id): the order one query over rows gave before blocks."""
    if len(walls) < 2:
        return items  # one block or the rows alone: already in order
    order = np.lexsort((np.concatenate(ids), np.concatenate(walls)))
    return [items[i] for i in order.tolist()]


def _numerics(conn: Connection, session_id: int, source: dict[int, str]) -> list[Numeric]:
    """The session's numerics, from its blocks and from its rows not yet in blocks."""
    items: list[Numeric] = []
    walls: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    blocks = conn.execute(
        select(NumericBlockRow.device_id, CodeRow.code, NumericBlockRow.n,
               NumericBlockRow.flag_sets, NumericBlockRow.data)
        .join(CodeRow, CodeRow.id == NumericBlockRow.code_id)
        .where(NumericBlockRow.session_id == session_id)
        .order_by(NumericBlockRow.t_first, NumericBlockRow.id)
    ).all()  # fmt: skip
    for d, c, n, sets, data in blocks:
        row_ids, wall, mono, values, state = numeric_block(n, data)
        flags = [_flags(f) for f in sets.split("|")]
        src, code = source[d], _CODES[c]
        items.extend(
            Numeric(src, code, None if st & MISSING else v, Stamp(m, w), flags[st & ~MISSING])
            for v, m, w, st in zip(values.tolist(), mono.tolist(), wall.tolist(),
                                   state.tolist(), strict=True)
        )  # fmt: skip
        walls.append(wall)
        ids.append(row_ids)
    rows = conn.execute(
        select(NumericRow.id, NumericRow.device_id, NumericRow.code, NumericRow.value,
               NumericRow.t_mono, NumericRow.t_wall, NumericRow.flags)
        .where(NumericRow.session_id == session_id)
        .order_by(NumericRow.t_wall, NumericRow.id)
    ).all()  # fmt: skip
    if rows:
        items.extend(
            Numeric(source[d], _CODES[c], v, Stamp(m, w), _flags(f)) for _, d, c, v, m, w, f in rows
        )
        walls.append(np.array([r.t_wall for r in rows], np.float64))
        ids.append(np.array([r.id for r in rows], np.int64))
    return _in_order(items, walls, ids)


def _waves(
    conn: Connection,
    session_id: int,
    source: dict[int, str],
    since: float | None = None,
    until: float | None = None,
) -> list[WaveformBlock]:
    """The session's waveform blocks that start in [since, until) (wall clock), from its
    compact blocks and from its rows not yet in blocks, each as the device sent it."""
    items: list[WaveformBlock] = []
    walls: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    query = (
        select(WaveBlockRow.device_id, CodeRow.code, WaveBlockRow.fs, WaveBlockRow.blocks,
               WaveBlockRow.n, WaveBlockRow.flag_sets, WaveBlockRow.data)
        .join(CodeRow, CodeRow.id == WaveBlockRow.code_id)
        .where(WaveBlockRow.session_id == session_id)
        .order_by(WaveBlockRow.t_first, WaveBlockRow.id)
    )  # fmt: skip
    if since is not None:
        query = query.where(WaveBlockRow.t_last >= since)
    if until is not None:
        query = query.where(WaveBlockRow.t_first < until)
    for d, c, fs, count, n, sets, data in conn.execute(query).all():
        row_ids, sizes, wall, mono, state, samples = wave_block(count, n, data)
        keep = np.ones(count, bool)
        if since is not None:
            keep &= wall >= since
        if until is not None:
            keep &= wall < until
        ends = np.cumsum(sizes)
        flags = [_flags(f) for f in sets.split("|")]
        src, code = source[d], _CODES[c]
        if not keep.all():
            ends, sizes, wall, mono, state = (
                ends[keep],
                sizes[keep],
                wall[keep],
                mono[keep],
                state[keep],
            )
            row_ids = row_ids[keep]
        # plain Python numbers, not numpy scalars: 57,600 blocks in a 2-hour session
        items.extend(
            WaveformBlock(src, code, Stamp(m, w), fs, samples[e - n : e], flags[f])
            for e, n, m, w, f in zip(ends.tolist(), sizes.tolist(), mono.tolist(), wall.tolist(),
                                     state.tolist(), strict=True)
        )  # fmt: skip
        walls.append(wall)
        ids.append(row_ids)
    tail = (
        select(WaveRow.id, WaveRow.device_id, WaveRow.code, WaveRow.t_mono, WaveRow.t_wall,
               WaveRow.fs, WaveRow.data, WaveRow.flags)
        .where(WaveRow.session_id == session_id)
        .order_by(WaveRow.t_wall, WaveRow.id)
    )  # fmt: skip
    if since is not None:
        tail = tail.where(WaveRow.t_wall >= since)
    if until is not None:
        tail = tail.where(WaveRow.t_wall < until)
    rows = conn.execute(tail).all()
    if rows:
        items.extend(
            WaveformBlock(source[d], Code(c), Stamp(m, w), fs, _samples(data), _flags(f))
            for _, d, c, m, w, fs, data, f in rows
        )
        walls.append(np.array([r.t_wall for r in rows], np.float64))
        ids.append(np.array([r.id for r in rows], np.int64))
    return _in_order(items, walls, ids)


def _protocol_and_port(source: str) -> tuple[str, str]:
    """``nonin2@/dev/ttyUSB0`` → (nonin2, /dev/ttyUSB0); ``sim:typical`` → (sim, typical)."""
    try:
        spec = DeviceSpec.parse(source)
    except UserError:
        return "", source  # a source named by an import (a file's device name)
    return spec.kind, spec.target


def _db_clock(db: Database) -> ColumnElement[float]:
    """The database's clock, in seconds since the epoch, as an SQL expression: the lease is
    judged by one clock, whichever host the recorder and the checking client run on."""
    if db.is_sqlite:
        return (func.julianday(literal("now")) - 2440587.5) * 86400.0
    return cast(func.extract("epoch", func.clock_timestamp()), Float)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_INFO_COLUMNS = ("id", "uid", "patient", "clinician", "operator", "drug", "route", "dose",
                 "dose_unit", "started", "ended", "status", "alarm_profile")  # fmt: skip


@dataclass(frozen=True)
class AuditEntry:
    at: float  #: wall clock
    who: str
    action: str  #: "session-started", "amended", "note-added", …
    detail: str


_CODES = {c.value: c for c in Code}  #: a dict lookup, not an enum call per stored numeric
_DRUGS = {d.value: d for d in Drug}
_ROUTES = {r.value: r for r in Route}
_STATUSES = {s.value: s for s in SessionStatus}


def _header(id_, uid, patient, clinician, operator, drug, route, dose, dose_unit, started, ended,
            status, alarm_profile) -> SessionInfo:  # fmt: skip
    """A session header from the :data:`_INFO_COLUMNS` of a row (no enum calls: 10,000 rows)."""
    return SessionInfo(id_, uid, patient, clinician, operator, _DRUGS.get(drug),
                       _ROUTES.get(route), dose, dose_unit, started, ended, _STATUSES[status],
                       alarm_profile)  # fmt: skip


def _alarm_row(session_id: int, entry: LogEntry) -> dict:
    return {
        "session_id": session_id,
        "event": entry.event.value,
        "condition": entry.condition,
        "priority": entry.priority.label if entry.priority else None,
        "kind": entry.kind.value if entry.kind else None,
        "source": entry.source,
        "code": entry.code,
        "value": entry.value,
        "limit": entry.limit,
        "operator": entry.operator,
        "text": entry.text,
        "t_wall": entry.stamp.wall,
        "t_mono": entry.stamp.mono,
    }


def _log_entry(row: AlarmRow) -> LogEntry:
    return LogEntry(
        Stamp(row.t_mono, row.t_wall),
        LogEvent(row.event),
        condition=row.condition,
        priority=Priority.parse(row.priority) if row.priority else None,
        kind=AlarmKind(row.kind) if row.kind else None,
        source=row.source,
        code=row.code,
        value=row.value,
        limit=row.limit,
        operator=row.operator,
        text=row.text,
    )
