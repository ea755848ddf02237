"""Alarm profiles: the limits, delays and behaviour a clinic sets, as TOML files.

A profile is checked whole before it is used: an unknown key, a wrong type, a limit on the
wrong side of another is refused with one sentence naming the file, the key and the reason, so
the engine never runs with a half-read profile (and never without limits).

A profile must not be able to switch an alarm off, so beyond its form it is checked for sense
(IEC 60601-1-8's spirit: a delay long enough to hide a condition is no alarm):

- every number is finite;
- condition delays are at most :data:`MAX_DELAY_S` (30 s: vendors disclose SpO2 delays of
  10-20 s, ISO 80601-2-61 asks an oximeter to respond within 30 s; a hypoxaemic patient falls
  from 90 to 80 % in well under a minute), the no-data timeout lies in
  :data:`NO_DATA_TIMEOUT_RANGE`, the overdue grace is at most :data:`MAX_GRACE_S` (one
  reading interval of the densest schedule), readings at most every :data:`MAX_EVERY_MIN`
  minutes, audio pause 60-180 s;
- a limit lies in :data:`LIMIT_RANGES`, a range inside the code's physical range
  (:attr:`kapmonitor.core.codes.CodeInfo.physical_range`) that a living adult can reach: an SpO2
  limit of 8 % is inside the physical range but never met, so it is refused too;
- levels grow more extreme with their priority, a low limit lies below every high limit on
  the same code (pulse-low 130 with pulse-high 120 would alarm always or never);
- hysteresis lets a condition end: the value that ends it (limit ± hysteresis) lies inside the
  physical range and on the normal side of the opposite limit;
- the core vital signs are covered: :data:`REQUIRED_RULES`;
- breathing (issue 17): the apnoea time lies in :data:`APNEA_RANGE_S` and its priority is not
  low; the EtCO2 rise from the pre-dose baseline in :data:`ETCO2_RISE_RANGE`; the flat
  capnogram that counts as "no CO2 signal" is flat for :data:`FLAT_RANGE_S` within
  :data:`FLAT_MMHG_RANGE`. Profiles written before breathing load unchanged: without
  ``[apnea]`` and ``[etco2_rise]`` those rules are not part of the profile (as
  ``[baseline_rise]``), and ``no_co2_signal`` takes the defaults in :data:`_LATER_TECHNICAL`;
- scores (issue 17): a MOAA/S limit is a ``[[limit]]`` on ``KAP_SCORE_MOAAS``;
  ``[assessment]`` chooses the dissociation scale and how often a score falls due
  (:data:`ASSESSMENT_EVERY_RANGE`); without it, :data:`~kapmonitor.core.assessment.DEFAULT_PLAN`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from alarms.model import Priority, TechnicalCondition
from kapmonitor.core.assessment import DEFAULT_PLAN, DISSOCIATION_SCALES, AssessmentPlan
from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError

AUDIO_PAUSE_RANGE = (60.0, 180.0)
#: Technical conditions added after profiles were written, with their defaults.
_LATER_TECHNICAL = {
    "station_link_lost": {"priority": "low"},
    "room_link_lost": {"priority": "medium"},
    # kap-default's values: the line flags alarm after 10 s, a flat capnogram after 20 s flat.
    "no_co2_signal": {"priority": "medium", "delay_s": 10, "flat_s": 20, "flat_mmhg": 3},
}
#: The longest condition delay, physiological or technical (seconds).
MAX_DELAY_S = 30.0
#: The no-data timeout: long enough for a device that updates every 5 s, short enough to alarm.
NO_DATA_TIMEOUT_RANGE = (2.0, 30.0)
DEFAULT_NO_DATA_TIMEOUT_S = 10.0  #: as the drivers' watchdog
#: The longest grace before a scheduled NIBP reading counts as overdue (seconds).
MAX_GRACE_S = 300.0
#: The longest interval between scheduled NIBP readings (minutes), and the longest schedule.
MAX_EVERY_MIN = 60.0
MAX_SCHEDULE_MIN = 24 * 60.0
#: The largest rise from the baseline a rule may wait for (mmHg).
MAX_BASELINE_RISE = 100.0
#: The apnoea time (seconds): capnographs offer 10-60 s; below 10 s a slow normal breath (6 a
#: minute) would alarm, beyond 30 s the patient is hypoxaemic before it sounds (MAX_DELAY_S).
APNEA_RANGE_S = (10.0, 30.0)
#: The EtCO2 rise from the pre-dose baseline (mmHg): below 3 it is measurement noise (EtCO2
#: drifts by 1-2 mmHg at rest), above 30 the EtCO2-high limit has long alarmed.
ETCO2_RISE_RANGE = (3.0, 30.0)
#: The course's note on a systolic rise (mmHg): under 10 every session is noted (BP varies that
#: much between readings), over 100 none ever is.
COURSE_RISE_RANGE = (10.0, 100.0)
#: How long the capnogram must be flat to count as no CO2 signal (seconds): at least one breath
#: interval at 4 a minute, at most the longest delay.
FLAT_RANGE_S = (15.0, MAX_DELAY_S)
#: What "flat" means (mmHg, peak to peak): a breath swings by EtCO2 minus the inspired CO2,
#: 20 mmHg and more; 0 would never be flat, more than 10 would call a shallow breath flat.
FLAT_MMHG_RANGE = (0.5, 10.0)
#: Where an alarm limit may lie: inside the physical range, and reachable by a living adult
#: (below 50 % an oximeter's accuracy is not even declared; ISO 80601-2-61 declares 70-100 %).
LIMIT_RANGES: dict[Code, tuple[float, float]] = {
    Code.SPO2: (50.0, 100.0),
    Code.PULSE_RATE: (25.0, 250.0),
    Code.HEART_RATE: (25.0, 250.0),
    Code.NIBP_SYS: (40.0, 260.0),
    Code.NIBP_DIA: (20.0, 200.0),
    Code.NIBP_MEAN: (30.0, 220.0),
    Code.PERFUSION: Code.PERFUSION.physical_range,
    # A rate limit of 0 would never be met (the rate cannot go below it); one of 60 a minute is
    # the fastest an adult breathes. EtCO2: 10-100 mmHg (below 10 is a line off, not a patient).
    Code.RESP_RATE: (2.0, 60.0),
    Code.AWAY_RESP_RATE: (2.0, 60.0),
    Code.CO2_ET: (10.0, 100.0),
    # A MOAA/S limit of 0 is never met (no score is below it); "low 5" alarms at 4, lethargy.
    Code.MOAAS: (1.0, 5.0),
}
#: How often a sedation and dissociation score falls due after the dose (minutes): more often
#: than every 5 minutes a nurse does nothing else; less often than hourly misses the peak.
ASSESSMENT_EVERY_RANGE = (5.0, 60.0)
#: Rules every profile has: (direction, code, what a nurse calls it).
REQUIRED_RULES = (
    ("low", Code.SPO2, "SpO2 low"),
    ("low", Code.PULSE_RATE, "pulse rate low"),
    ("high", Code.PULSE_RATE, "pulse rate high"),
    ("low", Code.HEART_RATE, "heart rate low"),
    ("high", Code.HEART_RATE, "heart rate high"),
    ("low", Code.NIBP_SYS, "NIBP systolic low"),
    ("high", Code.NIBP_SYS, "NIBP systolic high"),
)


class ProfileError(UserError):
    """An alarm profile is missing or has an error."""


@dataclass(frozen=True)
class LimitRule:
    """A physiological limit with its levels: ``low`` alarms below, ``high`` above."""

    id: str
    message: str
    codes: tuple[Code, ...]
    direction: str  #: "low" or "high"
    levels: tuple[tuple[Priority, float], ...]  #: (priority, limit), least severe first
    hysteresis: float = 0.0
    delay_s: float = 0.0

    def beyond(self, value: float, limit: float) -> bool:
        """Whether ``value`` violates ``limit`` (strictly: a value at the limit is in range)."""
        return value < limit if self.direction == "low" else value > limit

    def back_inside(self, value: float, limit: float) -> bool:
        """Whether ``value`` is far enough inside ``limit`` to end the condition."""
        if self.direction == "low":
            return value >= limit + self.hysteresis
        return value <= limit - self.hysteresis


@dataclass(frozen=True)
class BaselineRule:
    systolic: float
    diastolic: float
    priority: Priority


@dataclass(frozen=True)
class ApneaRule:
    """No breath: high priority once no breath has been detected for ``after_s``."""

    priority: Priority
    after_s: float


@dataclass(frozen=True)
class Etco2RiseRule:
    """EtCO2 risen ``rise`` mmHg or more above its pre-dose baseline for ``delay_s``."""

    rise: float
    priority: Priority
    delay_s: float


@dataclass(frozen=True)
class CourseRule:
    """When the course notes that the last session deserves a look before the next dose: a
    systolic rise from baseline of ``rise_systolic`` mmHg or more, or (``high_alarm``) any
    high-priority alarm. It informs the clinician; it never prescribes or alarms."""

    rise_systolic: float
    high_alarm: bool


@dataclass(frozen=True)
class TechnicalRule:
    priority: Priority
    delay_s: float = 0.0
    grace_s: float = 0.0
    timeout_s: float = DEFAULT_NO_DATA_TIMEOUT_S  #: no_data only: silence before the condition
    flat_s: float = 0.0  #: no_co2_signal only: how long a flat capnogram lasts before it counts
    flat_mmhg: float = 0.0  #: no_co2_signal only: peak to peak below which it is flat


@dataclass(frozen=True)
class Profile:
    name: str
    text: str  #: the TOML it was read from, kept with the session record
    description: str
    source: str  #: the file it came from, for messages and the record
    audio_pause_s: float
    latching: dict[Priority, bool]
    limits: tuple[LimitRule, ...]
    baseline_rise: BaselineRule | None
    technical: dict[TechnicalCondition, TechnicalRule]
    #: NIBP readings due after the dose: (until minute, every N minutes), in order.
    nibp_schedule: tuple[tuple[float, float], ...]
    apnea: ApneaRule | None = None  #: None: not part of the profile (one written before)
    etco2_rise: Etco2RiseRule | None = None
    course: CourseRule | None = None  #: None: the profile has no [course] (kap-default's applies)
    #: The dissociation scale and the score prompts ([assessment]; defaults without it).
    assessment: AssessmentPlan = DEFAULT_PLAN

    @cached_property
    def limits_by_code(self) -> dict[Code, tuple[LimitRule, ...]]:
        """The limit rules that judge each code: the engine asks this for every value it
        takes, so it is worked out once per profile (a limit change makes a new profile)."""
        by_code: dict[Code, list[LimitRule]] = {}
        for rule in self.limits:
            for code in rule.codes:
                by_code.setdefault(code, []).append(rule)
        return {code: tuple(rules) for code, rules in by_code.items()}

    def limit_rule(self, rule_id: str) -> LimitRule:
        for rule in self.limits:
            if rule.id == rule_id:
                return rule
        raise ProfileError(f"alarm profile '{self.name}' has no limit '{rule_id}'")

    def with_limit(self, rule_id: str, priority: Priority, limit: float) -> Profile:
        """A copy with one level's limit changed, checked like a loaded profile."""
        rule = self.limit_rule(rule_id)
        if priority not in dict(rule.levels):
            raise ProfileError(f"limit '{rule_id}' has no {priority.label} level")
        levels = tuple((p, limit if p == priority else v) for p, v in rule.levels)
        new = replace(rule, levels=levels)
        changed = replace(self, limits=tuple(new if r.id == rule_id else r for r in self.limits))
        _check_limits(changed.limits, _Reader(self.source))
        return changed


