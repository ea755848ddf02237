"""Scored sedation and dissociation: the scales a nurse scores with one key, and when one is due.

Sedation and dissociation are the two effects the esketamine REMS form asks about beside
respiratory depression, and a free-text marker cannot be summarised, alarmed on or compared
between sessions. So a score is a number on a named scale, carried through the pipeline as a
:class:`~kapmonitor.core.model.Numeric` from :data:`SOURCE` (the alarm engine, the record, the
trends and every export take it as they take a measured value) with a
:class:`~kapmonitor.core.model.SessionEvent` of kind ``assessment`` at the same instant that
says it in words and names who scored it.

The scales (sources in shared/reference/breathing-and-station.md):

- **MOAA/S**, the Modified Observer's Assessment of Alertness/Sedation (the scale the esketamine
  label uses): 5 responds readily to name spoken in a normal tone; 4 lethargic response to name
  in a normal tone; 3 responds only after name is called loudly and/or repeatedly; 2 responds
  only after mild prodding or shaking; 1 responds only after a painful trapezius squeeze; 0 no
  response to a painful squeeze. Esketamine trials counted MOAA/S <= 3 as sedation
  (:data:`SEDATED_AT_MOST`).
- **A dissociation rating** none / mild / moderate / severe (0-3), the default: one key press at
  the bedside.
- **The CADSS total** (Clinician-Administered Dissociative States Scale: 23 items, 19 rated by
  the patient and 4 by the observer, each 0-4, so 0-92), which the esketamine trials used; too
  long to score every 15 minutes by default, so a profile may choose it instead of the rating.

A score is never an alarm by itself except through the profile's limits (kap-default: MOAA/S
<= 1 is a medium alarm); the prompt that says a score is due (:func:`prompt`) only reminds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError

#: The source name of every score: not a device, so no silence watch and no connection state.
SOURCE = "assessment"
#: MOAA/S at or below this counts as sedated (the esketamine trials' definition).
SEDATED_AT_MOST = 3


@dataclass(frozen=True)
class Scale:
    """A scored scale: its code in the record, its name, and what each score means."""

    code: Code
    key: str  #: its name in a profile's [assessment] table
    name: str  #: as the screen and the report print it
    #: What each score means, from 0 up; empty for a total (the CADSS), which has no labels.
    levels: tuple[str, ...]
    maximum: int

    def check(self, score: object) -> int:
        """The score as an int, or a one-sentence :class:`UserError` (a typed 7 on MOAA/S)."""
        if isinstance(score, float) and math.isfinite(score) and score.is_integer():
            score = int(score)
        if isinstance(score, bool) or not isinstance(score, int):
            raise UserError(f"a {self.name} score is a whole number, not {score!r}")
        if not 0 <= score <= self.maximum:
            raise UserError(f"a {self.name} score lies between 0 and {self.maximum}, not {score}")
        return score

    def describe(self, score: float) -> str:
        """The score in words: "MOAA/S 3: responds only after name is called loudly"."""
        number = int(score)
        if self.levels and 0 <= number < len(self.levels):
            return f"{self.name} {number}: {self.levels[number]}"
        return f"{self.name} {number} of {self.maximum}"


MOAAS = Scale(
    Code.MOAAS,
    "moaas",
    "MOAA/S",
    (
        "no response to a painful trapezius squeeze",
        "responds only to a painful trapezius squeeze",
        "responds only after mild prodding or shaking",
        "responds only after name is called loudly or repeatedly",
        "lethargic response to name in a normal tone",
        "responds readily to name in a normal tone",
    ),
    5,
)
DISSOCIATION_RATING = Scale(
    Code.DISSOCIATION, "rating", "Dissociation", ("none", "mild", "moderate", "severe"), 3
)
CADSS = Scale(Code.CADSS, "cadss", "CADSS", (), 92)

#: Every scale, by its code: the record, the review and the exports look a score up here.
SCALES: dict[Code, Scale] = {s.code: s for s in (MOAAS, DISSOCIATION_RATING, CADSS)}
SCORE_CODES = frozenset(SCALES)
#: The dissociation scales a profile may choose, by their key.
DISSOCIATION_SCALES = {s.key: s for s in (DISSOCIATION_RATING, CADSS)}
DISSOCIATION_CODES = frozenset(s.code for s in DISSOCIATION_SCALES.values())


@dataclass(frozen=True)
class AssessmentPlan:
    """How a session scores: the dissociation scale, when a score is due, what counts as
    dissociated. The profile's [assessment] table sets it; :data:`DEFAULT_PLAN` otherwise."""

    dissociation: Scale = DISSOCIATION_RATING
    every_min: float = 15.0  #: a score falls due this often after the dose...
    for_min: float = 120.0  #: ...for this long (the esketamine label's 2-hour observation)
    #: The dissociation score from which the patient counts as dissociated: "mild" on the
    #: rating; on the CADSS a total above 4, the cut-off the esketamine trials' analyses used.
    dissociated_from: int = 1

    def dissociated(self, score: float) -> bool:
        return score >= self.dissociated_from


DEFAULT_PLAN = AssessmentPlan()
#: A score taken up to this many minutes before a prompt's time counts for it, as a nurse
#: scoring a little early does not want to be reminded again a minute later.
EARLY_MIN = 2.5


def sedated(moaas: float) -> bool:
    return moaas <= SEDATED_AT_MOST


def due_times(plan: AssessmentPlan) -> list[float]:
    """The minutes after the dose at which a score falls due: 15, 30, ... 120 by default."""
    times, k = [], 1
    while k * plan.every_min <= plan.for_min + 1e-9:
        times.append(k * plan.every_min)
        k += 1
    return times


def prompt(plan: AssessmentPlan, minutes: float | None, scored: list[float]) -> tuple[str, bool]:
    """What the screen says of the next score, and whether one is due now.

    ``minutes``: the time since the dose (None before it); ``scored``: the minutes after the
    dose at which scores were taken. A score is due from its time until one is taken (from
    :data:`EARLY_MIN` before it on); it is a reminder, never an alarm.
    """
    if minutes is None:
        return "score sedation and dissociation before the dose", False

    def taken(due: float) -> bool:
        return any(t >= due - EARLY_MIN for t in scored)

    times = due_times(plan)
    past = [d for d in times if d <= minutes]
    if past and not taken(past[-1]):  # the latest one that fell due; missed ones are past
        return f"SCORE DUE: the {past[-1]:g}-minute assessment", True
    upcoming = [d for d in times if d > minutes and not taken(d)]
    if upcoming:
        return f"next score in {max(1, round(upcoming[0] - minutes))} min", False
    return f"scheduled scores done ({plan.for_min:g} min after the dose)", False
