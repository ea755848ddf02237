"""What a reviewer writes to a recorded session: typed records from the review's dialogs.

The dialogs hand these to the review window, and the window to
:class:`~kapmonitor.review.session_review.SessionReview`, which checks them and writes them to
the record as new events (the record is never edited in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Amendment:
    """A correction of one event: the corrected text and why. Both are needed; the original
    stays in the record and the store audits who, when and why."""

    event_id: int
    text: str
    reason: str

    def missing(self) -> list[str]:
        """What the amendment still lacks, in words ("the corrected text", "a reason")."""
        return [
            what
            for what, given in (("the corrected text", self.text), ("a reason", self.reason))
            if not given.strip()
        ]


@dataclass(frozen=True, slots=True)
class Assessment:
    """The clinician's REMS assessment: yes/no per field of
    :data:`~kapmonitor.review.rems.YES_NO_FIELDS` (a field not assessed is left out) and the
    time the patient was ready to leave (HH:MM), if given."""

    answers: dict[str, bool] = field(default_factory=dict)
    ready_to_leave: str | None = None
