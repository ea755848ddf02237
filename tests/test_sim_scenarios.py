"""Scenario files: every shipped one loads and shows its signature; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.sim.physiology import KapSession
from devices.sim.scenario import Scenario, load_scenario, parse_scenario, scenario_names
from kapmonitor.core.errors import ScenarioError
from kapmonitor.core.model import Flag

REQUIRED = {
    "typical",
    "hypertensive-surge",
    "severe-hypertension",
    "desaturation",
    "bradycardia",
    "probe-off",
    "device-unplug",
    "artifact-storm",
}


def _minutes(session: KapSession, minutes_after_dose: float) -> float:
    return session.dose_time + minutes_after_dose * 60.0


def _vitals(session: KapSession, step: float = 2.0):
    return [session.vitals(t) for t in np.arange(0.0, session.duration, step)]


# --- shipped scenarios ---------------------------------------------------------------------------


def test_required_scenarios_are_shipped() -> None:
    assert set(scenario_names()) >= REQUIRED


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_scenario_loads_and_runs(name: str) -> None:
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    assert scenario.description
    s = KapSession(scenario, 0)
    assert s.duration == scenario.duration_min * 60
    assert s.nibp_readings
    assert np.isfinite(s.pleth(30.0, 100, 100.0)).all()


def test_load_by_path(tmp_path: Path) -> None:
    shipped = load_scenario("typical")
    path = tmp_path / "mine.toml"
    path.write_text(_VALID)
    mine = load_scenario(str(path))
    assert mine.source == str(path)
    assert mine.dose_at_min == 10
    assert shipped.response == load_scenario("typical").response


def test_typical_has_no_faults() -> None:
    scenario = load_scenario("typical")
    assert scenario.faults == ()
    for seed in range(5):
        s = KapSession(scenario, seed)
        vitals = _vitals(s)
        assert not any(v.flags & {Flag.SENSOR_OFF, Flag.ARTIFACT, Flag.SEARCHING} for v in vitals)
        assert all(s.connected(t) for t in np.arange(0.0, s.duration, 5.0))
        assert all(not r.flags for r in s.nibp_readings)
        assert min(v.spo2 for v in vitals) > 92
        assert min(v.heart_rate for v in vitals) > 50
        assert not np.isnan(s.pleth(0.0, int(s.duration * 10), 10.0)).any()


@pytest.mark.parametrize("seed", range(20))
def test_severe_hypertension_is_severe(seed: int) -> None:
    s = KapSession(load_scenario("severe-hypertension"), seed)
    true_sys, true_dia = zip(*(s.true_bp(t) for t in np.arange(0.0, s.duration, 10.0)), strict=True)
    assert max(true_sys) > 180 or max(true_dia) > 110
    readings = [r for r in s.nibp_readings if r.systolic is not None]
    assert any(r.systolic > 180 or r.diastolic > 110 for r in readings)
    before = [r for r in readings if r.mode == "predose"]
    assert all(r.systolic < 180 for r in before)


@pytest.mark.parametrize("seed", range(5))
def test_hypertensive_surge_rises_clearly(seed: int) -> None:
    s = KapSession(load_scenario("hypertensive-surge"), seed)
    d = s.drawn()
    base = np.mean([r.systolic for r in s.nibp_readings if r.mode == "predose"])
    at_peak = s.true_bp(_minutes(s, d["peak_min"]))[0]
    assert at_peak - d["baseline_systolic"] > 20
    assert max(r.systolic for r in s.nibp_readings) - base > 20


@pytest.mark.parametrize("seed", range(5))
def test_desaturation(seed: int) -> None:
    s = KapSession(load_scenario("desaturation"), seed)
    spo2 = [v.spo2 for v in _vitals(s)]
    assert min(spo2) < 90
    assert s.vitals(_minutes(s, 27)).spo2 < 87  # held at the nadir
    assert s.vitals(_minutes(s, 15)).spo2 > 93  # before
    assert s.vitals(_minutes(s, 35)).spo2 > 93  # and recovered


@pytest.mark.parametrize("seed", range(5))
def test_bradycardia(seed: int) -> None:
    s = KapSession(load_scenario("bradycardia"), seed)
    hr = [v.heart_rate for v in _vitals(s)]
    assert min(hr) < 50
    # Before and after the episode the pulse is the patient's own, well above 50.
    assert s.vitals(_minutes(s, 20)).heart_rate > 52
    assert s.vitals(_minutes(s, 40)).heart_rate > 52


def test_probe_off() -> None:
    s = KapSession(load_scenario("probe-off"), 0)
    off = s.vitals(_minutes(s, 20.5))
    assert Flag.SENSOR_OFF in off.flags
    assert (off.heart_rate, off.spo2, off.perfusion_index) == (None, None, None)
    assert np.isnan(s.pleth(_minutes(s, 20.5), 100, 100.0)).all()
    # Back on: a few seconds of searching, then values again.
    back = _minutes(s, 21.5)
    assert Flag.SEARCHING in s.vitals(back + 1.0).flags
    assert s.vitals(back + 1.0).spo2 is None
    assert s.vitals(back + 30.0).spo2 is not None
    assert not np.isnan(s.pleth(back + 1.0, 100, 100.0)).any()
    # The pleth turns NaN exactly from the moment the probe comes off.
    wave = s.pleth(_minutes(s, 20) - 1.0, 200, 100.0)
    assert not np.isnan(wave[:100]).any() and np.isnan(wave[100:]).all()
    assert sum(Flag.SENSOR_OFF in v.flags for v in _vitals(s, 1.0)) == pytest.approx(120, abs=2)


def test_device_unplug() -> None:
    s = KapSession(load_scenario("device-unplug"), 0)
    ts = np.arange(0.0, s.duration, 1.0)
    down = [t for t in ts if not s.connected(t)]
    assert len(down) == 120
    assert down[0] == _minutes(s, 38) and down[-1] == _minutes(s, 40) - 1
    assert s.connected(_minutes(s, 37.9)) and s.connected(_minutes(s, 40))


def test_artifact_storm() -> None:
    s = KapSession(load_scenario("artifact-storm"), 0)
    vitals = _vitals(s, 0.5)
    flagged = [v for v in vitals if Flag.ARTIFACT in v.flags]
    assert len(flagged) > 60
    assert all(v.heart_rate is not None for v in flagged)  # noisy, not missing
    window = [v for v in vitals if _minutes(s, 15) <= v.t < _minutes(s, 18)]
    quiet = [v for v in window if Flag.ARTIFACT not in v.flags]
    assert quiet, "artifact comes in bursts, with quiet gaps"

    # Motion makes the pleth rougher in a burst than outside it.
    def roughness(t: float) -> float:
        return float(np.abs(np.diff(s.pleth(t, 100, 100.0))).mean())

    rough = np.mean([roughness(v.t) for v in flagged[:80:8]])
    calm = np.mean([roughness(_minutes(s, m)) for m in (5, 25, 45, 65)])
    assert rough > 1.5 * calm


def test_resting_has_no_dose() -> None:
    s = KapSession(load_scenario("resting"), 0)
    assert s.dose_time is None
    assert s.drug_effect(1800.0) == (0.0, 0.0, 0.0)
    assert "systolic_rise" not in s.drawn()
    assert {r.mode for r in s.nibp_readings} == {"auto"}


# --- validation ----------------------------------------------------------------------------------

_VALID = """\
name = "mine"
description = "test scenario"
duration_min = 120
dose_at_min = 10

