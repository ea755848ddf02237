"""A dosing session from start to end, without a screen: devices, alarms, recorder, T0, events.

The dosing-room screen and the headless ``record`` command both drive a :class:`SessionRunner`;
it owns the pipeline (drivers → hub → alarm service, recorder, live view) and the session's
clinical steps: the nurse's "dose given" (T0), event markers, a STAT reading, the NIBP schedule,
the discharge checklist and the summary. It is plain Python, so every step is testable without
a display, and the screen is only a view of it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from alarms.model import Alarm, LogEvent, TechnicalCondition
from alarms.profile import Profile, load_profile
from alarms.service import AlarmService
from devices.base import (
    DEFAULT_NO_DATA_TIMEOUT,
    Driver,
    DriverSettings,
    PlaybackDriver,
    PlaybackSettings,
)
from devices.registry import get_driver_class
from devices.serial_driver import SerialDriver
from devices.sim.driver import SimDriver
from devices.sim.scenario import scenario_names as shipped_scenarios
from kapmonitor.core import staleness
from kapmonitor.core.assessment import SCALES, SCORE_CODES, prompt, sedated
from kapmonitor.core.assessment import SOURCE as ASSESSMENT_SOURCE
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import REPLAY, SIM, DeviceSpec
from kapmonitor.core.discharge import DOUBTFUL, CheckItem, DischargeCriteria
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub, Subscription
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)
from kapmonitor.core.schedule import next_due
from kapmonitor.live import SESSION_SOURCE, age_text, flags_text
from kapmonitor.record.recorder import Recorder, open_store
from kapmonitor.record.replay import ReplayDriver
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.simulated import record_url
from kapmonitor.record.store import Store
from kapmonitor.station.broker import Credentials, parse_broker_url
from kapmonitor.station.contract import ContractError, check_room
from kapmonitor.station.publisher import RoomIdentity, RoomPublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionConfig:
    """A session to run: its set-up, which is recorded, and how to run it, which is not."""

    setup: SessionSetup
    db_url: str | None = None
    speed: float = 1.0  #: simulated devices only
    seed: int = 0
    #: Take a simulated scenario's own dose as T0 (headless recording, and the demo) unless the
    #: nurse marks it first; off, only the nurse's key does.
    scenario_dose: bool = False
    until: float | None = None  #: simulated devices stop after this many session seconds
    no_data_timeout: float = DEFAULT_NO_DATA_TIMEOUT
    #: Who the room is to the broker (options or environment); None: from the environment.
    broker_credentials: Credentials | None = None


@dataclass
class _Latest:
    values: dict[Code, Numeric] = field(default_factory=dict)
    nibp: list[NibpReading] = field(default_factory=list)
    states: dict[str, DeviceEvent] = field(default_factory=dict)
    scores: list[Numeric] = field(default_factory=list)  #: every score, in the order taken


def make_driver(spec: DeviceSpec, hub: Hub[Item], config: SessionConfig) -> Driver:
    cls = get_driver_class(spec.kind)
    settings = DriverSettings(config.no_data_timeout)
    if not issubclass(cls, PlaybackDriver):
        return cls(spec, hub.publish, settings)
    # A device that plays a session keeps its own clock.
    playback = PlaybackSettings(config.speed, config.until, config.scenario_dose, config.seed)
    if issubclass(cls, ReplayDriver):  # a session from this database
        return cls(spec, hub.publish, settings, playback, db=config.db_url)
    return cls(spec, hub.publish, settings, playback)


def check_device(text: str) -> str | None:
    """Why a device cannot be used, in one sentence, or None: for the start dialog."""
    try:
        spec = DeviceSpec.parse(text)
        cls = get_driver_class(spec.kind)
        if issubclass(cls, SerialDriver):
            from devices.transport import open_port

            # The driver refuses an unknown option, and its line settings are the device's
            # (an option may choose other settings than the protocol's).
            driver = cls(spec, lambda item: None)
            open_port(spec.target, driver.serial_settings).close()
        elif spec.kind == SIM:
            from devices.sim.scenario import load_scenario

            load_scenario(spec.target)
    except UserError as exc:
        return str(exc)
    return None


def scenario_names() -> list[str]:
    """The simulator's scenarios, for the start dialog to offer; none if they cannot be read
    (a broken scenario must not stop a session with real devices from starting)."""
    try:
        return shipped_scenarios()
    except Exception:
        return []


class SessionRunner:
    """One session: start it, mark the dose and events, watch it, end it."""

    def __init__(self, config: SessionConfig, profile: Profile | None = None) -> None:
        if config.speed != 1 and not all(
            d.strip().startswith((SIM + ":", REPLAY + ":")) for d in config.setup.devices
        ):
            raise UserError(
                "--speed only applies when every device is simulated or replayed "
                "(sim:SCENARIO, replay:SESSION)"
            )
        self.config = config
        self.profile = profile or load_profile(config.setup.profile)
        self.hub = Hub[Item]()
        self.alarms = AlarmService(self.hub, self.profile, clock=self._device_clock)
        self.specs = [DeviceSpec.parse(text) for text in config.setup.devices]
        self.drivers = [make_driver(spec, self.hub, config) for spec in self.specs]
        self.store: Store | None = None
        self.recorder: Recorder | None = None
        self.session_id: int | None = None
        self.interrupted: list[int] = []  #: sessions found cut off when this one started
        self.dose: Stamp | None = None
        #: Who set T0: the session (the nurse's key) or a simulated device (its scenario).
        self.dose_source: str | None = None
        self.started: Stamp | None = None
        self._latest = _Latest()
        self._watch = self.hub.subscribe("session", maxsize=100_000)
        self._running = False
        self.publisher = self._publisher()  #: the room on the clinic bus, or None

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open every device (a wrong port fails here, in one sentence), then run."""
        for driver in self.drivers:
            driver.open()
        c = self.config
        # A simulated session goes to the demo database unless one is named
        # (kapmonitor.record.simulated).
        self.store, self.interrupted = open_store(record_url(c.db_url, c.setup.devices))
        self.session_id = self.store.create_session(c.setup, self.profile)
        self.recorder = Recorder(
            self.store,
            self.session_id,
            self.hub,
            self.alarms.out,
            on_status=lambda failing, text: self.alarms.set_technical(
                TechnicalCondition.RECORDING_FAILING, "recorder", failing, text
            ),
        )
        self.started = self.now()
        self.recorder.start()
        self.alarms.start()
        if self.publisher is not None:  # never blocks: an absent broker is a low alarm
            self.publisher.record = self.store.session_info(self.session_id).uid
            self.publisher.start()
        for driver in self.drivers:
            driver.start()
        self._running = True

    def _publisher(self) -> RoomPublisher | None:
        """The room's publisher when the set-up names a room and a broker (checked here, before
        any device opens: a bad URL or name is one sentence)."""
        setup = self.config.setup
        if not setup.room and not setup.broker:
            return None
        if not (setup.room and setup.broker):
            raise UserError("--room and --broker go together: give both or neither")
        try:
            room = check_room(setup.room)
        except ContractError as exc:
            raise UserError(str(exc)) from None
        url = parse_broker_url(setup.broker)
        credentials = self.config.broker_credentials or Credentials.from_options()
        drug = setup.drug.value if setup.drug else None
        identity = RoomIdentity(room, setup.label, drug)
        return RoomPublisher(identity, url, credentials, self.hub, self.alarms.out, self)

    # --- what the room's publisher asks (kapmonitor.station.publisher.RoomSource) ----------

    def alarm_state(self) -> tuple[list[Alarm], bool]:
        alarms, audio, _ = self.alarms.snapshot()
        return alarms, audio.paused_for > 0

    def next_nibp(self) -> str:
        return self.nibp_schedule()[0]

    def since_dose_s(self) -> float | None:
        return None if self.dose is None else self.now().mono - self.dose.mono

    def set_station_link(self, lost: bool, text: str) -> None:
        self.alarms.set_technical(TechnicalCondition.STATION_LINK_LOST, "station", lost, text)

    def station_link(self) -> str | None:
        """For the room's screen: "station link: connected to ...", or None without a bus."""
        return None if self.publisher is None else f"station link: {self.publisher.link.text}"

    def _device_clock(self) -> Stamp:
        """The alarm system's clock: the session's one :meth:`now`, held where the playback
        ended once every simulated or replayed device has (its end is not a silence)."""
        if self.drivers and all(isinstance(d, PlaybackDriver) and d.join(0) for d in self.drivers):
            return self.alarms.engine.now or Stamp.now()
        return self.now()

    def finished(self) -> bool:
        """Whether every device has ended by itself (a simulated session that is over)."""
        return all(driver.join(0) for driver in self.drivers)

    def stop(self, status: SessionStatus = SessionStatus.COMPLETED, who: str = "") -> None:
        """Stop the devices, write what is queued, and close the session."""
        if not self._running:
            return
        self._running = False
        for driver in self.drivers:
            driver.stop()
        time.sleep(0.05)  # let the alarm service take the last items
        if self.publisher is not None:
            self.publisher.stop(ended=True)
        self.alarms.stop()
        assert self.recorder is not None and self.store is not None  # start() set them
        assert self.session_id is not None
        self.recorder.stop()
        # The real end, as the start is real: a simulated device's clock runs ahead of it at
        # --speed > 1; its data, not the header, give the time monitored
        # (kapmonitor.record.simulated).
        self.store.end_session(
            self.session_id, status, time.time(), who=who or self.config.setup.operator
        )
        self.store.db.close()

    # --- what the nurse does --------------------------------------------------------------

    def now(self) -> Stamp:
        """The session's one "now", in the devices' time base: what the screen ages values by
        (grey, blank), and what the checklist's, the schedule's and the summary's intervals run
        on (their ``mono``; ``wall`` is for display and the record).

        For real devices it is the clock; for simulated or replayed ones their session clock,
        which runs ahead of it at ``--speed`` > 1 and, unlike the newest item's stamp, keeps
        advancing while they are silent (an unplug, the end of the scenario): a frozen value
        greys and blanks on every device alike. Never behind what a device has stamped.
        """
        playing = [d for d in self.drivers if isinstance(d, PlaybackDriver)]
        if playing and len(playing) == len(self.drivers):
            now = min((d.session_now() for d in playing), key=lambda stamp: stamp.mono)
        else:
            now = Stamp.now()
        seen = self.alarms.engine.now
        return seen if seen is not None and seen.mono > now.mono else now

    def dose_given(self, operator: str) -> Stamp:
        """T0: from here the time axis reads minutes from the dose."""
        if self.dose is not None:
            raise UserError("the dose is already marked; correct it with an amendment")
        stamp = self.now()
        self.dose, self.dose_source = stamp, SESSION_SOURCE
        for driver in self.drivers:  # the scenario's own dose, later, is not a second T0
            if isinstance(driver, SimDriver):
                driver.publish_dose = False
        self.hub.publish(
            SessionEvent(
                SESSION_SOURCE, SessionEventKind.DOSE, stamp, "dose given", operator or None
            )
        )
        return stamp

    def add_marker(
        self, kind: str, text: str = "", operator: str = "", stamp: Stamp | None = None
    ) -> Stamp:
        """A marker at ``stamp`` (default: now; a note is stamped when asked for, not when its
        text is written)."""
        stamp = stamp or self.now()
        label = f"{kind}: {text}" if text else kind
        self.hub.publish(
            SessionEvent(SESSION_SOURCE, SessionEventKind.MARKER, stamp, label, operator or None)
        )
        return stamp

    def add_assessment(
        self, scores: Mapping[Code, int], operator: str = "", stamp: Stamp | None = None
    ) -> Stamp:
        """Scores on one or more scales (MOAA/S, dissociation), taken together at ``stamp``.

        Each is checked against its scale first (nothing is published if one is wrong), then
        goes out as a Numeric (alarms, record, trends, exports) and a session event that says
        it in words and names who scored it.
        """
        checked = {code: SCALES[code].check(score) for code, score in scores.items()}
        stamp = stamp or self.now()
        for code, score in checked.items():
            self.hub.publish(Numeric(ASSESSMENT_SOURCE, code, float(score), stamp))
            self.hub.publish(
                SessionEvent(
                    ASSESSMENT_SOURCE,
                    SessionEventKind.SCORE,
                    stamp,
                    SCALES[code].describe(score),
                    operator or None,
                )
            )
        return stamp

    def assessment_prompt(self) -> tuple[str, bool]:
        """When the next sedation and dissociation score is due, and whether it is due now."""
        if self.dose is None:
            return prompt(self.profile.assessment, None, [])
        dose = self.dose.mono
        minutes = (self.now().mono - dose) / 60
        scored = [(n.stamp.mono - dose) / 60 for n in self._latest.scores]
        return prompt(self.profile.assessment, minutes, scored)

    def latest_score(self, code: Code) -> Numeric | None:
        return next((n for n in reversed(self._latest.scores) if n.code is code), None)

    def request_stat(self, operator: str = "") -> str:
        """A STAT NIBP reading: what to tell the nurse.

        None of the drivers so far can start a cuff remotely (the public protocols give no
        command for it), so the answer is a reminder to start it on the monitor; the request
        is marked in the record either way.
        """
        self.add_marker("STAT NIBP requested", operator=operator)
        return "Start an NIBP reading on the monitor now: it cannot be started from kapmonitor."

    # --- what the screen shows ------------------------------------------------------------

    def poll(self) -> None:
        """Take what arrived since the last call (the screen's timer calls this)."""
        for item in self._watch.drain():
            if isinstance(item, Numeric) and item.code in SCORE_CODES:
                self._latest.scores.append(item)
            elif isinstance(item, Numeric):
                self._latest.values[item.code] = item
            elif isinstance(item, NibpReading):
                self._latest.nibp.append(item)
            elif isinstance(item, DeviceEvent):
                self._latest.states[item.source] = item
            elif (
                isinstance(item, SessionEvent)
                and item.kind is SessionEventKind.DOSE
                and self.dose is None  # T0 is the first dose
            ):
                self.dose, self.dose_source = item.stamp, item.source

    @property
    def dose_from_scenario(self) -> bool:
        """Whether T0 is a simulated scenario's own dose rather than the nurse's key."""
        return self.dose_source is not None and self.dose_source != SESSION_SOURCE

    @property
    def watch(self) -> Subscription[Item]:
        return self._watch

    def device_rows(self) -> list[tuple[str, str, str]]:
        """Per device: its name, its connection state, and why."""
        rows = []
        for driver in self.drivers:
            event = self._latest.states.get(driver.source)
            state = event.state.value if event else ConnectionState.CONNECTING.value
            detail = event.detail if event else ""
            if isinstance(driver, SerialDriver) and driver.parser.problem:
                detail = driver.parser.problem
            rows.append((driver.source, state, detail))
        return rows

    def recording_status(self) -> tuple[bool, str]:
        """Whether recording works, and a sentence saying so."""
        if self.recorder is None or self.store is None:
            return False, "not recording"
        if self.recorder.failing:
            return False, "the database is unavailable: measurements wait in the spool"
        return True, f"recording session {self.session_id}"

    def nibp_schedule(self) -> tuple[str, bool]:
        """The next reading due ("next in 3 min", "due now") and whether it is due now."""
        if self.dose is None:
            return "before the dose: take the baseline readings", False
        elapsed = (self.now().mono - self.dose.mono) / 60
        due = next_due(self.profile.nibp_schedule, elapsed - 1.0)
        if due is None:
            return "no more scheduled readings", False
        taken = any(r.stamp.mono >= self.dose.mono + (due - 2.5) * 60 for r in self._latest.nibp)
        minute = f"the {due:.0f}-minute reading"
        if round(due) == 40:
            minute += " (the 40-minute check)"
        if due - 1.0 <= elapsed and not taken:
            return f"DUE NOW: {minute}", True
        nxt = next_due(self.profile.nibp_schedule, elapsed)
        if nxt is None:
            return "no more scheduled readings", False
        return f"next in {math.ceil(nxt - elapsed)} min", False

    def baseline(self) -> tuple[float, float] | None:
        return self.alarms.engine.baseline

    def predose_readings(self) -> list[NibpReading]:
        return [r for r in self._latest.nibp if self.dose is None or r.stamp.mono < self.dose.mono]

    # --- the end --------------------------------------------------------------------------

    def discharge_checklist(self, criteria: DischargeCriteria | None = None) -> list[CheckItem]:
        c = criteria or DischargeCriteria()
        now = self.now()
        items = []
        if self.dose is None:
            items.append(
                CheckItem(
                    f"at least {c.min_hours_after_dose:g} h since the dose",
                    False,
                    "no dose was marked",
                )
            )
        else:
            hours = (now.mono - self.dose.mono) / 3600
            items.append(
                CheckItem(
                    f"at least {c.min_hours_after_dose:g} h since the dose",
                    hours >= c.min_hours_after_dose,
                    f"{int(hours)} h {int(hours * 60 % 60):02d} min",
                )
            )
        base = self.baseline()
        last = next((r for r in reversed(self._latest.nibp) if r.systolic is not None), None)
        if base is None or last is None:
            why = "no baseline" if base is None else "no NIBP reading"
            items.append(CheckItem("BP back near baseline", False, why))
        elif not staleness.is_current(last.stamp, now, staleness.NIBP_STALE_MIN * 60):
            old = age_text(staleness.age(last.stamp, now))
            items.append(CheckItem("BP back near baseline", False, f"no current reading ({old})"))
        else:
            systolic, diastolic = last.systolic, last.diastolic
            near = (
                systolic is not None
                and diastolic is not None
                and systolic <= base[0] + c.bp_margin_systolic
                and diastolic <= base[1] + c.bp_margin_diastolic
            )
            items.append(
                CheckItem(
                    "BP back near baseline",
                    near,
                    f"{last.systolic:.0f}/{last.diastolic:.0f} vs {base[0]:.0f}/{base[1]:.0f} mmHg",
                )
            )
        items.append(self._in_range_item(now))
        items.append(self._alert_item())
        return items

    def _alert_item(self) -> CheckItem:
        """Alert and oriented is the nurse's to confirm; the last MOAA/S informs it, and one
        that still says sedated (<= 3) is a reason not to discharge."""
        moaas = self.latest_score(Code.MOAAS)
        if moaas is None or moaas.value is None:
            return CheckItem("patient alert and oriented", None, "confirm at the bedside")
        at = time.strftime("%H:%M", time.localtime(moaas.stamp.wall))
        if sedated(moaas.value):
            return CheckItem(
                "patient alert and oriented", False, f"MOAA/S {moaas.value:.0f} at {at}: sedated"
            )
        text = f"last MOAA/S {moaas.value:.0f} at {at}; confirm at the bedside"
        return CheckItem("patient alert and oriented", None, text)

    def _current(self, codes: tuple[Code, ...], now: Stamp) -> tuple[Code, float] | str:
        """The first of ``codes`` with a current, unflagged value (the code and the value), or
        why there is none.

        Current by the screen's own rule (:mod:`kapmonitor.core.staleness`): a value the tiles show
        grey or blank cannot satisfy a discharge criterion, nor can one the device flags.
        """
        why = "no current reading"
        for code in codes:
            value = self._latest.values.get(code)
            if value is None or value.value is None:
                continue
            if not staleness.is_current(value.stamp, now):
                old = age_text(staleness.age(value.stamp, now))
                why = f"no current reading ({code.info.label} {old})"
            elif value.flags & DOUBTFUL:
                why = f"no current reading ({code.info.label} {flags_text(value.flags)})"
            else:
                return code, value.value
        return why

    def _in_range_item(self, now: Stamp) -> CheckItem:
        spo2 = self._current((Code.SPO2,), now)
        pulse = self._current((Code.PULSE_RATE, Code.HEART_RATE), now)
        if isinstance(spo2, str):
            return CheckItem("SpO2 and pulse in range", False, spo2)
        if isinstance(pulse, str):
            return CheckItem("SpO2 and pulse in range", False, pulse)
        # In range: inside every limit's least severe level (levels are ordered that way).
        ok = not any(
            rule.beyond(value, rule.levels[0][1])
            for rule in self.profile.limits
            for code, value in (spo2, pulse)
            if code in rule.codes
        )
        return CheckItem(
            "SpO2 and pulse in range", ok, f"SpO2 {spo2[1]:.0f} %, pulse {pulse[1]:.0f} /min"
        )

    def summary(self) -> dict[str, str]:
        """The figures of the session for the end screen (the full report is in review)."""
        nibp = [r for r in self._latest.nibp if r.systolic is not None]
        peak = max(nibp, key=_systolic, default=None)
        base = self.baseline()
        log_entries = [e for e in self.alarms.engine.log if e.event is LogEvent.ACTIVE]
        out = {
            "session": str(self.session_id),
            "patient": self.config.setup.patient,
            "monitored": f"{(self.now().mono - self.started.mono) / 60:.0f} min"
            if self.started
            else "-",
            "baseline": f"{base[0]:.0f}/{base[1]:.0f} mmHg" if base else "none",
            "peak systolic": f"{peak.systolic:.0f}/{peak.diastolic:.0f} mmHg" if peak else "-",
            "NIBP readings": str(len(nibp)),
            "alarms": ", ".join(
                f"{n} {p}"
                for p in ("high", "medium", "low")
                if (n := sum(e.priority is not None and e.priority.label == p for e in log_entries))
            )
            or "none",
        }
        if peak is not None and self.dose is not None:
            out["peak at"] = f"{(peak.stamp.mono - self.dose.mono) / 60:.0f} min after the dose"
        return out


def _systolic(reading: NibpReading) -> float:
    """For ordering readings by systolic pressure: a failed one (none) below every measured one."""
    return -math.inf if reading.systolic is None else reading.systolic
