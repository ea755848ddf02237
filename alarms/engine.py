"""The alarm engine: which alarm conditions exist, at what priority, and what the signals do.

It is plain Python driven only by the items it is given and the times they carry, so the same
input always gives the same alarms: live (fed by :class:`alarms.service.AlarmService` from the
hub) and offline (``kapmonitor alarms replay``). It never reads a clock.

Conditions and their life:

- A condition is *pending* from the first value beyond its limit; it becomes *active* once it has
  lasted its condition delay. A condition that clears before its delay never alarms.
- An active condition ends when the value is back inside its limit by the hysteresis.
- High-priority physiological alarms latch (per profile): when the condition ends, the alarm
  stays on screen and sounding until a person acknowledges it.
- Acknowledging an active alarm silences it while its condition lasts; the visual signal stays.
- Audio pause silences every alarm for the profile's pause (1-3 min), never longer; a new
  condition of higher priority than any active at the pause sounds at once.

Technical conditions from a value's flags (sensor off, poor signal) belong to the device *and*
the parameter: on a multiparameter monitor an ECG heart rate without flags must not end the
SpO2 probe-off condition. A device's silence is seen from the items' own time: once a device
has sent a measurement, no valid measurement for the profile's no-data timeout is the "no-data"
condition, live and in replay alike; the driver's own NO_DATA event raises the same condition
(never twice), and while the device is disconnected only "disconnected" is shown.

Breathing (issue 17, :mod:`alarms.breathing`): the rate and EtCO2 limits are ordinary limit
rules. Apnoea is one condition per device, present while any of its breathing values says no
breath (the no-breath flag, a rate of 0, a breathless capnogram), ended by one that says it
breathes, and only interrupted by values that say nothing (missing, line off); it alarms once
it has lasted the profile's apnoea time. A device that sends no breathing values never has it.
The sampling line off or blocked (the device's flags) or a capnogram flat while SpO2 and pulse
read is the technical "no CO2 signal", never apnoea; a value flagged so is missing to every
breathing rule. EtCO2's pre-dose baseline is the mean of the EtCO2 values before the dose, set
at the dose as the NIBP baseline is.

A value the alarm system cannot trust never meets a limit: a value flagged out-of-range, outside
its code's physical range, or not finite is no evidence either way. It neither starts, continues
nor ends a condition: ending an alarm on noise would be the unsafe error, and so would noise that
keeps restarting the condition delay of a real desaturation it is interleaved with. (A *missing*
value, None with its reason such as sensor off, does interrupt a pending condition.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alarms.breathing import (
    APNEA,
    BREATHING_CODES,
    CO2_CODES,
    ETCO2_RISE,
    LINE,
    FlatWatch,
    no_signal,
    possible,
    sample_range,
    says_no_breath,
)
from alarms.model import (
    Alarm,
    AlarmKind,
    AlarmState,
    AudioDue,
    LogEntry,
    LogEvent,
    Priority,
    TechnicalCondition,
)
from alarms.profile import LimitRule, Profile
from kapmonitor.core.assessment import SCORE_CODES
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    DeviceValue,
    Flag,
    Flags,
    Item,
    Measurement,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.core.schedule import latest_due

SESSION = "session"
#: Items that show a device is measuring: each restarts its silence watch.
MEASUREMENTS = (Numeric, NibpReading, WaveformBlock, DeviceValue)
#: Items that start the watch: the periodic ones (a cuff's readings come minutes apart).
PERIODIC = (Numeric, WaveformBlock, DeviceValue)
LOST = frozenset({ConnectionState.DISCONNECTED, ConnectionState.RECONNECTING})
QUALITY_FLAGS = frozenset({Flag.SEARCHING, Flag.ARTIFACT, Flag.QUESTIONABLE, Flag.LOW_PERFUSION})
#: The oximeter values whose presence tells a flat capnogram from a patient in trouble.
OXIMETRY = {Code.SPO2: "spo2", Code.PULSE_RATE: "pulse", Code.HEART_RATE: "pulse"}


@dataclass
class _Condition:
    """One condition's state: pending, active, or latched after it ended."""

    id: str
    condition: str
    message: str
    priority: Priority
    kind: AlarmKind
    source: str
    code: str | None
    limit: float | None
    delay_s: float
    latching: bool
    group: str  #: conditions of one group show as one alarm: the most urgent
    pending_since: Stamp | None = None
    started: Stamp | None = None
    value: float | None = None
    active: bool = False
    latched: bool = False
    acknowledged: bool = False

    @property
    def since(self) -> Stamp:
        """When the alarm began: asked only of a condition shown (active or latched)."""
        assert self.started is not None, f"{self.id} is shown but never became active"
        return self.started


