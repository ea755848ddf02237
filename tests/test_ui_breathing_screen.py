"""Breathing on the dosing-room screen: the rate and EtCO2 tiles, the capnogram sweep, and the
plain "Breathing not monitored" when no device sends breathing (issue 17)."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtWidgets
from PySide6.QtCore import Qt

from alarms.engine import AlarmEngine
from alarms.profile import load_profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Numeric, Stamp, WaveformBlock
from kapmonitor.live import BREATHING_CODES, LiveBuffers
from kapmonitor.record.session import SessionSetup
from kapmonitor.runner import SessionConfig, SessionRunner
from tests.test_ui_live_view import simulate
from ui import theme
from ui.breathing_panel import NOT_MONITORED, BreathingPanel
from ui.main_window import MainWindow
from ui.monitor_view import MonitorView
from ui.pleth import CO2_Y_RANGE, CapnogramSweep
from ui.theme import apply_dark_theme
from ui.tiles import MISSING


@pytest.fixture(scope="module")
def depression_items() -> list:
    """30 min of respiratory depression: dose at 10 min, the rate falls and EtCO2 climbs."""
    return simulate("respiratory-depression", 30)


@pytest.fixture
def view(qtbot):
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(load_profile("kap-default"))
    qtbot.addWidget(view)
    view.resize(1600, 900)
    view.show()
    qtbot.waitExposed(view)
    return view


def _oximeter_only(items: list) -> list:
    """What a session with a pulse oximeter alone (a Nonin, a Masimo) carries: no breathing."""
    return [
        i
        for i in items
        if not (isinstance(i, Numeric) and i.code in BREATHING_CODES)
        and not (isinstance(i, WaveformBlock) and i.code is Code.CO2)
    ]


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KAPMONITOR_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- tiles ------------------------------------------------------------------------------------


def test_breathing_tiles_appear_with_a_capnograph_and_show_its_values(view, depression_items):
    buffers = LiveBuffers()
    buffers.ingest(depression_items)
    now = depression_items[-1].stamp.shifted(0.3)
    view.refresh(buffers, now)
    panel = view.breathing
    assert panel.monitored
    assert panel.rate.isVisible() and panel.etco2.isVisible() and panel.capnogram.isVisible()
    assert not panel.notice.isVisible()
    rate, etco2 = buffers.latest[Code.RESP_RATE], buffers.latest[Code.CO2_ET]
    inspired = buffers.latest[Code.CO2_INSP_MIN]
    assert panel.rate.value_text() == f"{rate.value:.0f}"
    assert panel.rate.label.text() == "RR"
    assert panel.etco2.value_text() == f"{etco2.value:.0f}"
    assert etco2.value > 50  # 20 min after the dose the EtCO2 is high
    assert panel.etco2.inspired_text() == f"FiCO2 {inspired.value:.0f}"
    assert panel.rate.value.colour == theme.BREATHING != theme.TEXT_STALE
    assert panel.rate.limits.text() == "alarm 8–30"
    assert panel.etco2.limits.text() == "alarm 20–50"


def test_breathing_tiles_grey_then_blank_when_the_capnograph_stops(view, depression_items):
    buffers = LiveBuffers()
    buffers.ingest(depression_items)
    last = buffers.latest[Code.CO2_ET].stamp  # the capnograph's newest values, together
    assert buffers.latest[Code.RESP_RATE].stamp == last
    panel = view.breathing
    view.refresh(buffers, last.shifted(15))
    for tile in (panel.rate, panel.etco2):
        assert tile.value_text() != MISSING
        assert tile.value.colour == theme.TEXT_STALE
        assert tile.status_text() == "no update for 15 s"
    assert panel.etco2.inspired_text() != f"FiCO2 {MISSING}"
    view.refresh(buffers, last.shifted(40))
    for tile in (panel.rate, panel.etco2):
        assert tile.value_text() == MISSING
        assert tile.status_text() == "no update for 40 s"
    assert panel.etco2.inspired_text() == f"FiCO2 {MISSING}"
    assert panel.monitored  # still tiles, blank and grey: not "not monitored"
    assert panel.capnogram.message_text == "NO CO2 WAVE"


def test_a_missing_or_flagged_breathing_value_is_dashes_never_zero(qtbot):
    panel = BreathingPanel()
    qtbot.addWidget(panel)
    t = Stamp.now()
    buffers = LiveBuffers()
    # The sampling line off: the capnograph sends no values, with its flag.
    buffers.add(Numeric("capno", Code.AWAY_RESP_RATE, None, t, frozenset({Flag.SENSOR_OFF})))
    buffers.add(Numeric("capno", Code.CO2_ET, None, t, frozenset({Flag.SENSOR_OFF})))
    panel.refresh(buffers, t.shifted(1))
    assert panel.monitored
    assert panel.rate.label.text() == "awRR"  # the airway's rate, named as such
    for tile in (panel.rate, panel.etco2):
        assert tile.value_text() == MISSING
        assert tile.status_text() == "sensor off"
    assert panel.etco2.inspired_text() == ""  # no device sends an inspired CO2
    # An impossible value arrives flagged: shown with its flag, as the other tiles show it.
    buffers.add(Numeric("capno", Code.CO2_ET, 140.0, t.shifted(2), frozenset({Flag.QUESTIONABLE})))
    panel.refresh(buffers, t.shifted(2.5))
    assert panel.etco2.value_text() == "140"
    assert panel.etco2.status_text() == "questionable"


def test_breathing_not_monitored_without_a_capnograph(view, depression_items):
    buffers = LiveBuffers()
    view.refresh(buffers, Stamp.now())  # nothing at all yet: not monitored either
    assert not view.breathing.monitored
    buffers.ingest(_oximeter_only(depression_items))
    now = depression_items[-1].stamp.shifted(0.3)
    view.refresh(buffers, now)
    panel = view.breathing
    assert not panel.monitored
    assert panel.notice.isVisible()
    assert not panel.rate.isVisible() and not panel.etco2.isVisible()
    assert not panel.capnogram.isVisible()
    texts = [label.text() for label in panel.notice.findChildren(QtWidgets.QLabel)]
    assert NOT_MONITORED in texts and NOT_MONITORED == "Breathing not monitored"
    assert view.spo2.value_text() != MISSING  # the oximeter's tiles go on as before
    assert not view.trends.is_shown("breathing")  # no empty trend row that looks like monitoring
    # A capnograph that joins later: the tiles appear, and the breathing trend row.
    t = depression_items[-1].stamp
    buffers.add(Numeric("capno", Code.CO2_ET, 38.0, t))
    view.refresh(buffers, t.shifted(0.5))
    assert panel.monitored and panel.etco2.value_text() == "38" and panel.rate.isVisible()
    assert panel.rate.value_text() == MISSING
    assert view.trends.is_shown("breathing")


def test_the_breathing_tiles_fit_a_1280_pixel_screen(qtbot, depression_items):
    """At 1280 px wide (the smallest screen the room uses) the tiles get all the width their
    digits, labels and limits need: nothing cut, nothing overprinted."""
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(load_profile("kap-default"))
    qtbot.addWidget(view)
    view.resize(1280 - 12, 760)  # what the main window's margins leave of 1280
    view.show()
    qtbot.waitExposed(view)
    buffers = LiveBuffers()
    buffers.ingest(depression_items)
    view.refresh(buffers, depression_items[-1].stamp.shifted(0.3))
    QtWidgets.QApplication.processEvents()
    panel = view.breathing
    assert panel.monitored
    for widget in (panel.rate, panel.etco2, panel.capnogram):
        assert widget.width() >= widget.minimumSizeHint().width(), widget
    for tile in (panel.rate, panel.etco2):
        assert tile.value.width() >= tile.value.minimumSizeHint().width()
        assert tile.limits.width() >= tile.limits.sizeHint().width()  # the limits whole
        assert tile.value.height() >= tile.value.digit_height
    assert view.width() == 1268


def test_a_breathing_alarm_start_is_drawn_on_the_trends(view, depression_items):
    """An EtCO2 or rate alarm start is a diamond on the breathing row at its value; apnoea and
    the technical ones, with no row of their own, at the top of the SpO2 row (once a KeyError
    that stopped the screen's refresh)."""
    profile = load_profile("kap-default")
    engine = AlarmEngine(profile)
    buffers = LiveBuffers()
    for item in depression_items:
        buffers.add(item)
        if not isinstance(item, WaveformBlock):
            buffers.ingest(engine.process(item))
    assert Code.CO2_ET.value in buffers.alarm_start_codes
    view.refresh(buffers, depression_items[-1].stamp.shifted(0.3))
    drawn = 0
    for name in ("spo2", "breathing"):
        row = view.trends.rows[name]
        _, y = row.alarm_points.getData()
        assert (y <= row.y_hi).all() and (y >= row.y_lo).all()
        drawn += len(y)
    assert drawn == buffers.alarm_starts.n  # every start, each once
    assert len(view.trends.rows["breathing"].alarm_points.getData()[1]) >= 1
    assert view.trends.is_shown("breathing")  # the row is on screen with its diamonds


# --- the capnogram ----------------------------------------------------------------------------


def test_the_capnogram_sweeps_on_a_fixed_scale_and_keeps_a_gap(qtbot, depression_items):
    sweep = CapnogramSweep()
    qtbot.addWidget(sweep)
    sweep.resize(800, 220)
    blocks = [i for i in depression_items if isinstance(i, WaveformBlock) and i.code is Code.CO2]
    assert blocks[0].fs == 20.0 and len(blocks[0].samples) == 5
    y_range = sweep.y_range
    buffers = LiveBuffers()
    heads = []
    kept = blocks[:20] + blocks[28:60]  # 2 s of the wave lost (a loose connector)
    for block in kept:
        buffers.add(block)
        sweep.refresh(buffers.first_co2(), block.stamp.shifted(block.duration))
        heads.append(sweep.head)
        y = sweep.drawn_wave()
        assert np.isnan(y[(sweep.head + np.arange(5)) % len(y)]).all()  # the erase bar
    assert sweep.y_range == y_range  # never rescaled
    assert y_range[0] <= CO2_Y_RANGE[0] and y_range[1] >= CO2_Y_RANGE[1]
    steps = np.diff(heads[1:]) % 200
    assert set(steps[:18]) == {5} and (np.diff(heads) < 0).sum() == 1  # wrapped once in 15 s
    assert steps[18] == 5 + 40  # across the gap the head jumps by the lost 2 s
    y = sweep.drawn_wave()
    ring = buffers.first_co2()
    assert ring.size == 200
    lost = (20 * 5 + np.arange(40)) % 200
    assert np.isnan(y[lost]).all()  # the lost blocks stay a gap, never a line at 0
    drawn = np.setdiff1d(np.arange(200), np.concatenate([lost, (sweep.head + np.arange(12)) % 200]))
    assert np.isfinite(y[drawn]).all() and np.nanmax(y) > 30  # the breaths are there


def test_the_capnogram_is_redrawn_no_more_than_ten_times_a_second(qtbot, depression_items):
    """Frugal: at the screen's 30 frames a second the 20-Hz capnogram is drawn in 0.1-s steps
    (the pleth, at 100 Hz, on every frame)."""
    sweep = CapnogramSweep()
    qtbot.addWidget(sweep)
    blocks = [i for i in depression_items if isinstance(i, WaveformBlock) and i.code is Code.CO2]
    buffers = LiveBuffers()
    start = blocks[0].stamp
    drawn = []
    i = 0
    for frame in range(150):  # 5 s at 30 frames a second
        now = start.shifted(frame / 30)
        while blocks[i].stamp.mono <= now.mono:
            buffers.add(blocks[i])
            i += 1
        before = sweep.redraws
        sweep.refresh(buffers.first_co2(), now)
        if sweep.redraws > before:
            drawn.append(frame)
    assert 40 <= len(drawn) <= 51  # about 10 a second, never 30 (or 20)


# --- the whole window -------------------------------------------------------------------------


@pytest.fixture
def window(qtbot, tmp_path):
    apply_dark_theme(QtWidgets.QApplication.instance())
    gc.collect()  # as test_ui_main_window: no collection in the middle of a pyqtgraph paint
    gc.disable()
    opened = []

    def open_window(scenario: str, speed: float) -> MainWindow:
        config = SessionConfig(
            SessionSetup("P-0017", operator="RN Lee", devices=(f"sim:{scenario}",)),
            db_url=f"sqlite:///{tmp_path / 'k.sqlite3'}", speed=speed, seed=3,
        )  # fmt: skip
        window = MainWindow(SessionRunner(config))
        qtbot.addWidget(window)
        window.resize(1920, 1080)
        window.runner.start()
        window.show()
        qtbot.waitExposed(window)
        window.start()
        opened.append(window)
        return window

    yield open_window
    for window in opened:
        if window.timer.isActive():
            window.timer.stop()
            window.runner.stop()
            window.close()
        window.sound.close()
        window.deleteLater()
    QtWidgets.QApplication.processEvents()
    gc.enable()
    gc.collect()


def test_screenshot_of_the_screen_during_an_etco2_alarm(window, qtbot, tmp_path):
    screen = window("respiratory-depression", speed=150)
    runner = screen.runner
    qtbot.waitUntil(lambda: len(runner.predose_readings()) >= 3, timeout=30_000)
    qtbot.keyClick(screen, Qt.Key.Key_D)

    def etco2_alarm() -> bool:
        return any(a.code == Code.CO2_ET.value for a in runner.alarms.snapshot()[0])

    qtbot.waitUntil(etco2_alarm, timeout=60_000)
    qtbot.waitUntil(lambda: screen.view.breathing.etco2.value_text() not in ("", MISSING))
    screen.tick()
    assert screen.view.breathing.monitored
    assert "EtCO2" in screen.alarm_area.banner_text.text()
    time.sleep(0.05)
    path = _shots(tmp_path) / "screen-breathing-etco2-alarm.png"
    assert screen.grab().save(str(path))
    screen.resize(1280, 1060)  # the smallest screen the room uses
    qtbot.waitUntil(lambda: screen.width() == 1280)
    screen.tick()
    QtWidgets.QApplication.processEvents()
    assert screen.grab().save(str(path.with_name("screen-breathing-at-1280px.png")))


def test_screenshot_of_the_screen_without_a_capnograph(qtbot, tmp_path, depression_items):
    """An oximeter and a cuff alone: the screen says breathing is not monitored."""
    items = _oximeter_only(depression_items)[:-1]
    profile = load_profile("kap-default")
    engine = AlarmEngine(profile)
    buffers = LiveBuffers()
    for item in items:
        buffers.add(item)
        if not isinstance(item, WaveformBlock):
            buffers.ingest(engine.process(item))
    apply_dark_theme(QtWidgets.QApplication.instance())
    view = MonitorView(profile)
    qtbot.addWidget(view)
    view.resize(1920, 1080)
    view.set_baseline(engine.baseline)
    view.show()
    qtbot.waitExposed(view)
    view.refresh(buffers, items[-1].stamp.shifted(0.4))
    QtWidgets.QApplication.processEvents()
    assert view.breathing.notice.isVisible()
    path = _shots(tmp_path) / "screen-breathing-not-monitored.png"
    assert view.grab().save(str(path))
