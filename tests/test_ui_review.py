"""Clinician review, as a clinician uses it: browse, open a recorded session, zoom, step through
events and alarms, read the cursor, show the pleth, amend and annotate, export.

The session is a real 2-hour simulated KAP session written through the store into a SQLite
file (tests/session_fixtures.py), so the window reads what the recorder would have stored.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtWidgets

from kapmonitor.cli import build_parser
from kapmonitor.cli import main as cli_main
from kapmonitor.core.codes import Code
from kapmonitor.export.formats import FORMATS as EXPORT_FORMATS
from kapmonitor.export.formats import ExportFormat
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review.model import ReviewModel
from kapmonitor.review.timeline import QUIET_KINDS
from tests.session_fixtures import OPERATOR, PATIENT, START, store_session
from ui.review.app import ReviewApp
from ui.review.browser import SessionBrowser
from ui.review.plots import ROWS
from ui.review.window import PLETH_MAX_MIN, ReviewWindow

REVIEWER = "Dr Reviewer"
SCREENSHOTS = os.environ.get("KAPMONITOR_SCREENSHOTS")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[str, int]:
    """A database URL holding the 2-hour session and three other sessions; the session's id."""
    folder = tmp_path_factory.mktemp("review")
    url = f"sqlite:///{folder / 'review.sqlite3'}"
    store = Store(open_database(url))
    session_id = store_session(store, folder)
    for patient, clinician, started, status in (
        ("KAP-PT-000001", "Dr Osei", START - 86400 * 40, SessionStatus.COMPLETED),
        ("KAP-PT-000002", "Dr Osei", START - 86400 * 2, SessionStatus.INTERRUPTED),
        ("KAP-PT-004217", "Dr Lindqvist", START - 86400 * 7, SessionStatus.COMPLETED),
    ):
        sid = store.create_session(SessionSetup(patient, clinician, OPERATOR), started=started)
        store.end_session(sid, status, started + 5400)
    store.db.close()
    return url, session_id


@pytest.fixture
def store(recorded):
    s = Store(open_database(recorded[0]))
    yield s
    s.db.close()


@pytest.fixture
def window(qtbot, store, recorded):
    gc.collect()
    gc.disable()  # see test_ui_main_window: no collection of old Qt wrappers mid-paint
    w = ReviewWindow(ReviewModel(store).open(recorded[1], REVIEWER))
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
    gc.enable()


def test_the_browser_lists_every_session_and_filters_them(qtbot, store, recorded):
    browser = SessionBrowser(ReviewModel(store))
    qtbot.addWidget(browser)
    assert browser.count.text() == "4 of 4 sessions"
    model = browser.model
    assert [s.started for s in model.shown] == sorted(
        (s.started for s in model.shown), reverse=True
    )

    qtbot.keyClicks(browser.patient, "pt-0042")  # part of the id, any case
    assert {s.patient for s in model.shown} == {PATIENT}
    assert len(model.shown) == 2
    browser.clinician.setText("lindq")
    assert len(model.shown) == 1

    browser.patient.clear()
    browser.clinician.clear()
    browser.status.setCurrentIndex(browser.status.findData(SessionStatus.INTERRUPTED))
    assert [s.patient for s in model.shown] == ["KAP-PT-000002"]
    colour = model.data(model.index(0, 0), QtCore.Qt.ItemDataRole.ForegroundRole)
    assert colour is not None  # interrupted sessions stand out

    browser.status.setCurrentIndex(0)
    browser.use_dates.setChecked(True)
    day = QtCore.QDateTime.fromSecsSinceEpoch(int(START - 86400 * 10)).date()
    browser.since.setDate(day)
    browser.until.setDate(day.addDays(20))
    assert sorted(s.patient for s in model.shown) == sorted(
        [PATIENT, "KAP-PT-000002", "KAP-PT-004217"]
    )

    browser.use_dates.setChecked(False)
    browser.patient.setText(PATIENT)
    browser.table.selectRow(0)
    browser.table.setFocus()
    with qtbot.waitSignal(browser.open_session) as opened:
        qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Return)
    assert opened.args == [recorded[1]]