@dataclass
class _Pause:
    until: float  #: monotonic seconds
    priority: Priority  #: alarms up to this priority stay silent (the most urgent sounding)
    operator: str


@dataclass
class _Watch:
    """One device's silence watch."""

    since: float  #: mono time of its last valid measurement or (re)connection
    driver_no_data: bool = False  #: its driver reported NO_DATA
    lost: bool = False  #: disconnected or reconnecting: that condition is the one shown
    no_data: bool = False  #: whether the no-data condition is present now


@dataclass
class _Baseline:
    readings: list[tuple[float, float]] = field(default_factory=list)
    mean: tuple[float, float] | None = None  #: (systolic, diastolic), set at the dose
    etco2_sum: float = 0.0  #: the pre-dose EtCO2 values (a stream: their sum and number)
    etco2_n: int = 0
    etco2: float | None = None  #: their mean, set at the dose


@dataclass
class _Breathing:
    """One device's breathing, as its values last said it."""

    no_breath: dict[Code, bool | None] = field(default_factory=dict)  #: per code
    no_signal: dict[Code, str | None] = field(default_factory=dict)  #: per code: why, if so
    flat: FlatWatch = field(default_factory=FlatWatch)
    capnograph: bool = False  #: it measures CO2
    away_rate: bool = False  #: it counts an airway rate of its own (then MDC_RESP_RATE is the
    #: chest's, as on an IntelliVue)

    @property
    def airway_rate(self) -> bool:
        """Its MDC_RESP_RATE is counted in the airway (a capnograph without a separate one)."""
        return self.capnograph and not self.away_rate


