"""Exports of a recorded session: CSV, FHIR R4, HL7 v2.6, VitalDB ``.vital`` and a PDF report.

Each format is written by its own module from the plain-data :class:`SessionRecord`; the formats
are listed once, in :data:`~kapmonitor.export.formats.FORMATS`, which the command line and the
review window both read. The data formats use no library beyond numpy; the PDF report draws
with reportlab (a dependency of the package, imported only when a PDF is written), so an export
never depends on a package the monitor does not ship. The file appears whole or not at all: it
is written next to its destination and renamed over it, so a full disk or a crash never leaves a
half-written export looking like a good one.

``deidentify`` passes the session through :func:`~kapmonitor.export.deidentify.deidentified`
first, the one de-identification step of every format: a random pseudonym and session UID, no
names or serial numbers, dates shifted by a random per-export offset (times relative to the dose
kept exact), and no free text unless ``keep_notes``. The writers' own ``deidentify`` flag only
labels the output as de-identified.

An export of identified data is created readable by its owner only (0600), like the database;
a de-identified one gets the user's usual permissions (umask).

Sedation and dissociation scores (:mod:`kapmonitor.core.assessment`) are measurements like any
other in every format, with their private IEEE 11073 code and the unit ``{score}``; they carry
their scorer (:attr:`Row.author`, None once de-identified) and are not a device: no format
describes their source as one (:func:`devices`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from kapmonitor.core.assessment import SCORE_CODES
from kapmonitor.core.assessment import SOURCE as SCORE_SOURCE
from kapmonitor.core.codes import CodeInfo
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Flags, Stamp
from kapmonitor.export.deidentify import deidentified, pseudonym
from kapmonitor.export.formats import FORMATS, ExportFormat, export_format
from kapmonitor.record.session import SessionInfo, SessionRecord
from kapmonitor.review.scores import session_scores


def export_session(
    record: SessionRecord,
    fmt: str,
    path: Path,
    *,
    deidentify: bool = False,
    keep_notes: bool = False,
) -> None:
    """Write ``record`` to ``path`` as ``fmt`` (a name in :data:`FORMATS`); de-identified
    (with notes only if ``keep_notes``) when ``deidentify``.

    Raises UserError for an unknown format or a path that cannot be written.
    """
    write = export_format(fmt).writer()
    path = Path(path)
    if deidentify:
        record = deidentified(record, keep_notes=keep_notes)
    try:
        with _atomic(path, private=not deidentify) as out:
            write(record, out, deidentify=deidentify)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"the export cannot be written to '{path}': {reason}") from None


@contextlib.contextmanager
def _atomic(path: Path, *, private: bool) -> Iterator[BinaryIO]:
    """A file that becomes ``path`` only once it is complete; owner-only when ``private``."""
    if path.is_dir():
        raise IsADirectoryError(21, "it is a folder", str(path))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o600 if private else 0o666)
    out = os.fdopen(fd, "wb")
    try:
        with out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- what every format needs ------------------------------------------------------------------


def patient_id(info: SessionInfo, deidentify: bool) -> str:
    return pseudonym(info.uid) if deidentify else info.patient


def person(name: str | None, deidentify: bool) -> str:
    """A clinician's or operator's name, or "" when the export leaves names out."""
    return "" if deidentify or not name else name


def iso_utc(wall: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-01-01T10:00:00.000Z."""
    ms = round(wall * 1000)
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def flag_text(flags: Flags) -> str:
    """Flags in a stable order, ";"-joined (empty when none)."""
    return ";".join(sorted(f.value for f in flags))


def number_text(value: float | None) -> str:
    """A value as text that reads back to the same float; "" when missing (never 0)."""
    if value is None:
        return ""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True, slots=True)
class Row:
    """One measured value: a numeric, one part of a NIBP reading, or a vendor value."""

    stamp: Stamp
    source: str
    code: str  #: the IEEE 11073 RefId, or the vendor key of a DeviceValue
    info: CodeInfo | None  #: None for vendor values
    value: float | None
    unit: str
    flags: Flags
    author: str | None = None  #: who scored it, for a score; None for what a device measured

    @property
    def score(self) -> bool:
        """A sedation or dissociation score, taken by a nurse rather than measured."""
        return self.source == SCORE_SOURCE and self.info is not None and self.code in _SCORE_IDS


_SCORE_IDS = frozenset(c.value for c in SCORE_CODES)


def measurement_rows(record: SessionRecord) -> list[Row]:
    """Every stored value in time order (NIBP as its three parts), waveforms excluded."""
    scorer = {(s.wall, s.scale.code): s.author for s in session_scores(record)}
    rows: list[Row] = [
        Row(
            n.stamp,
            n.source,
            n.code.value,
            n.code.info,
            n.value,
            n.code.unit,
            n.flags,
            scorer.get((n.stamp.wall, n.code)) if n.source == SCORE_SOURCE else None,
        )
        for n in record.numerics
    ]
    for r in record.nibp:
        rows.extend(
            Row(r.stamp, r.source, code.value, code.info, value, code.unit, r.flags)
            for code, value in r.parts()
        )
    rows.extend(
        Row(v.stamp, v.source, v.key, None, v.value, v.unit, v.flags) for v in record.values
    )
    rows.sort(key=lambda r: r.stamp.wall)  # stable: the order within one time is kept
    return rows


def sources(record: SessionRecord) -> list[str]:
    """Every device of the session: the registered ones first, then any only the data names."""
    names = [d.source for d in record.devices]
    for items in (record.numerics, record.nibp, record.values, record.waves):
        for item in items:
            if item.source not in names:
                names.append(item.source)
    return names


def devices(record: SessionRecord) -> list[str]:
    """The sources that are devices: every source but the scores'."""
    return [s for s in sources(record) if s != SCORE_SOURCE]


__all__ = [
    "FORMATS",
    "ExportFormat",
    "Row",
    "deidentified",
    "devices",
    "export_format",
    "export_session",
    "flag_text",
    "iso_utc",
    "measurement_rows",
    "number_text",
    "patient_id",
    "person",
    "pseudonym",
    "sources",
]
