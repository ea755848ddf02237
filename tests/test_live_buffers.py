"""LiveBuffers: what the live view draws, fed with a simulated session's items (no Qt)."""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from alarms.model import LogEntry, LogEvent, Priority
from devices.base import PlaybackSettings
from devices.protocols.nonin import Nonin2Driver, NoninFormat2Emulator
from devices.sim.driver import SimDriver
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.live import (
    INITIAL_CAPACITY,
    LiveBuffers,
    PlethRing,
    Series,
    age_text,
    flags_text,
    signal_quality,
)


def simulate(scenario: str, minutes: float, publish=None, seed: int = 5) -> list:
    items: list = []
    driver = SimDriver(
        DeviceSpec("sim", scenario, f"sim:{scenario}"),
        publish or items.append,
        playback=PlaybackSettings(speed=1e6, seed=seed, until=minutes * 60.0),
    )
    driver.start()
    assert driver.join(120), "the simulated session did not finish"
    return items


@pytest.fixture(scope="module")
def probe_off_items() -> list:
    """35 minutes of the probe-off scenario: dose at 10 min, the probe off 20-21.5 min after."""
    return simulate("probe-off", 35)


@pytest.fixture(scope="module")
def buffers(probe_off_items) -> LiveBuffers:
    buffers = LiveBuffers()
    assert buffers.ingest(probe_off_items) > 0
    return buffers


def test_every_numeric_lands_in_its_trend_in_order(probe_off_items, buffers):
    for code in (Code.SPO2, Code.PULSE_RATE, Code.PERFUSION):
        sent = [i for i in probe_off_items if isinstance(i, Numeric) and i.code is code]
        series = buffers.trends[code]
        assert series.n == len(sent) == 35 * 60
        assert np.array_equal(series.t, [i.stamp.mono for i in sent])
        assert np.all(np.diff(series.t) > 0)
    assert buffers.trends[Code.HEART_RATE].n == 0  # the simulator has no ECG


def test_a_missing_value_is_nan_never_zero(probe_off_items, buffers):
    sent = [i for i in probe_off_items if isinstance(i, Numeric) and i.code is Code.SPO2]
    missing = np.array([i.value is None for i in sent])
    assert 90 < missing.sum() < 130  # 90 s off plus a few seconds of searching
    values = buffers.trends[Code.SPO2].v
    assert np.all(np.isnan(values[missing]))
    assert np.all(np.isfinite(values[~missing]))
    assert not np.any(values == 0)


def test_nibp_readings_are_kept_with_their_parts(probe_off_items, buffers):
    sent = [i for i in probe_off_items if isinstance(i, NibpReading)]
    assert buffers.nibp.n == len(sent) >= 7  # 3 before the dose, 4 of the q5 schedule
    assert np.array_equal(buffers.nibp.column("sys"), [r.systolic for r in sent])
    assert np.array_equal(buffers.nibp.column("dia"), [r.diastolic for r in sent])
    assert np.array_equal(buffers.nibp.column("mean"), [r.mean for r in sent])
    assert buffers.latest_nibp is sent[-1]
    assert len(buffers.nibp_flags) == len(sent)


def test_a_failed_nibp_reading_is_a_row_of_nan_and_the_last_valid_one_is_kept():
    buffers = LiveBuffers()
    t = Stamp(1.0, 1_000_000.0)
    good = NibpReading("cuff", 120, 80, 93, t)
    failed = NibpReading("cuff", None, None, None, t.shifted(300), {Flag.MEASUREMENT_FAILED})
    buffers.ingest([good, failed])
    assert buffers.nibp.n == 2
    assert np.isnan(buffers.nibp.column("sys")[1])
    assert buffers.latest_nibp is failed
    assert buffers.last_valid_nibp is good


