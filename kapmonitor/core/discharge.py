"""What "ready to leave" means: the discharge criteria and one line of the checklist.

The runner evaluates the checklist live at the end of a session and the review summary evaluates
the same criteria on the record, so both live on the ground floor that each of them reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapmonitor.core.model import Flag

#: Flags that keep a value from satisfying a discharge criterion: it is not the patient's.
DOUBTFUL = frozenset(
    {
        Flag.SENSOR_OFF,
        Flag.SEARCHING,
        Flag.ARTIFACT,
        Flag.OUT_OF_RANGE,
        Flag.QUESTIONABLE,
        Flag.DEMO,
    }
)


@dataclass(frozen=True)
class DischargeCriteria:
    """The default discharge checklist; a clinic can change every number."""

    min_hours_after_dose: float = 2.0  #: the esketamine label's minimum monitoring time
    bp_margin_systolic: float = 20.0  #: "back near baseline": at most this far above it
    bp_margin_diastolic: float = 10.0


@dataclass(frozen=True)
class CheckItem:
    label: str
    ok: bool | None  #: None: a person must confirm it
    detail: str = ""
