"""De-identification: the one step every export format goes through when asked to de-identify.

:func:`deidentified` returns a copy of a session that every writer then writes as it is:

- **No direct identifier.** The patient identifier becomes a pseudonym (``anon-`` and 8 hex
  digits) of a new random session UID: neither is derived from the stored UID or the patient,
  so an export cannot be joined back to the record by them. The database's session number is 0.
  Clinician, operator, event authors, alarm operators and device serial numbers are left out;
  the patient identifier and the staff's names are replaced wherever they still appear (in a
  device name, say).
- **No date more precise than the year.** Every wall-clock time is shifted by one random offset
  of 30 to 365 days (either way, plus a random time of day), drawn afresh for each export, so
  dates and times of day are not the real ones while times relative to each other and to the
  dose stay exact. The year is therefore only approximate (±1).
- **No free text** unless ``keep_notes``: notes, the typed part of a marker ("note: …",
  "confirmed: … (operator)") and any text kapmonitor did not write itself are left out. What the
  system writes stays: the marker's label (dissociation, nausea or vomiting, …), the REMS
  assessments (sedation: no), a score in words ("MOAA/S 3: responds only after …", the scale's
  own text, never typed), device state changes, the NIBP schedule, alarm messages. The scores
  themselves stay, as any measurement does; their scorer goes with the other authors.

It does not make the data anonymous: the vital signs themselves, the drug and dose, the device
models and the length of the session remain, and can single out a patient to someone who knows
other facts about the session. Pseudonyms are random, so two exports of one session cannot be
linked by them either.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import Field
from typing import Any, ClassVar, Protocol, TypeVar

from kapmonitor.core.markers import MARKERS
from kapmonitor.core.model import Stamp
from kapmonitor.record.session import DeviceInfo, EventRecord, SessionInfo, SessionRecord
from kapmonitor.review.rems import (
    ASSESSMENT_KIND,
    CONFIRMED_MARKER,
    YES_NO_FIELDS,
    parse_assessment,
)
from kapmonitor.review.scores import is_score_event

DAY = 86_400
#: The date shift's size, in days: at least a month (a session near midnight cannot land on its
#: own date), at most a year.
SHIFT_DAYS = (30, 365)

#: Event texts kapmonitor writes itself, kept whole.
SYSTEM_KINDS = frozenset({"device-state", "nibp-scheduled"})
#: Labels a marker or the dose may start with; what follows a label's ":" was typed.
LABELS = frozenset({*MARKERS, CONFIRMED_MARKER, "STAT NIBP requested", "dose given", "dose"})


class _Stamped(Protocol):
    """A record item: a dataclass with a time stamp (numerics, readings, events, alarms …)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def stamp(self) -> Stamp: ...


T = TypeVar("T", bound=_Stamped)


def pseudonym(uid: str) -> str:
    """The stand-in for the patient identifier: from the (new, random) session UID."""
    digits = "".join(c for c in uid.lower() if c in "0123456789abcdef")
    return f"anon-{digits[:8]}"


def random_shift() -> float:
    """Seconds to add to every wall-clock time of one export."""
    low, high = SHIFT_DAYS
    seconds = (low + secrets.randbelow(high - low + 1)) * DAY + secrets.randbelow(DAY)
    return float(seconds if secrets.randbelow(2) else -seconds)


def deidentified(
    record: SessionRecord, *, keep_notes: bool = False, shift: float | None = None
) -> SessionRecord:
    """A copy of ``record`` with no direct identifier, dates shifted by ``shift`` seconds
    (random when None) and, unless ``keep_notes``, no free text."""
    shift = random_shift() if shift is None else shift
    info = record.info
    uid = str(uuid.uuid4())
    alias = pseudonym(uid)
    names = {info.patient: alias, info.clinician: "", info.operator: ""}
    names = {k: v for k, v in names.items() if len(k.strip()) >= 2}

    def scrub(text: str) -> str:
        for name, stand_in in names.items():
            text = text.replace(name, stand_in)
        return text

    def moved(item: T) -> T:
        stamp = item.stamp
        changes: dict = {"stamp": Stamp(stamp.mono, stamp.wall + shift)}
        if hasattr(item, "source") and isinstance(item.source, str):
            changes["source"] = scrub(item.source)
        return dataclasses.replace(item, **changes)

    def event(e: EventRecord) -> EventRecord:
        text = e.text if keep_notes else _system_text(e)
        return dataclasses.replace(
            moved(e), text=scrub(text), author=None, source=scrub(e.source) if e.source else None
        )

    return SessionRecord(
        info=SessionInfo(
            id=0,
            uid=uid,
            patient=alias,
            clinician="",
            operator="",
            drug=info.drug,
            route=info.route,
            dose=info.dose,
            dose_unit=info.dose_unit,
            started=info.started + shift,
            ended=None if info.ended is None else info.ended + shift,
            status=info.status,
            alarm_profile=info.alarm_profile,
        ),
        devices=[
            DeviceInfo(scrub(d.source), d.protocol, scrub(d.port), None) for d in record.devices
        ],
        numerics=[moved(n) for n in record.numerics],
        nibp=[moved(r) for r in record.nibp],
        waves=[moved(b) for b in record.waves],
        values=[moved(v) for v in record.values],
        events=[event(e) for e in record.events],
        alarms=[
            dataclasses.replace(moved(a), operator=None, text=scrub(a.text)) for a in record.alarms
        ],
        profile_text=record.profile_text,
    )


def _system_text(e: EventRecord) -> str:
    """What of an event's text kapmonitor wrote (or a label the nurse picked): no typed text."""
    if e.kind in SYSTEM_KINDS:
        return e.text
    if is_score_event(e.kind, e.text):
        return e.text
    if e.kind == ASSESSMENT_KIND:
        # "sedation: no": a form's field and the answer picked (not "ready to leave: 11:40",
        # a real time of day).
        answer = parse_assessment(e.text)
        if answer is None or answer[0] not in YES_NO_FIELDS:
            return ""
        return e.text if answer[1].lower() in ("yes", "no") else ""
    head = e.text.split(":", 1)[0].strip()
    if e.kind in ("marker", "dose") and head in LABELS:
        return head
    return ""
