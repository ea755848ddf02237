"""The live view: tiles, trends, pleth sweep and the whole MonitorView, offscreen."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtGui, QtWidgets

from alarms.engine import AlarmEngine
from alarms.profile import load_profile
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import (
    Flag,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.core.schedule import next_due
from kapmonitor.live import LiveBuffers
from ui import theme
from ui.monitor_view import MonitorView
from ui.pleth import PlethSweep
from ui.theme import apply_dark_theme
from ui.tiles import MISSING, NibpTile, NumericTile
from ui.trends import CURVE_COLOURS, ROW_OF

SOAK_CYCLES = 10_000


def simulate(scenario: str, minutes: float, seed: int = 5) -> list:
    items: list = []
    driver = SimDriver(
        DeviceSpec("sim", scenario, f"sim:{scenario}"),
        items.append,
        playback=PlaybackSettings(speed=1e6, seed=seed, until=minutes * 60.0),
    )
    driver.start()
    assert driver.join(120)
    return items


@pytest.fixture(scope="module")
def session_items() -> list:
    """35 min of the probe-off scenario: dose at 10 min, probe off 20 min after it."""
    return simulate("probe-off", 35)


@pytest.fixture
def view(qtbot):
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(load_profile("kap-default"))
    qtbot.addWidget(view)
    view.resize(1600, 900)
    return view


def _dose_index(items: list) -> int:
    return next(
        i
        for i, item in enumerate(items)
        if isinstance(item, SessionEvent) and item.kind is SessionEventKind.DOSE
    )


# --- tiles ------------------------------------------------------------------------------------


def test_a_numeric_tile_shows_dashes_for_a_missing_value_never_zero(qtbot):
    tile = NumericTile("SpO2", "%", "#00e0ff")
    qtbot.addWidget(tile)
    assert tile.value_text() == MISSING  # nothing yet
    tile.set_value(97.0, age_s=1.0)
    assert tile.value_text() == "97" and tile.status_text() == ""
    tile.set_value(None, frozenset({Flag.SENSOR_OFF}), age_s=0.5)
    assert tile.value_text() == MISSING and tile.status_text() == "sensor off"
    tile.set_value(math.nan, frozenset({Flag.SEARCHING}), age_s=0.5)
    assert tile.value_text() == MISSING and tile.status_text() == "searching"
    tile.set_value(0.0, age_s=0.5)
    assert tile.value_text() == "0"  # a real 0 is shown; only None/NaN become "---"


def test_a_numeric_tile_greys_then_blanks_a_value_that_stops_updating(qtbot):
    tile = NumericTile("PR", "/min", "#3dff6e")
    qtbot.addWidget(tile)
    tile.set_value(72.0, age_s=15.0)
    assert tile.value_text() == "72"
    assert tile.status_text() == "no update for 15 s"
    assert tile.value.colour == "#5c6168"  # grey
    tile.set_value(72.0, age_s=95.0)
    assert tile.value_text() == MISSING and tile.status_text() == "no update for 1 min"


def test_a_values_age_is_measured_on_the_monotonic_clock_not_the_wall_clock(view):
    """A wall-clock step (NTP, a user changing the time) neither freshens nor ages a value."""
    stamp = Stamp.now()
    buffers = LiveBuffers()
    buffers.add(Numeric("ox", Code.SPO2, 97.0, stamp))
    # 1 real second later, with the clock stepped 1 h ahead: current, in colour.
    view.refresh(buffers, Stamp(stamp.mono + 1, stamp.wall + 3601))
    assert view.spo2.value_text() == "97" and view.spo2.value.colour != theme.TEXT_STALE
    # 40 real seconds later, with the clock stepped 1 h back: blanked, as at any 40 s.
    view.refresh(buffers, Stamp(stamp.mono + 40, stamp.wall + 40 - 3600))
    assert view.spo2.value_text() == MISSING
    assert view.spo2.status_text() == "no update for 40 s"


def test_big_numerics_are_readable_from_across_the_room(view):
    view.show()  # the stylesheets (and their fonts) are applied when shown
    for tile in (view.spo2, view.pulse, view.nibp):
        digits = QtGui.QFontMetrics(tile.value.font()).tightBoundingRect("0123456789")
        assert digits.height() >= 96, (tile.label.text(), digits.height())
        assert tile.value.height() >= digits.height()


def test_the_nibp_tile_shows_age_schedule_and_change_from_baseline(qtbot):
    tile = NibpTile()
    qtbot.addWidget(tile)
    assert tile.value_text() == f"{MISSING}/{MISSING}"
    tile.set_reading(142, 91, 108, age_s=185)
    assert tile.value_text() == "142/91"
    assert tile.mean.text() == "(108)"
    assert tile.age.text() == "3 min ago"
    tile.set_schedule("next in 2 min", False)
    assert tile.schedule.text() == "next in 2 min" and not tile.due_now
    tile.set_schedule("next in 0 min", True)
    assert tile.schedule.text() == "DUE NOW" and tile.due_now
    assert "background-color: #ffb347" in tile.schedule.styleSheet()  # highlighted
    assert tile.delta.text() == "no baseline"
    tile.set_baseline(124, 82)
    assert tile.delta.text() == "+18/+9 vs baseline"
    tile.set_baseline((150.0, 95.0))
    assert tile.delta.text() == "-8/-4 vs baseline"
    tile.set_rise_rule((40, 25))
    tile.set_baseline(100, 60)
    assert tile.delta.text() == "+42/+31 vs baseline"
    assert "font-weight: bold" in tile.delta.styleSheet()
    tile.set_baseline(None)
    assert tile.delta.text() == "no baseline"


def test_a_failed_nibp_reading_shows_dashes_and_the_last_valid_one(qtbot):
    tile = NibpTile()
    qtbot.addWidget(tile)
    tile.set_reading(
        None, None, None, frozenset({Flag.MEASUREMENT_FAILED}), 40, last_valid=(131, 84, 340)
    )
    assert tile.value_text() == f"{MISSING}/{MISSING}"
    assert tile.age.text() == "measurement failed, 40 s ago"
    assert tile.note.text() == "last 131/84, 5 min ago"


# --- trends -----------------------------------------------------------------------------------


def test_trends_get_every_point_with_gaps_kept(view, session_items):
    buffers = LiveBuffers()
    buffers.ingest(session_items)
    view.refresh(buffers, session_items[-1].stamp)
    for code in (Code.SPO2, Code.PULSE_RATE, Code.PERFUSION):
        series = buffers.trends[code]
        x, y = view.trends.curves[code].getOriginalDataset()
        assert len(x) == len(y) == series.n == 35 * 60
        assert np.isnan(y).sum() == np.isnan(series.v).sum() > 90  # the probe-off gap
        assert x[0] == pytest.approx(-10.0, abs=0.02)
        assert view.trends.curves[code].opts["connect"] == "finite"
    x, y = view.trends.curves[Code.HEART_RATE].getOriginalDataset()
    assert x is None  # no ECG: no curve
    valid = np.isfinite(buffers.nibp.column("sys"))
    assert len(view.trends.nibp_sys.data) == valid.sum() == buffers.nibp.n
    assert len(view.trends.nibp_dia.data) == valid.sum()
    # The whole session is in view, on minutes from the dose.
    left, right = view.trends.x_range
    assert left <= -10 and 25 < right <= 30


def test_trends_redraw_only_what_changed(view, session_items):
    buffers = LiveBuffers()
    buffers.ingest(session_items)
    now = session_items[-1].stamp
    view.refresh(buffers, now)
    calls = []
    curve = view.trends.curves[Code.SPO2]
    original = curve.setData
    curve.setData = lambda *a, **k: (calls.append(1), original(*a, **k))
    view.refresh(buffers, now.shifted(0.03))
    assert calls == []
    last = buffers.trends[Code.SPO2]
    buffers.add(Numeric("ox", Code.SPO2, 95.0, session_items[-1].stamp.shifted(1)))
    view.refresh(buffers, now.shifted(1))
    # the value, and a break before it: the simulated device disconnected at the scenario's end
    assert calls == [1] and last.n == 35 * 60 + 2 and np.isnan(last.v[-2])


def test_the_dose_line_appears_when_the_dose_arrives(view, session_items):
    buffers = LiveBuffers()
    dose = _dose_index(session_items)
    buffers.ingest(session_items[:dose])
    view.refresh(buffers, session_items[dose - 1].stamp)
    assert view.trends.dose_lines == []
    assert view.trends.x_label == "minutes"
    x, _ = view.trends.curves[Code.SPO2].getOriginalDataset()
    assert x[0] == pytest.approx(0.0, abs=0.02)  # from the session start
    buffers.ingest(session_items[dose:])
    view.refresh(buffers, session_items[-1].stamp)
    assert len(view.trends.dose_lines) == 4  # one per row
    assert all(line.value() == 0.0 for line in view.trends.dose_lines)
    # the simulator's own dose, not the nurse's key: the label says so
    assert view.trends.dose_lines[0].label.textItem.toPlainText() == "DOSE (scenario)"
    assert view.trends.x_label == "minutes from dose"
    x, _ = view.trends.curves[Code.SPO2].getOriginalDataset()
    assert x[0] == pytest.approx(-10.0, abs=0.02)  # moved to the dose axis


def test_markers_and_alarm_starts_are_drawn(view, session_items):
    buffers = LiveBuffers()
    engine = AlarmEngine(load_profile("kap-default"))
    for item in session_items:
        buffers.add(item)
        if not isinstance(item, WaveformBlock):
            buffers.ingest(engine.process(item))
    stamp = session_items[-1].stamp
    buffers.add(SessionEvent("session", SessionEventKind.MARKER, stamp, "dissociation"))
    view.refresh(buffers, stamp)
    labels = [lines[0].label.textItem.toPlainText() for _, lines in view.trends.event_lines]
    assert labels == ["DOSE (scenario)", "dissociation"]
    drawn = sum(len(row.alarm_points.data) for row in view.trends.rows.values())
    assert drawn == buffers.alarm_starts.n > 0  # the probe-off sensor alarm at least


# --- pleth ------------------------------------------------------------------------------------


def test_the_pleth_sweeps_with_an_erase_bar_and_keeps_gaps(qtbot, session_items):
    sweep = PlethSweep()
    qtbot.addWidget(sweep)
    sweep.resize(1000, 250)
    buffers = LiveBuffers()
    blocks = [i for i in session_items if isinstance(i, WaveformBlock) and i.code is Code.PLETH]
    heads = []
    for block in blocks[:60]:  # 15 s: the sweep wraps once
        buffers.add(block)
        now = block.stamp.shifted(block.duration)
        sweep.refresh(buffers.first_pleth(), now)
        heads.append(sweep.head)
        y = sweep.drawn_wave()
        # The erase bar: samples just ahead of the head are blank.
        assert np.isnan(y[(sweep.head + np.arange(20)) % len(y)]).all()
    assert heads[:2] == [0, 20]  # nothing drawn before the first block is due
    steps = np.diff(heads[1:]) % 1000
    assert np.all(steps == 25)  # a quarter of a second per block, wrapping at 10 s
    assert (np.diff(heads) < 0).sum() == 1  # wrapped once
    assert heads[-1] == (60 * 25 - 30) % 1000  # drawn 0.3 s behind the newest sample
    # Between blocks the head moves with the session's clock, smoothly.
    now = blocks[59].stamp.shifted(blocks[59].duration)
    sweep.refresh(buffers.first_pleth(), now.shifted(-0.2))
    before = sweep.head
    sweep.refresh(buffers.first_pleth(), now.shifted(-0.1))
    assert (sweep.head - before) % 1000 == 10
    # While the probe is off the ring is NaN and the view says so.
    off = [b for b in blocks if Flag.SENSOR_OFF in b.flags]
    ring_buffers = LiveBuffers()
    for block in off[:48]:
        ring_buffers.add(block)
    last = off[47]
    sweep.refresh(ring_buffers.first_pleth(), last.stamp.shifted(last.duration + 0.3))
    y = sweep.drawn_wave()
    assert np.isnan(y).all()
    assert sweep.message_text == "NO SIGNAL"
    assert sweep.status.text() == "sensor off"
    # No pleth for a while: the view says so.
    sweep.refresh(ring_buffers.first_pleth(), last.stamp.shifted(30))
    assert sweep.message_text == "NO PLETH"


# --- the whole view ---------------------------------------------------------------------------


def test_the_view_shows_dashes_before_any_data(view):
    view.refresh(LiveBuffers(), Stamp.now())
    assert view.spo2.value_text() == MISSING
    assert view.pulse.value_text() == MISSING
    assert view.nibp.value_text() == f"{MISSING}/{MISSING}"
    assert view.hr.isHidden()


def test_the_view_fills_its_tiles_from_the_buffers(view, session_items):
    buffers = LiveBuffers()
    buffers.ingest(session_items)
    now = session_items[-1].stamp.shifted(0.5)
    view.set_baseline(120, 80)
    view.schedule_provider = lambda t: ("next in 3 min", False)
    view.refresh(buffers, now)
    spo2 = buffers.latest[Code.SPO2]
    assert view.spo2.value_text() == f"{spo2.value:.0f}"
    assert "signal" in view.spo2.quality.text()
    assert view.pulse.value_text() == f"{buffers.latest[Code.PULSE_RATE].value:.0f}"
    reading = buffers.latest_nibp
    assert view.nibp.value_text() == f"{reading.systolic}/{reading.diastolic}"
    d_sys, d_dia = reading.systolic - 120, reading.diastolic - 80
    assert view.nibp.delta.text() == f"{d_sys:+d}/{d_dia:+d} vs baseline"
    assert view.nibp.schedule.text() == "next in 3 min"
    assert view.spo2.limits.text() == "alarm < 90"
    assert view.pulse.limits.text() == "alarm < 50 or > 120"


def test_ten_thousand_refreshes_with_changing_data_do_not_crash(qtbot, session_items):
    """A live screen's worth of frames (5.5 min at 30 Hz) through the real paint path, fed
    with 33 min of a session meanwhile (0.2 s per frame): dose, probe off, NIBP readings."""
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(load_profile("kap-default"))
    qtbot.addWidget(view)
    view.resize(1280, 720)
    view.show()  # a hidden widget skips its paint
    qtbot.waitExposed(view)
    buffers = LiveBuffers()
    start = session_items[0].stamp
    i = 0
    t0 = time.perf_counter()
    for frame in range(SOAK_CYCLES):
        now = start.shifted(frame * 0.2)
        while i < len(session_items) and session_items[i].stamp.mono <= now.mono:
            buffers.add(session_items[i])
            i += 1
        view.refresh(buffers, now)
        QtWidgets.QApplication.processEvents()
    elapsed = time.perf_counter() - t0
    assert i > len(session_items) * 0.9  # data really changed all along
    assert view.trends.dose_lines and buffers.nibp.n >= 6
    drawn, painted = view.pleth.redraws, view.pleth.canvas.paints
    assert drawn >= SOAK_CYCLES * 0.8, f"the pleth moved on only {drawn} of {SOAK_CYCLES} frames"
    assert painted >= drawn * 0.9, f"only {painted} of {drawn} redraws painted"
    assert elapsed < 90


def test_screenshot_of_the_view_45_min_after_the_dose(qtbot, tmp_path):
    """1920x1080, a session 45 min after the dose, with the alarm log: saved for a person to look
    at (and copied to KAPMONITOR_SCREENSHOTS if set, e.g. docs/screenshots)."""
    items = simulate("probe-off", 55, seed=3)
    items = items[:-1]  # not the end-of-simulation unplug
    profile = load_profile("kap-default")
    engine = AlarmEngine(profile)
    buffers = LiveBuffers()
    for item in items:
        buffers.add(item)
        if not isinstance(item, WaveformBlock):
            buffers.ingest(engine.process(item))
    now = items[-1].stamp.shifted(0.4)
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(profile)
    qtbot.addWidget(view)
    view.resize(1920, 1080)
    view.set_baseline(engine.baseline)
    elapsed = buffers.minutes_from_dose(now.mono)
    due = next_due(profile.nibp_schedule, elapsed)
    view.set_schedule(f"next in {math.ceil(due - elapsed)} min", False)
    view.show()
    qtbot.waitExposed(view)
    view.refresh(buffers, now)
    QtWidgets.QApplication.processEvents()
    path = tmp_path / "live-view.png"
    assert view.grab().save(str(path))
    assert path.stat().st_size > 20_000
    if os.environ.get("KAPMONITOR_SCREENSHOTS"):
        folder = Path(os.environ["KAPMONITOR_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)


# --- gaps -------------------------------------------------------------------------------------


def _curve_pixels_between(view, code: Code, x0: float, x1: float) -> int:
    """Pixels of ``code``'s colour drawn in its row strictly between minutes x0 and x1."""
    trends = view.trends
    row = trends.rows[ROW_OF[code]]
    box = row.plot.getViewBox()
    image = trends.grab().toImage()
    left = trends.mapFromScene(box.mapViewToScene(QtCore.QPointF(x0, row.y_hi))).x()
    right = trends.mapFromScene(box.mapViewToScene(QtCore.QPointF(x1, row.y_lo))).x()
    top = trends.mapFromScene(box.mapViewToScene(QtCore.QPointF(x0, row.y_hi))).y()
    bottom = trends.mapFromScene(box.mapViewToScene(QtCore.QPointF(x0, row.y_lo))).y()
    ratio = image.devicePixelRatio()
    want = QtGui.QColor(CURVE_COLOURS[code])

    def near(x: int, y: int) -> bool:
        got = image.pixelColor(int(x * ratio), int(y * ratio))
        return (
            abs(got.red() - want.red())
            + abs(got.green() - want.green())
            + abs(got.blue() - want.blue())
            < 90
        )

    return sum(
        near(x, y)
        for x in range(int(left) + 3, int(right) - 2)
        for y in range(int(top) + 1, int(bottom) - 1)
    )


