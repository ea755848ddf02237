"""The start dialog, the discharge dialog and the device/recording status strip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from devices.registry import protocol_names
from kapmonitor.core.discharge import CheckItem
from kapmonitor.record.session import Drug, Route, SessionSetup
from ui.discharge_dialog import DischargeDialog, SummaryView
from ui.start_dialog import StartDialog
from ui.status_panel import DeviceStatusPanel
from ui.theme import apply_dark_theme

SCREENSHOTS = os.environ.get("KAPMONITOR_SCREENSHOTS")
PORTS = [("/dev/ttyUSB0", "USB-Serial Controller"), ("/dev/ttyUSB1", "FT232R USB UART")]


def dark(widget: QWidget) -> None:
    """Roughly the application's dark theme, for screenshots (the real one is ui/theme.py)."""
    palette = widget.palette()
    for role, colour in {
        QPalette.ColorRole.Window: "#000000",
        QPalette.ColorRole.WindowText: "#d6d9de",
        QPalette.ColorRole.Base: "#0b0d10",
        QPalette.ColorRole.Text: "#d6d9de",
        QPalette.ColorRole.Button: "#1a1e24",
        QPalette.ColorRole.ButtonText: "#d6d9de",
        QPalette.ColorRole.PlaceholderText: "#6a7079",
        QPalette.ColorRole.Highlight: "#1f4e66",
    }.items():
        palette.setColor(role, QColor(colour))
    widget.setPalette(palette)
    widget.setAutoFillBackground(True)


def save_screenshot(widget: QWidget, name: str, tmp_path: Path) -> None:
    image = widget.grab()
    assert image.save(str(tmp_path / name))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(SCREENSHOTS) / name))


