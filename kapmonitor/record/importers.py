"""Recordings made elsewhere, brought in as sessions: VitalDB ``.vital`` files and WFDB records.

``kapmonitor import FILE`` reads the whole file first (:func:`read_recording`), so a file that
cannot be read leaves nothing in the database; then :func:`store_recording` writes it as a new,
completed session through :meth:`Store.write`, in batches, with a "note" event saying where it
came from. The readers are the ``vitaldb`` and ``wfdb`` packages, optional at runtime
(``pip install 'kapmonitor[import]'``) and imported only when a file needs them.

What becomes what:

- Track and signal names are matched case-insensitively with anything but letters and digits
  dropped (``PLETH_SPO2`` = ``Pleth SpO2``): SPO2, PLETH_SPO2, PLETH_SAT_O2 → SpO2; HR → heart
  rate (ECG); PLETH_HR, PULSE, PR → pulse rate; NIBP_SBP/DBP/MBP (VitalDB), NBPSys/NBPDias/
  NBPMean (MIMIC), NIBP_SYS/DIA/MEAN → one :class:`NibpReading`; PI → perfusion index; the
  PLETH wave → :class:`WaveformBlock` of at most 1 s. kapmonitor's own ``.vital`` export names
  tracks by code label (SpO2, PR, HR, NIBP sys, Pleth, PI), which the same table reads back.
- Other numeric tracks are kept as :class:`DeviceValue` under their track name (nothing a
  clinician may want is dropped); other waves are left out (kapmonitor has no code for them).
- ``.vital``: the source of an item is the VitalDB device name (the part of ``device/track``
  before the slash), or the file's name for tracks with no device. The EVENT track becomes
  "marker" events, except texts starting ``dose`` (as kapmonitor's export writes the dose),
  which become the dose. NUM tracks stored as float32 are read back at float32 precision
  (``97.3``, not ``97.30000305``).
- WFDB: the source is the record name. A record sampled at 1 Hz or slower is a numerics record
  (each sample a value); a faster one is a waveform record, of which only a PLETH signal is
  kept. Time 0 is the header's base date and time, taken as UTC (headers carry no time zone),
  or now when the header has no date.

A missing or invalid value is None, never 0: NaN, and WFDB's invalid-sample code, read as NaN.
A value outside its code's physical range (SpO2 above 100 %, a pulse of 400) is kept as the file
has it, flagged ``out-of-range`` (which alarms and discharge checks never judge), and the import
says how many; a WFDB signal with no value inside the range
(wrong gain or units: SpO2 970) refuses the record. A WFDB header whose sampling rate is not a
positive number is refused. A ``.vital`` file cut short (its gzip stream ends before its end:
a copy interrupted, a full disk) is imported up to the cut, and the session is marked
``interrupted`` with a note saying the file was truncated.
MIMIC-II numerics also write 0 for a parameter that is not being measured (HR 0 with the ECG off,
SpO2 0 with no probe): for the vital signs in :data:`ZERO_IS_MISSING` a 0 is None too. A signal
with no valid sample at all is left out. Items carry ``Stamp(mono=seconds from the recording's
start, wall=the time)``; there was no monotonic clock to keep.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    NO_FLAGS,
    DeviceValue,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store

INSTALL_HINT = "install it with: pip install 'kapmonitor[import]'"

#: Items per Store.write transaction.
BATCH = 2000
#: Longest waveform block, seconds.
BLOCK_S = 1.0
#: A WFDB record sampled at this rate or slower holds numerics, one value per sample.
NUMERICS_MAX_FS = 1.0
#: NIBP parts in a .vital file belong to one reading when recorded within this many seconds.
NIBP_GROUP_S = 2.0

SYS, DIA, MEAN = "sys", "dia", "mean"

#: Normalised track/signal name -> kapmonitor code (numerics).
NUMERIC_CODES: dict[str, Code] = {
    "SPO2": Code.SPO2,
    "PLETHSPO2": Code.SPO2,
    "PLETHSATO2": Code.SPO2,
    "HR": Code.HEART_RATE,
    "PLETHHR": Code.PULSE_RATE,
    "PULSE": Code.PULSE_RATE,
    "PR": Code.PULSE_RATE,
    "PI": Code.PERFUSION,
}
#: Normalised name -> the part of a NIBP reading it carries.
NIBP_PARTS: dict[str, str] = {
    "NIBPSBP": SYS,
    "NIBPSYS": SYS,
    "NBPSYS": SYS,
    "NIBPDBP": DIA,
    "NIBPDIA": DIA,
    "NBPDIAS": DIA,
    "NBPDIA": DIA,
    "NIBPMBP": MEAN,
    "NIBPMEAN": MEAN,
    "NBPMEAN": MEAN,
}
PLETH_NAMES = frozenset({"PLETH"})
#: MIMIC-II numerics where 0 means "not measured" (it is not a value a live patient shows).
ZERO_IS_MISSING = frozenset(
    {"HR", "PULSE", "SPO2", "RESP", "NBPSYS", "NBPDIAS", "NBPMEAN", "ABPSYS", "ABPDIAS",
     "ABPMEAN"}
)  # fmt: skip
#: Units as files write them -> UCUM.
UCUM = {"mmhg": "mm[Hg]", "bpm": "/min", "pm": "/min", "/min": "/min", "%": "%"}


def normalise(name: str) -> str:
    return "".join(c for c in name.upper() if c.isalnum())


def ucum(unit: str) -> str:
    return UCUM.get(unit.strip().lower(), unit.strip())


@dataclass
class Recording:
    """A file's contents as kapmonitor items, in time order."""

    name: str  #: the file, as the user named it
    fmt: str  #: "vital" or "wfdb"
    started: float  #: wall clock of time 0
    ended: float
    items: list[Item] = field(default_factory=list)
    truncated: bool = False  #: the file ends early: this is what it held up to the cut
    out_of_range: int = 0  #: values outside their physical range, stored None and flagged

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(i.source for i in self.items))


