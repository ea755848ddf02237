"""A recorded session built from the simulator, for tests that read whole sessions (exports).

The session is a real 2-hour simulated KAP session (dose at 10 min, BP surge, the SpO2 probe
coming off twice, a failed cuff reading) played at high speed through :class:`SimDriver`, with
its alarm log made by the real :class:`AlarmEngine` over the same items, so exports are tested
on what the recorder would have stored rather than on a hand-made toy.
"""

from __future__ import annotations

import time
from pathlib import Path

from alarms.engine import AlarmEngine
from alarms.model import LogEntry, LogEvent
from alarms.profile import load_profile
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    DeviceValue,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    Stamp,
    WaveformBlock,
)
from kapmonitor.record.session import (
    DeviceInfo,
    Drug,
    EventRecord,
    Route,
    SessionInfo,
    SessionRecord,
    SessionSetup,
    SessionStatus,
)

#: A whole second, so item times are exact in binary (numerics at whole seconds from here).
START = 1767261600.0  # 2026-01-01T10:00:00Z
SESSION_UID = "3f2b8c1e-9d4a-4c6b-8e71-5a0c2d9f4b17"
PATIENT = "KAP-PT-004217"
CLINICIAN = "Dr Clarissa Whitfield"
OPERATOR = "Nurse Oksana Brennan"
SOURCE = "sim:kap-export"
SERIAL = "SIM-SN-55821"
DURATION_S = 2 * 3600.0

#: The typical course plus faults that make missing values: probe off (SpO2, PR, PI and pleth
#: missing), a failed cuff reading (NIBP missing), and a hypertensive surge that alarms.
SCENARIO = """\
name = "kap-export"
description = "Typical course with probe-off, a failed cuff reading and a BP surge."
duration_min = 150
dose_at_min = 10

[baseline]
heart_rate = { mean = 72, sd = 6, min = 55, max = 95 }
spo2 = { mean = 97.5, sd = 0.8, min = 95, max = 100 }
systolic = { mean = 124, sd = 8, min = 105, max = 145 }
diastolic = { mean = 78, sd = 6, min = 62, max = 92 }
perfusion_index = { mean = 3.0, sd = 0.8, min = 1.0, max = 6.0 }

[response]
systolic_rise = { mean = 16, sd = 11, min = 0, max = 45 }
diastolic_rise = { mean = 11, sd = 8.5, min = 0, max = 35 }
heart_rate_rise = { mean = 8, sd = 4, min = 0, max = 25 }
peak_min = { mean = 40, sd = 4, min = 30, max = 50 }
resolve_min = 90

[nibp]
predose_readings = 3
predose_every_min = 3
schedule = [{ until_min = 60, every_min = 5 }, { every_min = 15 }]
measure_s = 35
noise_sd = 4

[[faults]]
kind = "probe-off"
start_min = 20
duration_min = 1.5

[[faults]]
kind = "nibp-failed"
start_min = 24.5
duration_min = 1

[[faults]]
kind = "severe-hypertension"
start_min = 30
duration_min = 10
systolic_rise = 60
diastolic_rise = 30
"""


class _FixedClockSim(SimDriver):
    """The simulator with its clock started at :data:`START`, so a session is reproducible."""

    def open(self) -> None:
        self._origin = Stamp(time.monotonic(), START)
        self._set_state(ConnectionState.CONNECTING, stamp=self._origin)


def simulate(folder: Path, *, seed: int = 11, duration_s: float = DURATION_S) -> list[Item]:
    """Every item the simulated monitor publishes for the session, in order."""
    path = folder / "kap-export.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    items: list[Item] = []
    driver = _FixedClockSim(
        DeviceSpec("sim", str(path), SOURCE),
        items.append,
        playback=PlaybackSettings(speed=1e6, seed=seed, until=duration_s),
    )
    driver.start()
    if not driver.join(120):
        driver.stop()
        raise RuntimeError("the simulated session did not finish")
    return items


def _alarm_log(items: list[Item]) -> list[LogEntry]:
    """The log the alarm engine writes over the items, with an operator acknowledging and pausing
    once (so the log carries an operator name, as a real one does)."""
    engine = AlarmEngine(load_profile("kap-default"))
    log: list[LogEntry] = []
    acted = False
    for item in items:
        if isinstance(item, WaveformBlock):
            continue
        entries = engine.process(item)
        log.extend(entries)
        if not acted and any(e.event is LogEvent.ACTIVE for e in entries):
            acted = True
            alarms = engine.alarms()
            if alarms:
                log.extend(engine.acknowledge(alarms[0].id, OPERATOR, item.stamp.shifted(5)))
            log.extend(engine.pause_audio(OPERATOR, item.stamp.shifted(6)))
    return sorted(log, key=lambda e: e.stamp.mono)