def profile_names() -> list[str]:
    folder = resources.files("alarms") / "profiles"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_profile(name_or_path: str = "kap-default") -> Profile:
    """A shipped profile by name, or a profile file by path."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ProfileError(f"alarm profile '{path}' cannot be read: {exc.strerror}") from None
        return parse_profile(data.decode("utf-8", errors="replace"), path.name)
    if name_or_path not in profile_names():
        raise ProfileError(
            f"unknown alarm profile '{name_or_path}' (available: {', '.join(profile_names())})"
        )
    text = (resources.files("alarms") / "profiles" / f"{name_or_path}.toml").read_text()
    return parse_profile(text, f"{name_or_path}.toml")


def parse_profile(text: str, source: str = "<string>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"alarm profile '{source}' is not valid TOML: {exc}") from None
    return replace(_Reader(source).profile(data), text=text)


def _check_limits(rules: tuple[LimitRule, ...], reader: _Reader) -> None:
    """What makes a set of limits able to alarm: see the module docstring."""
    for rule in rules:
        _check_rule(rule, reader)
    for low in (r for r in rules if r.direction == "low"):
        for high in (r for r in rules if r.direction == "high" and set(r.codes) & set(low.codes)):
            # Least severe levels first: the low rule's highest limit, the high rule's lowest.
            (lp, lv), (hp, hv) = low.levels[0], high.levels[0]
            if lv >= hv:
                raise reader.fail(
                    f"[[limit]] '{low.id}' {lp.label}",
                    f"{lv:g} must lie below the {hp.label} limit {hv:g} of '{high.id}'",
                )
            for rule, opposite in ((low, hv), (high, lv)):
                for priority, value in rule.levels:
                    end = value + rule.hysteresis if rule is low else value - rule.hysteresis
                    if (end >= opposite) if rule is low else (end <= opposite):
                        raise reader.fail(
                            f"[[limit]] '{rule.id}' hysteresis",
                            f"{rule.hysteresis:g} would end the {priority.label} condition only "
                            f"beyond the opposite limit {opposite:g}, so it could never end",
                        )
    for direction, code, what in REQUIRED_RULES:
        if not any(r.direction == direction and code in r.codes for r in rules):
            raise reader.fail(
                "[[limit]]", f"no rule for {what} ({code.value}): core vital signs must alarm"
            )


def _check_rule(rule: LimitRule, reader: _Reader) -> None:
    where = f"[[limit]] '{rule.id}'"
    # The more urgent level must be further out: below the other for "low", above for "high".
    values = [v for _, v in rule.levels]
    ordered = values == sorted(values, reverse=rule.direction == "low")
    if len(set(values)) != len(values) or not ordered:
        side = "below" if rule.direction == "low" else "above"
        raise reader.fail(where, f"the high limit must lie {side} the medium limit")
    for priority, value in rule.levels:
        for code in rule.codes:
            low, high = LIMIT_RANGES.get(code, code.physical_range)
            if not low <= value <= high:
                raise reader.fail(
                    f"{where} {priority.label}",
                    f"{value:g} is outside {low:g} to {high:g} {code.unit} for {code.info.label}, "
                    "so the alarm would never sound as meant",
                )
            floor, ceiling = code.physical_range
            end = value + rule.hysteresis if rule.direction == "low" else value - rule.hysteresis
            if not floor < end < ceiling:
                raise reader.fail(
                    f"{where} hysteresis",
                    f"{rule.hysteresis:g} would end the {priority.label} condition only at "
                    f"{end:g} {code.unit}, which {code.info.label} cannot reach",
                )


class _Reader:
    """Reads one profile, naming the file and key in every complaint."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> ProfileError:
        return ProfileError(f"alarm profile '{self.source}': {where}: {reason}")

    def table(self, data: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(where, f"unknown key '{unknown[0]}'")
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(where, f"'{missing[0]}' is missing")
        return data

    def number(
        self,
        value: Any,
        where: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        why: str = "",
        finite: bool = True,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(where, "must be a number")
        if finite and not math.isfinite(value):
            raise self.fail(where, "must be a finite number")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be at least {minimum:g}")
        if maximum is not None and value > maximum:
            raise self.fail(where, f"must be at most {maximum:g}{why}")
        return float(value)

    def delay(self, value: Any, where: str) -> float:
        return self.number(
            value, where, minimum=0, maximum=MAX_DELAY_S, why=": a longer delay hides the condition"
        )

    def rise(self, value: Any, where: str) -> float:
        return self.number(value, where, minimum=1, maximum=MAX_BASELINE_RISE, why=" mmHg")

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a non-empty string")
        return value

    def description(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("description", "must be a string")
        return value

    def priority(self, value: Any, where: str) -> Priority:
        try:
            return Priority.parse(self.text(value, where))
        except KeyError:
            raise self.fail(where, "must be 'low', 'medium' or 'high'") from None

    def profile(self, data: dict[str, Any]) -> Profile:
        top = self.table(
            data,
            "the file",
            {"name", "description", "behaviour", "limit", "baseline_rise", "technical",
             "nibp_schedule", "apnea", "etco2_rise", "course", "assessment"},
            {"name", "behaviour", "limit", "technical", "nibp_schedule"},
        )  # fmt: skip
        behaviour = self.table(
            top["behaviour"], "[behaviour]", {"audio_pause_s", "latching"}, {"audio_pause_s"}
        )
        # Its range check below refuses inf as well, with the range in the message.
        pause = self.number(behaviour["audio_pause_s"], "[behaviour] audio_pause_s", finite=False)
        low, high = AUDIO_PAUSE_RANGE
        if not low <= pause <= high:
            raise self.fail("[behaviour] audio_pause_s", f"must be {low:g} to {high:g} seconds")
        latching_data = self.table(
            behaviour.get("latching", {}), "[behaviour] latching", {"high", "medium", "low"}, set()
        )
        latching = {p: False for p in Priority}
        for key, value in latching_data.items():
            if not isinstance(value, bool):
                raise self.fail(f"[behaviour] latching {key}", "must be true or false")
            latching[Priority.parse(key)] = value
        limits = self.limits(top["limit"])
        baseline = None
        if "baseline_rise" in top:
            b = self.table(
                top["baseline_rise"],
                "[baseline_rise]",
                {"systolic", "diastolic", "priority"},
                {"systolic", "diastolic", "priority"},
            )
            baseline = BaselineRule(
                self.rise(b["systolic"], "[baseline_rise] systolic"),
                self.rise(b["diastolic"], "[baseline_rise] diastolic"),
                self.priority(b["priority"], "[baseline_rise] priority"),
            )
        return Profile(
            name=self.text(top["name"], "name"),
            text="",
            description=self.description(top.get("description", "")),
            source=self.source,
            audio_pause_s=pause,
            latching=latching,
            limits=limits,
            baseline_rise=baseline,
            technical=self.technical(top["technical"]),
            nibp_schedule=self.schedule(top["nibp_schedule"]),
            apnea=self.apnea(top["apnea"]) if "apnea" in top else None,
            etco2_rise=self.etco2_rise(top["etco2_rise"]) if "etco2_rise" in top else None,
            course=self.course(top["course"]) if "course" in top else None,
            assessment=self.assessment(top["assessment"]) if "assessment" in top else DEFAULT_PLAN,
        )

    def assessment(self, data: Any) -> AssessmentPlan:
        keys = {"dissociation", "every_min", "for_min", "dissociated_from"}
        entry = self.table(data, "[assessment]", keys, set())
        name = entry.get("dissociation", DEFAULT_PLAN.dissociation.key)
        scale = DISSOCIATION_SCALES.get(name) if isinstance(name, str) else None
        if scale is None:
            choices = " or ".join(f"'{k}'" for k in DISSOCIATION_SCALES)
            raise self.fail("[assessment] dissociation", f"must be {choices}")
        low, high = ASSESSMENT_EVERY_RANGE
        every = self.number(
            entry.get("every_min", DEFAULT_PLAN.every_min),
            "[assessment] every_min",
            minimum=low,
            maximum=high,
            why=" minutes",
        )
        for_min = self.number(
            entry.get("for_min", DEFAULT_PLAN.for_min),
            "[assessment] for_min",
            minimum=every,
            maximum=MAX_SCHEDULE_MIN,
            why=" minutes: at least one score after the dose",
        )
        default_from = DEFAULT_PLAN.dissociated_from if scale.key == "rating" else 5
        cut = self.number(
            entry.get("dissociated_from", default_from),
            "[assessment] dissociated_from",
            minimum=1,
            maximum=scale.maximum,
            why=f" on the {scale.name} scale",
        )
        if cut != int(cut):
            raise self.fail("[assessment] dissociated_from", "must be a whole number")
        return AssessmentPlan(scale, every, for_min, int(cut))

    def course(self, data: Any) -> CourseRule:
        keys = {"rise_systolic", "high_alarm"}
        entry = self.table(data, "[course]", keys, keys)
        low, high = COURSE_RISE_RANGE
        rise = self.number(
            entry["rise_systolic"],
            "[course] rise_systolic",
            minimum=low,
            maximum=high,
            why=" mmHg: a rise the course could never or would always note",
        )
        if not isinstance(entry["high_alarm"], bool):
            raise self.fail("[course] high_alarm", "must be true or false")
        return CourseRule(rise, entry["high_alarm"])

    def apnea(self, data: Any) -> ApneaRule:
        keys = {"priority", "after_s"}
        entry = self.table(data, "[apnea]", keys, keys)
        priority = self.priority(entry["priority"], "[apnea] priority")
        if priority is Priority.LOW:
            raise self.fail(
                "[apnea] priority", "must be 'medium' or 'high': no breath is an emergency"
            )
        low, high = APNEA_RANGE_S
        after = self.number(
            entry["after_s"],
            "[apnea] after_s",
            minimum=low,
            maximum=high,
            why=" s: the patient is hypoxaemic before a longer apnoea alarms",
        )
        return ApneaRule(priority, after)

    def etco2_rise(self, data: Any) -> Etco2RiseRule:
        keys = {"rise", "priority", "delay_s"}
        entry = self.table(data, "[etco2_rise]", keys, keys)
        low, high = ETCO2_RISE_RANGE
        return Etco2RiseRule(
            self.number(
                entry["rise"],
                "[etco2_rise] rise",
                minimum=low,
                maximum=high,
                why=" mmHg: the EtCO2-high limit alarms long before",
            ),
            self.priority(entry["priority"], "[etco2_rise] priority"),
            self.delay(entry["delay_s"], "[etco2_rise] delay_s"),
        )

    def limits(self, data: Any) -> tuple[LimitRule, ...]:
        if not isinstance(data, list) or not data:
            raise self.fail("[[limit]]", "at least one limit is needed")
        rules: list[LimitRule] = []
        for i, entry in enumerate(data, 1):
            where = f"[[limit]] #{i}"
            entry = self.table(
                entry,
                where,
                {"id", "message", "codes", "direction", "medium", "high", "low", "hysteresis",
                 "delay_s"},
                {"id", "message", "codes", "direction"},
            )  # fmt: skip
            rule_id = self.text(entry["id"], f"{where} id")
            where = f"[[limit]] '{rule_id}'"
            if any(r.id == rule_id for r in rules):
                raise self.fail(where, "the id is used twice")
            codes = entry["codes"]
            if (
                not isinstance(codes, list)
                or not codes
                or not all(isinstance(c, str) for c in codes)
            ):
                raise self.fail(f"{where} codes", "must be a list of measurement codes")
            try:
                parsed_codes = tuple(Code(c) for c in codes)
            except ValueError:
                bad = next(c for c in codes if c not in {k.value for k in Code})
                raise self.fail(f"{where} codes", f"unknown measurement code '{bad}'") from None
            direction = entry["direction"]
            if direction not in ("low", "high"):
                raise self.fail(f"{where} direction", "must be 'low' or 'high'")
            levels = tuple(
                (p, self.number(entry[p.label], f"{where} {p.label}"))
                for p in (Priority.LOW, Priority.MEDIUM, Priority.HIGH)
                if p.label in entry
            )
            if not levels:
                raise self.fail(where, "needs at least one of 'low', 'medium', 'high'")
            rules.append(
                LimitRule(
                    rule_id,
                    self.text(entry["message"], f"{where} message"),
                    parsed_codes,
                    direction,
                    levels,
                    self.number(entry.get("hysteresis", 0), f"{where} hysteresis", minimum=0),
                    self.delay(entry.get("delay_s", 0), f"{where} delay_s"),
                )
            )
        _check_limits(tuple(rules), self)
        return tuple(rules)

    def technical(self, data: Any) -> dict[TechnicalCondition, TechnicalRule]:
        names = {c.profile_key for c in TechnicalCondition}
        # The clinic-bus conditions came later: a profile written before them still loads.
        table = dict(self.table(data, "[technical]", names, names - set(_LATER_TECHNICAL)))
        for key, entry in _LATER_TECHNICAL.items():
            table.setdefault(key, entry)
        rules = {}
        for condition in TechnicalCondition:
            where = f"[technical] {condition.profile_key}"
            keys = {"priority", "delay_s", "grace_s"}
            required = {"priority"}
            if condition is TechnicalCondition.NO_DATA:
                keys.add("timeout_s")
            if condition is TechnicalCondition.NO_CO2_SIGNAL:
                keys |= {"flat_s", "flat_mmhg"}
                required |= {"flat_s", "flat_mmhg"}
            entry = self.table(table[condition.profile_key], where, keys, required)
            low, high = NO_DATA_TIMEOUT_RANGE
            flat_low, flat_high = FLAT_RANGE_S
            mmhg_low, mmhg_high = FLAT_MMHG_RANGE
            rules[condition] = TechnicalRule(
                self.priority(entry["priority"], f"{where} priority"),
                self.delay(entry.get("delay_s", 0), f"{where} delay_s"),
                self.number(
                    entry.get("grace_s", 0), f"{where} grace_s", minimum=0, maximum=MAX_GRACE_S
                ),
                self.number(
                    entry.get("timeout_s", DEFAULT_NO_DATA_TIMEOUT_S),
                    f"{where} timeout_s",
                    minimum=low,
                    maximum=high,
                ),
                self.number(
                    entry.get("flat_s", 0),
                    f"{where} flat_s",
                    minimum=flat_low if "flat_s" in entry else 0,
                    maximum=flat_high,
                    why=": a longer wait hides the condition",
                ),
                self.number(
                    entry.get("flat_mmhg", 0),
                    f"{where} flat_mmhg",
                    minimum=mmhg_low if "flat_mmhg" in entry else 0,
                    maximum=mmhg_high,
                    why=" mmHg: a shallow breath would count as flat",
                ),
            )
        return rules

    def schedule(self, data: Any) -> tuple[tuple[float, float], ...]:
        table = self.table(data, "[nibp_schedule]", {"segments"}, {"segments"})
        segments = table["segments"]
        if not isinstance(segments, list) or not segments:
            raise self.fail("[nibp_schedule] segments", "must be a non-empty list")
        out: list[tuple[float, float]] = []
        last_until = 0.0
        for i, seg in enumerate(segments, 1):
            where = f"[nibp_schedule] segment {i}"
            seg = self.table(seg, where, {"until_min", "every_min"}, {"every_min"})
            every = self.number(
                seg["every_min"], f"{where} every_min", minimum=1, maximum=MAX_EVERY_MIN
            )
            if "until_min" not in seg and i != len(segments):
                raise self.fail(where, "only the last segment may leave out 'until_min'")
            until = math.inf  # the last segment, open-ended
            if "until_min" in seg:
                until = self.number(
                    seg["until_min"], f"{where} until_min", maximum=MAX_SCHEDULE_MIN
                )
            if until <= last_until:
                raise self.fail(f"{where} until_min", "must be later than the segment before")
            out.append((until, every))
            last_until = until
        return tuple(out)
