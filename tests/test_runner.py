"""A whole dosing session driven without a screen: what the nurse does, and what is recorded."""

from __future__ import annotations

import time

import pytest

from kapmonitor.errors import UserError
from kapmonitor.record.db import open_database
from kapmonitor.record.session import Drug, Route, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.runner import SessionConfig, SessionRunner, check_device


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
            patient="P-7", devices=("sim:typical",), clinician="Dr K", operator="RN L",
            drug=Drug.KETAMINE, route=Route.IV, dose=35, db_url=url, speed=300, seed=4,
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