[baseline]
heart_rate = { mean = 72, sd = 6 }
spo2 = { mean = 97.5, sd = 0.8, max = 100 }
systolic = { mean = 124, sd = 8 }
diastolic = { mean = 78, sd = 6 }
perfusion_index = 3.0

[response]
systolic_rise = { mean = 16, sd = 11, min = 0, max = 45 }
diastolic_rise = { mean = 11, sd = 8.5, min = 0, max = 35 }
peak_min = { mean = 40, sd = 4, min = 30, max = 50 }
resolve_min = 90

[nibp]
predose_readings = 3
schedule = [{ until_min = 60, every_min = 5 }, { until_min = 1e9, every_min = 15 }]

[[nibp.extra]]
at_min = 42
mode = "stat"

[[faults]]
kind = "probe-off"
start_min = 20
duration_min = 1.5
"""


def test_valid_text_parses() -> None:
    s = parse_scenario(_VALID, "mine.toml")
    assert s.response is not None and s.response.heart_rate_rise.mean == 0
    assert s.baseline.perfusion_index.sd == 0
    assert s.nibp.extra[0].mode == "stat"
    assert s.faults[0].kind == "probe-off"
    assert KapSession(s, 0).nibp_readings


BAD = {
    "unknown top key": (
        ("duration_min = 120", "duration_min = 120\ncolour = 'blue'"),
        "unknown key 'colour'",
    ),
    "unknown nested key": (
        ("heart_rate = { mean = 72, sd = 6 }", "heart_rate = { mean = 72, sd = 6, sigma = 1 }"),
        "[baseline] heart_rate: unknown key 'sigma'",
    ),
    "wrong type": (
        ("sd = 11, min = 0, max = 45", "sd = 'eleven', min = 0, max = 45"),
        "[response] systolic_rise: 'sd' must be a number",
    ),
    "bool is not a number": (("duration_min = 120", "duration_min = true"), "'duration_min'"),
    "missing required": (
        ("resolve_min = 90\n", ""),
        "[response]: missing required key 'resolve_min'",
    ),
    "missing table": (
        ("[baseline]", "[basline]"),
        "unknown key 'basline'",
    ),
    "negative duration": (
        ("duration_min = 120", "duration_min = -5"),
        "'duration_min' must be > 0",
    ),
    "negative fault duration": (
        ("duration_min = 1.5", "duration_min = -1.5"),
        "'duration_min' must be > 0",
    ),
    "unknown fault kind": (('kind = "probe-off"', 'kind = "probe-of"'), "unknown kind 'probe-of'"),
    "fault without kind": (
        ('kind = "probe-off"\n', ""),
        "[[faults]] #1: missing required key 'kind'",
    ),
    "fault key of another kind": (
        ("duration_min = 1.5", "duration_min = 1.5\nnadir = 84"),
        "[[faults]] #1 (probe-off): unknown key 'nadir'",
    ),
    "fault after the end": (("start_min = 20", "start_min = 500"), "lies outside the session"),
    "unknown extra mode": (('mode = "stat"', 'mode = "urgent"'), "unknown mode 'urgent'"),
    "predose does not fit": (
        ("predose_readings = 3", "predose_readings = 5"),
        "need 'dose_at_min' >= 15",
    ),
    "predose not an int": (("predose_readings = 3", "predose_readings = 2.5"), "whole number"),
    "sd negative": (
        ("sd = 11, min = 0, max = 45", "sd = -1, min = 0, max = 45"),
        "'sd' must be >= 0",
    ),
    "min above max": (
        ("sd = 4, min = 30, max = 50", "sd = 4, min = 50, max = 30"),
        "'min' (50) is above",
    ),
    "schedule not increasing": (("until_min = 1e9", "until_min = 30"), "must be later"),
    "every zero": (("every_min = 5", "every_min = 0"), "'every_min' must be > 0"),
    "dose after end": (("dose_at_min = 10", "dose_at_min = 130"), "before the end"),
    "not valid TOML": (('name = "mine"', 'name = "mine'), "is not valid TOML: "),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_file(case: str, tmp_path: Path) -> None:
    (old, new), expected = BAD[case]
    assert old in _VALID, case
    path = tmp_path / "bad.toml"
    path.write_text(_VALID.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    message = str(info.value)
    assert message.startswith(f"scenario file '{path}'")
    assert expected in message
    assert "\n" not in message
    assert message.count(". ") == 0  # one sentence


def test_response_without_dose_is_an_error() -> None:
    text = _VALID.replace("dose_at_min = 10\n", "").replace("predose_readings = 3\n", "")
    with pytest.raises(ScenarioError, match="needs 'dose_at_min'"):
        parse_scenario(text, "x.toml")


def test_unknown_scenario_name_lists_the_available_ones() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("foo")
    message = str(info.value)
    assert message.startswith("unknown scenario 'foo' (available: ")
    assert "typical" in message and "probe-off" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match=r"nope\.toml' does not exist"):
        load_scenario(str(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(_VALID.replace("test scenario", "caf\u00e9").encode("latin-1"))
    with pytest.raises(ScenarioError, match="is not UTF-8 text"):
        load_scenario(str(path))