class AlarmEngine:
    """Turns items into alarm conditions under one :class:`~alarms.profile.Profile`."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.log: list[LogEntry] = []
        self.now: Stamp | None = None
        self.dose: Stamp | None = None
        self._conditions: dict[str, _Condition] = {}  #: by id, as the screen names them
        #: The same conditions found by what they watch, without building an id per value.
        self._limit_conditions: dict[tuple[str, Priority, str, Code], _Condition] = {}
        self._technical_conditions: dict[
            tuple[TechnicalCondition, str, Code | None], _Condition
        ] = {}
        self._pause: _Pause | None = None
        self._baseline = _Baseline()
        #: The latest successful reading after the dose (mono): the overdue check asks only
        #: whether one came late enough, so the latest is all it needs.
        self._latest_nibp = -math.inf
        #: The latest value per (limit, device, code), to judge it again when a limit changes.
        self._last_values: dict[tuple[str, str, Code], float | None] = {}
        self._watches: dict[str, _Watch] = {}
        self._breathing: dict[str, _Breathing] = {}
        self._oximetry: dict[str, float] = {}  #: "spo2", "pulse": mono time of the latest value
        self._new: list[LogEntry] = []

    # --- input ----------------------------------------------------------------------------

    def process(self, item: Item) -> list[LogEntry]:
        """Take one item; return the log entries it caused."""
        now = self._advance(item.stamp)
        if isinstance(item, MEASUREMENTS):
            self._measured(item)
        if isinstance(item, Numeric):
            self._numeric(item)
        elif isinstance(item, WaveformBlock):
            if item.code is Code.CO2:
                self._capnogram(item)
        elif isinstance(item, NibpReading):
            self._nibp(item)
        elif isinstance(item, DeviceEvent):
            self._device_event(item)
        elif isinstance(item, SessionEvent) and item.kind is SessionEventKind.DOSE:
            self._dose(item.stamp, now)
        return self._flush()

    def tick(self, stamp: Stamp) -> list[LogEntry]:
        """Let time pass with no new item: delays elapse, pauses end, readings fall overdue."""
        self._advance(stamp)
        return self._flush()

    def _advance(self, stamp: Stamp) -> Stamp:
        """Move the engine's time to ``stamp`` (never back) and let it pass; the time now."""
        # Items from several devices interleave: time only moves forward.
        if self.now is None or stamp.mono > self.now.mono:
            self.now = stamp
        now = self.now
        self._check_silence(now)
        # What fell due between two inputs is stamped when it fell due, not when it was noticed,
        # so a replay with gaps in its input logs what the live monitor would have logged.
        for cond in self._conditions.values():  # activating adds no condition
            if (
                not cond.active
                and cond.pending_since is not None
                and now.mono - cond.pending_since.mono >= cond.delay_s
            ):
                self._activate(cond, cond.pending_since.shifted(cond.delay_s), cond.value)
        if self._pause is not None and now.mono >= self._pause.until:
            ended = now.shifted(self._pause.until - now.mono)
            self._pause = None
            self._log(LogEntry(ended, LogEvent.AUDIO_RESUMED, text="audio pause ended"))
        self._check_nibp_overdue()
        return now

    def _flush(self) -> list[LogEntry]:
        new, self._new = self._new, []
        return new

    # --- physiological ----------------------------------------------------------------------

    def _numeric(self, item: Numeric) -> None:
        code, source = item.code, item.source
        why = None
        if code in BREATHING_CODES:
            breathing = self._breathing_of(source, capnograph=code in CO2_CODES)
            breathing.away_rate |= code is Code.AWAY_RESP_RATE
            why = no_signal(code, item.flags, breathing.airway_rate)
        self._technical_flags(source, code, item.flags, item.stamp, line=why is not None)
        value = trusted(code, item.value, item.flags)
        impossible = value is None and item.value is not None
        if code in BREATHING_CODES:
            self._co2_signal(source, code, why, item.stamp)
            if impossible:
                return
            if why is not None:
                value = None  # a line that is off or blocked measures nothing of the patient
            self._no_breath(source, code, says_no_breath(code, value, item.flags), item.stamp)
            if code is Code.CO2_ET:
                self._etco2(source, value, item.flags, item.stamp)
        elif impossible:
            return  # impossible: no evidence either way (see the module's docstring)
        elif value is not None and code in OXIMETRY:
            self._oximetry[OXIMETRY[code]] = item.stamp.mono
        self._limits(source, code, value, item.stamp)

    def _nibp(self, item: NibpReading) -> None:
        failed = Flag.MEASUREMENT_FAILED in item.flags or item.systolic is None
        self._technical(
            TechnicalCondition.NIBP_FAILED, item.source, present=failed, stamp=item.stamp
        )
        if failed:
            return
        for code, value in item.parts():
            judged = trusted(code, value, item.flags)
            if judged is not None or value is None:
                self._limits(item.source, code, judged, item.stamp)
        systolic = trusted(Code.NIBP_SYS, item.systolic, item.flags)
        diastolic = trusted(Code.NIBP_DIA, item.diastolic, item.flags)
        if systolic is None or diastolic is None:
            return  # an untrusted reading neither sets the baseline nor rises from it
        if self.dose is None:
            self._baseline.readings.append((systolic, diastolic))
        else:
            self._latest_nibp = max(self._latest_nibp, item.stamp.mono)
            self._check_nibp_overdue()  # this reading may be the one that was overdue
            self._baseline_rise(item, systolic, diastolic)

    def _limits(self, source: str, code: Code, value: float | None, stamp: Stamp) -> None:
        for rule in self.profile.limits_by_code.get(code, ()):
            for priority, limit in rule.levels:
                cond = self._condition_for_limit(rule, priority, limit, source, code)
                if value is None:
                    cond.pending_since = None  # no value: the condition cannot be said to last
                elif cond.active:
                    if rule.back_inside(value, limit):
                        self._end(cond, stamp)
                else:
                    self._observe(cond, rule.beyond(value, limit), value, stamp)
            self._last_values[(rule.id, source, code)] = value

    def _condition_for_limit(
        self, rule: LimitRule, priority: Priority, limit: float, source: str, code: Code
    ) -> _Condition:
        # Heart rate (ECG) and pulse rate (pleth) of one device are separate conditions: each
        # normal value of one must not end what the other began.
        cond = self._limit_conditions.get((rule.id, priority, source, code))
        if cond is None:
            key = f"{rule.id}/{priority.label}@{source}/{code.value}"
            cond = _Condition(
                id=key,
                condition=rule.id,
                message=rule.message,
                priority=priority,
                kind=AlarmKind.PHYSIOLOGICAL,
                source=source,
                code=code.value,
                limit=limit,
                delay_s=rule.delay_s,
                latching=self.profile.latching[priority],
                group=f"{rule.id}@{source}/{code.value}",
            )
            self._conditions[key] = self._limit_conditions[rule.id, priority, source, code] = cond
        else:
            cond.limit = limit  # a limit changed during the session applies from now on
        return cond

    def _baseline_rise(self, item: NibpReading, systolic: float, diastolic: float) -> None:
        rule = self.profile.baseline_rise
        mean = self._baseline.mean
        if rule is None or mean is None:
            return
        for name, code, value, ref, limit in (
            ("systolic", Code.NIBP_SYS, systolic, mean[0], rule.systolic),
            ("diastolic", Code.NIBP_DIA, diastolic, mean[1], rule.diastolic),
        ):
            key = f"bp-rise-{name}@{item.source}"
            cond = self._conditions.get(key)
            if cond is None:
                cond = self._conditions[key] = _Condition(
                    id=key,
                    condition=f"bp-rise-{name}",
                    message=f"NIBP {name} risen from the pre-dose baseline",
                    priority=rule.priority,
                    kind=AlarmKind.PHYSIOLOGICAL,
                    source=item.source,
                    code=code.value,
                    limit=limit,
                    delay_s=0.0,
                    latching=self.profile.latching[rule.priority],
                    group=key,
                )
            self._observe(cond, value - ref >= limit, round(value - ref, 1), item.stamp)

    def _dose(self, stamp: Stamp, now: Stamp) -> None:
        if self.dose is not None:
            return  # T0 is the first dose; the record keeps any later ones as events
        self.dose = stamp
        base = self._baseline
        if base.readings:
            n = len(base.readings)
            base.mean = (sum(s for s, _ in base.readings) / n, sum(d for _, d in base.readings) / n)
        self._log(LogEntry(now, LogEvent.BASELINE, text=self.baseline_status()))
        if base.etco2_n:  # a capnograph measured before the dose
            base.etco2 = base.etco2_sum / base.etco2_n
            rule = "" if self.profile.etco2_rise is not None else " (no EtCO2 rise rule)"
            self._log(
                LogEntry(
                    now,
                    LogEvent.BASELINE,
                    code=Code.CO2_ET.value,
                    value=round(base.etco2, 1),
                    text=f"pre-dose EtCO2 baseline {base.etco2:.0f} mmHg (mean of "
                    f"{base.etco2_n} value{'s' if base.etco2_n > 1 else ''}){rule}",
                )
            )

    def baseline_status(self) -> str:
        """One sentence for the screen: the baseline in force, or why the rule is inactive."""
        base = self._baseline
        if self.profile.baseline_rise is None:
            return "the rise-from-baseline rule is not part of this alarm profile"
        n = len(base.readings)
        if self.dose is None and n:
            sys_mean = sum(s for s, _ in base.readings) / n
            dia_mean = sum(d for _, d in base.readings) / n
            return (
                f"baseline so far {sys_mean:.0f}/{dia_mean:.0f} mmHg (mean of {n} "
                f"reading{'s' if n > 1 else ''}); it is set when the dose is given"
            )
        if base.mean is None:
            when = "before the dose" if self.dose is not None else "yet"
            return f"no NIBP reading {when}: the rise-from-baseline rule is inactive"
        systolic, diastolic = base.mean
        return (
            f"pre-dose baseline {systolic:.0f}/{diastolic:.0f} mmHg "
            f"(mean of {len(base.readings)} reading{'s' if len(base.readings) > 1 else ''})"
        )

    @property
    def baseline(self) -> tuple[float, float] | None:
        return self._baseline.mean

    @property
    def etco2_baseline(self) -> float | None:
        """The pre-dose EtCO2 (mmHg), set at the dose; None without a value before it."""
        return self._baseline.etco2

    # --- breathing ----------------------------------------------------------------------------

    def _breathing_of(self, source: str, *, capnograph: bool) -> _Breathing:
        breathing = self._breathing.get(source)
        if breathing is None:
            breathing = self._breathing[source] = _Breathing()
        breathing.capnograph |= capnograph
        return breathing

    def _capnogram(self, block: WaveformBlock) -> None:
        source, stamp = block.source, block.stamp
        breathing = self._breathing_of(source, capnograph=True)
        why = no_signal(Code.CO2, block.flags, breathing.airway_rate)
        span = sample_range(block.samples)
        if Flag.OUT_OF_RANGE in block.flags or (span is not None and not possible(*span)):
            breathing.flat.reset()  # a decoding error: no evidence of a flat line or of a breath
            self._co2_signal(source, Code.CO2, why, stamp)
            return
        # A block with no valid sample says nothing, whatever its flags: no evidence of apnoea.
        judged = None if span is None else says_no_breath(Code.CO2, None, block.flags)
        if span is None or why or judged or block.flags & QUALITY_FLAGS:
            breathing.flat.reset()  # nothing seen, or flat for a reason the device gives
        else:
            rule = self.profile.technical[TechnicalCondition.NO_CO2_SIGNAL]
            breathing.flat.add(stamp.mono, *span, rule.flat_mmhg)
        self._no_breath(source, Code.CO2, judged, stamp)
        self._co2_signal(source, Code.CO2, why, stamp)

    def _no_breath(self, source: str, code: Code, judged: bool | None, stamp: Stamp) -> None:
        """Apnoea: present while any breathing value of the device says no breath."""
        breathing = self._breathing_of(source, capnograph=False)
        breathing.no_breath[code] = judged
        rule = self.profile.apnea
        if rule is None:
            return
        key = f"{APNEA}@{source}"
        cond = self._conditions.get(key)
        said = breathing.no_breath.values()
        present = any(j is True for j in said)
        if cond is None:
            if not present:
                return
            cond = self._conditions[key] = _Condition(
                id=key,
                condition=APNEA,
                message="No breath (apnoea)",
                priority=rule.priority,
                kind=AlarmKind.PHYSIOLOGICAL,
                source=source,
                code=None,
                limit=None,
                delay_s=rule.after_s,  # "no breath detected for 20 s": the condition's delay
                latching=self.profile.latching[rule.priority],
                group=key,
            )
        if present or any(j is False for j in said):
            self._observe(cond, present, None, stamp)
        else:
            cond.pending_since = None  # nothing says either way: it cannot be said to last

    def _co2_signal(self, source: str, code: Code, why: str | None, stamp: Stamp) -> None:
        """No CO2 signal: the device's line flags or its "no valid CO2", or a flat capnogram
        while the oximeter reads and the device says nothing of apnoea (a flat line is then the
        line, not the lungs)."""
        breathing = self._breathing_of(source, capnograph=False)
        breathing.no_signal[code] = why
        rule = self.profile.technical[TechnicalCondition.NO_CO2_SIGNAL]
        reasons = {r for r in breathing.no_signal.values() if r is not None}
        flat = (
            not reasons
            and breathing.flat.flat(rule.flat_s)
            and not any(j is True for j in breathing.no_breath.values())
            and self._oximetry_reads(stamp)
        )
        text = LINE if LINE in reasons else next(iter(reasons), "")
        if flat:
            text = f"capnogram flat for {rule.flat_s:g} s while SpO2 and pulse read"
        self._technical(
            TechnicalCondition.NO_CO2_SIGNAL, source, present=bool(reasons) or flat,
            stamp=stamp, text=text,
        )  # fmt: skip

    def _oximetry_reads(self, stamp: Stamp) -> bool:
        """SpO2 and a pulse (or heart) rate, from any device, within the no-data timeout."""
        timeout = self.profile.technical[TechnicalCondition.NO_DATA].timeout_s
        return all(
            stamp.mono - self._oximetry.get(what, -math.inf) <= timeout
            for what in ("spo2", "pulse")
        )

    def _etco2(self, source: str, value: float | None, flags: Flags, stamp: Stamp) -> None:
        """The pre-dose EtCO2 values make the baseline; after the dose, the rise from it."""
        measured = value is not None and Flag.NO_BREATH not in flags
        base = self._baseline
        if self.dose is None:
            if measured:
                assert value is not None
                base.etco2_sum += value
                base.etco2_n += 1
            return
        rule = self.profile.etco2_rise
        if rule is None or base.etco2 is None:
            return
        key = f"{ETCO2_RISE}@{source}"
        cond = self._conditions.get(key)
        if cond is None:
            cond = self._conditions[key] = _Condition(
                id=key,
                condition=ETCO2_RISE,
                message="EtCO2 risen from the pre-dose baseline",
                priority=rule.priority,
                kind=AlarmKind.PHYSIOLOGICAL,
                source=source,
                code=Code.CO2_ET.value,
                limit=rule.rise,
                delay_s=rule.delay_s,
                latching=self.profile.latching[rule.priority],
                group=key,
            )
        if not measured:
            cond.pending_since = None  # missing: no evidence the rise lasts
            return
        assert value is not None
        rise = value - base.etco2
        self._observe(cond, rise >= rule.rise, round(rise, 1), stamp)

    # --- technical ----------------------------------------------------------------------------

    def _technical_flags(
        self, source: str, code: Code, flags: Flags, stamp: Stamp, *, line: bool = False
    ) -> None:
        # Per device and parameter: only this parameter's next value ends what its flag began.
        # A CO2 sampling line's sensor-off (``line``) is "no CO2 signal", said once per device.
        sensor_off = Flag.SENSOR_OFF in flags and not line
        self._technical(
            TechnicalCondition.SENSOR_OFF, source, present=sensor_off, stamp=stamp, code=code
        )
        # A breathing value the device says is missing for want of a breath (no end tide in
        # apnoea: "searching") is the patient's state, alarmed as apnoea, not a poor signal.
        poor = bool(flags & QUALITY_FLAGS) and not (sensor_off or line or Flag.NO_BREATH in flags)
        self._technical(
            TechnicalCondition.SIGNAL_QUALITY, source, present=poor, stamp=stamp, code=code
        )

    def _device_event(self, event: DeviceEvent) -> None:
        state = event.state
        lost = state in LOST
        self._technical(
            TechnicalCondition.DISCONNECTED,
            event.source,
            present=lost,
            stamp=event.stamp,
            text=event.detail,
        )
        watch = self._watches.get(event.source)
        if watch is None:
            if state is not ConnectionState.NO_DATA:
                return  # the watch starts with the device's first measurement
            watch = self._watches[event.source] = _Watch(event.stamp.mono)
        watch.lost = lost
        watch.driver_no_data = state is ConnectionState.NO_DATA
        if state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
            watch.since = max(watch.since, event.stamp.mono)  # silence counts from here
        timeout = self.profile.technical[TechnicalCondition.NO_DATA].timeout_s
        silent = event.stamp.mono >= watch.since + timeout
        self._update_no_data(event.source, watch, event.stamp, silent, event.detail)

    def _measured(self, item: Measurement) -> None:
        """A device measured: its silence watch restarts (noise flagged out-of-range is no
        measurement: a device that decodes only impossible values is not delivering data)."""
        if Flag.OUT_OF_RANGE in item.flags:
            return
        if isinstance(item, Numeric) and item.code in SCORE_CODES:
            return  # a nurse's score: no device, nothing to fall silent
        watch = self._watches.get(item.source)
        if watch is None:
            if not isinstance(item, PERIODIC):
                return
            watch = self._watches[item.source] = _Watch(item.stamp.mono)
        watch.since = max(watch.since, item.stamp.mono)
        watch.driver_no_data = False
        self._update_no_data(item.source, watch, item.stamp, silent=False)

    def _check_silence(self, now: Stamp) -> None:
        timeout = self.profile.technical[TechnicalCondition.NO_DATA].timeout_s
        for source, watch in self._watches.items():
            due = watch.since + timeout
            if not watch.no_data and not watch.lost and now.mono >= due:
                # Stamped when the silence reached the timeout, not when it was noticed.
                stamp = now.shifted(due - now.mono)
                text = f"no measurement for {timeout:g} s"
                self._update_no_data(source, watch, stamp, silent=True, text=text)

    def _update_no_data(
        self, source: str, watch: _Watch, stamp: Stamp, silent: bool, text: str = ""
    ) -> None:
        present = not watch.lost and (watch.driver_no_data or silent)
        if present == watch.no_data:
            return
        watch.no_data = present
        self._technical(TechnicalCondition.NO_DATA, source, present=present, stamp=stamp, text=text)

    def set_technical(
        self, name: TechnicalCondition, source: str, present: bool, stamp: Stamp, text: str = ""
    ) -> list[LogEntry]:
        """A condition another part of the system detects (the recorder: recording failing)."""
        self._advance(stamp)
        self._technical(name, source, present=present, stamp=stamp, text=text)
        return self._flush()

    def _technical(
        self,
        name: TechnicalCondition,
        source: str,
        *,
        present: bool,
        stamp: Stamp,
        text: str = "",
        code: Code | None = None,
    ) -> None:
        cond = self._technical_conditions.get((name, source, code))
        if cond is None:
            if not present:
                return
            rule = self.profile.technical[name]
            key = f"{name}@{source}" if code is None else f"{name}@{source}/{code.value}"
            cond = _Condition(
                id=key,
                condition=name.value,
                message=name.message,
                priority=rule.priority,
                kind=AlarmKind.TECHNICAL,
                source=source,
                code=None if code is None else code.value,
                limit=None,
                delay_s=rule.delay_s,
                latching=False,
                group=key,
            )
            self._conditions[key] = self._technical_conditions[name, source, code] = cond
        if present and text:
            cond.message = f"{name.message}: {text}"
        self._observe(cond, present, None, stamp)

    def _check_nibp_overdue(self) -> None:
        if self.dose is None or self.now is None:
            return
        rule = self.profile.technical[TechnicalCondition.NIBP_OVERDUE]
        due = self._latest_due(self.now.mono - rule.grace_s)
        if due is None:
            return
        due_at, interval = due
        done = self._latest_nibp >= due_at - interval / 2
        text = ""
        if not done:  # checked with every item: the sentence only when it is shown
            minutes = (due_at - self.dose.mono) / 60
            text = f"the {minutes:.0f}-minute reading after the dose"
            if round(minutes) == 40:
                text += " (the 40-minute blood pressure check)"
        self._technical(
            TechnicalCondition.NIBP_OVERDUE, SESSION, present=not done, stamp=self.now, text=text
        )

    def _latest_due(self, by: float) -> tuple[float, float] | None:
        """The latest scheduled reading (mono time, interval) due at or before ``by``."""
        assert self.dose is not None
        due = latest_due(self.profile.nibp_schedule, (by - self.dose.mono) / 60)
        if due is None:
            return None
        return self.dose.mono + due[0] * 60, due[1] * 60

    # --- condition life -----------------------------------------------------------------------

    def _observe(self, cond: _Condition, present: bool, value: float | None, stamp: Stamp) -> None:
        if present:
            if cond.active:
                return
            if cond.pending_since is None:
                cond.pending_since = stamp
            cond.value = value
            if stamp.mono - cond.pending_since.mono >= cond.delay_s:
                self._activate(cond, stamp, value)
        else:
            cond.pending_since = None
            if cond.active:
                self._end(cond, stamp)

    def _activate(self, cond: _Condition, stamp: Stamp, value: float | None) -> None:
        cond.active = True
        cond.latched = False
        cond.acknowledged = False
        cond.started = stamp
        cond.value = value
        cond.pending_since = None
        self._log_condition(LogEvent.ACTIVE, cond, stamp)

    def _end(self, cond: _Condition, stamp: Stamp) -> None:
        cond.active = False
        cond.pending_since = None
        cond.latched = cond.latching and not cond.acknowledged
        self._log_condition(LogEvent.INACTIVE, cond, stamp)

    # --- operator actions ---------------------------------------------------------------------

    def acknowledge(self, alarm_id: str, operator: str, stamp: Stamp) -> list[LogEntry]:
        """Silence one alarm (and clear it if it was only latched)."""
        now = self._advance(stamp)
        cond = self._conditions.get(alarm_id)
        if cond is None or not (cond.active or cond.latched):
            raise KeyError(f"no alarm '{alarm_id}' to acknowledge")
        cond.acknowledged = True
        cond.latched = False
        self._log(
            LogEntry(
                now,
                LogEvent.ACKNOWLEDGED,
                condition=cond.condition,
                priority=cond.priority,
                kind=cond.kind,
                source=cond.source,
                code=cond.code,
                operator=operator,
            )
        )
        return self._flush()

    def pause_audio(self, operator: str, stamp: Stamp) -> list[LogEntry]:
        """Silence all alarm sound for the profile's pause; it always ends by itself."""
        now = self._advance(stamp)
        sounding = [c.priority for c in self._shown() if not c.acknowledged]
        # Paused ahead of any alarm, only low-priority ones wait: medium and high break through.
        self._pause = _Pause(
            stamp.mono + self.profile.audio_pause_s, max(sounding, default=Priority.LOW), operator
        )
        self._log(
            LogEntry(
                now,
                LogEvent.AUDIO_PAUSED,
                operator=operator,
                text=f"audio paused for {self.profile.audio_pause_s:g} s",
            )
        )
        return self._flush()

    def set_limit(
        self, rule_id: str, priority: Priority, limit: float, operator: str, stamp: Stamp
    ) -> list[LogEntry]:
        """Change one limit during a session; the change is logged with who and when."""
        now = self._advance(stamp)
        old = dict(self.profile.limit_rule(rule_id).levels).get(priority)
        self.profile = self.profile.with_limit(rule_id, priority, limit)
        self._log(
            LogEntry(
                now,
                LogEvent.LIMIT_CHANGED,
                condition=rule_id,
                priority=priority,
                limit=limit,
                operator=operator,
                text=f"{priority.label} limit changed from {old:g} to {limit:g}",
            )
        )
        # Judge the latest value of each device against the new limit at once.
        for (rid, source, code), value in list(self._last_values.items()):
            if rid == rule_id:
                self._limits(source, code, value, now)
        return self._flush()

    # --- what the signals do ----------------------------------------------------------------

    def _shown(self) -> list[_Condition]:
        shown = [c for c in self._conditions.values() if c.active or c.latched]
        # Per group (one limit on one device) only the most urgent level is an alarm of its own.
        best: dict[str, _Condition] = {}
        for c in shown:
            if c.group not in best or c.priority > best[c.group].priority:
                best[c.group] = c
        return sorted(best.values(), key=lambda c: (-c.priority, c.since.mono, c.id))

    def alarms(self) -> list[Alarm]:
        """The alarms to show, most urgent first, then oldest first."""
        return [
            Alarm(
                id=c.id,
                condition=c.condition,
                message=c.message,
                priority=c.priority,
                kind=c.kind,
                source=c.source,
                code=c.code,
                value=c.value,
                limit=c.limit,
                delay_s=c.delay_s,
                started=c.since,
                state=AlarmState.ACTIVE if c.active else AlarmState.LATCHED,
                acknowledged=c.acknowledged,
            )
            for c in self._shown()
        ]

    def audio(self) -> AudioDue:
        """The burst due now (the most urgent unsilenced alarm) and the pause left."""
        now = self.now.mono if self.now is not None else 0.0
        pause = self._pause if self._pause is not None and now < self._pause.until else None
        sounding = [
            c.priority
            for c in self._shown()
            if not c.acknowledged and (pause is None or c.priority > pause.priority)
        ]
        return AudioDue(max(sounding, default=None), pause.until - now if pause else 0.0)

    # --- the log ------------------------------------------------------------------------------

    def _log_condition(self, event: LogEvent, cond: _Condition, stamp: Stamp) -> None:
        self._log(
            LogEntry(
                stamp,
                event,
                condition=cond.condition,
                priority=cond.priority,
                kind=cond.kind,
                source=cond.source,
                code=cond.code,
                value=cond.value,
                limit=cond.limit,
                text=cond.message,
            )
        )

    def _log(self, entry: LogEntry) -> None:
        self.log.append(entry)
        self._new.append(entry)


def trusted(code: Code, value: float | None, flags: Flags) -> float | None:
    """``value`` if a limit may judge it; None if it is missing or cannot be a measurement."""
    if value is None or Flag.OUT_OF_RANGE in flags or not math.isfinite(value):
        return None
    low, high = code.physical_range
    return value if low <= value <= high else None