def test_the_session_opens_on_the_dose_relative_axis(window):
    t = window.timeline
    assert t.dose_relative
    assert t.x_min == pytest.approx(-10.0, abs=0.1)  # the dose came 10 minutes in
    assert t.x_max == pytest.approx(110.0, abs=0.1)
    lo, hi = window.plots.x_range()
    assert lo <= t.x_min and hi >= t.x_max  # the whole session is on screen
    assert "minutes from the dose" in window.plots.plots["pi"].getAxis("bottom").labelText
    assert window.nibp_table.rowCount() == len(window.record.nibp) > 10
    failed = [r for r in range(window.nibp_table.rowCount())
              if window.nibp_table.item(r, 2).text() == "-"]  # fmt: skip
    assert failed, "the failed cuff reading is listed, as missing, not 0"
    events = [window.events_table.item(r, 2).text() for r in range(window.events_table.rowCount())]
    assert "marker: dissociation" in events and any(e.startswith("dose") for e in events)
    assert window.alarms_table.rowCount() == len(t.alarms) > 0
    assert window.summary_table.rowCount() > 5
    # the SpO2 trace has the probe-off gap as NaN, not as a drop to 0
    spo2 = t.trace(Code.SPO2)
    assert np.nanmin(spo2.y) > 80
    assert np.isnan(spo2.y[(spo2.x > 20.2) & (spo2.x < 21.3)]).all()  # probe off 20 min in


def test_zoom_and_step_through_events_and_alarms(window, qtbot):
    plots = window.plots
    plots.set_cursor(0.0)
    lo, hi = plots.x_range()
    plots.zoom(0.5)
    lo2, hi2 = plots.x_range()
    assert hi2 - lo2 == pytest.approx((hi - lo) / 2, rel=1e-6)
    assert lo2 <= 0.0 <= hi2

    steps = window.timeline.steps()
    assert len(steps) >= 4
    plots.set_cursor(window.timeline.x_min)
    visited = []
    while (x := window.step(1)) is not None:
        visited.append(x)
        lo, hi = plots.x_range()
        assert lo <= x <= hi and hi - lo <= 10.0 + 1e-6
        assert plots.cursor_x == x
    assert visited == steps
    assert "No more" in window.message.text()
    back = []
    while (x := window.step(-1)) is not None:
        back.append(x)
    assert back == steps[-2::-1]

    first_alarm = window.timeline.alarms[0]
    plots.set_cursor(first_alarm.start - 0.01)
    qtbot.mouseClick(window.next_button, QtCore.Qt.MouseButton.LeftButton)
    assert plots.cursor_x == pytest.approx(first_alarm.start)
    assert "alarm:" in window.readout.text()
    plots.show_all()
    assert plots.x_range()[1] >= window.timeline.x_max


def test_the_cursor_reads_the_values_under_it(window):
    t = window.timeline
    nibp_i = len(t.nibp_x) // 2
    x = float(t.nibp_x[nibp_i])
    window.plots.set_cursor(x)
    spo2 = t.trace(Code.SPO2).value_at(x)
    text = window.readout.text()
    assert f"SpO2 {spo2:.0f} %" in text
    s, d, m = t.nibp[nibp_i]
    assert f"NIBP {s:.0f}/{d:.0f} ({m:.0f})" in text
    window.plots.set_cursor(20.7)  # the probe was off: missing, not 0
    assert "SpO2 - %" in window.readout.text()


