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


@dataclass(frozen=True, slots=True)
class DetailsChange:
    """The session's weight (kg, None: not known) and indication as the reviewer corrects them,
    and why; the values before stay in the audit log. The course's mg/kg follows the weight."""

    weight_kg: float | None
    indication: str
    reason: str

    def missing(self) -> list[str]:
        """What the change still lacks, in words."""
        return [] if self.reason.strip() else ["a reason"]

    def problems(self) -> list[str]:
        """A weight no person has (the mg/kg would be wrong by as much)."""
        w = self.weight_kg
        if w is not None and not (1.0 <= w <= 400.0):
            return [f"a weight of {w:g} kg is not plausible (1 to 400 kg)"]
        return []
