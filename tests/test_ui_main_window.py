"""The dosing-room screen driven as a nurse would: start, baseline, dose, a reading due, an
alarm acknowledged and paused, a device unplugged and back, events, discharge, the end."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

import devices.sim
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.runner import SessionConfig, SessionRunner
from ui.main_window import MainWindow
from ui.theme import TEXT_STALE, apply_dark_theme

SIZE = (1920, 1080)


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots when KAPMONITOR_SCREENSHOTS says so."""
    folder = Path(os.environ.get("KAPMONITOR_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screen(qtbot, tmp_path):
    apply_dark_theme(QApplication.instance())
    windows = []
    # Python's garbage collector running in the middle of a pyqtgraph paint, collecting wrappers
    # left by earlier Qt tests, has crashed this test (PySide6 6.11, intermittently): collect
    # now, and not again until the windows are gone.
    gc.collect()
    gc.disable()

    def open_screen(
        scenario: str, speed: float, until: float | None = None, scenario_dose: bool = False
    ) -> MainWindow:
        config = SessionConfig(
            SessionSetup("P-0042", operator="RN Lee", devices=(f"sim:{scenario}",)),
            db_url=f"sqlite:///{tmp_path / 'k.sqlite3'}", speed=speed, seed=3, until=until,
            scenario_dose=scenario_dose,
        )  # fmt: skip
        window = MainWindow(SessionRunner(config))
        qtbot.addWidget(window)
        window.resize(*SIZE)
        window.runner.start()
        window.show()
        qtbot.waitExposed(window)
        window.start()
        windows.append(window)
        return window

    yield open_screen
    for window in windows:
        if window.timer.isActive():  # the test failed midway: end the session ourselves
            window.timer.stop()
            window.runner.stop()
            window.close()  # qtbot's close came first and was refused while monitoring
        window.sound.close()
        window.deleteLater()
    QApplication.processEvents()
    gc.enable()
    gc.collect()


def _key(qtbot, window: MainWindow, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(window, key, modifier)


def _late_long_unplug(tmp_path: Path) -> str:
    """The device-unplug scenario with the cable out from 60 to 100 minutes after the dose, not
    38 to 40. At 400x a 2-minute unplug was 0.3 s of real time, and on a busy machine (the
    screen's painting holding the GIL) the threads behind it met the unplug and the reconnection
    back to back, so the alarm was never on the screen to see. The test now runs at 200x, where
    40 minutes is 12 s, and the steps before the unplug have 18 s instead of 6."""
    shipped = Path(devices.sim.__file__).parent / "scenarios" / "device-unplug.toml"
    text = shipped.read_text()
    unplug = 'kind = "unplug"\nstart_min = 38\nduration_min = 2\n'
    assert text.count(unplug) == 1
    path = tmp_path / "device-unplug-late.toml"
    path.write_text(text.replace(unplug, 'kind = "unplug"\nstart_min = 60\nduration_min = 40\n'))
    return str(path)


def test_a_whole_session_on_the_screen(screen, qtbot, tmp_path):
    window = screen(_late_long_unplug(tmp_path), speed=200)
    runner = window.runner
    shots = _shots(tmp_path)
    # No sound card here: the screen says alarms are visual only, and keeps saying it.
    assert window.audio_warning.isVisible()
    assert "visual only" in window.audio_warning.text()

    # Baseline readings before the dose, then the dose with one key.
    qtbot.waitUntil(lambda: len(runner.predose_readings()) >= 3, timeout=20_000)
    _key(qtbot, window, Qt.Key.Key_D)
    assert runner.dose is not None
    assert "Dose given" in window.message.text()
    qtbot.waitUntil(lambda: runner.baseline() is not None, timeout=10_000)
    _key(qtbot, window, Qt.Key.Key_1)  # the dissociation marker
    assert "dissociation" in window.message.text()

    # A scheduled reading falls due and the NIBP tile says so.
    # At 200x a reading is due for a fraction of a second, shorter than the status refresh:
    # update the status in the same step that looks at the tile.
    qtbot.waitUntil(lambda: (window.update_status(), window.view.nibp.due_now)[1], timeout=20_000)
    window.grab().save(str(shots / "screen-calm.png"))

    # The device is unplugged (60 min after the dose): a technical alarm, and the status says so.
    qtbot.waitUntil(
        lambda: any(a.condition == "disconnected" for a in runner.alarms.snapshot()[0]),
        timeout=30_000,
    )
    qtbot.waitUntil(
        lambda: any(s in ("disconnected", "reconnecting") for _, s, _ in runner.device_rows()),
        timeout=5_000,
    )
    window.tick()
    window.grab().save(str(shots / "screen-device-lost.png"))
    _key(qtbot, window, Qt.Key.Key_A)  # acknowledge the top alarm
    _key(qtbot, window, Qt.Key.Key_P)  # audio pause
    done = {(e.event.value, e.operator) for e in runner.alarms.engine.log if e.operator}
    assert {("acknowledged", "RN Lee"), ("audio-paused", "RN Lee")} <= done
    # (The countdown itself runs in session time, two thirds of a second at 200x: the alarm
    # area's own tests check it.)

    # The device comes back by itself, and its alarm ends. (Read from the alarm log: at 200x
    # the simulated session may be over, and the device gone for good, by the time we look.)
    qtbot.waitUntil(
        lambda: any(
            e.condition == "disconnected" and e.event.value == "inactive"
            for e in runner.alarms.engine.log
        ),
        timeout=30_000,
    )

    # The discharge checklist: before 2 h it is not met; an override with a reason ends it.
    _key(qtbot, window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = window.discharge
    qtbot.waitExposed(dialog)
    assert not dialog.all_met
    dialog.grab().save(str(shots / "screen-discharge.png"))
    dialog.override.setChecked(True)
    dialog.override_reason_edit.setText("transport home arrived; clinician agreed")
    dialog.end_button.click()
    assert dialog.ended and not window.timer.isActive()
    summary = dialog.summary_view.summary()
    assert summary["patient"] == "P-0042"
    dialog.close_button.click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)

    store = Store(open_database(runner.config.db_url))
    record = store.load_session(runner.session_id)
    store.db.close()
    assert record.info.status is SessionStatus.COMPLETED
    texts = [e.text for e in record.events if e.kind == "marker"]
    assert any(t.startswith("dissociation") for t in texts)
    assert any("overridden: transport home arrived" in t for t in texts)
    assert any(e.kind == "dose" for e in record.events)
    assert any(a.operator == "RN Lee" for a in record.alarms)  # the acknowledgment and pause


def test_a_high_priority_alarm_on_the_screen(screen, qtbot, tmp_path):
    window = screen("desaturation", speed=600)
    runner = window.runner
    qtbot.waitUntil(lambda: len(runner.predose_readings()) >= 3, timeout=20_000)
    _key(qtbot, window, Qt.Key.Key_D)
    qtbot.waitUntil(
        lambda: any(a.priority.label == "high" for a in runner.alarms.snapshot()[0]),
        timeout=30_000,
    )
    window.tick()
    assert window.alarm_area.banner_priority.label == "high"
    assert "SpO2 low" in window.alarm_area.banner_text.text()
    time.sleep(0.05)
    window.grab().save(str(_shots(tmp_path) / "screen-high-alarm.png"))


def test_a_silent_simulated_device_greys_then_blanks_like_a_real_one(screen, qtbot):
    """Issue 13: at --speed > 1 the values of a simulator gone silent (its scenario over) stayed in
    full colour, because the screen aged them by the newest item's stamp, which stops with the
    device. The session clock keeps running in the devices' time base: grey after 10 s, "---"
    after 30 s of session time, and the discharge check, by the same rule, takes none of them."""
    window = screen("typical", 10, until=30)
    qtbot.waitUntil(window.runner.finished, timeout=20_000)
    spo2 = window.view.spo2
    # Blank and grey: a value there was, now too old (a missing value would not be grey).
    qtbot.waitUntil(lambda: (spo2.value_text(), spo2.value.colour) == ("---", TEXT_STALE))
    assert window.view.pulse.value_text() == "---"
    assert "no update for" in spo2.status_text()
    [in_range] = [i for i in window.runner.discharge_checklist() if "SpO2" in i.label]
    assert in_range.ok is False and in_range.detail.startswith("no current reading")


def test_the_demo_says_the_dose_is_the_scenarios_and_arms_the_baseline(screen, qtbot):
    """Issue 13: the demo ignored its scenario's dose: with D never pressed the NIBP tile asked
    for baseline readings at 45 min. Now T0 is the scenario's dose, and the screen says so."""
    window = screen("desaturation", 600, until=15 * 60, scenario_dose=True)
    qtbot.waitUntil(lambda: "(from the scenario)" in window.message.text(), timeout=20_000)
    assert window.message.text().startswith("Dose at ")
    qtbot.waitUntil(lambda: window.view.trends.dose_lines != [], timeout=5_000)
    assert window.view.trends.dose_lines[0].label.textItem.toPlainText() == "DOSE (scenario)"
    qtbot.waitUntil(lambda: window.runner.baseline() is not None, timeout=5_000)
    _, _, baseline_text = window.runner.alarms.snapshot()
    assert baseline_text.startswith("pre-dose baseline")
    assert not window.runner.nibp_schedule()[0].startswith("before the dose")
    window.dose_given()  # D: nothing new, and it says whose dose it is
    assert "already marked" in window.message.text()
    assert "(from the scenario)" in window.message.text()


def _markers(window: MainWindow) -> list[str]:
    return [m.text for m in window.buffers.markers if m.kind.value == "marker"]


def test_keys_are_inert_while_a_dialog_is_open_or_another_window_is_active(screen, qtbot):
    """Issue 13: text meant for the discharge reason went to the main window and pressed D. The
    keys act only when the main window is the active window and no dialog is open."""
    window = screen("typical", 1)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    _key(qtbot, window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = window.discharge
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is dialog)
    for target in (dialog, dialog.override_reason_edit, window):
        for key in (Qt.Key.Key_D, Qt.Key.Key_1, Qt.Key.Key_S, Qt.Key.Key_5):
            qtbot.keyClick(target, key)
    window.tick()
    assert window.runner.dose is None and _markers(window) == []
    dialog.reject()
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is None)
    other = QWidget()  # another window of the application has the focus
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(lambda: not window.isActiveWindow())
    qtbot.keyClick(other, Qt.Key.Key_D)
    assert window.runner.dose is None
    other.close()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    _key(qtbot, window, Qt.Key.Key_D)  # the main window active, no dialog: D acts
    assert window.runner.dose is not None


def test_the_note_key_asks_for_the_text_and_an_empty_or_cancelled_note_adds_nothing(screen, qtbot):
    window = screen("typical", 1)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    _key(qtbot, window, Qt.Key.Key_5)
    qtbot.waitUntil(lambda: window.note_dialog.isVisible())
    window.note_dialog.reject()  # cancelled
    qtbot.waitUntil(window.isActiveWindow)
    _key(qtbot, window, Qt.Key.Key_5)
    qtbot.waitUntil(lambda: window.note_dialog.isVisible())
    window.note_dialog.setTextValue("   ")  # empty
    window.note_dialog.accept()
    qtbot.waitUntil(lambda: "empty" in window.message.text())
    qtbot.waitUntil(window.isActiveWindow)
    _key(qtbot, window, Qt.Key.Key_5)
    asked = window.runner.now()
    qtbot.waitUntil(lambda: window.note_dialog.isVisible())
    qtbot.keyClicks(window.note_dialog.findChild(QLineEdit), "patient cold, blanket given")
    window.note_dialog.accept()
    qtbot.waitUntil(lambda: len(_markers(window)) == 1, timeout=5_000)
    [marker] = [m for m in window.buffers.markers if m.kind.value == "marker"]
    assert marker.text == "note: patient cold, blanket given"
    assert marker.t == pytest.approx(asked.mono, abs=0.5)  # stamped when 5 was pressed


def test_the_window_fits_the_screen_and_long_messages_never_widen_it(screen, qtbot):
    """Issue 13: without a window manager the window opened at its size hint, and a long status
    message widened it past the screen. It now takes the screen's available area, and status
    lines elide what does not fit (the whole text in the tooltip)."""
    window = screen("typical", 1)
    window.place_on_screen()
    QApplication.processEvents()
    area = window.screen().availableGeometry()
    assert window.geometry().width() <= area.width()
    assert window.geometry().left() >= area.left()
    window.resize(1280, 800)
    QApplication.processEvents()
    long = "Session 12 was interrupted; " * 20 + "review it with kapmonitor review."
    window.say(long)
    window.audio_warning.setText("No audio output device: alarms are visual only. " * 8)
    window.audio_warning.show()
    QApplication.processEvents()
    qtbot.wait(50)
    assert window.width() == 1280
    assert window.minimumSizeHint().width() <= 1280
    assert window.message.text() == long and window.message.shown_text().endswith("…")
    assert window.message.toolTip() == long


def test_values_grey_then_blank_during_a_simulated_unplug(screen, qtbot, tmp_path):
    """Issue 13: during a simulated unplug the last values stayed in full colour with "signal
    good". The session clock runs on while the simulator is silent mid-session, as for a real
    device: grey, then blank, and the trend shows a gap once values come back."""
    window = screen(_late_long_unplug(tmp_path), 200)
    runner = window.runner
    qtbot.waitUntil(lambda: len(runner.predose_readings()) >= 3, timeout=30_000)
    _key(qtbot, window, Qt.Key.Key_D)
    qtbot.waitUntil(
        lambda: any(s == "reconnecting" for _, s, _ in runner.device_rows()), timeout=60_000
    )
    spo2 = window.view.spo2
    qtbot.waitUntil(lambda: (spo2.value_text(), spo2.value.colour) == ("---", TEXT_STALE))
    assert any(s == "reconnecting" for _, s, _ in runner.device_rows())  # still unplugged
    assert "good" not in spo2.status_text()
