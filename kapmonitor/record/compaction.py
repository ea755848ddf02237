"""Moving a session's row-per-item record into compact blocks, and reading the blocks back.

The recorder writes one row per numeric and per device waveform block: a commit every half
second stays small and a killed process loses at most that half second. Kept that way, a 2-hour
session with pleth takes about three times the bytes of the same session as a VitalDB file: the
code's text, two float times and an index entry on every row, a zlib header on every quarter
second of pleth. So every minute (and when a session ends) the rows are moved, in one
transaction, into blocks of up to :data:`BLOCK_SECONDS` per device and code (see
:mod:`~kapmonitor.record.packing`): row ids, sizes, wall and monotonic times, values, flags and
samples, bit for bit. A crash mid-way rolls the transaction back and leaves the rows as they
were; readers take blocks and rows alike, so a session is whole at every moment.

Nothing is lost or changed: a missing value stays None (not NaN, not 0), a NaN sample stays
NaN, a gap between device blocks stays a gap (each block keeps its own times), and items keep
their order (wall time, then the order they were written in: their row ids are kept).
Waveform samples that are whole numbers (a device's counts) are kept as integers, which pack
tighter; any other sample is kept as the float32 the record has always stored.

The committed batches' names (writer, number: two a second) are kept as runs of consecutive
numbers, so a batch replayed from a spool is still recognised and stored once.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert, select, update

from kapmonitor.record.packing import pack, unpack
from kapmonitor.record.schema import (
    BatchRow,
    BatchRunRow,
    CodeRow,
    NumericBlockRow,
    NumericRow,
    WaveBlockRow,
    WaveRow,
)

#: Longest span of one block, in seconds of wall time: review reads the pleth on screen by
#: blocks, and a minute of 100-Hz pleth (24 KB of float32) packs as well as an hour would.
BLOCK_SECONDS = 60.0
#: The state byte of a numeric: this bit set means the value is missing (None); the low bits
#: are the index of its flags in the block's flag sets.
MISSING = 0x80
MAX_FLAG_SETS = 127
#: How a waveform block's samples are held (the blob's tag).
FLOAT32, INT32 = 0, 1
_DELETE_CHUNK = 500  #: ids per DELETE: far under every database's limit on bound parameters
#: Rows of each table moved by one :func:`compact` (oldest first): the memory it takes stays
#: small (a few MB) however long the session left uncompacted (an import, a session recorded
#: at --speed 100000, a database migrated).
SLICE_ROWS = 5_000


class Conflict(Exception):
    """Another client moved some of the same rows meanwhile: this compaction is rolled back."""


def compact(conn: Connection, session_id: int, rows: int = SLICE_ROWS) -> int:
    """Move up to ``rows`` of each of ``session_id``'s numerics, waveform blocks and batch names
    (the oldest) into blocks and runs, in the caller's transaction; the number of rows moved
    (call again until it is 0). Raises :class:`Conflict` when another client did part of it at
    the same time (roll back; nothing is lost)."""
    return (
        _numerics(conn, session_id, rows)
        + _waves(conn, session_id, rows)
        + _batches(conn, session_id, rows)
    )


def compact_all(conn: Connection, session_id: int) -> int:
    """All of ``session_id``'s rows into blocks, a slice at a time, in the caller's transaction."""
    total = 0
    while moved := compact(conn, session_id):
        total += moved
    return total


# --- writing ----------------------------------------------------------------------------------


def _numerics(conn: Connection, session_id: int, limit: int) -> int:
    t = NumericRow.__table__
    rows = conn.execute(
        select(t.c.id, t.c.device_id, t.c.code, t.c.value, t.c.flags, t.c.t_wall, t.c.t_mono)
        .where(t.c.session_id == session_id)
        .order_by(t.c.id)
        .limit(limit)
    ).all()  # fmt: skip
    if not rows:
        return 0
    codes = code_ids(conn, {r.code for r in rows})
    groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for r in rows:
        groups[(r.device_id, r.code)].append(r)
    blocks = []
    for (device_id, code), group in groups.items():
        group.sort(key=lambda r: (r.t_wall, r.id))
        for chunk, sets in _chunks(group):
            index = {text: i for i, text in enumerate(sets)}
            state = np.array(
                [index[r.flags] | (MISSING if r.value is None else 0) for r in chunk], np.uint8
            )
            values = np.array([0.0 if r.value is None else r.value for r in chunk], np.float64)
            ids, wall, mono = _id_and_times(chunk)
            data = pack([(ids, 1), (wall, 1), (mono, 1), (values, 0), (state, 0)])
            blocks.append({"session_id": session_id, "device_id": device_id,
                           "code_id": codes[code], "n": len(chunk), "t_first": chunk[0].t_wall,
                           "t_last": chunk[-1].t_wall, "flag_sets": "|".join(sets),
                           "data": data})  # fmt: skip
    conn.execute(insert(NumericBlockRow), blocks)
    return _delete(conn, t, [r.id for r in rows])


def _waves(conn: Connection, session_id: int, limit: int) -> int:
    t = WaveRow.__table__
    rows = conn.execute(
        select(t.c.id, t.c.device_id, t.c.code, t.c.fs, t.c.n, t.c.data, t.c.flags, t.c.t_wall,
               t.c.t_mono)
        .where(t.c.session_id == session_id)
        .order_by(t.c.id)
        .limit(limit)
    ).all()  # fmt: skip
    samples: dict[int, np.ndarray] = {}
    for r in rows:
        try:
            samples[r.id] = np.frombuffer(zlib.decompress(r.data), "<f4")
        except zlib.error:
            # A damaged row stays a row, as it was: nothing is hidden or dropped (a slice of
            # nothing but damaged rows moves none, and the rows after it wait as rows).
            continue
    rows = [r for r in rows if r.id in samples]
    if not rows:
        return 0
    codes = code_ids(conn, {r.code for r in rows})
    groups: dict[tuple[int, str, float], list[Any]] = defaultdict(list)
    for r in rows:
        groups[(r.device_id, r.code, r.fs)].append(r)
    blocks = []
    for (device_id, code, fs), group in groups.items():
        group.sort(key=lambda r: (r.t_wall, r.id))
        for chunk, sets in _chunks(group):
            index = {text: i for i, text in enumerate(sets)}
            state = np.array([index[r.flags] for r in chunk], np.uint8)
            counts = np.array([len(samples[r.id]) for r in chunk], np.int32)
            ids, wall, mono = _id_and_times(chunk)
            joined = np.concatenate([samples[r.id] for r in chunk])
            tag, column = _sample_column(joined)
            data = pack([(ids, 1), (counts, 1), (wall, 1), (mono, 1), (state, 0), (column, 1)], tag)
            blocks.append({"session_id": session_id, "device_id": device_id,
                           "code_id": codes[code], "fs": fs, "blocks": len(chunk),
                           "n": len(joined), "t_first": chunk[0].t_wall,
                           "t_last": chunk[-1].t_wall, "flag_sets": "|".join(sets),
                           "data": data})  # fmt: skip
    conn.execute(insert(WaveBlockRow), blocks)
    return _delete(conn, t, [r.id for r in rows])


def _batches(conn: Connection, session_id: int, limit: int) -> int:
    t = BatchRow.__table__
    runs = BatchRunRow
    rows = conn.execute(
        select(t.c.id, t.c.writer, t.c.seq)
        .where(t.c.session_id == session_id)
        .order_by(t.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    by_writer: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_writer[r.writer].append(r.seq)
    for writer, seqs in by_writer.items():
        seqs.sort()
        starts = [0, *(i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1)]
        for a, b in zip(starts, [*starts[1:], len(seqs)], strict=True):
            first, last = seqs[a], seqs[b - 1]
            extended = conn.execute(
                update(runs)
                .where(runs.writer == writer, runs.session_id == session_id,
                       runs.last_seq == first - 1)
                .values(last_seq=last)
            )  # fmt: skip
            if not extended.rowcount:
                conn.execute(insert(runs).values(session_id=session_id, writer=writer,
                                                 first_seq=first, last_seq=last))  # fmt: skip
    return _delete(conn, t, [r.id for r in rows])


def _chunks(rows: list[Any]) -> list[tuple[list[Any], list[str]]]:
    """Time-ordered rows cut into blocks of at most :data:`BLOCK_SECONDS` and
    :data:`MAX_FLAG_SETS` distinct flag texts; each with its flag texts in order of first use."""
    out: list[tuple[list[Any], list[str]]] = []
    chunk: list[Any] = []
    sets: dict[str, None] = {}
    for r in rows:
        if chunk and (
            r.t_wall - chunk[0].t_wall >= BLOCK_SECONDS
            or (r.flags not in sets and len(sets) >= MAX_FLAG_SETS)
        ):
            out.append((chunk, list(sets)))
            chunk, sets = [], {}
        chunk.append(r)
        sets.setdefault(r.flags)
    out.append((chunk, list(sets)))
    return out


def _id_and_times(chunk: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([r.id for r in chunk], np.int64),
        np.array([r.t_wall for r in chunk], np.float64),
        np.array([r.t_mono for r in chunk], np.float64),
    )


def _sample_column(samples: np.ndarray) -> tuple[int, np.ndarray]:
    """Whole-number samples (a device's counts) as int32, exactly; any other as float32."""
    if len(samples) and np.isfinite(samples).all() and np.abs(samples).max() < 2**31:
        counts = samples.astype(np.int32)
        if np.array_equal(counts.astype("<f4").view(np.uint32), samples.view(np.uint32)):
            return INT32, counts
    return FLOAT32, samples


def _delete(conn: Connection, table: Any, ids: list[int]) -> int:
    """Delete the rows moved; :class:`Conflict` if some were gone already."""
    done = 0
    for i in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[i : i + _DELETE_CHUNK]
        done += conn.execute(delete(table).where(table.c.id.in_(chunk))).rowcount
    if done != len(ids):
        raise Conflict(f"{len(ids) - done} of the rows were moved by another client meanwhile")
    return done


def code_ids(conn: Connection, codes: set[str]) -> dict[str, int]:
    """The number of each code, added to the ``codes`` table when new."""
    query = select(CodeRow.id, CodeRow.code).where(CodeRow.code.in_(codes))
    found = {c: i for i, c in conn.execute(query)}
    for code in sorted(codes - found.keys()):
        added = insert(CodeRow).values(code=code).returning(CodeRow.id)
        found[code] = conn.execute(added).scalar_one()
    return found


# --- reading ----------------------------------------------------------------------------------


def numeric_block(
    n: int, data: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A numeric block's row ids, wall times, monotonic times, values and state bytes."""
    _, (ids, wall, mono, values, state) = unpack(
        data, [("<i8", 1, n), ("<f8", 1, n), ("<f8", 1, n), ("<f8", 0, n), ("u1", 0, n)]
    )
    return ids, wall, mono, values, state


def wave_block(
    blocks: int, n: int, data: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A waveform block's row ids, sizes, wall and monotonic times and flag indexes (one per
    device block) and its samples as float64."""
    tag, (ids, counts, wall, mono, state, column) = unpack(
        data,
        [("<i8", 1, blocks), ("<i4", 1, blocks), ("<f8", 1, blocks), ("<f8", 1, blocks),
         ("u1", 0, blocks), ("<i4", 1, n)],
    )  # fmt: skip
    if tag == FLOAT32:
        column = column.view("<f4")  # the same 32 bits, delta coded alike
    elif tag != INT32:
        raise ValueError(f"a waveform block of an unknown kind ({tag})")
    return ids, counts, wall, mono, state, column.astype(np.float64)


def flag_sets(text: str, parse: Callable[[str], Any]) -> list[Any]:
    """A block's flag texts, each parsed by ``parse``, in index order."""
    return [parse(s) for s in text.split("|")]
