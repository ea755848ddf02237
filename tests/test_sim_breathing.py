"""The simulated patient breathes (issue 17): rate, EtCO2 and a capnogram that follows them,
respiratory depression before the SpO2 falls, apnoea, a sampling line that comes off; and the
simulator publishes it, without changing a value of what it published before.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest

import devices.sim
from devices.base import PlaybackSettings
from devices.sim.driver import CO2_RATE, SimDriver
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario, parse_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import ScenarioError
from kapmonitor.core.model import Flag, Numeric, WaveformBlock

DOSE = 600.0  #: every breathing scenario doses at 10 min
TYPICAL = (Path(devices.sim.__file__).parent / "scenarios" / "typical.toml").read_text("utf-8")


def session(name: str, seed: int = 5) -> KapSession:
    return KapSession(load_scenario(name), seed=seed)


def first_time(s: KapSession, test, start: float = 0.0) -> float:
    """The first whole second from ``start`` at which ``test(breathing, vitals)`` holds."""
    for t in range(int(start), int(s.duration)):
        if test(s.breathing(t), s.vitals(t)):
            return float(t)
    return math.inf


# --- the patient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_a_resting_patient_breathes_in_the_normal_range(seed: int) -> None:
    s = session("typical", seed)
    rates = [s.breathing(t).resp_rate for t in range(0, 9000, 30)]
    ets = [s.breathing(t).etco2 for t in range(0, 9000, 30)]
    assert all(r is not None and 7 <= r <= 24 for r in rates), rates
    assert all(e is not None and 28 <= e <= 50 for e in ets), ets


def test_adding_breathing_faults_changes_no_other_value() -> None:
    # The same scenario (its name seeds the patient) with an apnoea and a line off: every
    # vital, pleth sample and cuff reading is the one it had without them.
    plain = load_scenario("typical")
    extra = TYPICAL + (
        '\n[[faults]]\nkind = "apnea"\nstart_min = 5\nduration_min = 0.5\n'
        '\n[[faults]]\nkind = "sampling-line-off"\nstart_min = 9\nduration_min = 1\n'
        '\n[[faults]]\nkind = "respiratory-depression"\nstart_min = 20\nduration_min = 10\n'
        "resp_rate = 6\netco2_rise = 20\n"
    )
    a, b = KapSession(plain, seed=3), KapSession(parse_scenario(extra), seed=3)
    for t in np.arange(0.0, 9000.0, 7.3):
        assert a.vitals(float(t)) == b.vitals(float(t))
    assert np.array_equal(a.pleth(500.0, 3000, 100.0), b.pleth(500.0, 3000, 100.0))
    assert a.nibp_readings == b.nibp_readings
    assert a.breathing(100.0) == b.breathing(100.0)  # before the first breathing fault


def test_the_capnogram_follows_rate_and_etco2() -> None:
    s = session("typical")
    t0, seconds, fs = 1200.0, 120.0, CO2_RATE
    y = s.capnogram(t0, int(seconds * fs), fs)
    assert np.all(np.isfinite(y)) and y.min() >= 0.0
    # Breaths: upward crossings of half the EtCO2.
    et = s.breathing(t0).etco2
    assert et is not None
    up = np.flatnonzero((y[:-1] < et / 2) & (y[1:] >= et / 2))
    rate = float(np.mean([s.breathing(t0 + k).resp_rate for k in range(0, 120, 5)]))
    assert abs(len(up) - rate * seconds / 60.0) <= 2.0, (len(up), rate)
    # Each breath's plateau ends at the EtCO2 of its moment; between breaths it reads ~0.
    for a, b in itertools.pairwise(up):
        peak = y[a:b].max()
        here = s.breathing(t0 + (a + int(np.argmax(y[a:b]))) / fs).etco2
        assert here is not None and abs(peak - here) <= 1.5, (peak, here)
        assert y[a:b].min() <= 1.5


def test_the_capnogram_is_a_pure_function_of_time() -> None:
    s = session("apnea")
    whole = s.capnogram(1790.0, 1200, 20.0)
    parts = np.concatenate([s.capnogram(1790.0 + k * 0.35, 7, 20.0) for k in range(0, 172)])
    assert np.allclose(whole[: len(parts)], parts[: len(whole)])


def test_respiratory_depression_comes_minutes_before_the_spo2_falls() -> None:
    s = session("respiratory-depression")
    rr_low = first_time(s, lambda b, v: b.resp_rate is not None and b.resp_rate < 8, DOSE)
    et_high = first_time(s, lambda b, v: b.etco2 is not None and b.etco2 > 50, DOSE)
    spo2_low = first_time(s, lambda b, v: v.spo2 is not None and v.spo2 < 90, DOSE)
    assert DOSE < rr_low < math.inf and DOSE < et_high < math.inf
    assert spo2_low - max(rr_low, et_high) >= 180.0, (rr_low, et_high, spo2_low)
    # Several minutes of change, not a step: the rate is still falling 3 min into the course.
    assert s.breathing(DOSE + 300 + 180).resp_rate > s.breathing(DOSE + 300 + 600).resp_rate
    # And it recovers.
    after = s.breathing(DOSE + 45 * 60)
    assert after.resp_rate is not None and after.resp_rate > 9
    assert after.etco2 is not None and after.etco2 < 46


def test_apnea_stops_breathing_for_thirty_seconds_then_it_resumes() -> None:
    s = session("apnea")
    start = DOSE + 20 * 60
    stopped = [t for t in range(int(start) - 60, int(start) + 120) if s.breathing(t).resp_rate == 0]
    assert stopped == list(range(int(start), int(start) + 30))
    for t in stopped:
        b = s.breathing(t)
        assert b.etco2 is None and Flag.NO_BREATH in b.flags
        v = s.vitals(t)  # the oximeter goes on
        assert v.spo2 is not None and v.heart_rate is not None
    flat = s.capnogram(start + 0.5, 29 * 20, 20.0)
    assert flat.max() < 2.0
    again = s.capnogram(start + 30.0, 30 * 20, 20.0)
    assert again.max() > 25.0  # breathing resumed
    assert (s.breathing(start + 31).resp_rate or 0) > 6


def test_a_sampling_line_off_is_flat_co2_with_a_normal_oximeter() -> None:
    s = session("sampling-line-off")
    start = DOSE + 15 * 60
    for t in range(int(start), int(start) + 120, 3):
        b = s.breathing(t)
        assert b.resp_rate is None and b.etco2 is None and b.flags == {Flag.SENSOR_OFF}
        v = s.vitals(t)
        assert v.spo2 is not None and v.spo2 >= 94 and v.heart_rate is not None
    y = s.capnogram(start + 1.0, 118 * 20, 20.0)
    assert y.max() - y.min() < 2.0  # flat: no breath shows through
    assert s.breathing(start + 125).etco2 is not None


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ('kind = "respiratory-depression"\nresp_rate = 5', "missing required key 'etco2_rise'"),
        ('kind = "respiratory-depression"\nresp_rate = 99\netco2_rise = 5', "resp_rate"),
        ('kind = "apnea"\nnadir = 80', "unknown key 'nadir'"),
    ],
)
def test_bad_breathing_faults_are_one_sentence(fault: str, problem: str) -> None:
    text = TYPICAL + f"\n[[faults]]\n{fault}\nstart_min = 1\nduration_min = 2\n"
    with pytest.raises(ScenarioError, match=re.escape(problem)):
        parse_scenario(text)


# --- the simulated monitor -----------------------------------------------------------------------


def played(scenario: str, until: float) -> list:
    items: list = []
    driver = SimDriver(
        DeviceSpec.parse(f"sim:{scenario}"),
        items.append,
        playback=PlaybackSettings(speed=1e9, seed=5, until=until),
    )
    driver.open()
    driver.start()
    assert driver.join(timeout=120)
    return items


def test_the_simulator_publishes_breathing_values_and_the_capnogram() -> None:
    until = DOSE + 20 * 60 + 90
    items = played("apnea", until)
    s = session("apnea")
    rr = [i for i in items if isinstance(i, Numeric) and i.code is Code.RESP_RATE]
    et = [i for i in items if isinstance(i, Numeric) and i.code is Code.CO2_ET]
    fi = [i for i in items if isinstance(i, Numeric) and i.code is Code.CO2_INSP_MIN]
    assert len(rr) == len(et) == len(fi) == int(until)  # one a second, as the oximeter's
    origin = rr[0].stamp.mono
    for n in rr + et:
        # On a machine up for days the monotonic clock reads ~1e5 s, so the difference lands a
        # few ulps off the whole second the simulator meant; on a breath's edge that matters.
        b = s.breathing(round(n.stamp.mono - origin, 6))
        truth = b.resp_rate if n.code is Code.RESP_RATE else b.etco2
        assert (n.value is None) == (truth is None)
        if truth is not None:
            assert n.value == round(truth)
        assert n.flags == b.flags
    apnoea = [n for n in rr if n.value == 0]
    assert len(apnoea) == 30 and all(Flag.NO_BREATH in n.flags for n in apnoea)
    waves = [i for i in items if isinstance(i, WaveformBlock) and i.code is Code.CO2]
    assert {w.fs for w in waves} == {CO2_RATE}
    samples = np.concatenate([w.samples for w in waves])
    assert len(samples) == int(until * CO2_RATE)
    assert np.allclose(samples, s.capnogram(0.0, len(samples), CO2_RATE))
    assert any(Flag.NO_BREATH in w.flags for w in waves)
