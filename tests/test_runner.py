"""A whole dosing session driven without a screen: what the nurse does, and what is recorded."""

from __future__ import annotations

import time

import pytest

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)
from kapmonitor.core.staleness import BLANK_S, NIBP_STALE_MIN, STALE_S
from kapmonitor.record.db import open_database
from kapmonitor.record.session import Drug, Route, SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.runner import CheckItem, SessionConfig, SessionRunner, check_device


def _wait(predicate, runner: SessionRunner, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.poll()
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_session_from_start_to_discharge(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    runner = SessionRunner(
        SessionConfig(
            SessionSetup(
                patient="P-7", devices=("sim:typical",), clinician="Dr K", operator="RN L",
                drug=Drug.KETAMINE, route=Route.IV, dose=35,
            ),
            db_url=url, speed=300, seed=4,
        )
    )  # fmt: skip
    runner.start()
    try:
        # Before the dose: the baseline readings come in; the schedule asks for them.
        assert runner.nibp_schedule() == ("before the dose: take the baseline readings", False)
        _wait(lambda: len(runner.predose_readings()) >= 3, runner)
        assert runner.dose is None  # on screen the scenario does not give the dose: the nurse does
        dose = runner.dose_given("RN L")
        with pytest.raises(UserError, match="already marked"):
            runner.dose_given("RN L")
        _wait(lambda: runner.baseline() is not None, runner)
        base = runner.baseline()
        readings = runner.predose_readings()
        assert base[0] == pytest.approx(sum(r.systolic for r in readings) / len(readings))
        text, due = runner.nibp_schedule()
        assert text.startswith("next in") and not due
        runner.add_marker("dissociation", "eyes closed, calm", "RN L")
        assert "cannot be started from kapmonitor" in runner.request_stat("RN L")
        # Near the 40-minute reading the schedule says it is due.
        _wait(lambda: runner.nibp_schedule()[1], runner, timeout=60)
        assert (
            "40-minute check" in runner.nibp_schedule()[0]
            or "DUE NOW" in (runner.nibp_schedule()[0])
        )
        checklist = runner.discharge_checklist()
        assert checklist[0].ok is False  # not yet 2 h since the dose
        assert checklist[-1].ok is None  # alertness is confirmed by a person
        _wait(lambda: (runner.now().wall - dose.wall) >= 2 * 3600, runner, timeout=60)
        checklist = runner.discharge_checklist()
        assert checklist[0].ok is True
        states = {state for _, state, _ in runner.device_rows()}
        assert states <= {"connected", "disconnected"}
        summary = runner.summary()
        assert summary["patient"] == "P-7" and summary["baseline"].endswith("mmHg")
        assert "min after the dose" in summary["peak at"]
    finally:
        runner.stop(who="RN L")
    store = Store(open_database(url))
    record = store.load_session(runner.session_id)
    store.db.close()
    assert record.info.status is SessionStatus.COMPLETED
    kinds = [(e.kind, e.text, e.author) for e in record.events if e.kind in ("dose", "marker")]
    assert kinds[0] == ("dose", "dose given", "RN L")  # the name apart, for de-identification
    assert ("marker", "dissociation: eyes closed, calm", "RN L") in kinds
    assert ("marker", "STAT NIBP requested", "RN L") in kinds
    assert record.dose_stamp.wall == pytest.approx(dose.wall)


def test_check_device_names_the_problem_in_one_sentence():
    assert check_device("sim:typical") is None
    assert "unknown scenario" in check_device("sim:nope")
    assert "does not exist" in check_device("nonin2@/dev/ttyKAP-nothing")
    assert "PROTOCOL@PORT" in check_device("rubbish")


# --- what is current, and intervals on the monotonic clock ------------------------------------


def _bedside_runner() -> SessionRunner:
    """A runner for a real oximeter, not started: items are published to its hub by the test,
    and its clock is the machine's (time.monotonic, time.time)."""
    return SessionRunner(SessionConfig(SessionSetup("P-1", devices=("nonin2@/dev/ttyKAP-none",))))


def _vitals(runner: SessionRunner, stamp: Stamp, spo2=97.0, pulse=80.0, flags=frozenset()):
    runner.hub.publish(Numeric("ox", Code.SPO2, spo2, stamp, flags))
    runner.hub.publish(Numeric("ox", Code.PULSE_RATE, pulse, stamp, flags))
    runner.poll()


def _in_range(runner: SessionRunner) -> CheckItem:
    [item] = [i for i in runner.discharge_checklist() if i.label == "SpO2 and pulse in range"]
    return item


def test_a_value_the_screen_shows_grey_cannot_satisfy_the_discharge_check():
    runner = _bedside_runner()
    # The oximeter was disconnected 40 s ago: its last values are blanked on the screen.
    _vitals(runner, Stamp.now().shifted(-40))
    item = _in_range(runner)
    assert (item.ok, item.detail) == (False, "no current reading (SpO2 40 s ago)")
    # Greyed (just past STALE_S) is not current either; just before it, it is.
    _vitals(runner, Stamp.now().shifted(-(STALE_S + 0.5)))
    assert _in_range(runner).ok is False
    _vitals(runner, Stamp.now().shifted(-(STALE_S - 2)))
    assert _in_range(runner) == CheckItem(
        "SpO2 and pulse in range", True, "SpO2 97 %, pulse 80 /min"
    )
    # A value the device flags is not the patient's.
    _vitals(runner, Stamp.now(), flags=frozenset({Flag.SENSOR_OFF}))
    assert _in_range(runner).detail == "no current reading (SpO2 sensor off)"
    # Nothing at all.
    assert _in_range(_bedside_runner()).detail == "no current reading"


def test_a_current_ecg_heart_rate_stands_in_for_a_stale_pulse_rate():
    runner = _bedside_runner()
    _vitals(runner, Stamp.now().shifted(-40))
    runner.hub.publish(Numeric("ox", Code.SPO2, 96.0, Stamp.now()))
    runner.hub.publish(Numeric("ecg", Code.HEART_RATE, 72.0, Stamp.now()))
    runner.poll()
    assert _in_range(runner).detail == "SpO2 96 %, pulse 72 /min"


def test_a_stale_nibp_reading_cannot_show_the_bp_back_near_baseline():
    runner = _bedside_runner()
    old = Stamp.now().shifted(-(NIBP_STALE_MIN + 5) * 60)
    reading = NibpReading("bp", 120.0, 75.0, 90.0, old)
    # The baseline reading, then the dose: the engine's own baseline (the alarm thread's work).
    runner.alarms.engine.process(reading)
    runner.alarms.engine.process(SessionEvent("session", SessionEventKind.DOSE, old.shifted(1), ""))
    assert runner.baseline() == (120.0, 75.0)
    runner.hub.publish(reading)
    runner.poll()
    [bp] = [i for i in runner.discharge_checklist() if i.label == "BP back near baseline"]
    assert (bp.ok, bp.detail) == (False, "no current reading (25 min ago)")


@pytest.fixture
def clock(monkeypatch):
    """Move the machine's clocks: ``clock(wall=+3 h)`` steps the wall clock only (NTP, a user
    changing the time), ``clock(mono=40)`` lets 40 real seconds pass."""
    real_time, real_mono = time.time, time.monotonic
    offsets = {"wall": 0.0, "mono": 0.0}
    monkeypatch.setattr(time, "time", lambda: real_time() + offsets["wall"] + offsets["mono"])
    monkeypatch.setattr(time, "monotonic", lambda: real_mono() + offsets["mono"])

    def move(wall: float = 0.0, mono: float = 0.0) -> None:
        offsets["wall"] += wall
        offsets["mono"] += mono

    return move


def test_a_wall_clock_step_does_not_move_the_sessions_intervals(clock):
    runner = _bedside_runner()
    runner.dose_given("RN L")
    _vitals(runner, Stamp.now())
    runner.hub.publish(NibpReading("bp", 120.0, 75.0, 90.0, Stamp.now()))
    runner.poll()
    clock(wall=3 * 3600)  # the clock jumps 3 h ahead, 2 real seconds after the dose
    clock(mono=2)
    since_dose, _, in_range, _ = runner.discharge_checklist()
    assert (since_dose.ok, since_dose.detail) == (False, "0 h 00 min")
    assert in_range.ok is True  # values of 2 s ago are current, whatever the wall clock says
    assert runner.nibp_schedule() == ("next in 5 min", False)  # not "no more readings"
    # The clock jumps back an hour, and 40 real seconds pass: the values are 40 s old.
    clock(wall=-4 * 3600)
    clock(mono=38)
    assert _in_range(runner).detail == "no current reading (SpO2 40 s ago)"
    assert runner.summary()["monitored"] == "-"  # never started: nothing monitored


def test_a_silent_simulated_device_goes_stale_on_the_session_clock(tmp_path):
    """At --speed 60 the simulator's stamps run ahead of the real clock; when it goes silent
    (here: its scenario ends), the session's clock keeps running in its time base, so its last
    values age as a real device's would, instead of staying current forever."""
    runner = SessionRunner(
        SessionConfig(
            SessionSetup("P-2", devices=("sim:typical",)),
            db_url=f"sqlite:///{tmp_path / 'k.db'}", speed=60, until=20,
        )
    )  # fmt: skip
    runner.start()
    try:
        _wait(runner.finished, runner)
        runner.poll()
        last = runner._latest.values[Code.SPO2].stamp
        assert runner.now().mono >= last.mono  # the session clock is on the devices' time base
        time.sleep(0.6)  # 36 s of session time without a value
        assert runner.now().mono - last.mono > BLANK_S
        assert _in_range(runner).detail.startswith("no current reading (SpO2")
    finally:
        runner.stop()


def _dose_events(store_url: str, session_id: int) -> list:
    store = Store(open_database(store_url))
    try:
        record = store.load_session(session_id, waves=False)
        return [e for e in record.events if e.kind == SessionEventKind.DOSE]
    finally:
        store.db.close()


def test_the_demo_takes_the_scenarios_dose_as_t0_and_the_baseline_from_before_it(tmp_path):
    """Issue 13: in the demo (desaturation, dose at 10 min) with D never pressed, the NIBP
    schedule still asked for baseline readings at 45 min, the "baseline so far" averaged readings
    taken after the dose and the rise-from-baseline rule never armed."""
    runner = SessionRunner(
        SessionConfig(
            SessionSetup("DEMO", devices=("sim:desaturation",)),
            db_url=f"sqlite:///{tmp_path / 'k.db'}", speed=600, scenario_dose=True, until=20 * 60,
        )
    )  # fmt: skip
    runner.start()
    try:
        _wait(lambda: runner.dose is not None, runner)
        assert runner.dose_from_scenario and runner.dose_source.startswith("sim")
        _wait(lambda: runner.alarms.engine.dose is not None, runner)
        assert runner.alarms.engine.dose.mono == runner.dose.mono  # the alarms' T0 too
        base = runner.baseline()
        readings = runner.predose_readings()
        assert base is not None and len(readings) == 3
        assert all(r.stamp.mono < runner.dose.mono for r in readings)
        assert base[0] == pytest.approx(sum(r.systolic for r in readings) / 3)
        assert runner.alarms.engine.baseline_status().startswith("pre-dose baseline")
        assert not runner.nibp_schedule()[0].startswith("before the dose")
        with pytest.raises(UserError, match="already marked"):
            runner.dose_given("RN L")
    finally:
        runner.stop()


def test_a_dose_the_nurse_marks_first_is_t0_and_the_scenarios_is_not_sent(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    runner = SessionRunner(
        SessionConfig(
            SessionSetup("DEMO", devices=("sim:desaturation",)),
            db_url=url, speed=300, scenario_dose=True, until=15 * 60,
        )
    )  # fmt: skip
    runner.start()
    try:
        _wait(lambda: len(runner.predose_readings()) >= 1, runner)
        dose = runner.dose_given("RN L")
        _wait(runner.finished, runner)  # past the scenario's dose at 10 min
        runner.poll()
        assert runner.dose == dose and not runner.dose_from_scenario
        assert runner.alarms.engine.dose.mono == dose.mono
    finally:
        runner.stop()
    [event] = _dose_events(url, runner.session_id)
    assert event.text == "dose given"