class Checker:
    """A check_device that finds /dev/ttyUSB9 missing and /dev/ttyUSB1 busy."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, spec: str) -> str | None:
        self.calls.append(spec)
        if spec.endswith("/dev/ttyUSB9"):
            return "port '/dev/ttyUSB9' does not exist: is the device plugged in?"
        if spec.endswith("/dev/ttyUSB1"):
            return "port '/dev/ttyUSB1' is busy: another program is using it"
        return None


@pytest.fixture
def checker() -> Checker:
    return Checker()


@pytest.fixture
def dialog(qtbot, checker):
    d = StartDialog(check_device=checker, list_ports=lambda: list(PORTS))
    qtbot.addWidget(d)
    d.open()
    qtbot.waitExposed(d)
    return d


def click_ok(qtbot, d: StartDialog) -> None:
    qtbot.mouseClick(d.ok_button, Qt.MouseButton.LeftButton)


def choose_drug(d: StartDialog, drug="esketamine", route="intranasal", dose=56.0, unit="mg"):
    """What the nurse must choose herself: nothing clinical is filled in for her."""
    d.drug.setCurrentIndex(d.drug.findData(drug))
    d.route.setCurrentIndex(d.route.findData(route))
    d.dose.setValue(dose)
    d.dose_unit.setEditText(unit)


# --- start dialog -----------------------------------------------------------------------------


def test_the_patient_identifier_is_required(dialog, qtbot, checker):
    row = dialog.rows[0]
    row.port.setEditText("/dev/ttyUSB0")
    click_ok(qtbot, dialog)
    assert dialog.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.patient_error.isVisible()
    assert "patient identifier" in dialog.patient_error.text()
    assert dialog.focusWidget() is dialog.patient
    assert checker.calls == []  # no port is opened before the form is complete


def test_a_bad_port_is_shown_in_red_next_to_its_row_and_the_dialog_stays_open(
    dialog, qtbot, checker, tmp_path
):
    dialog.patient.setText("P-0042")
    choose_drug(dialog)
    dialog.rows[0].protocol.setCurrentText("nonin2")
    dialog.rows[0].port.setEditText("/dev/ttyUSB0")
    second = dialog.add_device("nonin2", "/dev/ttyUSB9")
    click_ok(qtbot, dialog)
    assert dialog.isVisible()
    assert dialog.rows[0].error.isHidden()
    assert second.error.isVisible()
    assert second.error.text() == "port '/dev/ttyUSB9' does not exist: is the device plugged in?"
    assert "ff6b6b" in second.error.styleSheet()
    assert dialog.focusWidget() in (second.port, second.port.lineEdit())
    dark(dialog)
    dialog.resize(760, dialog.sizeHint().height())
    save_screenshot(dialog, "start-dialog-bad-port.png", tmp_path)
    # The nurse picks the right port and tries again.
    second.port.setEditText("")
    assert second.error.isHidden()  # editing the port clears its old message
    qtbot.keyClicks(second.port.lineEdit(), "/dev/ttyUSB1")
    click_ok(qtbot, dialog)
    assert "busy" in second.error.text()
    assert dialog.isVisible()
    qtbot.mouseClick(second.remove, Qt.MouseButton.LeftButton)
    assert len(dialog.rows) == 1
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        click_ok(qtbot, dialog)
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_a_typed_url_is_accepted_and_values_are_returned(dialog, qtbot, checker):
    qtbot.keyClicks(dialog.patient, "P-0042")
    qtbot.keyClicks(dialog.clinician, "Dr Example")
    qtbot.keyClicks(dialog.operator, "nurse A")
    dialog.drug.setCurrentIndex(dialog.drug.findData("esketamine"))
    dialog.route.setCurrentIndex(dialog.route.findData("intranasal"))
    dialog.dose.setValue(56)
    qtbot.keyClicks(dialog.dose_unit.lineEdit(), "mg")
    dialog.rows[0].protocol.setCurrentText("nonin2")
    qtbot.keyClicks(dialog.rows[0].port.lineEdit(), "socket://localhost:7000")
    sim = dialog.add_device("sim")
    assert sim.port.findText("typical") >= 0  # the simulator's row offers the scenarios
    sim.port.setEditText("desaturation")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        click_ok(qtbot, dialog)
    assert checker.calls == ["nonin2@socket://localhost:7000", "sim:desaturation"]
    assert dialog.setup() == SessionSetup(
        patient="P-0042",
        clinician="Dr Example",
        operator="nurse A",
        drug=Drug.ESKETAMINE,
        route=Route.INTRANASAL,
        dose=56.0,
        dose_unit="mg",
        devices=("nonin2@socket://localhost:7000", "sim:desaturation"),
        profile="kap-default",
    )


def test_the_port_list_comes_from_the_system_and_can_be_refreshed(qtbot):
    ports = list(PORTS)
    d = StartDialog(list_ports=lambda: list(ports))
    qtbot.addWidget(d)
    combo = d.rows[0].port
    assert [combo.itemText(i) for i in range(combo.count())] == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert combo.itemData(0, Qt.ItemDataRole.ToolTipRole) == "USB-Serial Controller"
    assert combo.isEditable()
    assert combo.currentText() == ""  # nothing is chosen for the nurse
    assert [d.rows[0].protocol.itemText(i) for i in range(d.rows[0].protocol.count())] == [
        *protocol_names(), "sim",
    ]  # fmt: skip
    ports.append(("/dev/ttyACM0", "Nonin"))
    qtbot.mouseClick(d.refresh_button, Qt.MouseButton.LeftButton)
    assert combo.findText("/dev/ttyACM0") >= 0


def test_empty_port_bad_profile_and_duplicate_ports_are_caught(dialog, qtbot, checker):
    dialog.patient.setText("P-1")
    choose_drug(dialog)
    dialog.rows[0].protocol.setCurrentText("contec")
    click_ok(qtbot, dialog)
    assert "Choose or type the port" in dialog.rows[0].error.text()
    dialog.rows[0].port.setEditText("/dev/ttyUSB0")
    dialog.add_device("nonin2", "/dev/ttyUSB0")
    dialog.profile.setEditText("/nowhere/profile.toml")
    click_ok(qtbot, dialog)
    assert "already uses port '/dev/ttyUSB0'" in dialog.rows[1].error.text()
    assert "cannot be read" in dialog.profile_error.text()
    assert dialog.isVisible()
    assert checker.calls == []
    qtbot.mouseClick(dialog.rows[0].remove, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.rows[0].remove, Qt.MouseButton.LeftButton)
    dialog.profile.setEditText("kap-default")
    click_ok(qtbot, dialog)
    assert "at least one device" in dialog.devices_error.text()


def test_the_dialog_works_from_the_keyboard(dialog, qtbot, checker):
    assert dialog.focusWidget() is dialog.patient
    qtbot.keyClicks(dialog.patient, "P-7")
    for _ in range(3):  # clinician, operator, drug
        qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.drug
    qtbot.keyClick(dialog.drug, Qt.Key.Key_Down)  # the first drug: chosen by the nurse
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.route
    qtbot.keyClick(dialog.route, Qt.Key.Key_Down)
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.dose
    qtbot.keyClicks(dialog.focusWidget(), "0.5")
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    qtbot.keyClicks(dialog.focusWidget(), "mg/kg")
    for _ in range(5):  # weight, indication (both optional), profile, file…, protocol
        qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.rows[0].protocol
    qtbot.keyClick(dialog.rows[0].protocol, Qt.Key.Key_Down)
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert dialog.focusWidget() in (dialog.rows[0].port, dialog.rows[0].port.lineEdit())
    qtbot.keyClicks(dialog.rows[0].port.lineEdit(), "/dev/ttyUSB0")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        qtbot.keyClick(dialog.rows[0].port.lineEdit(), Qt.Key.Key_Return)
    setup = dialog.setup()
    assert setup.devices == (f"{protocol_names()[0]}@/dev/ttyUSB0",)
    assert (setup.drug, setup.route, setup.dose, setup.dose_unit) == (
        "ketamine", "iv", 0.5, "mg/kg",
    )  # fmt: skip


def test_defaults_fill_the_form(qtbot):
    d = StartDialog(
        list_ports=lambda: [],
        defaults=SessionSetup("", operator="nurse A", drug=Drug.ESKETAMINE, route=Route.IM,
                              dose=0.5, dose_unit="mg/kg",
                              devices=("masimo@/dev/ttyUSB3", "sim:typical")),
    )  # fmt: skip
    qtbot.addWidget(d)
    setup = d.setup()
    assert setup.operator == "nurse A"
    assert (setup.drug, setup.route, setup.dose, setup.dose_unit) == (
        "esketamine", "im", 0.5, "mg/kg",
    )  # fmt: skip
    assert setup.devices == ("masimo@/dev/ttyUSB3", "sim:typical")


def test_screenshot_of_the_start_dialog(qtbot, tmp_path):
    d = StartDialog(list_ports=lambda: list(PORTS))
    qtbot.addWidget(d)
    dark(d)
    d.patient.setText("P-0042")
    d.operator.setText("nurse A")
    choose_drug(d)
    d.rows[0].protocol.setCurrentText("nonin2")
    d.rows[0].port.setEditText("/dev/ttyUSB0")
    d.add_device("contec", "socket://192.168.1.20:7000")
    d.show()
    qtbot.waitExposed(d)
    save_screenshot(d, "start-dialog.png", tmp_path)


def test_no_clinical_field_is_filled_in_for_the_nurse(dialog, qtbot, checker, tmp_path):
    setup = dialog.setup()
    assert (setup.drug, setup.route, setup.dose, setup.dose_unit) == (
        None, None, None, "",
    )  # fmt: skip
    assert dialog.drug.currentText() == "" and dialog.drug.placeholderText() == "choose…"
    assert dialog.route.currentText() == ""
    row = dialog.rows[0]
    assert row.protocol.currentText() == ""  # neither a vendor's protocol nor the simulator
    dialog.patient.setText("P-0042")
    row.port.setEditText("/dev/ttyUSB0")
    click_ok(qtbot, dialog)
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.drug_error.isVisible() and dialog.drug_error.text() == "Choose the drug."
    assert dialog.route_error.isVisible() and dialog.route_error.text() == "Choose the route."
    assert dialog.dose_error.isVisible() and dialog.dose_error.text() == "Enter the dose."
    assert row.error.text() == "Choose the device's protocol (sim for the simulator)."
    assert dialog.focusWidget() is dialog.drug
    assert checker.calls == []
    row.protocol.setCurrentText("nonin2")
    assert row.port.currentText() == "/dev/ttyUSB0"  # choosing the protocol keeps the port
    dialog.dose.setValue(56)
    click_ok(qtbot, dialog)
    assert dialog.dose_error.text() == "Choose the dose unit."
    choose_drug(dialog)
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        click_ok(qtbot, dialog)
    assert dialog.setup().devices == ("nonin2@/dev/ttyUSB0",)


def test_an_error_goes_as_soon_as_its_field_is_fixed(dialog, qtbot, tmp_path):
    click_ok(qtbot, dialog)
    errors = [dialog.patient_error, dialog.drug_error, dialog.route_error, dialog.dose_error]
    assert all(label.isVisible() for label in errors)
    dark(dialog)
    save_screenshot(dialog, "start-dialog-empty-errors.png", tmp_path)
    qtbot.keyClicks(dialog.patient, "   ")
    assert dialog.patient_error.isVisible()  # blanks are no identifier
    qtbot.keyClicks(dialog.patient, "P-0042")
    assert dialog.patient_error.isHidden()
    dialog.drug.setCurrentIndex(1)
    assert dialog.drug_error.isHidden()
    dialog.route.setCurrentIndex(0)
    assert dialog.route_error.isHidden()
    assert dialog.dose_error.isVisible()
    dialog.dose.setValue(20)
    assert dialog.dose_error.isHidden()
    dialog.profile.setEditText("/nowhere.toml")
    click_ok(qtbot, dialog)
    assert dialog.profile_error.isVisible()
    dialog.profile.setEditText("kap-default")
    assert dialog.profile_error.isHidden()


def test_a_long_device_message_wraps_and_shows_whole(qtbot, tmp_path):
    long = (
        "port '/dev/ttyUSB0' could not be opened: permission denied. Add your user to the "
        "'dialout' group (sudo usermod -aG dialout $USER), log out and in again, then retry; "
        "or plug the cable in, press Refresh ports, or type the port the device is on."
    )
    apply_dark_theme(QApplication.instance())  # the application's own font and style
    d = StartDialog(check_device=lambda spec: long, list_ports=lambda: list(PORTS))
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    d.patient.setText("P-0042")
    choose_drug(d)
    d.rows[0].protocol.setCurrentText("nonin2")
    d.rows[0].port.setEditText("/dev/ttyUSB0")
    click_ok(qtbot, d)
    qtbot.wait(50)
    label = d.rows[0].error
    assert label.isVisible() and label.text() == long
    assert label.wordWrap()
    lines = label.heightForWidth(label.width()) / label.fontMetrics().lineSpacing()
    assert lines >= 2  # the message does wrap at this width …
    assert label.height() >= label.heightForWidth(label.width())  # … and every line shows
    top_left = label.mapTo(d, label.rect().topLeft())
    bottom = top_left.y() + label.height()
    assert top_left.x() + label.width() <= d.width() and bottom <= d.height()
    below = d.add_button.mapTo(d, d.add_button.rect().topLeft()).y()
    assert bottom <= below  # nothing is drawn over its last line
    dark(d)
    save_screenshot(d, "start-dialog-long-message.png", tmp_path)


# --- discharge dialog -------------------------------------------------------------------------

ITEMS_OK = [
    CheckItem("≥ 2 h since the dose", True, "2 h 05 min"),
    CheckItem("BP back near baseline", True, "128/80 vs 124/78 mmHg"),
    CheckItem("SpO2 and pulse in range", True, "97 %, 72/min"),
]
SUMMARY = {"Patient": "P-0042", "Dose": "esketamine 56 mg intranasal", "Alarms": "2 (1 high)"}


def test_end_is_enabled_when_every_item_is_met_then_the_summary_shows(qtbot):
    ended = []
    d = DischargeDialog(ITEMS_OK, summary=lambda outcome: ended.append(outcome) or SUMMARY)
    qtbot.addWidget(d)
    d.show()
    assert d.end_button.isEnabled()
    with qtbot.waitSignal(d.end_requested, timeout=1000) as blocker:
        qtbot.mouseClick(d.end_button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    assert outcome.ended is True
    assert outcome.override is False
    assert outcome.override_reason is None
    assert [i.ok for i in outcome.items] == [True, True, True]
    assert ended == [outcome]
    assert d.pages.currentIndex() == 1
    assert d.summary_view.summary() == SUMMARY
    assert "Dose: esketamine 56 mg intranasal" in d.summary_view.text()
    with qtbot.waitSignal(d.accepted, timeout=1000):
        qtbot.mouseClick(d.close_button, Qt.MouseButton.LeftButton)


def test_the_nurse_ticks_what_only_she_can_judge(qtbot):
    items = [*ITEMS_OK, CheckItem("Patient alert and oriented", None)]
    d = DischargeDialog(items)
    qtbot.addWidget(d)
    assert not d.end_button.isEnabled()
    box = d.confirm_boxes[3]
    box.setChecked(True)
    assert d.end_button.isEnabled()
    box.setChecked(False)
    assert not d.end_button.isEnabled()


def test_an_unmet_item_needs_the_override_and_a_reason(qtbot, tmp_path):
    items = [
        ITEMS_OK[0],
        CheckItem("BP back near baseline", False, "162/98 vs 124/78 mmHg"),
        ITEMS_OK[2],
        CheckItem("Patient alert", None),
    ]
    d = DischargeDialog(items, summary=SUMMARY)
    qtbot.addWidget(d)
    d.show()
    d.confirm_boxes[3].setChecked(True)
    assert not d.end_button.isEnabled()
    assert "BP back near baseline" in d.status.text()
    d.override.setChecked(True)
    assert not d.end_button.isEnabled()  # no reason yet
    qtbot.keyClicks(d.override_reason_edit, "picked up by partner; BP falling, GP informed")
    assert d.end_button.isEnabled()
    dark(d)
    save_screenshot(d, "discharge-dialog-override.png", tmp_path)
    with qtbot.waitSignal(d.end_requested, timeout=1000) as blocker:
        qtbot.mouseClick(d.end_button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    assert outcome.override is True
    assert outcome.override_reason == "picked up by partner; BP falling, GP informed"
    assert [i.ok for i in outcome.items] == [True, False, True, True]
    assert outcome.items[3].confirmed_by_nurse is True
    assert d.override_reason() == "picked up by partner; BP falling, GP informed"
    assert d.ended
    d.reject()  # Escape on the summary page: the session has ended all the same
    assert d.result() == QDialog.DialogCode.Accepted


def test_items_may_be_any_object_with_label_ok_and_detail(qtbot):
    from dataclasses import dataclass

    @dataclass
    class OtherItem:  # e.g. the runner's own checklist type
        label: str
        ok: bool | None
        detail: str = ""

    d = DischargeDialog([OtherItem("SpO2 and pulse in range", True, "97 %"),
                         OtherItem("patient alert", None)])  # fmt: skip
    qtbot.addWidget(d)
    d.show()
    assert [i.ok for i in d.items] == [True, None]
    assert not d.end_button.isEnabled()
    d.confirm_boxes[1].setChecked(True)
    with qtbot.waitSignal(d.accepted, timeout=1000):  # no summary given: closes at once
        qtbot.mouseClick(d.end_button, Qt.MouseButton.LeftButton)
    assert d.override_reason() is None


def test_summary_view_is_a_dialog_of_its_own(qtbot, tmp_path):
    view = SummaryView(SUMMARY)
    qtbot.addWidget(view)
    view.show()
    assert view.summary() == SUMMARY
    assert view.text().splitlines()[0] == "Patient: P-0042"
    dark(view)
    save_screenshot(view, "summary-view.png", tmp_path)
    with qtbot.waitSignal(view.accepted, timeout=1000):
        qtbot.keyClick(view, Qt.Key.Key_Return)


def test_cancel_keeps_the_session(qtbot):
    d = DischargeDialog(ITEMS_OK)
    qtbot.addWidget(d)
    d.show()
    with qtbot.waitSignal(d.rejected, timeout=1000):
        qtbot.mouseClick(d.cancel_button, Qt.MouseButton.LeftButton)
    assert not d.ended
    assert d.outcome().ended is False


# --- device and recording status --------------------------------------------------------------


def test_status_panel_colours_devices_and_recording(qtbot, tmp_path):
    panel = DeviceStatusPanel()
    qtbot.addWidget(panel)
    rows = [
        ("nonin2@/dev/ttyUSB0", "connected", "Nonin 7500 on /dev/ttyUSB0"),
        ("contec@/dev/ttyUSB1", "no-data", "no data for 12 s"),
        ("sim:typical", "reconnecting", "port '/dev/ttyUSB2' stopped answering"),
        ("masimo@/dev/ttyUSB3", "disconnected", "port '/dev/ttyUSB3' does not exist"),
    ]
    panel.update_status(rows, (True, "/var/lib/kapmonitor/kapmonitor.sqlite3"))
    hues = {name: QColor(panel.device_state(name)[1]).hslHue() for name, _, _ in rows}
    assert 100 <= hues["nonin2@/dev/ttyUSB0"] <= 160  # green
    assert 30 <= hues["contec@/dev/ttyUSB1"] <= 50  # amber
    assert hues["sim:typical"] <= 10 and hues["masimo@/dev/ttyUSB3"] <= 10  # red
    text, _, tip = panel.device_state("contec@/dev/ttyUSB1")
    assert text == "NO DATA"
    assert "no data for 12 s" in tip
    assert panel.recording_label.text() == "● recording to /var/lib/kapmonitor/kapmonitor.sqlite3"
    panel.resize(1600, 40)
    panel.setStyleSheet("background: #000000;")
    panel.update_status(rows, (False, "disk full (database is locked for 30 s)"))
    assert panel.recording_label.text() == (
        "RECORDING FAILING: disk full (database is locked for 30 s)"
    )
    assert "#b71c1c" in panel.recording_label.styleSheet()
    save_screenshot(panel, "status-panel.png", tmp_path)
    panel.update_status(rows[:1], (True, "recording to x.sqlite3"))
    assert panel.recording_label.text() == "● recording to x.sqlite3"
    assert panel.device_state("nonin2@/dev/ttyUSB0")[0] == "connected"
    with pytest.raises(KeyError):
        panel.device_state("sim:typical")