def test_the_dose_sets_minute_zero_and_earlier_times_go_negative(probe_off_items):
    buffers = LiveBuffers()
    dose = next(
        i
        for i in probe_off_items
        if isinstance(i, SessionEvent) and i.kind is SessionEventKind.DOSE
    )
    before = probe_off_items[: probe_off_items.index(dose)]
    buffers.ingest(before)
    start = probe_off_items[0].stamp.mono
    assert buffers.session_start == start
    assert buffers.dose_time is None
    # Before the dose: minutes from the session start.
    assert buffers.minutes_from_dose(start + 300) == pytest.approx(5.0)
    buffers.ingest(probe_off_items[probe_off_items.index(dose) :])
    assert buffers.dose_time == dose.stamp.mono
    assert buffers.minutes_from_dose(dose.stamp.mono) == 0.0
    assert buffers.minutes_from_dose(start) == pytest.approx(-10.0)
    x = buffers.minutes_from_dose(buffers.trends[Code.SPO2].t)
    assert x[0] == pytest.approx(-10.0, abs=0.02) and x[-1] == pytest.approx(25.0, abs=0.02)
    # A second dose is an event, not a new T0.
    later = SessionEvent("session", SessionEventKind.DOSE, dose.stamp.shifted(600), "top-up")
    assert not buffers.add(later)
    assert buffers.dose_time == dose.stamp.mono
    assert [m.kind for m in buffers.markers] == [SessionEventKind.DOSE]


def test_a_wall_clock_step_does_not_move_points_on_the_time_axis():
    """Minutes from the dose are an interval: a clock set an hour ahead mid-session (NTP, a user)
    leaves the next point a second after the last one, not an hour."""
    t0 = Stamp.now()
    buffers = LiveBuffers()
    buffers.add(SessionEvent("session", SessionEventKind.DOSE, t0, "dose given"))
    buffers.add(Numeric("ox", Code.SPO2, 97.0, t0.shifted(60)))
    stepped = t0.shifted(61)
    buffers.add(Numeric("ox", Code.SPO2, 96.0, Stamp(stepped.mono, stepped.wall + 3600)))
    x = buffers.minutes_from_dose(buffers.trends[Code.SPO2].t)
    assert x.tolist() == pytest.approx([1.0, 61 / 60])


def test_latest_value_per_code_with_flags_and_age(probe_off_items, buffers):
    last = [i for i in probe_off_items if isinstance(i, Numeric) and i.code is Code.SPO2][-1]
    latest = buffers.latest[Code.SPO2]
    assert (latest.value, latest.flags, latest.stamp) == (last.value, last.flags, last.stamp)
    assert latest.age(last.stamp.shifted(4.5)) == pytest.approx(4.5)
    off = LiveBuffers()
    off.add(Numeric("ox", Code.SPO2, None, last.stamp, frozenset({Flag.SENSOR_OFF})))
    assert off.latest[Code.SPO2].value is None
    assert off.latest[Code.SPO2].flags == {Flag.SENSOR_OFF}


def test_the_pleth_ring_holds_the_last_ten_seconds_and_wraps(probe_off_items, buffers):
    blocks = [i for i in probe_off_items if isinstance(i, WaveformBlock) and i.code is Code.PLETH]
    ring = buffers.pleth["sim:probe-off"]
    assert ring.fs == 100.0 and ring.size == 1000
    total = sum(len(b.samples) for b in blocks)
    assert ring.count == total  # no gap in a simulated session
    assert ring.count > 100 * ring.size  # it wrapped many times
    expected = np.concatenate([b.samples for b in blocks[-60:]])[-ring.size :]
    assert np.array_equal(ring.latest(), expected, equal_nan=True)
    assert ring.head == total % ring.size
    assert ring.end.mono == pytest.approx(blocks[-1].stamp.mono + blocks[-1].duration)


def test_the_pleth_keeps_nan_while_the_probe_is_off(probe_off_items):
    ring = PlethRing(100.0)
    off = False
    for block in probe_off_items:
        if isinstance(block, WaveformBlock):
            ring.add(block)
            if Flag.SENSOR_OFF in block.flags and ring.count > 3000:
                off = True
                break
    assert off
    assert np.isnan(ring.latest(0.25)).all()  # the block it just took


