"""Sedation and dissociation scored on the dosing-room screen (issue 17): the M key, the scoring
dialog driven from the keyboard, the record it leaves, the timed prompt, the readout, the lanes
on the trends, the MOAA/S alarm, and the CADSS variant of a profile."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QSpinBox

from alarms.profile import Profile, load_profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Numeric, SessionEvent, SessionEventKind, Stamp
from kapmonitor.live import LiveBuffers
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionRecord, SessionSetup
from kapmonitor.record.store import Store
from kapmonitor.runner import SessionConfig, SessionRunner
from ui import theme
from ui.assessment_dialog import AssessmentDialog
from ui.main_window import KEYS, MainWindow
from ui.score_tile import ScoreTile, clock
from ui.theme import apply_dark_theme
from ui.trends import TrendPlot

SHIPPED = Path(__file__).resolve().parents[1] / "alarms" / "profiles" / "kap-default.toml"


@pytest.fixture
def screen(qtbot, tmp_path):
    """The dosing-room window on a simulated session recording into a real SQLite file."""
    apply_dark_theme(QApplication.instance())
    gc.collect()  # as test_ui_main_window: no collection in the middle of a pyqtgraph paint
    gc.disable()
    opened: list[MainWindow] = []

    def open_screen(speed: float, profile: Profile | None = None) -> MainWindow:
        config = SessionConfig(
            SessionSetup("P-0017", operator="RN Lee", devices=("sim:typical",)),
            db_url=f"sqlite:///{tmp_path / 'k.sqlite3'}", speed=speed, seed=3,
        )  # fmt: skip
        window = MainWindow(SessionRunner(config, profile))
        qtbot.addWidget(window)
        window.resize(1920, 1080)
        window.runner.start()
        window.show()
        qtbot.waitExposed(window)
        window.start()
        opened.append(window)
        return window

    yield open_screen
    for window in opened:
        if window.timer.isActive():
            window.timer.stop()
            window.runner.stop()
            window.close()
        window.sound.close()
        window.deleteLater()
    QApplication.processEvents()
    gc.enable()
    gc.collect()


def _press(qtbot, window: MainWindow, key) -> None:
    qtbot.keyClick(window, key)


def _open_dialog(qtbot, window: MainWindow) -> AssessmentDialog:
    window.activateWindow()
    qtbot.waitUntil(window.keys_active, timeout=5_000)
    before = getattr(window, "assessment_dialog", None)
    _press(qtbot, window, Qt.Key.Key_M)
    dialog = window.assessment_dialog
    assert dialog is not before and dialog.isVisible()
    return dialog


def _type(qtbot, dialog: AssessmentDialog, *keys) -> None:
    """Keys as the nurse types them: each to whatever has the focus in the dialog."""
    for key in keys:
        qtbot.keyClick(dialog.focusWidget() or dialog, key)


def _record(window: MainWindow) -> SessionRecord:
    """The session as stored: stop it, then read it back from the SQLite file."""
    window.timer.stop()
    window.runner.stop()
    store = Store(open_database(window.runner.config.db_url))
    try:
        return store.load_session(window.runner.session_id, waves=False)
    finally:
        store.db.close()


def _scores(record: SessionRecord) -> list[Numeric]:
    return [n for n in record.numerics if n.source == "assessment"]


def _assessments(record: SessionRecord):
    return [e for e in record.events if e.kind == SessionEventKind.SCORE.value]


def _due(window: MainWindow) -> bool:
    window.update_status()
    return window.view.scores.due


# --- the dialog and the record -----------------------------------------------------------------


def test_m_scores_from_the_keyboard_and_the_record_holds_it(screen, qtbot):
    window = screen(speed=60)
    runner = window.runner
    assert KEYS["score"] == "M"
    menu = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Score sedation / dissociation…" in menu
    qtbot.waitUntil(lambda: runner.now().mono > 0, timeout=5_000)
    pressed = runner.now()
    dialog = _open_dialog(qtbot, window)
    after_press = runner.now()
    assert dialog.author_edit.text() == "RN Lee"  # the operator, editable
    assert dialog.rating is not None and dialog.cadss is None  # kap-default: the rating
    assert not dialog.ok_button.isEnabled()  # nothing picked yet
    qtbot.wait(300)  # the nurse looks at the patient: 18 s of session time pass
    _type(qtbot, dialog, Qt.Key.Key_3)  # MOAA/S 3; the focus moves on to the rating
    assert dialog.moaas.value() == 3 and dialog.moaas.buttons[3].isChecked()
    assert dialog.focusWidget() is dialog.rating
    _type(qtbot, dialog, Qt.Key.Key_7)  # past the rating's 3: nothing
    assert dialog.rating.value() is None
    _type(qtbot, dialog, Qt.Key.Key_1)  # mild; the focus moves on to OK
    assert dialog.focusWidget() is dialog.ok_button
    before_ok = runner.now()
    _type(qtbot, dialog, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    message = window.message.text()
    assert message.startswith("Scored: MOAA/S 3, dissociation mild at ")
    assert message.endswith("(RN Lee)")
    assert window.view.scores.readout_text().startswith("MOAA/S 3 · dissociation mild · ")

    record = _record(window)
    scores = {n.code: n for n in _scores(record)}
    assert {c: n.value for c, n in scores.items()} == {Code.MOAAS: 3.0, Code.DISSOCIATION: 1.0}
    stamp = scores[Code.MOAAS].stamp
    # Stamped when M was pressed, not when OK was: the time the nurse looked.
    assert pressed.wall <= stamp.wall <= after_press.wall < before_ok.wall - 5
    assert scores[Code.DISSOCIATION].stamp == stamp
    events = _assessments(record)
    assert {e.author for e in events} == {"RN Lee"}
    assert sorted(e.text for e in events) == [
        "Dissociation 1: mild",
        "MOAA/S 3: responds only after name is called loudly or repeatedly",
    ]
    assert all(abs(e.stamp.wall - stamp.wall) < 1e-3 for e in events)


def test_cancel_records_nothing_and_a_dialog_without_a_score_does_not_close(screen, qtbot):
    window = screen(speed=30)
    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog, Qt.Key.Key_Return)  # nothing picked: OK waits
    assert dialog.isVisible()
    assert "Pick a MOAA/S or a dissociation score" in dialog.problem.text()
    _type(qtbot, dialog, Qt.Key.Key_2, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert window.message.text() == "No score recorded: the scoring was cancelled."

    # The other scale alone, by another nurse: Tab past the MOAA/S.
    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog, Qt.Key.Key_Tab, Qt.Key.Key_2)
    assert dialog.moaas.value() is None and dialog.rating is not None
    assert dialog.rating.value() == 2
    dialog.author_edit.setText("")
    assert not dialog.ok_button.isEnabled() and "who scored" in dialog.problem.text()
    dialog.author_edit.setText("  RN  Okafor ")
    _type(qtbot, dialog, Qt.Key.Key_Return)
    assert window.message.text().startswith("Scored: dissociation moderate at ")
    assert window.message.text().endswith("(RN Okafor)")

    record = _record(window)
    assert [(n.code, n.value) for n in _scores(record)] == [(Code.DISSOCIATION, 2.0)]
    assert [e.author for e in _assessments(record)] == ["RN Okafor"]


# --- the prompt, the readout and the lanes -----------------------------------------------------


def test_the_prompt_falls_due_clears_when_scored_and_the_readout_greys(screen, qtbot):
    window = screen(speed=200)
    runner = window.runner
    tile = window.view.scores
    window.update_status()
    assert tile.prompt_text() == "score sedation and dissociation before the dose (M)"
    assert tile.readout_text() == "no sedation score yet"
    assert window.view.trends.lanes_shown == []
    qtbot.waitUntil(lambda: len(runner.predose_readings()) >= 3, timeout=20_000)
    window.activateWindow()
    _press(qtbot, window, Qt.Key.Key_D)
    assert runner.dose is not None
    assert not _due(window) and tile.prompt_text().startswith("next score in ")

    # 15 minutes of session time after the dose (4.5 s at 200x): a score is due.
    qtbot.waitUntil(lambda: _due(window), timeout=20_000)
    assert tile.prompt_text() == "SCORE DUE: the 15-minute assessment — press M"
    assert "#000000" in tile.prompt.styleSheet() and theme.DUE_NOW in tile.prompt.styleSheet()
    # A reminder, never an alarm: nothing in the alarm area, no sound.
    window.tick()
    alarms, _, _ = runner.alarms.snapshot()
    assert not [a for a in alarms if a.source == "assessment"]
    assert "SCORE" not in window.alarm_area.banner_text.text()

    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog, Qt.Key.Key_4, Qt.Key.Key_0, Qt.Key.Key_Return)
    assert not _due(window)
    assert tile.prompt_text().startswith("next score in ")
    assert tile.readout_text().startswith("MOAA/S 4 · dissociation none · ")
    assert not tile.stale(Code.MOAAS)
    window.tick()  # a score is drawn at once, not on the trends' next second
    assert window.view.trends.lanes_shown == ["moaas", "dissociation"]
    x, y = window.view.trends.lanes["moaas"].points.getData()
    assert list(y) == [4.0] and 15 <= x[0] < 17  # minutes from the dose

    # Older than the plan's 15 minutes: grey; and the 30-minute score falls due.
    qtbot.waitUntil(lambda: (window.update_status(), tile.stale(Code.MOAAS))[1], timeout=20_000)
    assert tile.stale(Code.DISSOCIATION)
    assert theme.TEXT_STALE in tile.readout.text()
    qtbot.waitUntil(lambda: _due(window), timeout=20_000)
    assert tile.prompt_text() == "SCORE DUE: the 30-minute assessment — press M"


def test_a_moaas_of_1_is_a_medium_alarm_and_a_later_4_ends_it(screen, qtbot):
    window = screen(speed=5)
    runner = window.runner

    def sedation_alarm():
        return [a for a in runner.alarms.snapshot()[0] if a.source == "assessment"]

    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog, Qt.Key.Key_1, Qt.Key.Key_Return)  # MOAA/S alone: Enter on the rating
    qtbot.waitUntil(lambda: bool(sedation_alarm()), timeout=10_000)
    [alarm] = sedation_alarm()
    assert alarm.priority.label == "medium" and alarm.value == 1.0
    window.tick()
    banner = window.alarm_area.banner_text.text()
    assert "Deep sedation (MOAA/S 1 or 0)" in banner
    assert "{score}" not in banner  # a score has no unit to print
    assert window.alarm_area.banner_priority.label == "medium"

    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog, Qt.Key.Key_4, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not sedation_alarm(), timeout=10_000)
    window.tick()
    assert "Deep sedation" not in window.alarm_area.banner_text.text()


def test_a_cadss_profile_asks_for_the_total_in_a_spin_box(screen, qtbot, tmp_path):
    text = SHIPPED.read_text()
    assert text.count('dissociation = "rating"') == 1
    path = tmp_path / "kap-cadss.toml"
    path.write_text(text.replace('dissociation = "rating"', 'dissociation = "cadss"'))
    profile = load_profile(str(path))
    window = screen(speed=30, profile=profile)
    dialog = _open_dialog(qtbot, window)
    assert dialog.rating is None and isinstance(dialog.cadss, QSpinBox)
    assert dialog.cadss.text() == "not scored"
    _type(qtbot, dialog, Qt.Key.Key_2)  # MOAA/S 2; on to the total, selected for typing
    assert dialog.focusWidget() is dialog.cadss
    _type(qtbot, dialog, Qt.Key.Key_1, Qt.Key.Key_2)
    assert dialog.cadss.value() == 12
    _type(qtbot, dialog, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    assert window.message.text().startswith("Scored: MOAA/S 2, CADSS 12 at ")
    assert window.view.scores.readout_text().startswith("MOAA/S 2 · CADSS 12 · ")
    window.tick()
    trends = window.view.trends
    assert trends.lanes["dissociation"].code is Code.CADSS
    assert trends.lanes["dissociation"].title.text == "CADSS"

    record = _record(window)
    assert sorted((n.code, n.value) for n in _scores(record)) == [
        (Code.CADSS, 12.0),
        (Code.MOAAS, 2.0),
    ]
    assert "CADSS 12 of 92" in [e.text for e in _assessments(record)]


# --- the buffers and the lanes, without a session ----------------------------------------------


def _scored(buffers: LiveBuffers, t: float, moaas: float, rating: float) -> None:
    stamp = Stamp(t, 1_767_261_600.0 + t)
    for code, value in ((Code.MOAAS, moaas), (Code.DISSOCIATION, rating)):
        buffers.add(Numeric("assessment", code, value, stamp))
        text = f"{code.info.label} {value:g}"
        buffers.add(SessionEvent("assessment", SessionEventKind.SCORE, stamp, text, "RN L"))


def test_scores_are_a_plain_list_not_a_gapped_trend_nor_markers(qtbot):
    buffers = LiveBuffers()
    dose = Stamp(1000.0, 1_767_261_600.0)
    buffers.add(SessionEvent("session", SessionEventKind.DOSE, dose, "dose"))
    for k, (moaas, rating) in enumerate(((4, 1), (3, 2), (5, 0)), 1):
        _scored(buffers, 1000.0 + 900 * k, moaas, rating)
    assert [(s.code, s.value) for s in buffers.scores[:2]] == [
        (Code.MOAAS, 4.0),
        (Code.DISSOCIATION, 1.0),
    ]
    assert len(buffers.scores) == 6 and buffers.scores_version == 6
    assert [m.kind for m in buffers.markers] == [SessionEventKind.DOSE]  # no marker per score
    assert Code.MOAAS not in buffers.latest and Code.MOAAS not in buffers.trends

    trends = TrendPlot()
    qtbot.addWidget(trends)
    trends.resize(1100, 500)
    trends.show()
    trends.refresh(buffers, 1000.0 + 3000)
    lane = trends.lanes["moaas"]
    x, y = lane.points.getData()
    assert list(x) == [15.0, 30.0, 45.0] and list(y) == [4.0, 3.0, 5.0]
    # Steps: each score holds until the next; no NaN, no gap, nothing past the last.
    sx, sy = lane.steps.getData()
    assert list(sx) == [15.0, 30.0, 30.0, 45.0, 45.0]
    assert list(sy) == [4.0, 4.0, 3.0, 3.0, 5.0]
    assert trends.x_axis is trends.rows["dissociation"].plot.getAxis("bottom")
    assert trends.x_label == "minutes from dose"
    # Nothing new: the lanes are not redrawn (the same arrays stay), at any frame rate.
    drawn = lane.points.data
    assert not trends.has_events_to_draw(buffers)
    trends.refresh(buffers, 1000.0 + 3010)
    assert lane.points.data is drawn
    _scored(buffers, 1000.0 + 3600, 2, 3)
    assert trends.has_events_to_draw(buffers)
    trends.refresh(buffers, 1000.0 + 3610)
    assert list(lane.points.getData()[1]) == [4.0, 3.0, 5.0, 2.0]


def test_lanes_stay_hidden_without_scores(qtbot):
    buffers = LiveBuffers()
    t = Stamp(50.0, 1_767_261_600.0)
    buffers.add(Numeric("sim", Code.SPO2, 97.0, t))
    trends = TrendPlot()
    qtbot.addWidget(trends)
    trends.refresh(buffers, 60.0)
    assert trends.lanes_shown == []
    assert trends.x_axis is trends.rows["pi"].plot.getAxis("bottom")


def test_the_dialog_is_stamped_and_its_arrows_and_backspace_work(qtbot):
    apply_dark_theme(QApplication.instance())
    stamp = Stamp(time.monotonic(), time.time())
    dialog = AssessmentDialog(load_profile("kap-default").assessment, "RN Lee", stamp)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    at = time.strftime("%H:%M:%S", time.localtime(stamp.wall))
    assert any(at in label.text() for label in dialog.findChildren(type(dialog.problem)))
    dialog.moaas.setFocus()
    _type(qtbot, dialog, Qt.Key.Key_Up)  # nothing picked: up starts at 1
    assert dialog.moaas.value() == 1
    dialog.moaas.setFocus()
    _type(qtbot, dialog, Qt.Key.Key_Up, Qt.Key.Key_Up, Qt.Key.Key_Down)
    assert dialog.moaas.value() == 2
    dialog.moaas.setFocus()
    _type(qtbot, dialog, Qt.Key.Key_Backspace)
    assert dialog.moaas.value() is None and dialog.scores() == {}
    dialog.moaas.buttons[5].click()  # a mouse works too
    assert dialog.scores() == {Code.MOAAS: 5}


def test_the_readout_gives_each_score_its_time_when_scored_apart_and_greys_the_old(qtbot):
    tile = ScoreTile("M")
    qtbot.addWidget(tile)
    wall = 1_767_261_600.0
    moaas = Numeric("assessment", Code.MOAAS, 3.0, Stamp(100.0, wall))
    rating = Numeric("assessment", Code.DISSOCIATION, 2.0, Stamp(700.0, wall + 600))
    tile.set_scores(moaas, rating, Stamp(1100.0, wall + 1000), 15.0)
    assert tile.readout_text() == (
        f"MOAA/S 3 {clock(moaas.stamp)} · dissociation moderate {clock(rating.stamp)}"
    )
    assert tile.stale(Code.MOAAS) and not tile.stale(Code.DISSOCIATION)  # 1000 s > 15 min
    # Intervals on the monotonic clock: a wall clock set back an hour changes nothing.
    tile.set_scores(moaas, rating, Stamp(1100.0, wall - 3600), 15.0)
    assert tile.stale(Code.MOAAS) and not tile.stale(Code.DISSOCIATION)
    tile.set_prompt("next score in 4 min", False)
    assert tile.prompt_text() == "next score in 4 min (M)" and not tile.due