def test_a_click_on_a_plot_moves_the_cursor(window, qtbot):
    plot = window.plots.plots["spo2"]
    window.plots.set_x_range(0.0, 60.0)
    window.plots.set_cursor(0.0)
    target = plot.vb.mapViewToScene(QtCore.QPointF(30.0, 95.0))
    pos = window.plots.mapFromScene(target)
    qtbot.mouseClick(window.plots.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    assert window.plots.cursor_x == pytest.approx(30.0, abs=0.2)


def test_the_pleth_loads_on_demand_for_the_view(window, store):
    assert not window.plots.plots["pleth"].isVisible()
    shown = window.show_pleth_at(30.0)
    assert window.plots.plots["pleth"].isVisible()
    fs = store.load_waves(window.session_id)[0].fs
    assert shown == pytest.approx(30 * fs, rel=0.05)  # half a minute of samples
    window.plots.set_x_range(0.0, PLETH_MAX_MIN * 3)
    assert window._load_pleth() == 0
    assert "zoom to" in window.plots.pleth_note.textItem.toPlainText()
    window.show_pleth_at(20.7, 0.4)  # probe off: a hole, not a flat line
    assert "no pleth" in window.plots.pleth_note.textItem.toPlainText()


def test_amend_an_event_keeps_the_original_and_audits_it(window, store, recorded, qtbot):
    note = next(e for e in window.record.events if e.text == "feels calm, BP settling")
    texts = [window.events_table.item(r, 2).text() for r in range(window.events_table.rowCount())]
    row = texts.index("note: feels calm, BP settling")
    window.events_table.selectRow(row)

    seen: list[str] = []
    failed: list[BaseException] = []

    def fill_and_accept():
        dialog = window.findChild(QtWidgets.QDialog)
        try:
            check_and_fill(dialog)
        except BaseException as exc:  # close the modal dialog, fail below
            failed.append(exc)
            dialog.reject()

    def check_and_fill(dialog):
        assert not dialog.ok.isEnabled()  # a reason is required …
        assert dialog.missing.isVisible()  # … and the dialog says so
        seen.append(dialog.missing.text())
        qtbot.keyClick(dialog.reason, QtCore.Qt.Key.Key_Return)
        assert dialog.isVisible()  # Enter without a reason: still open, still saying why
        dialog.text.setText("")
        seen.append(dialog.missing.text())
        dialog.text.setText("feels calm, BP settling; asked for water")
        assert not dialog.ok.isEnabled()
        dialog.reason.setText("note was incomplete")
        assert dialog.ok.isEnabled()
        assert dialog.missing.isHidden()
        dialog.accept()

    QtCore.QTimer.singleShot(100, fill_and_accept)
    window.amend_button.click()
    if failed:
        raise failed[0]
    assert seen == [
        "Enter a reason to amend the event.",
        "Enter the corrected text and a reason to amend the event.",
    ]

    reloaded = store.load_session(recorded[1], waves=False)
    original = next(e for e in reloaded.events if e.id == note.id)
    assert original.text == "feels calm, BP settling"  # kept as it was
    correction = next(e for e in reloaded.events if e.amends == note.id)
    assert correction.text == "feels calm, BP settling; asked for water"
    assert correction.author == REVIEWER
    events = [window.events_table.item(r, 2).text() for r in range(window.events_table.rowCount())]
    assert "note: feels calm, BP settling; asked for water (amended)" in events
    audit = [
        [window.audit_table.item(r, c).text() for c in range(4)]
        for r in range(window.audit_table.rowCount())
    ]
    assert any(
        who == REVIEWER and what == "amended" and "note was incomplete" in detail
        for _, who, what, detail in audit
    )

    window.plots.set_cursor(45.0)
    note_id = window.add_note("BP checked by hand 150/95")
    reloaded = store.load_session(recorded[1], waves=False)
    added = next(e for e in reloaded.events if e.id == note_id)
    assert added.author == REVIEWER
    assert window.timeline.minutes(added.stamp.wall) == pytest.approx(45.0)
    assert any(a.action == "note-added" and a.who == REVIEWER for a in store.audit_log(recorded[1]))


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_every_export_format_has_a_button(window, tmp_path, monkeypatch, fmt):
    target = tmp_path / f"out.{fmt}"
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "")
    )  # the user's choice of file: the dialog is the only part not run for real
    window.export_buttons[fmt].click()
    assert target.stat().st_size > 1000
    assert str(target) in window.message.text()


def test_the_window_and_the_command_line_offer_the_registry_formats(
    qtbot, store, recorded, tmp_path, monkeypatch
):
    """One list: a format added to the registry gets a button and a ``--format`` choice."""
    extra = ExportFormat("csv-copy", "kapmonitor.export.csv_export", ".csv", "CSV copy", "a copy")
    monkeypatch.setitem(EXPORT_FORMATS, extra.name, extra)
    w = ReviewWindow(ReviewModel(store).open(recorded[1], REVIEWER))
    qtbot.addWidget(w)
    assert list(w.export_buttons) == list(EXPORT_FORMATS) == export_choices()
    assert w.export_buttons["csv-copy"].text() == "CSV copy"
    target = tmp_path / "copy.csv"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    w.export_buttons["csv-copy"].click()
    assert target.stat().st_size > 1000
    w.close()