def test_lost_pleth_blocks_become_a_gap_in_the_ring():
    ring = PlethRing(100.0, window_s=10.0)
    t = Stamp(0.0, 1_000.0)
    ring.add(WaveformBlock("ox", Code.PLETH, t, 100.0, np.ones(25)))
    ring.add(WaveformBlock("ox", Code.PLETH, t.shifted(0.75), 100.0, np.full(25, 2.0)))
    assert ring.count == 100  # 25 + 50 lost + 25
    latest = ring.latest()
    assert np.all(latest[:25] == 1) and np.all(np.isnan(latest[25:75]))
    assert np.all(latest[75:] == 2)
    # A gap longer than the window blanks the ring and keeps the head in step with time.
    ring.add(WaveformBlock("ox", Code.PLETH, t.shifted(60.0), 100.0, np.full(25, 3.0)))
    assert ring.count == 6025
    assert np.all(np.isnan(ring.latest()[:-25])) and np.all(ring.latest(0.25) == 3)


def test_a_new_sample_rate_starts_a_new_ring():
    buffers = LiveBuffers()
    t = Stamp(0.0, 1_000.0)
    buffers.add(WaveformBlock("ox", Code.PLETH, t, 100.0, np.ones(25)))
    buffers.add(WaveformBlock("ox", Code.PLETH, t.shifted(0.25), 75.0, np.ones(25)))
    assert buffers.pleth["ox"].fs == 75.0 and buffers.pleth["ox"].size == 750


def test_alarm_starts_and_markers_are_kept_for_the_trend():
    buffers = LiveBuffers()
    t = Stamp(0.0, 5_000.0)
    buffers.ingest(
        [
            LogEntry(t, LogEvent.ACTIVE, "spo2-low", Priority.MEDIUM, code=Code.SPO2, value=88),
            LogEntry(t.shifted(5), LogEvent.ACKNOWLEDGED, "spo2-low", Priority.MEDIUM),
            LogEntry(t.shifted(9), LogEvent.ACTIVE, "sensor-off", Priority.HIGH),
            SessionEvent("session", SessionEventKind.MARKER, t.shifted(20), "dissociation"),
            SessionEvent("session", SessionEventKind.NIBP_SCHEDULED, t.shifted(30)),
        ]
    )
    assert len(buffers.alarm_log) == 3
    starts = buffers.alarm_starts
    assert starts.n == 2
    assert list(starts.column("priority")) == [Priority.MEDIUM, Priority.HIGH]
    assert starts.column("value")[0] == 88 and math.isnan(starts.column("value")[1])
    assert buffers.alarm_start_codes == [Code.SPO2, None]
    assert [(m.kind, m.text) for m in buffers.markers] == [
        (SessionEventKind.MARKER, "dissociation")
    ]


def test_device_states_are_kept_per_source(probe_off_items, buffers):
    events = [i for i in probe_off_items if isinstance(i, DeviceEvent)]
    assert buffers.devices["sim:probe-off"] == events[-1]


def test_series_grow_by_doubling_and_old_views_stay_valid():
    series = Series(capacity=4)
    view = None
    for i in range(9):
        series.append(float(i), float(i * 10))
        if i == 2:
            view = series.v
    assert series.capacity == 16 and series.n == 9
    assert list(view) == [0.0, 10.0, 20.0]
    assert list(series.t) == list(range(9))
    with pytest.raises(ValueError):
        series.v[0] = 1.0  # the screen gets read-only views


def test_a_series_at_its_cap_merges_points_and_keeps_gaps():
    series = Series(capacity=4, max_points=8)
    values = [1, 2, np.nan, 4, 5, 6, 7, np.nan]
    for i, v in enumerate(values):
        series.append(float(i), v)
    assert series.n == 8 and series.capacity == 8
    series.append(8.0, 9.0)
    assert series.n == 5 and series.capacity == 8
    assert list(series.t) == [0, 2, 4, 6, 8]
    got = series.v
    assert got[0] == 1 and np.isnan(got[1]) and got[2] == 5 and np.isnan(got[3]) and got[4] == 9