# --- finding out what a file is ---------------------------------------------------------------


def read_recording(path: Path | str) -> Recording:
    """Read a ``.vital`` file or a WFDB record (``.hea``, or the record path without extension)."""
    path = Path(path)
    name = str(path)
    header = _wfdb_header(path)
    if header is not None:
        return read_wfdb(header, name)
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None
    if _is_vital(head) or path.suffix.lower() == ".vital":
        return read_vital(path, name)
    raise UserError(f"'{name}' is neither a .vital file nor a WFDB record")


def _wfdb_header(path: Path) -> Path | None:
    """The record's header file when ``path`` names a WFDB record."""
    if path.suffix.lower() == ".hea":
        return path if path.is_file() else None
    candidates = [Path(f"{path}.hea")]
    if path.suffix.lower() in (".dat", ".mat"):
        candidates.append(path.with_suffix(".hea"))
    return next((c for c in candidates if c.is_file()), None)


def _is_vital(head: bytes) -> bool:
    """A gzip stream whose first bytes are the VitalDB signature ``VITA``."""
    if not head.startswith(b"\x1f\x8b"):
        return False
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4) == b"VITA"
    except zlib.error:
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # vitaldb imports wfdb, which warns about pandas deprecations on import; vitaldb leaves its
    # file for the collector to close. Neither is ours to report.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _require(module: str, what: str) -> Any:
    with _quiet():
        try:
            return __import__(module)
        except ImportError:
            raise UserError(
                f"reading {what} needs the '{module}' package, which is not installed: "
                f"{INSTALL_HINT} (or pip install {module})"
            ) from None