def export_choices() -> list[str]:
    """The command line's ``export --format`` choices, as its parser offers them."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    export = subs.choices["export"]
    return list(next(a for a in export._actions if "--format" in a.option_strings).choices)


def test_the_pdf_report_from_the_button_has_the_session(window, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    path = window.export("pdf", tmp_path / "report.pdf")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    assert PATIENT in text
    peak = window.summary.peak_systolic
    assert f"{peak.systolic:.0f}/{peak.diastolic:.0f} mmHg" in text  # the summary's peak
    rems_40 = dict(window.rems_rows())["BP at 40 min after administration"]
    assert rems_40.split(" at ")[0] in text  # the REMS form's 40-minute reading
    assert "feels calm, BP settling" in text and "NIBP systolic high" in text  # events, alarms
    window.deidentify.setChecked(True)
    path = window.export("pdf", tmp_path / "anon.pdf")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    assert PATIENT not in text


def test_review_from_the_command_line(recorded, capsys):
    url, session_id = recorded
    opened = []

    def review(sid, db, reviewer):  # the entry point's window, recorded instead of shown
        opened.append((sid, db, reviewer))
        return 0

    assert cli_main(["review", str(session_id), "--db", url, "--reviewer", "Dr R"],
                    review=review) == 0  # fmt: skip
    assert opened == [(session_id, url, "Dr R")]
    assert cli_main(["review", "999", "--db", url], review=review) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kapmonitor: there is no session 999 in {url}"]
    assert cli_main(["review", "--db", url]) == 2


def test_the_review_app_opens_a_window_per_session(qtbot, store, recorded):
    app = ReviewApp(ReviewModel(store), REVIEWER)
    browser = app.show_browser()
    qtbot.addWidget(browser)
    browser.open_session.emit(recorded[1])
    window = app.windows[recorded[1]]
    qtbot.addWidget(window)
    assert window.isVisible() and window.reviewer == REVIEWER
    assert app.open(recorded[1]) is window  # the same session is not opened twice
    window.close()


def test_a_session_without_dose_or_data_opens(qtbot, tmp_path):
    store = Store(open_database(f"sqlite:///{tmp_path / 'empty.sqlite3'}"))
    sid = store.create_session(SessionSetup("KAP-EMPTY"), started=START)
    store.end_session(sid, SessionStatus.INTERRUPTED, START + 60)
    w = ReviewWindow(ReviewModel(store).open(sid, REVIEWER))
    qtbot.addWidget(w)
    w.show()
    assert not w.timeline.dose_relative
    assert "INTERRUPTED" in w.header.text()
    assert "no dose marked" in w.header.text()
    assert w.step(1) is None
    assert w.show_pleth_at(0.5) == 0
    assert not math.isnan(w.plots.cursor_x)
    assert "minutes from the start" in w.plots.plots["pleth"].getAxis("bottom").labelText
    w.close()
    store.db.close()


def test_a_session_stopped_by_the_system_says_so_everywhere(qtbot, tmp_path):
    """SIGTERM or Ctrl+C ended it: neither "completed" (no discharge check) nor "interrupted"."""
    from pypdf import PdfReader

    from kapmonitor.export import export_session

    store = Store(open_database(f"sqlite:///{tmp_path / 'stopped.sqlite3'}"))
    sid = store.create_session(SessionSetup("KAP-STOPPED"), started=START)
    store.end_session(sid, SessionStatus.STOPPED_BY_SYSTEM, START + 600, who="system")
    browser = SessionBrowser(ReviewModel(store))
    qtbot.addWidget(browser)
    model = browser.model
    assert model.data(model.index(0, 6), QtCore.Qt.ItemDataRole.DisplayRole) == (
        "stopped by the system"
    )
    assert model.data(model.index(0, 0), QtCore.Qt.ItemDataRole.ForegroundRole) is not None
    browser.status.setCurrentIndex(browser.status.findData(SessionStatus.STOPPED_BY_SYSTEM))
    assert browser.status.currentText() == "Stopped by the system"
    assert [s.patient for s in model.shown] == ["KAP-STOPPED"]
    w = ReviewWindow(ReviewModel(store).open(sid, REVIEWER))
    qtbot.addWidget(w)
    assert "STOPPED BY THE SYSTEM" in w.header.text()
    pdf = tmp_path / "stopped.pdf"
    export_session(store.load_session(sid), "pdf", pdf)
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "STOPPED BY THE SYSTEM" in text and "no discharge check" in text
    w.close()
    store.db.close()


def test_steps_skip_bookkeeping_events(window):
    quiet = [m.x for m in window.timeline.marks if m.event.kind in QUIET_KINDS]
    assert quiet  # the simulator's schedule and device states are in the record
    assert not set(quiet) & set(window.timeline.steps(alarms=False))


def test_the_review_screenshot(window, tmp_path):
    window.plots.set_cursor(30.0)
    path = Path(tmp_path) / "review.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 20_000


def test_the_rems_assessment_is_saved_signed_and_shown(window, store, recorded):
    rows = dict(
        (window.rems_table.item(r, 0).text(), window.rems_table.item(r, 1).text())
        for r in range(window.rems_table.rowCount())
    )
    assert rows["Dissociation"].startswith("Yes")  # from the nurse's marker until assessed
    assert rows["Sedation"].startswith("not recorded")
    t = window.timeline
    near_40 = min(
        (r for r in window.record.nibp if r.systolic is not None),
        key=lambda r: abs(t.minutes(r.stamp.wall) - 40),
    )
    bp40 = rows["BP at 40 min after administration"]
    assert bp40.startswith(f"{near_40.systolic:.0f}/{near_40.diastolic:.0f} mmHg")

    window.assessment["sedation"].setCurrentIndex(window.assessment["sedation"].findText("No"))
    window.assessment["dissociation"].setCurrentIndex(
        window.assessment["dissociation"].findText("Yes")
    )
    window.ready_set.setChecked(True)
    window.ready_time.setTime(QtCore.QTime(12, 5))
    window._save_assessment()

    rows = dict(
        (window.rems_table.item(r, 0).text(), window.rems_table.item(r, 1).text())
        for r in range(window.rems_table.rowCount())
    )
    assert rows["Sedation"].startswith("No") and REVIEWER in rows["Sedation"]
    assert rows["Ready to leave"].startswith("12:05")
    record = store.load_session(recorded[1], waves=False)
    written = [e for e in record.events if e.kind == "assessment"]
    assert {e.text for e in written} >= {
        "sedation: no",
        "dissociation: yes",
        "ready to leave: 12:05",
    }
    assert all(e.author == REVIEWER for e in written)


def test_alarm_starts_are_marked_on_the_vital_that_alarmed(window):
    t = window.timeline
    nibp_alarms = [a for a in t.alarms if a.entry.code == Code.NIBP_SYS.value]
    assert nibp_alarms
    diamonds = [
        item
        for item in window.plots.plots["nibp"].items
        if isinstance(item, pg.ScatterPlotItem) and item.opts["symbol"] == "d"
    ]
    assert len(diamonds) == 1
    xs, ys = diamonds[0].getData()
    i = t.nibp_at(nibp_alarms[0].start)
    assert (nibp_alarms[0].start, t.nibp[i, 0]) in set(zip(xs, ys, strict=True))


def _scene_rect(label) -> QtCore.QRectF:
    """Where a pyqtgraph TextItem's text is drawn, in scene pixels."""
    return label.textItem.mapRectToScene(label.textItem.boundingRect())


