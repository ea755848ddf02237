"""The scored sedation and dissociation of a recorded session, for review, the REMS form and the
report.

A score is stored as a :class:`~kapmonitor.core.model.Numeric` from
:data:`~kapmonitor.core.assessment.SOURCE` (the number) beside a session event of kind
``assessment`` at the same instant (the words and who scored it); :func:`session_scores` joins
the two back into :class:`Score` s. Scores are sparse (every 15 minutes), so nothing here holds a
score "until the next one" the way a monitor's samples are held: a stretch of sedation runs from
a score that says so to the first later score that does not.

- **Sedated** is MOAA/S <= :data:`~kapmonitor.core.assessment.SEDATED_AT_MOST` (3), the
  esketamine trials' definition; the deepest sedation is the lowest MOAA/S (the first of equals).
- **Dissociated** is a score at or above the plan's ``dissociated_from`` (the profile's
  ``[assessment]`` table, stored with the session), on the plan's dissociation scale; the
  strongest dissociation is the highest score.
- A stretch is **resolved** at the first later score out of it; a last score still in it is "not
  resolved by the last score", never a guessed end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kapmonitor.core.assessment import (
    DEFAULT_PLAN,
    DISSOCIATION_SCALES,
    MOAAS,
    SCALES,
    SEDATED_AT_MOST,
    SOURCE,
    AssessmentPlan,
    Scale,
)
from kapmonitor.core.model import SessionEventKind
from kapmonitor.record.session import SessionRecord

#: The cut-off of a dissociation scale other than the plan's (a profile changed scales between
#: sessions): "mild" on the rating, a CADSS total above 4 (core.assessment.AssessmentPlan).
_DEFAULT_CUT = {"rating": DEFAULT_PLAN.dissociated_from, "cadss": 5}


@dataclass(frozen=True)
class Score:
    """One score as the record keeps it: when, on which scale, how much, and who scored it."""

    wall: float
    minutes_from_dose: float | None  #: None when the session has no dose
    scale: Scale
    value: int
    author: str | None  #: the scorer (left out of de-identified exports and reports)

    @property
    def words(self) -> str:
        """ "MOAA/S 3: responds only after name is called loudly or repeatedly"."""
        return self.scale.describe(self.value)


@dataclass(frozen=True)
class Stretch:
    """From the first score in a state (sedated, dissociated) to the first later one out of it."""

    start: Score
    resolved: Score | None  #: None: the last score was still in the state

    @property
    def minutes(self) -> float | None:
        if self.resolved is None:
            return None
        return (self.resolved.wall - self.start.wall) / 60.0


@dataclass(frozen=True)
class Course:
    """One effect over the session (sedation, dissociation), from its scores."""

    scale: Scale
    scores: tuple[Score, ...]
    worst: Score  #: the deepest sedation or the strongest dissociation
    stretches: tuple[Stretch, ...]  #: empty: never sedated (dissociated) by the scores
    cut: int  #: the score from which it counts: MOAA/S at most 3, dissociation at least 1
    at_most: bool  #: True: a score at or below ``cut`` counts (MOAA/S); False: at or above

    @property
    def threshold(self) -> str:
        """What counted, in words: "MOAA/S ≤ 3", "Dissociation ≥ 1"."""
        return f"{self.scale.name} {'≤' if self.at_most else '≥'} {self.cut}"

    def inside(self, score: Score) -> bool:
        """Whether this score is sedated (dissociated)."""
        return score.value <= self.cut if self.at_most else score.value >= self.cut

    def last_at(self, wall: float) -> Score | None:
        """The latest score taken at or before ``wall`` (None before the first)."""
        return next((s for s in reversed(self.scores) if s.wall <= wall), None)

    @property
    def resolved(self) -> Score | None:
        """When the last stretch resolved; None if it had not, or there was none."""
        return self.stretches[-1].resolved if self.stretches else None

    @property
    def unresolved(self) -> bool:
        return bool(self.stretches) and self.stretches[-1].resolved is None


@dataclass(frozen=True)
class ScoreSummary:
    """Every score of the session, and the sedation and dissociation they show."""

    scores: tuple[Score, ...]  #: in time order; MOAA/S before dissociation at one instant
    sedation: Course | None  #: None: no MOAA/S was scored
    dissociation: Course | None  #: None: no dissociation score

    @property
    def scored(self) -> bool:
        return bool(self.scores)


def session_scores(record: SessionRecord) -> list[Score]:
    """The record's scores, each with its scorer (the assessment event at its instant)."""
    dose = record.dose_stamp
    authors: dict[tuple[float, str], str | None] = {}
    for e in record.events:
        if e.kind == SessionEventKind.SCORE and e.amends is None:
            # "MOAA/S 3: ..." or "CADSS 12 of 92": the scale's name and the number lead.
            authors.setdefault((e.stamp.wall, e.text.split(":")[0].split(" of ")[0]), e.author)
    out = []
    for n in record.numerics:
        if n.source != SOURCE or n.code not in SCALES or n.value is None:
            continue
        scale = SCALES[n.code]
        value = int(n.value)
        out.append(
            Score(
                n.stamp.wall,
                None if dose is None else (n.stamp.wall - dose.wall) / 60.0,
                scale,
                value,
                authors.get((n.stamp.wall, f"{scale.name} {value}")),
            )
        )
    order = {code: i for i, code in enumerate(SCALES)}
    out.sort(key=lambda s: (s.wall, order[s.scale.code]))
    return out