def test_memory_is_flat_over_a_four_hour_session(tmp_path: Path):
    """Four hours of accelerated items: the pleth rings do not grow at all, and the trends only
    by doubling up to what four hours of 1-Hz numerics need."""
    scenario = tmp_path / "long.toml"
    text = (Path(__file__).parents[1] / "devices/sim/scenarios/typical.toml").read_text()
    scenario.write_text(text.replace("duration_min = 150", "duration_min = 250"))
    buffers = LiveBuffers()
    hourly: list[tuple[int, int, int]] = []  # (hour, pleth bytes, all bytes)

    def publish(item) -> None:
        buffers.add(item)
        start = buffers.session_start
        # (5 s early: the session's first item, its start, may be stamped a moment after the
        # simulator's origin, and its last item comes at the fourth hour's end exactly)
        if start is not None and item.stamp.mono - start >= 3600 * (len(hourly) + 1) - 5:
            pleth = sum(r.nbytes for r in buffers.pleth.values())
            hourly.append((len(hourly) + 1, pleth, buffers.nbytes()))

    driver = SimDriver(
        DeviceSpec("sim", str(scenario), "sim:long"),
        publish,
        playback=PlaybackSettings(speed=1e6, seed=2, until=4 * 3600),
    )
    driver.start()
    assert driver.join(300)
    assert [h for h, _, _ in hourly] == [1, 2, 3, 4]
    pleth_bytes = {p for _, p, _ in hourly} | {sum(r.nbytes for r in buffers.pleth.values())}
    assert pleth_bytes == {1000 * 8}  # one ring of 10 s at 100 Hz, whatever the hour
    n = buffers.trends[Code.SPO2].n
    assert n == 4 * 3600
    capacity = buffers.trends[Code.SPO2].capacity
    assert capacity == INITIAL_CAPACITY * 4 and n <= capacity < 2 * n
    # The trends that grow (SpO2, pulse, PI and, since the simulated patient breathes, RR and
    # EtCO2) x 2 columns x 16384 x 8 B, the others at their first capacity, NIBP and alarm
    # tables: about 1.45 MB in all.
    assert buffers.nbytes() < 1.6e6


def test_signal_quality_and_texts():
    assert signal_quality(frozenset({Flag.SENSOR_OFF}), None) == (0, "sensor off")
    assert signal_quality(frozenset({Flag.SEARCHING}), None)[0] == 0
    assert signal_quality(frozenset({Flag.ARTIFACT}), 3.0)[0] == 1
    assert signal_quality(frozenset(), 0.3) == (1, "low perfusion")
    assert signal_quality(frozenset(), 0.7) == (2, "weak")
    assert signal_quality(frozenset(), 3.0) == (3, "good")
    assert flags_text(frozenset({Flag.ARTIFACT, Flag.SEARCHING})) == "searching, artifact"
    assert age_text(2) == "just now"
    assert age_text(42) == "42 s ago"
    assert age_text(185) == "3 min ago"
    assert age_text(3 * 3600 + 120) == "3 h 2 min ago"


# --- gaps in the trends -----------------------------------------------------------------------


def _gap_points(series: Series) -> np.ndarray:
    """Times of the NaN points of a trend (the breaks the plot draws)."""
    return series.t[np.isnan(series.v)]


def test_a_simulated_unplug_is_a_gap_in_every_trend():
    """device-unplug: the cable is out 2 min from 38 min after the dose (48 min in)."""
    items = simulate("device-unplug", 52)
    buffers = LiveBuffers()
    buffers.ingest(items)
    unplug = next(
        i for i in items if isinstance(i, DeviceEvent) and i.state.value == "disconnected"
    )
    for code in (Code.SPO2, Code.PULSE_RATE, Code.PERFUSION):
        series = buffers.trends[code]
        t, v = series.t, series.v
        before = t < unplug.stamp.mono
        after = np.nonzero(t > unplug.stamp.mono + 60)[0][0]
        # one NaN point between the last value before the unplug and the first after it
        assert np.isnan(v[after - 1]) and t[after - 1] > t[before][-1]
        assert len(_gap_points(series)) == 1
        assert t[after] - t[before][-1] == pytest.approx(120, abs=2)


def test_a_long_silence_without_any_device_event_is_a_gap():
    buffers = LiveBuffers()
    start = Stamp.now()
    for k in (0, 1, 2, 3, 53, 54):  # 50 s of nothing after 3 s
        buffers.add(Numeric("ox", Code.SPO2, 97.0, start.shifted(k)))
    series = buffers.trends[Code.SPO2]
    assert series.n == 7
    assert _gap_points(series) == pytest.approx([start.mono + 28])