def build_session(folder: Path, *, seed: int = 11, duration_s: float = DURATION_S) -> SessionRecord:
    """A SessionRecord as the store would load it after the simulated session."""
    items = simulate(folder, seed=seed, duration_s=duration_s)
    info = SessionInfo(
        id=1,
        uid=SESSION_UID,
        patient=PATIENT,
        clinician=CLINICIAN,
        operator=OPERATOR,
        drug=Drug.KETAMINE,
        route=Route.IV,
        dose=35.0,
        dose_unit="mg",
        started=START,
        ended=START + duration_s,
        status=SessionStatus.COMPLETED,
        alarm_profile="kap-default",
    )
    record = SessionRecord(info, devices=[DeviceInfo(SOURCE, "sim", "kap-export.toml", SERIAL)])
    events: list[EventRecord] = []
    for item in items:
        if isinstance(item, Numeric):
            record.numerics.append(item)
        elif isinstance(item, NibpReading):
            record.nibp.append(item)
        elif isinstance(item, WaveformBlock):
            record.waves.append(item)
        elif isinstance(item, SessionEvent):
            events.append(EventRecord(0, item.stamp, item.kind.value, item.text, item.source))
        elif isinstance(item, DeviceEvent):
            events.append(EventRecord(0, item.stamp, "device-state", item.state.value, item.source))
    dose = next(e for e in events if e.kind == "dose")
    events.append(
        EventRecord(0, dose.stamp.shifted(1800), "marker", "patient talking", None, OPERATOR)
    )
    events.append(
        EventRecord(0, dose.stamp.shifted(3000), "note", "feels calm, BP settling", None, CLINICIAN)
    )
    events.sort(key=lambda e: e.stamp.mono)
    record.events = [
        EventRecord(n, e.stamp, e.kind, e.text, e.source, e.author) for n, e in enumerate(events, 1)
    ]
    # The simulator has no values without an IEEE 11073 code; a few vendor values (one missing)
    # exercise that path of the exports too.
    for k in range(0, int(duration_s), 900):
        stamp = Stamp(record.numerics[0].stamp.mono + k, START + k)
        if k == 2700:
            record.values.append(
                DeviceValue(SOURCE, "SIM_SPHB", None, "g/dL", stamp, frozenset({Flag.SENSOR_OFF}))
            )
        else:
            record.values.append(
                DeviceValue(
                    SOURCE,
                    "SIM_SPHB",
                    13.0 + k / 9000,
                    "g/dL",
                    stamp,
                    text=f"{13.0 + k / 9000:.2f}",
                )
            )
    record.alarms = _alarm_log(items)
    return record


def store_session(store, folder: Path, *, seed: int = 11, duration_s: float = DURATION_S) -> int:
    """The simulated session written through a real :class:`Store`, as the recorder writes it
    (one-second batches with the alarm log), with a nurse's marker and note; returns its id."""
    items = simulate(folder, seed=seed, duration_s=duration_s)
    log = _alarm_log(items)
    session_id = store.create_session(
        SessionSetup(PATIENT, CLINICIAN, OPERATOR, Drug.KETAMINE, Route.IV, 35.0, "mg"),
        load_profile("kap-default"),
        started=START,
    )  # fmt: skip
    batch: list[Item] = []
    second = int(items[0].stamp.wall)
    pending = list(log)
    for item in items:
        if int(item.stamp.wall) != second and batch:
            due = [e for e in pending if e.stamp.wall < second + 1]
            pending = pending[len(due) :]
            store.write(session_id, batch, due)
            batch, second = [], int(item.stamp.wall)
        batch.append(item)
    store.write(session_id, batch, pending)
    dose = next(i for i in items if isinstance(i, SessionEvent) and i.kind.value == "dose")
    store.add_event(session_id, "marker", "dissociation", OPERATOR, stamp=dose.stamp.shifted(1800))
    store.add_event(session_id, "note", "feels calm, BP settling", OPERATOR,
                    stamp=dose.stamp.shifted(3000))  # fmt: skip
    store.end_session(session_id, SessionStatus.COMPLETED, START + duration_s, who=OPERATOR)
    return session_id
