"""KAP-session scenarios: TOML files that script one simulated patient's session.

A scenario is data, not code, so a clinician can write a new course (a slower surge, a late
desaturation) without touching the model. Files are validated strictly: a typo in a key would
otherwise silently fall back to a default and the session would not show what its author meant.
Every problem is reported as one :class:`~kapmonitor.core.errors.ScenarioError` sentence naming the
file and the place in it.

Times in ``[nibp]`` and ``[[faults]]`` are minutes relative to the dose (``dose_at_min``), the
way a KAP protocol is written ("BP at 40 min"); a scenario without a dose counts from its start.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from kapmonitor.core.errors import ScenarioError

#: NIBP reading modes a scenario may list as extra readings.
EXTRA_MODES = ("stat", "manual")

#: Fault and course kinds, with the keys each accepts beyond kind, start_min and duration_min.
#: Values are (required, optional).
FAULT_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "desaturation": (("nadir",), ("ramp_min", "recover_min")),
    "bradycardia": (("heart_rate",), ("ramp_min", "recover_min")),
    "severe-hypertension": (
        ("systolic_rise", "diastolic_rise"),
        ("heart_rate_rise", "ramp_min", "recover_min"),
    ),
    "probe-off": ((), ()),
    "artifact": ((), ("burst_s", "gap_s")),
    "nibp-failed": ((), ()),
    "unplug": ((), ()),
    # Breathing (issue 17): the rate falls to resp_rate and EtCO2 climbs by etco2_rise (opioid
    # or benzodiazepine on board, a fast IV dose); no breath at all; the CO2 line off.
    "respiratory-depression": (("resp_rate", "etco2_rise"), ("ramp_min", "recover_min")),
    "apnea": ((), ()),
    "sampling-line-off": ((), ()),
}
#: Kinds that are a smooth course (ramp in, hold, recover) rather than an on/off window.
COURSE_KINDS = frozenset(
    {"desaturation", "bradycardia", "severe-hypertension", "respiratory-depression"}
)


@dataclass(frozen=True)
class Spread:
    """A per-session draw: normal(mean, sd) clipped to [min, max], so every seed differs."""

    mean: float
    sd: float = 0.0
    min: float = -math.inf
    max: float = math.inf

    def at(self, z: float) -> float:
        """The value ``z`` standard deviations from the mean, clipped to [min, max]."""
        return float(min(max(self.mean + self.sd * z, self.min), self.max))


@dataclass(frozen=True)
class Baseline:
    """The patient before the dose."""

    heart_rate: Spread
    spo2: Spread
    systolic: Spread
    diastolic: Spread
    perfusion_index: Spread
    #: Breathing, optional in a file (older scenarios have none): breaths a minute and EtCO2
    #: (mmHg) of a calm adult at rest (normal 12-20 /min, 35-45 mmHg).
    resp_rate: Spread = Spread(14.0, 2.0, 10.0, 20.0)
    etco2: Spread = Spread(38.0, 2.5, 33.0, 44.0)


@dataclass(frozen=True)
class Response:
    """The drug's effect: rises at the peak, the peak time after the dose, and how fast it goes."""

    systolic_rise: Spread
    diastolic_rise: Spread
    heart_rate_rise: Spread
    peak_min: Spread
    resolve_min: float  #: after the peak, the rise is down to 10 % of its size by this many minutes


@dataclass(frozen=True)
class NibpSegment:
    """Auto-cycle interval ``every_min`` in force until ``until_min`` (relative to the dose)."""

    until_min: float
    every_min: float


@dataclass(frozen=True)
class NibpExtra:
    """A reading started by hand (``manual``) or a STAT reading, at ``at_min``."""

    at_min: float
    mode: str


@dataclass(frozen=True)
class NibpPlan:
    """When the cuff measures and how precisely."""

    schedule: tuple[NibpSegment, ...]
    predose_readings: int = 0
    predose_every_min: float = 3.0
    measure_s: float = 35.0  #: inflation to result; a reading is stamped when the cuff finished
    noise_sd: float = 4.0  #: measurement noise, mmHg
    extra: tuple[NibpExtra, ...] = ()


