"""VitalDB ``.vital`` files as a :class:`Recording` (see :mod:`kapmonitor.record.importers`)."""

from __future__ import annotations

import contextlib
import gzip
import io
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    DeviceValue,
    Item,
    NibpReading,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.record.importers.recording import (
    DIA,
    MEAN,
    NIBP_PARTS,
    NUMERIC_CODES,
    PLETH_NAMES,
    SYS,
    Recording,
    blocks,
    count_out_of_range,
    finite,
    nibp_reading,
    normalise,
    numeric,
    quiet,
    require,
    ucum,
)

#: NIBP parts in a .vital file belong to one reading when recorded within this many seconds.
NIBP_GROUP_S = 2.0


def read_vital(path: Path, name: str) -> Recording:
    vitaldb = require("vitaldb", ".vital files")
    out = io.StringIO()
    try:
        # vitaldb prints its read errors on stdout (and returns an empty file): catch them.
        with quiet(), contextlib.redirect_stdout(out):
            vf = vitaldb.VitalFile(str(path))
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"'{name}' cannot be read as a .vital file: {exc}") from None
    problem = out.getvalue().strip()
    if problem:
        raise UserError(f"'{name}' cannot be read as a .vital file: {problem.splitlines()[0]}")
    if not vf.trks:
        raise UserError(f"'{name}' is neither a .vital file nor a WFDB record")

    recs = [r for trk in vf.trks.values() for r in trk.recs]
    t0 = min([r["dt"] for r in recs] + ([vf.dtstart] if vf.dtstart else []), default=time.time())
    fallback = path.stem
    items: list[Item] = []
    nibp: dict[str, list[tuple[float, str, float | None]]] = {}
    for trk in vf.trks.values():
        source = trk.dname or fallback
        key = normalise(trk.name)
        if trk.type == 2:  # NUM
            code, part = NUMERIC_CODES.get(key), NIBP_PARTS.get(key)
            for r in trk.recs:
                value = _vital_number(r["val"], trk.fmt)
                stamp = Stamp(r["dt"] - t0, r["dt"])
                if part is not None:
                    nibp.setdefault(source, []).append((r["dt"], part, value))
                elif code is not None:
                    items.append(numeric(source, code, value, stamp))
                else:
                    items.append(DeviceValue(source, trk.name, value, ucum(trk.unit), stamp))
        elif trk.type == 1 and key in PLETH_NAMES and trk.srate > 0:  # WAV
            fs = float(trk.srate)
            for r in trk.recs:
                samples = np.asarray(r["val"], dtype=np.float64)
                items.extend(blocks(source, r["dt"], t0, fs, samples))
        elif trk.type == 5 and trk.name.upper() == "EVENT":  # STR
            for r in trk.recs:
                text = str(r["val"])
                is_dose = normalise(text.split(":", 1)[0].split(" ", 1)[0]) == "DOSE"
                kind = SessionEventKind.DOSE if is_dose else SessionEventKind.MARKER
                items.append(SessionEvent(source, kind, Stamp(r["dt"] - t0, r["dt"]), text))
    for source, parts in nibp.items():
        items.extend(_vital_readings(source, parts, t0))
    if not any(not isinstance(i, SessionEvent) for i in items):
        raise UserError(f"'{name}' holds no measurement kapmonitor can import")
    items.sort(key=lambda i: i.stamp.wall)
    ended = max([vf.dtend or t0] + [_end(i) for i in items])
    return Recording(
        name, "vital", t0, ended, items, _gzip_truncated(path), count_out_of_range(items)
    )


def _gzip_truncated(path: Path) -> bool:
    """Whether the file's gzip stream stops before its end (the reader keeps quiet about it)."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            while chunk and not stream.eof:
                stream.decompress(chunk, 1 << 20)  # bounded: the output is not kept
                chunk = stream.unconsumed_tail
    return not stream.eof


def _vital_number(val: Any, fmt: int) -> float | None:
    value = finite(val)
    if value is not None and fmt == 1:
        # A float32 track: read back the number that was written (97.3, not 97.30000305).
        value = float(str(np.float32(value)))
    return value


def _vital_readings(
    source: str, parts: list[tuple[float, str, float | None]], t0: float
) -> Iterator[NibpReading]:
    """Systolic, diastolic and mean tracks joined into cuff readings.

    A .vital file records each part as the monitor reports a measurement; parts within
    :data:`NIBP_GROUP_S` of a reading's first part belong to it, unless that part is already in it.
    """
    group: dict[str, float | None] = {}
    start = 0.0
    for dt, part, value in sorted(parts, key=lambda p: p[0]):
        if group and (dt - start > NIBP_GROUP_S or part in group):
            yield _reading(source, group, start, t0)
            group = {}
        if not group:
            start = dt
        group[part] = value
    if group:
        yield _reading(source, group, start, t0)


def _reading(source: str, parts: dict[str, float | None], wall: float, t0: float) -> NibpReading:
    return nibp_reading(
        source, (parts.get(SYS), parts.get(DIA), parts.get(MEAN)), Stamp(wall - t0, wall)
    )


def _end(item: Item) -> float:
    return item.stamp.wall + (item.duration if isinstance(item, WaveformBlock) else 0.0)
