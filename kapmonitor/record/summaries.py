"""Each session's course figures, kept in the database, and the session's optional details.

A treatment course compares a patient's sessions (often 20 to 50 of them); re-deriving each
session's baseline, peaks and recovery from every stored sample on every open would take
seconds. The figures are computed once (by :mod:`kapmonitor.review.course`) and kept here as
JSON with a fingerprint of what they were computed from: the session's status and end, its
events (a dose, an amendment or an assessment is a new event) and its details. When the
fingerprint no longer matches, the figures are computed again; an active session is never kept.

The details (the patient's weight for mg/kg, the indication) are optional, set at the start
and amendable in review; each change is audited, and the original stays in the audit log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Float, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from kapmonitor.record.db import Database
from kapmonitor.record.schema import AuditRow, Base, EventRow, SessionRow

#: Raised when what is kept changes shape: every kept summary is then computed again.
#: 2: the highest EtCO2 in place of the lowest (respiratory depression raises it; issue 17).
#: 3: the deepest sedation and strongest dissociation from the scores (issue 17).
SUMMARY_VERSION = 3


class SessionDetailsRow(Base):
    """Optional facts about a session that the dosing decision needs (weight, indication)."""

    __tablename__ = "session_details"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    indication: Mapped[str] = mapped_column(Text, default="")


class SessionSummaryRow(Base):
    """A session's course figures as JSON, and what they were computed from."""

    __tablename__ = "session_summaries"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(200))
    computed_at: Mapped[float] = mapped_column(Float)
    data: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class SessionDetails:
    weight_kg: float | None = None  #: None: not given (mg/kg is then left empty)
    indication: str = ""


def details(db: Database, session_ids: Iterable[int]) -> dict[int, SessionDetails]:
    """The details of each session that has any; a session without a row has none."""
    ids = list(session_ids)
    query = select(SessionDetailsRow).where(SessionDetailsRow.session_id.in_(ids))
    with Session(db.engine) as s:
        return {
            r.session_id: SessionDetails(r.weight_kg, r.indication or "") for r in s.scalars(query)
        }


def write_details(
    db: Database, session_id: int, new: SessionDetails, *, who: str, reason: str = ""
) -> None:
    """Set a session's details, audited with the values before and after and why."""
    with Session(db.engine) as s, s.begin():
        row = s.get(SessionDetailsRow, session_id)
        old = SessionDetails() if row is None else SessionDetails(row.weight_kg, row.indication)
        if row is None:
            row = SessionDetailsRow(session_id=session_id)
            s.add(row)
        row.weight_kg = new.weight_kg
        row.indication = new.indication
        detail = json.dumps(
            {"before": old.__dict__, "after": new.__dict__, "reason": reason}, sort_keys=True
        )
        s.add(AuditRow(session_id=session_id, at=time.time(), who=who or "kapmonitor",
                       action="details-set", detail=detail))  # fmt: skip


def patients(db: Database) -> list[str]:
    """Every patient identifier in the database (for close matches to a mistyped one)."""
    with Session(db.engine) as s:
        return [p for (p,) in s.execute(select(SessionRow.patient).distinct())]


def fingerprints(db: Database, session_ids: Iterable[int]) -> dict[int, str]:
    """What each session's figures depend on, in two queries for the whole course."""
    ids = list(session_ids)
    events = (
        select(EventRow.session_id, func.count(EventRow.id), func.max(EventRow.id))
        .where(EventRow.session_id.in_(ids))
        .group_by(EventRow.session_id)
    )
    header = (
        select(SessionRow.id, SessionRow.status, SessionRow.ended, SessionDetailsRow.weight_kg,
               SessionDetailsRow.indication)
        .outerjoin(SessionDetailsRow, SessionDetailsRow.session_id == SessionRow.id)
        .where(SessionRow.id.in_(ids))
    )  # fmt: skip
    with Session(db.engine) as s:
        counts = {sid: (n, last) for sid, n, last in s.execute(events)}
        return {
            sid: "|".join(
                str(v)
                for v in (SUMMARY_VERSION, status, ended, *counts.get(sid, (0, 0)), w, ind or "")
            )
            for sid, status, ended, w, ind in s.execute(header)
        }


def kept(db: Database, session_ids: Iterable[int]) -> dict[int, tuple[str, dict]]:
    """The kept figures of each session that has them, with their fingerprint."""
    ids = list(session_ids)
    query = select(SessionSummaryRow).where(SessionSummaryRow.session_id.in_(ids))
    with Session(db.engine) as s:
        return {r.session_id: (r.fingerprint, json.loads(r.data)) for r in s.scalars(query)}


def keep(db: Database, session_id: int, fingerprint: str, data: dict) -> None:
    """Keep (or replace) one session's figures."""
    with Session(db.engine) as s, s.begin():
        row = s.get(SessionSummaryRow, session_id)
        if row is None:
            row = SessionSummaryRow(session_id=session_id)
            s.add(row)
        row.fingerprint = fingerprint
        row.computed_at = time.time()
        row.data = json.dumps(data, allow_nan=False)