def summarise_scores(record: SessionRecord, plan: AssessmentPlan = DEFAULT_PLAN) -> ScoreSummary:
    """The scores and what they show, judged by the session's plan (its dissociation cut-off)."""
    scores = session_scores(record)
    moaas = [s for s in scores if s.scale is MOAAS]
    sedation = (
        _course(MOAAS, moaas, min(moaas, key=lambda s: s.value), SEDATED_AT_MOST, at_most=True)
        if moaas
        else None
    )
    return ScoreSummary(tuple(scores), sedation, _dissociation(scores, plan))


def _dissociation(scores: list[Score], plan: AssessmentPlan) -> Course | None:
    """On the plan's scale; a record scored only on another one is judged by that scale's own
    cut-off rather than left unread."""
    scales = {s.scale.key for s in scores if s.scale.key in DISSOCIATION_SCALES}
    if not scales:
        return None
    key = plan.dissociation.key if plan.dissociation.key in scales else sorted(scales)[0]
    cut = plan.dissociated_from if key == plan.dissociation.key else _DEFAULT_CUT[key]
    chosen = [s for s in scores if s.scale.key == key]
    scale = chosen[0].scale
    # max keeps the first of equals
    return _course(scale, chosen, max(chosen, key=lambda s: s.value), cut, at_most=False)


def _course(scale: Scale, scores: list[Score], worst: Score, cut: int, *, at_most: bool) -> Course:
    course = Course(scale, tuple(scores), worst, (), cut, at_most)
    stretches: list[Stretch] = []
    start: Score | None = None
    for s in scores:
        if course.inside(s) and start is None:
            start = s
        elif not course.inside(s) and start is not None:
            stretches.append(Stretch(start, s))
            start = None
    if start is not None:
        stretches.append(Stretch(start, None))
    return replace(course, stretches=tuple(stretches))


def is_score_event(kind: str, text: str) -> bool:
    """Whether an event is a score said in words (the runner's), not a clinician's REMS answer
    ("sedation: yes", kind "assessment"). An amended score's text is the reviewer's own."""
    return kind == SessionEventKind.SCORE


def by_instant(scores: tuple[Score, ...] | list[Score]) -> list[tuple[Score, ...]]:
    """Scores taken together (one key press, one instant) as one group, in time order: a row of
    the report's and the review window's score tables."""
    groups: dict[float, list[Score]] = {}
    for s in scores:
        groups.setdefault(s.wall, []).append(s)
    return [tuple(g) for _, g in sorted(groups.items())]
