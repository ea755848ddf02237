"""CSV export: the whole session as one table a spreadsheet opens directly.

One file rather than a zip of three: a clinic opens it with a double-click, and a ``kind``
column (``session``, ``device``, ``measurement``, ``event``, ``alarm``) lets anyone filter it to
one table. Rows are in time order after the session and device rows, so read top to bottom the
file is the session's timeline. Columns:

- ``kind``, ``id`` (events only: the record's event id, which an amendment refers to);
- ``wall_time``: ISO 8601 UTC with milliseconds;
- ``minutes_from_dose``: negative before the dose, blank when the session has no dose;
- ``device``, ``code`` (the IEEE 11073 RefId, or a vendor key), ``value`` (blank when missing,
  never 0), ``unit`` (UCUM), ``flags`` (";"-joined);
- ``event`` (the event kind, or the alarm log event), ``priority``, ``condition``, ``limit``
  (alarms), ``person`` (event author or alarm operator), ``text``.

A NIBP reading is three measurement rows (systolic, diastolic, mean) with the same time.
Session and device rows are key/value pairs: the key in ``code``, the value in ``text``.
Waveforms (pleth) are not in the CSV: use the vital export for them.

The file is UTF-8 with a byte-order mark, which spreadsheet programs need to show names with
accents correctly; Python reads it with ``encoding="utf-8-sig"``.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from kapmonitor.core.model import Stamp
from kapmonitor.export import (
    devices,
    flag_text,
    iso_utc,
    measurement_rows,
    number_text,
    patient_id,
    person,
)
from kapmonitor.record.session import SessionRecord

COLUMNS = (
    "kind",
    "id",
    "wall_time",
    "minutes_from_dose",
    "device",
    "code",
    "value",
    "unit",
    "flags",
    "event",
    "priority",
    "condition",
    "limit",
    "person",
    "text",
)


def write(record: SessionRecord, out: BinaryIO, *, deidentify: bool = False) -> None:
    """Write the session as CSV to the binary stream ``out``."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.DictWriter(text, COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(_header_rows(record, deidentify))
    dose = record.dose_stamp

    def when(stamp: Stamp) -> dict[str, str]:
        minutes = "" if dose is None else f"{(stamp.wall - dose.wall) / 60.0:.4f}"
        return {
            "wall_time": iso_utc(stamp.wall),
            "minutes_from_dose": "0.0000" if minutes == "-0.0000" else minutes,
        }

    # (time, order within one time, row): measurements, then events, then alarms.
    timeline: list[tuple[float, int, dict[str, str]]] = []
    for r in measurement_rows(record):
        row = {
            "kind": "measurement",
            "device": r.source,
            "code": r.code,
            "value": number_text(r.value),
            "unit": r.unit,
            "flags": flag_text(r.flags),
            "person": person(r.author, deidentify),
        }
        timeline.append((r.stamp.wall, 0, when(r.stamp) | row))
    for e in record.events:
        note = f" (corrects event {e.amends})" if e.amends is not None else ""
        row = {
            "kind": "event",
            "id": str(e.id),
            "device": e.source or "",
            "event": e.kind,
            "person": person(e.author, deidentify),
            "text": e.text + note,
        }
        timeline.append((e.stamp.wall, 1, when(e.stamp) | row))
    for a in record.alarms:
        row = {
            "kind": "alarm",
            "device": a.source or "",
            "code": a.code or "",
            "value": number_text(a.value),
            "event": a.event.value,
            "priority": a.priority.label if a.priority is not None else "",
            "condition": a.condition or "",
            "limit": number_text(a.limit),
            "person": person(a.operator, deidentify),
            "text": a.text,
        }
        timeline.append((a.stamp.wall, 2, when(a.stamp) | row))
    timeline.sort(key=lambda t: (t[0], t[1]))
    writer.writerows(row for _, _, row in timeline)
    text.flush()
    text.detach()


def _header_rows(record: SessionRecord, deidentify: bool) -> list[dict[str, str]]:
    """The session's header and its devices, as key/value rows."""
    info = record.info
    fields = {
        "uid": info.uid,
        "patient": patient_id(info, deidentify),
        "clinician": person(info.clinician, deidentify),
        "operator": person(info.operator, deidentify),
        "drug": info.drug.value if info.drug else "",
        "route": info.route.value if info.route else "",
        "dose": number_text(info.dose),
        "dose_unit": info.dose_unit,
        "started": iso_utc(info.started),
        "ended": iso_utc(info.ended) if info.ended is not None else "",
        "status": info.status.value,
        "alarm_profile": info.alarm_profile,
    }
    rows = [
        {"kind": "session", "code": key, "text": value}
        for key, value in fields.items()
        if value or key not in ("clinician", "operator")
    ]
    known = {d.source: d for d in record.devices}
    for source in devices(record):
        d = known.get(source)
        pairs = {"protocol": "", "port": "", "serial_number": ""}
        if d is not None:
            serial = "" if deidentify else (d.serial_number or "")
            pairs = {"protocol": d.protocol, "port": d.port, "serial_number": serial}
        rows.extend(
            {"kind": "device", "device": source, "code": key, "text": value}
            for key, value in pairs.items()
        )
    return rows
