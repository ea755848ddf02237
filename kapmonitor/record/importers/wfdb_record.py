"""WFDB (PhysioNet) records as a :class:`Recording` (see :mod:`kapmonitor.record.importers`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kapmonitor.core.errors import UserError
from kapmonitor.core.model import DeviceValue, Item, NibpReading, Stamp
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

#: A WFDB record sampled at this rate or slower holds numerics, one value per sample.
NUMERICS_MAX_FS = 1.0
#: MIMIC-II numerics where 0 means "not measured" (it is not a value a live patient shows).
ZERO_IS_MISSING = frozenset(
    {"HR", "PULSE", "SPO2", "RESP", "NBPSYS", "NBPDIAS", "NBPMEAN", "ABPSYS", "ABPDIAS",
     "ABPMEAN"}
)  # fmt: skip


def read_wfdb(header: Path, name: str) -> Recording:
    wfdb = require("wfdb", "WFDB records")
    _check_sampling_rate(header, name)
    try:
        with quiet():
            rec = wfdb.rdrecord(str(header.with_suffix("")))
    except Exception as exc:  # the reader raises anything from ValueError to IndexError
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise UserError(f"'{name}' cannot be read as a WFDB record: {reason}") from None
    fs = float(rec.fs or 0)
    if not fs > 0 or rec.p_signal is None or not rec.sig_len:
        raise UserError(f"'{name}' is a WFDB record with no samples")
    if rec.base_date is not None:
        base = rec.base_datetime if rec.base_time is not None else None
        if base is None:
            base = datetime.combine(rec.base_date, datetime.min.time())
        t0 = base.replace(tzinfo=UTC).timestamp()
    else:
        t0 = time.time()
    source = rec.record_name
    signals = np.asarray(rec.p_signal, dtype=np.float64)
    names = [normalise(n) for n in rec.sig_name]
    if fs <= NUMERICS_MAX_FS:
        items = _wfdb_numerics(source, rec, names, signals, fs, t0)
        what = "vital-sign numerics"
    else:
        items = []
        if pleth := [k for k, n in enumerate(names) if n in PLETH_NAMES]:
            items = list(blocks(source, t0, t0, fs, signals[:, pleth[0]]))
        what = "a PLETH signal"
    if not items:
        raise UserError(f"'{name}' is a WFDB record without {what}")
    items.sort(key=lambda i: i.stamp.wall)
    flagged = count_out_of_range(items)
    return Recording(name, "wfdb", t0, t0 + rec.sig_len / fs, items, out_of_range=flagged)


def _check_sampling_rate(header: Path, name: str) -> None:
    """Refuse a header whose sampling rate is not a positive number.

    The reader misreads a negative one ("rec 2 -1 120" takes 120 as the rate): read the record
    line's third field ourselves (``fs[/counter freq[(base counter)]]``).
    """
    try:
        lines = header.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read '{header}': {exc.strerror}") from None
    record_line = next((ln.split() for ln in lines if ln.strip() and ln[0] != "#"), [])
    if len(record_line) < 3:
        return  # no rate given: the WFDB default (250 Hz)
    text = record_line[2].split("/")[0]
    try:
        fs = float(text)
    except ValueError:
        return  # not a number: not a header the reader takes either, and it says why
    if not 0 < fs < math.inf:
        raise UserError(
            f"'{name}' has the sampling rate '{text}' in its header: it must be a positive number"
        )


def _wfdb_numerics(
    source: str, rec: Any, names: Sequence[str], signals: np.ndarray, fs: float, t0: float
) -> list[Item]:
    columns: dict[str, np.ndarray] = {}
    for k, key in enumerate(names):
        column = signals[:, k].copy()
        if key in ZERO_IS_MISSING:
            column[column == 0] = np.nan
        columns[key] = column
    offsets = np.arange(rec.sig_len) / fs
    stamps = [Stamp(float(t), t0 + float(t)) for t in offsets]
    items: list[Item] = []
    nibp: dict[str, np.ndarray] = {}
    for k, key in enumerate(names):
        column = columns[key]
        if np.isnan(column).all():
            continue  # never measured in this record
        if key in NIBP_PARTS:
            nibp[NIBP_PARTS[key]] = column
            continue
        code = NUMERIC_CODES.get(key)
        if code is not None:
            low, high = code.physical_range
            valid = column[~np.isnan(column)]
            if not ((valid >= low) & (valid <= high)).any():
                raise UserError(
                    f"'{rec.record_name}' is refused: no value of its signal {rec.sig_name[k]} "
                    f"is a possible {code.info.label} (e.g. {valid[0]:g}, outside "
                    f"{low:g}–{high:g} {code.unit}): check its gain and units"
                )
            items.extend(
                numeric(source, code, finite(v), s) for v, s in zip(column, stamps, strict=True)
            )
        else:
            unit = ucum(rec.units[k] if rec.units else "")
            items.extend(
                DeviceValue(source, rec.sig_name[k], finite(v), unit, s)
                for v, s in zip(column, stamps, strict=True)
            )
    if nibp:
        items.extend(_wfdb_readings(source, nibp, stamps))
    return items


def _wfdb_readings(
    source: str, parts: dict[str, np.ndarray], stamps: Sequence[Stamp]
) -> Iterator[NibpReading]:
    """Cuff readings out of per-sample NBP columns.

    A NIBP value is a cuff measurement, not a continuous line: MIMIC-II numerics records either
    carry it in the one minute it was measured (NaN in between, as in the PhysioNet samples) or
    repeat the last reading every minute until the next. A reading is emitted only where the
    three values are new (after a minute without any) or change, so a repeated reading is one
    reading. Two real readings with identical values in consecutive minutes cannot be told apart
    from one repeated, and count as one.
    """
    nan = np.full(len(stamps), np.nan)
    sys_, dia, mean = (parts.get(p, nan) for p in (SYS, DIA, MEAN))
    previous: tuple[float | None, ...] | None = None
    for i, stamp in enumerate(stamps):
        values = (finite(sys_[i]), finite(dia[i]), finite(mean[i]))
        if all(v is None for v in values):
            previous = None
            continue
        if values != previous:
            yield nibp_reading(source, values, stamp)
        previous = values