def test_an_unplug_is_drawn_as_a_gap_in_the_live_trends(view):
    """device-unplug: 2 min without the device from 38 min after the dose. Before, the trends drew
    a straight line from the last value to the first after it; now nothing is drawn there."""
    items = simulate("device-unplug", 52)
    buffers = LiveBuffers()
    buffers.ingest(items)
    view.refresh(buffers, items[-1].stamp)
    view.show()
    QtWidgets.QApplication.processEvents()
    for code in (Code.SPO2, Code.PULSE_RATE, Code.PERFUSION):
        x, y = view.trends.curves[code].getOriginalDataset()
        inside = (x > 38.05) & (x < 39.95)
        assert np.isnan(y[inside]).all() and inside.sum() == 1  # one break, no values
        assert _curve_pixels_between(view, code, 38.1, 39.9) == 0, code
        assert _curve_pixels_between(view, code, 30.0, 37.0) > 0, code  # the curve is drawn


# --- marker labels ----------------------------------------------------------------------------


def _label_rects(view) -> list[QtCore.QRectF]:
    return [line.label.sceneBoundingRect() for _, line in view.trends.labelled]


def test_markers_pressed_close_together_have_labels_that_do_not_overprint(view, session_items):
    """DOSE, dissociation, nausea or vomiting and a note within a minute and a half: before,
    every label sat at one height and they overprinted; now they stack."""
    buffers = LiveBuffers()
    dose = _dose_index(session_items)
    buffers.ingest(session_items[:dose])
    t0 = session_items[dose - 1].stamp
    buffers.add(SessionEvent("session", SessionEventKind.DOSE, t0, "dose given"))
    for k, text in enumerate(("dissociation", "nausea or vomiting", "note: patient cold"), 1):
        buffers.add(SessionEvent("session", SessionEventKind.MARKER, t0.shifted(30 * k), text))
    buffers.add(SessionEvent("session", SessionEventKind.MARKER, t0.shifted(1200), "anxiety"))
    view.show()
    view.refresh(buffers, t0.shifted(1260))
    QtWidgets.QApplication.processEvents()
    labels = [line.label.textItem.toPlainText() for _, line in view.trends.labelled]
    assert labels == ["DOSE", "dissociation", "nausea or vomiting", "note: patient cold", "anxiety"]
    rects = _label_rects(view)
    plot = view.trends.rows["spo2"].plot.getViewBox().sceneBoundingRect()
    for i, a in enumerate(rects):
        assert plot.contains(a.center()), labels[i]  # inside the SpO2 row
        for j in range(i):
            assert not a.intersects(rects[j]), (labels[i], labels[j])
    # a label far from the others goes back to the top level
    assert rects[4].top() == pytest.approx(rects[0].top(), abs=1)
    # narrower: the labels stack again at the new scale
    view.resize(1000, 900)
    QtWidgets.QApplication.processEvents()
    rects = _label_rects(view)
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[:i])