def test_jitter_and_a_slow_device_are_no_gap():
    buffers = LiveBuffers()
    start = Stamp.now()
    for k in (0, 1.1, 1.9, 3.4, 4.0, 5.2):  # an oximeter's jitter
        buffers.add(Numeric("ox", Code.SPO2, 97.0, start.shifted(k)))
    for k in range(0, 100, 10):  # a patient monitor that sends every 10 s
        buffers.add(Numeric("mon", Code.PULSE_RATE, 70.0, start.shifted(k)))
    assert not np.isnan(buffers.trends[Code.SPO2].v).any()
    assert not np.isnan(buffers.trends[Code.PULSE_RATE].v).any()
    # ... but the slow device's 40 s silence is (more than 3 of its intervals)
    buffers.add(Numeric("mon", Code.PULSE_RATE, 70.0, start.shifted(130)))
    assert len(_gap_points(buffers.trends[Code.PULSE_RATE])) == 1


def test_a_short_disconnect_of_the_values_device_is_a_gap_another_devices_is_not():
    buffers = LiveBuffers()
    start = Stamp.now()
    buffers.add(Numeric("ox", Code.SPO2, 97.0, start))
    buffers.add(Numeric("mon", Code.PULSE_RATE, 70.0, start))
    buffers.add(DeviceEvent("ox", ConnectionState.DISCONNECTED, start.shifted(1)))
    buffers.add(DeviceEvent("ox", ConnectionState.CONNECTED, start.shifted(2)))
    buffers.add(Numeric("ox", Code.SPO2, 96.0, start.shifted(3)))
    buffers.add(Numeric("mon", Code.PULSE_RATE, 71.0, start.shifted(3)))
    assert len(_gap_points(buffers.trends[Code.SPO2])) == 1
    assert len(_gap_points(buffers.trends[Code.PULSE_RATE])) == 0


def test_a_gap_after_a_missing_value_adds_no_second_break():
    buffers = LiveBuffers()
    start = Stamp.now()
    buffers.add(Numeric("ox", Code.SPO2, None, start))
    buffers.add(Numeric("ox", Code.SPO2, 97.0, start.shifted(60)))
    assert buffers.trends[Code.SPO2].n == 2


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_real_disconnect_over_a_pty_is_a_gap_even_when_short(tmp_path):
    """A Nonin (format 2) on a pty, its cable pulled for 2 s: shorter than the silence rule's
    5 s, so the break comes from the driver's disconnect event alone."""
    hub = Hub()
    sub = hub.subscribe("screen", maxsize=1_000_000)
    link = tmp_path / "oximeter"
    endpoint = PtyEndpoint(link)
    emulator = NoninFormat2Emulator(KapSession(load_scenario("typical"), seed=1))
    stop = threading.Event()
    buffers = LiveBuffers()
    seen: list = []

    def device() -> None:
        t = 0.0
        while not stop.is_set():
            endpoint.write(emulator.emit(t, t + 0.1))
            t += 0.1
            time.sleep(0.1)

    def wait_for(predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = sub.drain()
            seen.extend(items)
            buffers.ingest(items)
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out")

    driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{link}"), hub.publish)
    writer = threading.Thread(target=device)
    writer.start()
    try:
        driver.open()
        driver.start()
        wait_for(lambda: buffers.trends[Code.SPO2].n >= 5)
        endpoint.unplug()
        wait_for(lambda: buffers.devices[driver.source].state is ConnectionState.RECONNECTING)
        unplugged = {code: buffers.trends[code].t[-1] for code in (Code.SPO2, Code.PULSE_RATE)}
        time.sleep(2.0)
        endpoint.replug()
        wait_for(lambda: buffers.trends[Code.SPO2].t[-1] > unplugged[Code.SPO2] + 4)
    finally:
        stop.set()
        writer.join()
        driver.stop()
        endpoint.close()
    for code in (Code.SPO2, Code.PULSE_RATE):
        series = buffers.trends[code]
        last = int(np.nonzero(series.t == unplugged[code])[0][-1])
        back = min(
            i.stamp.mono
            for i in seen
            if isinstance(i, Numeric) and i.code is code and i.stamp.mono > unplugged[code]
        )
        # right after the last value before the cable was pulled comes a break, before anything
        # the device sent once it was back (which may be a missing value of its own)
        assert not math.isnan(series.v[last]), code
        assert math.isnan(series.v[last + 1]) and series.t[last + 1] < back, code