@dataclass(frozen=True)
class Fault:
    """A timed course or fault; times are minutes relative to the dose.

    Only the fields of its kind are set (see :data:`FAULT_KEYS`); the rest stay ``None``.
    """

    kind: str
    start_min: float
    duration_min: float
    nadir: float | None = None  #: desaturation: SpO2 % held at the bottom
    heart_rate: float | None = None  #: bradycardia: heart rate held at the bottom
    systolic_rise: float | None = None  #: severe-hypertension: extra mmHg at the top
    diastolic_rise: float | None = None
    heart_rate_rise: float | None = None
    ramp_min: float | None = None  #: courses: time to reach the hold value
    recover_min: float | None = None  #: courses: time to come back
    burst_s: float | None = None  #: artifact: mean length of a motion burst
    gap_s: float | None = None  #: artifact: mean quiet time between bursts
    resp_rate: float | None = None  #: respiratory-depression: breaths a minute at the bottom
    etco2_rise: float | None = None  #: respiratory-depression: mmHg EtCO2 climbs at the top

    @property
    def end_min(self) -> float:
        return self.start_min + self.duration_min


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario file."""

    name: str
    description: str
    duration_min: float
    dose_at_min: float | None
    baseline: Baseline
    response: Response | None
    nibp: NibpPlan
    faults: tuple[Fault, ...] = ()
    source: str = field(default="", compare=False)  #: the file it came from, for messages

    @property
    def t0_min(self) -> float:
        """Where relative times count from: the dose, or the start without one."""
        return self.dose_at_min if self.dose_at_min is not None else 0.0

    def faults_of(self, kind: str) -> tuple[Fault, ...]:
        return tuple(f for f in self.faults if f.kind == kind)


# --- loading -------------------------------------------------------------------------------------


def scenario_names() -> list[str]:
    """The scenarios shipped with kapmonitor, sorted."""
    folder = resources.files("devices.sim") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    text = str(name_or_path)
    looks_like_path = text.endswith(".toml") or "/" in text or "\\" in text
    if not looks_like_path:
        folder = resources.files("devices.sim") / "scenarios"
        resource = folder / f"{text}.toml"
        if not resource.is_file():
            available = ", ".join(scenario_names())
            raise ScenarioError(f"unknown scenario '{text}' (available: {available})")
        return _parse_bytes(resource.read_bytes(), f"{text}.toml")
    path = Path(text)
    if not path.is_file():
        raise ScenarioError(f"scenario file '{text}' does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"scenario file '{text}' cannot be read: {exc.strerror}") from None
    return _parse_bytes(data, text)


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse scenario TOML text; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario file '{source}' is not valid TOML: {exc}") from None
    return _Parser(source).scenario(doc)


def _parse_bytes(data: bytes, source: str) -> Scenario:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"scenario file '{source}' is not UTF-8 text") from None
    return parse_scenario(text, source)


# --- validation ----------------------------------------------------------------------------------


class _Parser:
    """Turns a TOML document into a :class:`Scenario`, failing on the first problem found."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> NoReturn:
        prefix = f"scenario file '{self.source}': "
        raise ScenarioError(prefix + (f"{where}: {problem}" if where else problem))

    def keys(
        self,
        table: dict[str, Any],
        where: str,
        required: tuple[str, ...],
        optional: tuple[str, ...],
    ) -> None:
        allowed = (*required, *optional)
        for key in table:
            if key not in allowed:
                self.fail(where, f"unknown key '{key}' (expected {_one_of(allowed)})")
        for key in required:
            if key not in table:
                self.fail(where, f"missing required key '{key}'")

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, "must be a table")
        return value

    def number(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        *,
        low: float | None = None,
        low_open: bool = False,
        high: float | None = None,
        default: float | None = None,
    ) -> float:
        if key not in table:
            if default is None:
                self.fail(where, f"missing required key '{key}'")
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.fail(where, f"'{key}' must be a number")
        value = float(value)
        if low is not None and (value <= low if low_open else value < low):
            self.fail(where, f"'{key}' must be {'>' if low_open else '>='} {_fmt(low)}")
        if high is not None and value > high:
            self.fail(where, f"'{key}' must be <= {_fmt(high)}")
        return value

    def string(self, table: dict[str, Any], key: str, where: str) -> str:
        value = table[key]
        if not isinstance(value, str):
            self.fail(where, f"'{key}' must be a string")
        return value

    def spread(
        self, table: dict[str, Any], key: str, where: str, *, low: float = -math.inf
    ) -> Spread:
        here = f"{where} {key}"
        value = table[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            fixed = self.number(table, key, where, low=low if math.isfinite(low) else None)
            return Spread(fixed)
        if not isinstance(value, dict):
            self.fail(here, "must be a number or a table like { mean = 72, sd = 6 }")
        self.keys(value, here, ("mean", "sd"), ("min", "max"))
        mean = self.number(value, "mean", here)
        sd = self.number(value, "sd", here, low=0)
        lo = self.number(value, "min", here, default=-math.inf)
        hi = self.number(value, "max", here, default=math.inf)
        if lo > hi:
            self.fail(here, f"'min' ({_fmt(lo)}) is above 'max' ({_fmt(hi)})")
        if not lo <= mean <= hi:
            self.fail(here, f"'mean' ({_fmt(mean)}) lies outside [min, max]")
        if mean < low:
            self.fail(here, f"'mean' must be >= {_fmt(low)}")
        return Spread(mean, sd, lo, hi)

    # -- sections --

    def scenario(self, doc: dict[str, Any]) -> Scenario:
        self.keys(
            doc,
            "",
            ("name", "duration_min", "baseline", "nibp"),
            ("description", "dose_at_min", "response", "faults"),
        )
        name = self.string(doc, "name", "")
        if not name.strip():
            self.fail("", "'name' must not be empty")
        description = self.string(doc, "description", "") if "description" in doc else ""
        duration = self.number(doc, "duration_min", "", low=0, low_open=True)
        dose: float | None = None
        if "dose_at_min" in doc:
            dose = self.number(doc, "dose_at_min", "", low=0)
            if dose >= duration:
                self.fail("", f"'dose_at_min' ({_fmt(dose)}) must be before the end of the session")
        baseline = self.baseline(self.table(doc["baseline"], "[baseline]"))
        response = None
        if "response" in doc:
            if dose is None:
                self.fail("[response]", "a drug response needs 'dose_at_min'")
            response = self.response(self.table(doc["response"], "[response]"))
        elif dose is not None:
            self.fail("", "a scenario with 'dose_at_min' needs a [response] table")
        t0 = dose if dose is not None else 0.0
        nibp = self.nibp(self.table(doc["nibp"], "[nibp]"), dose, t0, duration)
        faults: list[Fault] = []
        raw_faults = doc.get("faults", [])
        if not isinstance(raw_faults, list):
            self.fail("", "'faults' must be a list of [[faults]] tables")
        for i, raw in enumerate(raw_faults, 1):
            faults.append(self.fault(raw, i, t0, duration))
        return Scenario(
            name=name,
            description=description,
            duration_min=duration,
            dose_at_min=dose,
            baseline=baseline,
            response=response,
            nibp=nibp,
            faults=tuple(faults),
            source=self.source,
        )

    def baseline(self, table: dict[str, Any]) -> Baseline:
        names = ("heart_rate", "spo2", "systolic", "diastolic", "perfusion_index")
        breathing = ("resp_rate", "etco2")
        self.keys(table, "[baseline]", names, breathing)
        spreads = {n: self.spread(table, n, "[baseline]", low=0) for n in names}
        spreads.update(
            {n: self.spread(table, n, "[baseline]", low=0) for n in breathing if n in table}
        )
        if spreads["spo2"].mean > 100:
            self.fail("[baseline] spo2", "'mean' must be <= 100")
        if spreads["diastolic"].mean >= spreads["systolic"].mean:
            self.fail("[baseline]", "the diastolic mean must be below the systolic mean")
        return Baseline(**spreads)

    def response(self, table: dict[str, Any]) -> Response:
        where = "[response]"
        self.keys(
            table,
            where,
            ("systolic_rise", "diastolic_rise", "peak_min", "resolve_min"),
            ("heart_rate_rise",),
        )
        peak = self.spread(table, "peak_min", where, low=0.5)
        resolve = self.number(table, "resolve_min", where, low=0, low_open=True)
        hr = self.spread(table, "heart_rate_rise", where) if "heart_rate_rise" in table else None
        return Response(
            systolic_rise=self.spread(table, "systolic_rise", where),
            diastolic_rise=self.spread(table, "diastolic_rise", where),
            heart_rate_rise=hr or Spread(0.0),
            peak_min=peak,
            resolve_min=resolve,
        )

    def nibp(
        self, table: dict[str, Any], dose: float | None, t0: float, duration: float
    ) -> NibpPlan:
        where = "[nibp]"
        self.keys(
            table,
            where,
            ("schedule",),
            ("predose_readings", "predose_every_min", "measure_s", "noise_sd", "extra"),
        )
        count = table.get("predose_readings", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.fail(where, "'predose_readings' must be a whole number >= 0")
        every = self.number(table, "predose_every_min", where, low=0, low_open=True, default=3.0)
        if count and dose is None:
            self.fail(where, "'predose_readings' needs 'dose_at_min'")
        if count and dose is not None and dose - count * every < 0:
            self.fail(
                where,
                f"{count} predose readings {_fmt(every)} min apart need 'dose_at_min' >= "
                f"{_fmt(count * every)}",
            )
        measure_s = self.number(table, "measure_s", where, low=0, low_open=True, default=35.0)
        noise_sd = self.number(table, "noise_sd", where, low=0, default=4.0)
        schedule = self.schedule(table["schedule"])
        extra: list[NibpExtra] = []
        raw_extra = table.get("extra", [])
        if not isinstance(raw_extra, list):
            self.fail(where, "'extra' must be a list of [[nibp.extra]] tables")
        for i, raw in enumerate(raw_extra, 1):
            here = f"[[nibp.extra]] #{i}"
            item = self.table(raw, here)
            self.keys(item, here, ("at_min", "mode"), ())
            at = self.number(item, "at_min", here)
            mode = self.string(item, "mode", here)
            if mode not in EXTRA_MODES:
                self.fail(here, f"unknown mode '{mode}' (expected {_one_of(EXTRA_MODES)})")
            if not 0 <= t0 + at < duration:
                self.fail(here, f"'at_min' ({_fmt(at)}) lies outside the session")
            extra.append(NibpExtra(at, mode))
        return NibpPlan(
            schedule=schedule,
            predose_readings=count,
            predose_every_min=every,
            measure_s=measure_s,
            noise_sd=noise_sd,
            extra=tuple(extra),
        )

    def schedule(self, raw: Any) -> tuple[NibpSegment, ...]:
        if not isinstance(raw, list):
            self.fail("[nibp]", "'schedule' must be a list of { until_min, every_min } tables")
        segments: list[NibpSegment] = []
        last_until = 0.0
        for i, item in enumerate(raw, 1):
            here = f"[nibp] schedule #{i}"
            item = self.table(item, here)
            final = i == len(raw)
            self.keys(
                item,
                here,
                ("every_min",) if final else ("every_min", "until_min"),
                ("until_min",) if final else (),
            )
            every = self.number(item, "every_min", here, low=0, low_open=True)
            until = self.number(item, "until_min", here, default=math.inf)
            if until <= last_until:
                self.fail(here, "'until_min' must be later than the previous segment's")
            segments.append(NibpSegment(until, every))
            last_until = until
        return tuple(segments)

    def fault(self, raw: Any, index: int, t0: float, duration: float) -> Fault:
        here = f"[[faults]] #{index}"
        item = self.table(raw, here)
        if "kind" not in item:
            self.fail(here, "missing required key 'kind'")
        kind = self.string(item, "kind", here)
        if kind not in FAULT_KEYS:
            self.fail(here, f"unknown kind '{kind}' (expected {_one_of(sorted(FAULT_KEYS))})")
        here = f"{here} ({kind})"
        required, optional = FAULT_KEYS[kind]
        self.keys(item, here, ("kind", "start_min", "duration_min", *required), optional)
        start = self.number(item, "start_min", here)
        length = self.number(item, "duration_min", here, low=0, low_open=True)
        if not 0 <= t0 + start < duration:
            self.fail(here, f"'start_min' ({_fmt(start)}) lies outside the session")
        values: dict[str, float] = {}
        for key in (*required, *optional):
            if key not in item:
                continue
            bounds: dict[str, Any] = {"low": 0}
            if key == "nadir":
                bounds = {"low": 50, "high": 100}
            elif key == "heart_rate":
                bounds = {"low": 20, "high": 250}
            elif key == "resp_rate":
                bounds = {"low": 0, "high": 60}
            elif key == "etco2_rise":
                bounds = {"low": 0, "high": 80}
            elif key in ("burst_s", "gap_s"):
                bounds = {"low": 0, "low_open": True}
            values[key] = self.number(item, key, here, **bounds)
        if kind in COURSE_KINDS:
            default = min(1.0, length / 3)
            values.setdefault("ramp_min", default)
            values.setdefault("recover_min", default)
            if values["ramp_min"] + values["recover_min"] > length:
                self.fail(here, "'ramp_min' + 'recover_min' must not exceed 'duration_min'")
        return Fault(kind=kind, start_min=start, duration_min=length, **values)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _one_of(names: Any) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else "one of: " + ", ".join(names)
