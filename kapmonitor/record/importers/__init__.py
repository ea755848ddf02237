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

import zlib
from pathlib import Path

from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Stamp
from kapmonitor.record.importers.recording import Recording
from kapmonitor.record.importers.vital_file import read_vital
from kapmonitor.record.importers.wfdb_record import read_wfdb
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store

#: Items per Store.write transaction.
BATCH = 2000

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
