"""HL7 v2.6 export: the session as ORU^R01 messages, the feed VitalServer and OpenICE send.

One message per device and observation time, as a live ORU feed sends them: each second's
numerics from a device (SpO2, pulse rate, PI) are one message, each NIBP reading is one message
of three OBX, each vendor value and each session event is one message. A receiver that imports
a live feed can import the file unchanged.

Each message is ``MSH PID PV1 OBR OBX…``:

- PID-3 is the patient id (``^^^^PI``), or the pseudonym (``^^^^ANON``) when de-identified;
  PV1-7 the clinician (left out when de-identified); PV1-19 the session uid.
- OBX-2 ``NM`` with the value in OBX-5; a missing value is ``NA`` with OBX-5 empty and result
  status (OBX-11) ``X`` ("results cannot be obtained"), never 0; other results are ``F``.
- OBX-3 ``<MDC code>^<MDC RefId>^MDC`` with the LOINC code as the alternate identifier
  (``^<LOINC>^<name>^LN``); vendor values are ``<key>^<key>^L``.
- OBX-6 ``<UCUM>^<UCUM>^UCUM``; OBX-14 the device's time; OBX-18 the device as the user named it.
  A sedation or dissociation score has its private MDC code and no LOINC, ``{score}`` as its
  unit, its scorer in OBX-16 and no device in OBX-18.
- Flags follow their OBX as ``NTE|1|L|flags: …``.
- Session events are ``OBX|n|ST|EVENT^Session event^L||<kind>: <text>``, their author in OBX-16.

Segments end with ``\\r``; messages are separated by ``\\n`` (or MLLP-framed with ``mllp=True``:
``\\x0b`` before, ``\\x1c\\r`` after). Waveforms and the alarm log are not exported (CSV has
the alarm log; vital has the pleth).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import groupby
from typing import BinaryIO

from kapmonitor.export import (
    Row,
    flag_text,
    measurement_rows,
    number_text,
    patient_id,
    person,
)
from kapmonitor.record.session import EventRecord, SessionRecord

VERSION = "2.6"
SERVICE = "182777000^monitoring of patient^SCT"
MLLP_START, MLLP_END = b"\x0b", b"\x1c\r"


def write(
    record: SessionRecord, out: BinaryIO, *, deidentify: bool = False, mllp: bool = False
) -> None:
    """Write the session's ORU^R01 messages to ``out``."""
    for n, message in enumerate(messages(record, deidentify=deidentify)):
        data = message.encode("utf-8")
        if mllp:
            out.write(MLLP_START + data + MLLP_END)
        else:
            out.write((b"\n" if n else b"") + data)
    if not mllp:
        out.write(b"\n")


def messages(record: SessionRecord, *, deidentify: bool = False) -> Iterator[str]:
    """Every message in time order, each a string of ``\\r``-terminated segments."""
    info = record.info
    control = "".join(c for c in info.uid if c.isalnum())[:12] or "KAP"
    pid = patient_id(info, deidentify)
    pid_type = "ANON" if deidentify else "PI"
    clinician = person(info.clinician, deidentify)
    pv1 = ["PV1", "1", "O", *[""] * 17]
    pv1[7] = f"^{esc(clinician)}" if clinician else ""
    pv1[19] = f"{esc(info.uid)}^^^^VN"
    head = [f"PID|1||{esc(pid)}^^^^{pid_type}", "|".join(pv1)]
    # (time, order within one time, OBX segments)
    bodies: list[tuple[float, int, list[str]]] = []
    rows = sorted(measurement_rows(record), key=lambda r: (r.stamp.wall, r.source))
    for (wall, _source), group in groupby(rows, key=lambda r: (r.stamp.wall, r.source)):
        segments: list[str] = []
        for n, row in enumerate(group, 1):
            segments.extend(_obx(n, row))
        bodies.append((wall, 0, segments))
    for event in record.events:
        bodies.append((event.stamp.wall, 1, [_event_obx(event, deidentify)]))
    bodies.sort(key=lambda b: (b[0], b[1]))
    for n, (wall, _, obx) in enumerate(bodies, 1):
        when = dtm(wall)
        msh = (
            f"MSH|^~\\&|KAPMONITOR|KAPMONITOR|||{when}||ORU^R01^ORU_R01|{control}-{n}|P|"
            f"{VERSION}|||NE|NE|||UNICODE UTF-8"
        )
        obr = f"OBR|1||{esc(info.uid)}^KAPMONITOR|{SERVICE}|||{when}"
        yield "\r".join([msh, *head, obr, *obx]) + "\r"


def dtm(wall: float) -> str:
    """HL7 DTM in UTC with milliseconds: 20260101100000.000+0000."""
    ms = round(wall * 1000)
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%d%H%M%S") + f".{millis:03d}+0000"


def esc(text: str) -> str:
    """Text with HL7's delimiters escaped, on one line."""
    text = text.replace("\\", "\\E\\")
    for char, code in (("|", "F"), ("^", "S"), ("&", "T"), ("~", "R")):
        text = text.replace(char, f"\\{code}\\")
    return " ".join(text.splitlines())


def _obx(n: int, row: Row) -> list[str]:
    if row.info is not None:
        ident = f"{row.info.mdc_code}^{row.code}^MDC"
        if row.info.loinc:
            ident += f"^{row.info.loinc}^{esc(row.info.label)}^LN"
    else:
        ident = f"{esc(row.code)}^{esc(row.code)}^L"
    unit = f"{esc(row.unit)}^{esc(row.unit)}^UCUM" if row.unit else ""
    kind, status = ("NA", "X") if row.value is None else ("NM", "F")
    value = number_text(row.value)
    fields = [
        "OBX",
        str(n),
        kind,
        ident,
        "",
        value,
        unit,
        "",
        "",
        "",
        "",
        status,
        "",
        "",
        dtm(row.stamp.wall),
        "",
        f"^{esc(row.author)}" if row.author else "",  # OBX-16: who scored it
        "",
        "" if row.score else esc(row.source),  # OBX-18: the device; a score has none
    ]
    segments = ["|".join(fields)]
    if row.flags:
        segments.append(f"NTE|1|L|flags: {flag_text(row.flags)}")
    return segments


def _event_obx(event: EventRecord, deidentify: bool) -> str:
    author = person(event.author, deidentify)
    text = f"{event.kind}: {event.text}" if event.text else event.kind
    if event.amends is not None:
        text += f" (corrects event {event.amends})"
    fields = [
        "OBX",
        "1",
        "ST",
        "EVENT^Session event^L",
        "",
        esc(text),
        "",
        "",
        "",
        "",
        "",
        "F",
        "",
        "",
        dtm(event.stamp.wall),
        "",
        "^" + esc(author) if author else "",
        "",
        esc(event.source or ""),
    ]
    return "|".join(fields)