def _value(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


OUT_OF_RANGE = frozenset({Flag.OUT_OF_RANGE})


def _in_range(code: Code, value: float | None) -> bool:
    low, high = code.physical_range
    return value is None or low <= value <= high


def _numeric(source: str, code: Code, value: float | None, stamp: Stamp) -> Numeric:
    """A value outside the physical range is kept, flagged: stored, never alarmed on."""
    flags = NO_FLAGS if _in_range(code, value) else OUT_OF_RANGE
    return Numeric(source, code, value, stamp, flags)


def _nibp(
    source: str, values: tuple[float | None, float | None, float | None], stamp: Stamp
) -> NibpReading:
    codes = (Code.NIBP_SYS, Code.NIBP_DIA, Code.NIBP_MEAN)
    sane = all(_in_range(c, v) for c, v in zip(codes, values, strict=True))
    return NibpReading(source, *values, stamp, NO_FLAGS if sane else OUT_OF_RANGE)


def _count_out_of_range(items: list[Item]) -> int:
    return sum(Flag.OUT_OF_RANGE in i.flags for i in items if isinstance(i, Numeric | NibpReading))


def _blocks(
    source: str, start: float, t0: float, fs: float, samples: np.ndarray
) -> Iterator[WaveformBlock]:
    """A run of samples starting at ``start`` (wall) as blocks of at most 1 s."""
    step = max(1, round(fs * BLOCK_S))
    for i in range(0, len(samples), step):
        offset = start - t0 + i / fs
        yield WaveformBlock(
            source, Code.PLETH, Stamp(offset, t0 + offset), fs, samples[i : i + step]
        )


# --- VitalDB ----------------------------------------------------------------------------------


def read_vital(path: Path, name: str) -> Recording:
    vitaldb = _require("vitaldb", ".vital files")
    out = io.StringIO()
    try:
        # vitaldb prints its read errors on stdout (and returns an empty file): catch them.
        with _quiet(), contextlib.redirect_stdout(out):
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
                    items.append(_numeric(source, code, value, stamp))
                else:
                    items.append(DeviceValue(source, trk.name, value, ucum(trk.unit), stamp))
        elif trk.type == 1 and key in PLETH_NAMES and trk.srate > 0:  # WAV
            fs = float(trk.srate)
            for r in trk.recs:
                samples = np.asarray(r["val"], dtype=np.float64)
                items.extend(_blocks(source, r["dt"], t0, fs, samples))
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
        name, "vital", t0, ended, items, _gzip_truncated(path), _count_out_of_range(items)
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
    value = _value(val)
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
    return _nibp(source, (parts.get(SYS), parts.get(DIA), parts.get(MEAN)), Stamp(wall - t0, wall))


def _end(item: Item) -> float:
    return item.stamp.wall + (item.duration if isinstance(item, WaveformBlock) else 0.0)


# --- WFDB (PhysioNet) -------------------------------------------------------------------------


def read_wfdb(header: Path, name: str) -> Recording:
    wfdb = _require("wfdb", "WFDB records")
    _check_sampling_rate(header, name)
    try:
        with _quiet():
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
            items = list(_blocks(source, t0, t0, fs, signals[:, pleth[0]]))
        what = "a PLETH signal"
    if not items:
        raise UserError(f"'{name}' is a WFDB record without {what}")
    items.sort(key=lambda i: i.stamp.wall)
    flagged = _count_out_of_range(items)
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
                _numeric(source, code, _value(v), s) for v, s in zip(column, stamps, strict=True)
            )
        else:
            unit = ucum(rec.units[k] if rec.units else "")
            items.extend(
                DeviceValue(source, rec.sig_name[k], _value(v), unit, s)
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
        values = (_value(sys_[i]), _value(dia[i]), _value(mean[i]))
        if all(v is None for v in values):
            previous = None
            continue
        if values != previous:
            yield _nibp(source, values, stamp)
        previous = values


# --- into the database ------------------------------------------------------------------------


def store_recording(
    store: Store, recording: Recording, *, patient: str = "unspecified", operator: str = ""
) -> int:
    """Write ``recording`` as a new completed session; return its id."""
    session_id = store.create_session(
        SessionSetup(patient=patient, operator=operator), started=recording.started
    )
    note = f"imported from {Path(recording.name).name} ({recording.fmt})"
    if recording.truncated:
        note += ": the file is truncated; this is what it held up to the cut"
    try:
        for i in range(0, len(recording.items), BATCH):
            store.write(session_id, recording.items[i : i + BATCH])
        store.add_event(
            session_id,
            "note",
            note,
            author=operator or "kapmonitor import",
            stamp=Stamp(0.0, recording.started),
        )
    except BaseException:
        store.end_session(session_id, SessionStatus.INTERRUPTED, recording.started, who=operator)
        raise
    # A truncated file is an incomplete session: interrupted, as review shows it.
    status = SessionStatus.INTERRUPTED if recording.truncated else SessionStatus.COMPLETED
    store.end_session(session_id, status, recording.ended, who=operator)
    return session_id


def import_file(
    path: Path | str, store: Store, *, patient: str = "unspecified", operator: str = ""
) -> int:
    """Read a ``.vital`` file or WFDB record and store it as a new session; return its id."""
    return store_recording(store, read_recording(path), patient=patient, operator=operator)


__all__ = [
    "Recording",
    "import_file",
    "read_recording",
    "read_vital",
    "read_wfdb",
    "store_recording",
]
