"""One recorded session under review, without Qt: what the review window shows and writes.

The window is a thin view over this, as the dosing-room screen is over the session runner: the
record and its timeline, the summary and the REMS form, the audit trail, the pleth for a stretch
of minutes, and the reviewer's notes, amendments and assessment, each written to the record as a
new event (the original is kept; the store audits who, when and why). After a write the record
is read again, so what is shown is what was stored.

The session is loaded without its pleth (a 2-hour session has 720,000 samples the trends do not
need); :meth:`SessionReview.pleth` loads the waveform for the minutes asked for.
"""

from __future__ import annotations

import math

import numpy as np

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Stamp
from kapmonitor.record import summaries
from kapmonitor.record.session import SessionRecord
from kapmonitor.record.store import AuditEntry, Store
from kapmonitor.record.summaries import SessionDetails
from kapmonitor.review import rems
from kapmonitor.review.changes import Amendment, Assessment, DetailsChange
from kapmonitor.review.rems import RemsForm
from kapmonitor.review.summary import SessionSummary, summarise
from kapmonitor.review.timeline import Timeline


class SessionReview:
    """One session of the store, reviewed by ``reviewer`` (who signs notes and amendments)."""

    def __init__(self, store: Store, session_id: int, reviewer: str) -> None:
        self._store = store
        self.session_id = session_id
        self.reviewer = reviewer
        self.record, self.timeline, self.summary = self._load()

    def _load(self) -> tuple[SessionRecord, Timeline, SessionSummary]:
        record = self._store.load_session(self.session_id, waves=False)
        summary = summarise(record)
        return record, Timeline.from_record(record, summary.scores), summary

    def reload(self) -> None:
        """Read the record again (a new event and its audit line)."""
        self.record, self.timeline, self.summary = self._load()

    def rems_form(self) -> RemsForm:
        return rems.rems_form(self.record, summary=self.summary)

    def audit_log(self) -> list[AuditEntry]:
        return self._store.audit_log(self.session_id)

    def full_record(self) -> SessionRecord:
        """The whole record, waveforms included: what an export writes."""
        return self._store.load_session(self.session_id)

    # --- the pleth ----------------------------------------------------------------------------

    def pleth(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """The pleth from minute ``lo`` to ``hi`` as (minutes, samples); a gap between blocks is a
        NaN, so it is drawn as a hole, not a line across."""
        t = self.timeline
        # a block starts up to a few seconds before the part of it asked for
        blocks = self._store.load_waves(self.session_id, t.wall(lo) - 5.0, t.wall(hi))
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        end = -math.inf
        for b in blocks:
            if b.code is not Code.PLETH or not len(b.samples):
                continue
            x = t.minutes(b.stamp.wall) + np.arange(len(b.samples)) / b.fs / 60.0
            if x[0] - end > 1.5 / b.fs / 60.0:  # not straight after the last block: a gap
                xs.append(np.array([x[0]]))
                ys.append(np.array([math.nan]))
            xs.append(x)
            ys.append(np.asarray(b.samples, dtype=float))
            end = x[-1]
        x_all = np.concatenate(xs) if xs else np.empty(0)
        y_all = np.concatenate(ys) if ys else np.empty(0)
        return x_all, y_all

    # --- writing to the record ----------------------------------------------------------------

    def add_note(self, text: str, x: float) -> tuple[int, Stamp]:
        """A note about minute x, written to the record now; its event id and stamp."""
        text = text.strip()
        if not text:
            raise UserError("a note needs some text")
        stamp = self.timeline.stamp_at(x)
        event_id = self._store.add_event(self.session_id, "note", text, self.reviewer, stamp=stamp)
        self.reload()
        return event_id, stamp

    def amend(self, amendment: Amendment) -> int:
        """Correct an event: a new event names it; the original is kept and the change audited."""
        event_id = amendment.event_id
        original = next((e for e in self.record.events if e.id == event_id), None)
        if original is None:
            raise UserError(f"there is no event {event_id} in session {self.session_id}")
        if amendment.missing():
            raise UserError("an amendment needs the corrected text and a reason")
        new_id = self._store.add_event(
            self.session_id,
            original.kind,
            amendment.text.strip(),
            self.reviewer,
            stamp=original.stamp,
            amends=event_id,
            reason=amendment.reason.strip(),
        )
        self.reload()
        return new_id

    def details(self) -> SessionDetails:
        """The session's weight and indication (empty when none were given)."""
        found = summaries.details(self._store.db, [self.session_id])
        return found.get(self.session_id, SessionDetails())

    def set_details(self, change: DetailsChange) -> None:
        """Correct the weight or indication, audited with the values before and the reason; the
        course's kept figures of this session are computed again on its next open."""
        if change.missing():
            raise UserError("a change of weight or indication needs a reason")
        for problem in change.problems():
            raise UserError(problem)
        new = SessionDetails(change.weight_kg, change.indication.strip())
        summaries.write_details(
            self._store.db, self.session_id, new, who=self.reviewer, reason=change.reason.strip()
        )

    def save_assessment(self, assessment: Assessment) -> list[int]:
        """Write the assessment: one event per field, about the session, at its end."""
        texts = [rems.assessment_text(name, value) for name, value in assessment.answers.items()]
        if assessment.ready_to_leave:
            texts.append(rems.assessment_text(rems.READY_TO_LEAVE, assessment.ready_to_leave))
        if not texts:
            raise UserError("choose at least one answer to save")
        stamp = self.timeline.stamp_at(self.timeline.x_max)
        ids = [
            self._store.add_event(
                self.session_id, rems.ASSESSMENT_KIND, text, self.reviewer, stamp=stamp
            )
            for text in texts
        ]
        self.reload()
        return ids