def test_event_labels_sit_in_their_own_row_stacked_clear_of_every_trace(window, qtbot, tmp_path):
    dose = next(m.x for m in window.timeline.marks if m.event.kind == "dose")
    for minutes, text in ((0.3, "dissociation"), (0.6, "nausea or vomiting"), (0.9, "BP recheck")):
        window.add_note(text, x=dose + minutes)  # close together, as a nurse presses them
    plots = window.plots
    shown = [m for m in window.timeline.marks if m.event.kind not in QUIET_KINDS]
    labels = [
        item.label
        for plot in plots.plots.values()
        for item in plot.items
        if isinstance(item, pg.InfiniteLine) and getattr(item, "label", None) is not None
    ]
    assert sorted(label.toPlainText() for label in labels) == sorted(m.text[:40] for m in shown)
    for span in (None, (dose - 1.0, dose + 14.0), (dose - 10.0, dose + 1.0)):
        if span is not None:
            plots.set_x_range(*span)
        qtbot.wait(50)
        plots.grab()  # painted: pyqtgraph maps view to scene lazily, at the next paint
        row = plots.plots["events"].vb.sceneBoundingRect()
        lo, hi = plots.x_range()
        in_view = [_scene_rect(label) for label in labels if lo <= label.line.value() <= hi]
        assert len(in_view) >= 4
        for r in in_view:  # inside the events row (to a pixel), so over no trace
            assert row.top() - 1 <= r.top() and r.bottom() <= row.bottom() + 1, (r, row)
            assert row.left() - 1 <= r.left() and r.right() <= row.right() + 1, (r, row)
            for name in ("alarms", "spo2", "pulse", "nibp", "pi"):
                assert not r.intersects(plots.plots[name].vb.sceneBoundingRect()), name
        for i, a in enumerate(in_view):  # and no label over another
            for b in in_view[i + 1 :]:
                assert not a.adjusted(1, 1, -1, -1).intersects(b), (a, b)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        plots.show_all()
        window.plots.set_cursor(dose + 30)
        qtbot.wait(50)
        window.grab().save(str(Path(SCREENSHOTS) / "review-event-labels.png"))


