"""One commit's worth of the record, and its encoding as plain JSON for the spool.

A batch is named by its writer (one recorder) and a sequence number. The database keeps the
names of the batches it has committed, so a batch written twice — replayed from a spool after a
crash between the commit and the spool being emptied — is stored once.

The encoding is JSON of plain values (lists, strings, numbers; a waveform's samples as base64
float64), read back with explicit constructors: unlike pickle, decoding a damaged or hostile
file cannot run code, only fail with :class:`ValueError`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from alarms.model import AlarmKind, LogEntry, LogEvent, Priority
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    DeviceValue,
    Flag,
    Flags,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)


@dataclass
class Batch:
    writer: str  #: the recorder that made it (a random hex id)
    seq: int  #: its number in that recorder's sequence
    session_id: int
    items: list[Item] = field(default_factory=list)
    alarms: list[LogEntry] = field(default_factory=list)
    #: no waveform block left in it (the recorder's memory bound dropped them); not encoded
    bare: bool = field(default=False, compare=False)

    def __len__(self) -> int:
        return len(self.items) + len(self.alarms)

    def size(self) -> int:
        """Roughly the bytes it holds in memory (what bounds the recorder's memory)."""
        waves = sum(i.samples.nbytes for i in self.items if isinstance(i, WaveformBlock))
        return waves + 200 * len(self)


def encode(batch: Batch) -> bytes:
    return json.dumps(
        {
            "writer": batch.writer,
            "seq": batch.seq,
            "session": batch.session_id,
            "items": [_item(i) for i in batch.items],
            "alarms": [_alarm(a) for a in batch.alarms],
        },
        separators=(",", ":"),
    ).encode()


def decode(data: bytes) -> Batch:
    """The batch ``data`` encodes; :class:`ValueError` if it is not one."""
    try:
        d = json.loads(data)
        return Batch(
            str(d["writer"]),
            int(d["seq"]),
            int(d["session"]),
            [_ITEM_READERS[r[0]](*r[1:]) for r in d["items"]],
            [_read_alarm(*r) for r in d["alarms"]],
        )
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a spool batch: {exc}") from None


def _flags(flags: Flags) -> list[str]:
    return sorted(f.value for f in flags)


def _read_flags(names: list[str]) -> Flags:
    return frozenset(Flag(n) for n in names)


def _item(i: Item) -> list:
    s = i.stamp
    if isinstance(i, Numeric):
        return ["n", i.source, i.code.value, i.value, s.mono, s.wall, _flags(i.flags)]
    if isinstance(i, NibpReading):
        return ["p", i.source, i.systolic, i.diastolic, i.mean, s.mono, s.wall, _flags(i.flags)]
    if isinstance(i, WaveformBlock):
        samples = base64.b64encode(np.asarray(i.samples, dtype="<f8").tobytes()).decode()
        return ["w", i.source, i.code.value, s.mono, s.wall, i.fs, samples, _flags(i.flags)]
    if isinstance(i, DeviceValue):
        return ["v", i.source, i.key, i.value, i.unit, s.mono, s.wall, _flags(i.flags), i.text]
    if isinstance(i, DeviceEvent):
        return ["d", i.source, i.state.value, s.mono, s.wall, i.detail]
    if isinstance(i, SessionEvent):
        return ["e", i.source, i.kind.value, s.mono, s.wall, i.text, i.author]
    raise TypeError(f"cannot spool {i!r}")


def _samples(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f8").astype(np.float64)


#: Each item kind's reader, by its tag, called with the rest of its spooled list.
_ITEM_READERS: dict[str, Callable[..., Item]] = {
    "n": lambda src, c, v, m, w, f: Numeric(src, Code(c), v, Stamp(m, w), _read_flags(f)),
    "p": lambda src, sy, di, me, m, w, f: NibpReading(src, sy, di, me, Stamp(m, w),
                                                      _read_flags(f)),
    "w": lambda src, c, m, w, fs, x, f: WaveformBlock(src, Code(c), Stamp(m, w), fs, _samples(x),
                                                      _read_flags(f)),
    "v": lambda src, k, v, u, m, w, f, t: DeviceValue(src, k, v, u, Stamp(m, w), _read_flags(f),
                                                      t),
    "d": lambda src, st, m, w, d: DeviceEvent(src, ConnectionState(st), Stamp(m, w), d),
    "e": lambda src, k, m, w, t, a: SessionEvent(src, SessionEventKind(k), Stamp(m, w), t, a),
}  # fmt: skip


def _alarm(a: LogEntry) -> list:
    return [a.stamp.mono, a.stamp.wall, a.event.value, a.condition,
            int(a.priority) if a.priority else None, a.kind.value if a.kind else None, a.source,
            a.code, a.value, a.limit, a.operator, a.text]  # fmt: skip


def _read_alarm(m, w, event, condition, priority, kind, source, code, value, limit, operator,
                text) -> LogEntry:  # fmt: skip
    return LogEntry(Stamp(m, w), LogEvent(event), condition,
                    Priority(priority) if priority is not None else None,
                    AlarmKind(kind) if kind is not None else None, source, code, value, limit,
                    operator, text)  # fmt: skip