def test_no_axis_scales_its_numbers_by_an_si_prefix(window):
    for name, plot in window.plots.plots.items():
        plot.setYRange(-0.5, 0.5, padding=0.05)  # one alarm lane's range: below 1
        shown = re.sub(r"<[^>]+>", "", plot.getAxis("left").labelString()).strip()
        assert shown == ROWS[name][0], name  # "Alarms", never "Alarms (x0.001)"
        assert "(x" not in plot.getAxis("bottom").labelString()


def test_alarm_lane_labels_do_not_run_into_each_other(window, qtbot):
    plot = window.plots.plots["alarms"]
    labels = [item for item in plot.items if isinstance(item, pg.TextItem)]
    assert len(labels) >= 5  # the session's conditions, a lane each
    window.plots.grab()  # painted: pyqtgraph maps view to scene lazily
    rects = sorted((_scene_rect(label) for label in labels), key=lambda r: r.top())
    for upper, lower in itertools.pairwise(rects):
        assert upper.bottom() - lower.top() <= 4, (upper, lower)  # at most the text's margins
    lanes = plot.vb.sceneBoundingRect()
    assert all(lanes.top() - 2 <= r.top() and r.bottom() <= lanes.bottom() + 2 for r in rects)


def test_weight_and_indication_are_corrected_with_a_reason_and_audited(window, store, recorded):
    from ui.review.details_dialog import DetailsDialog

    seen: list[str] = []
    failed: list[BaseException] = []

    def fill_and_accept():
        dialog = window.findChild(DetailsDialog)
        try:
            assert not dialog.ok.isEnabled()  # a reason is required, and the dialog says so
            seen.append(dialog.missing.text())
            dialog.reason.setText("weighed at intake")
            for bad in ("seventy", "7000", "nan", "inf", "0"):
                dialog.weight.setText(bad)
                assert not dialog.ok.isEnabled(), bad
                seen.append(dialog.missing.text())
            dialog.weight.setText("72,5")  # a decimal comma as typed on many keyboards
            dialog.indication.setText("treatment-resistant depression")
            assert dialog.ok.isEnabled() and dialog.missing.isHidden()
            dialog.accept()
        except BaseException as exc:  # close the modal dialog, fail below
            failed.append(exc)
            dialog.reject()

    QtCore.QTimer.singleShot(100, fill_and_accept)
    window.details_button.click()
    if failed:
        raise failed[0]
    assert seen[0] == "Enter a reason to change the weight or indication."
    assert seen[1] == "The weight 'seventy' is not a number of kilograms."
    assert all("not plausible" in s for s in seen[2:]), seen
    assert window.review.details().weight_kg == 72.5
    assert "72.5 kg · treatment-resistant depression" in window.header.text()
    audit = [a for a in store.audit_log(recorded[1]) if a.action == "details-set"]
    assert audit and audit[-1].who == REVIEWER and "weighed at intake" in audit[-1].detail
    assert any(
        window.audit_table.item(r, 2).text() == "details-set"
        for r in range(window.audit_table.rowCount())
    )
