"""The start dialog: who, what drug, which devices on which ports, which alarm profile.

Nothing clinical is chosen for the nurse: drug, route, dose and unit, and each device's protocol,
start empty ("choose…") and the session does not start until they are filled, so a report never
says "ketamine, IV" that nobody chose, and a session never starts on a vendor's protocol (or the
simulator) that nobody picked. Each problem is said in red under its field, wraps to the
dialog's width (the dialog grows to show it whole) and goes away as soon as the field is fixed.

A wrong or busy port is the usual first problem of a session: the dialog then stays open with
the reason in red under that device, so the nurse can plug the cable in, pick another port, or
type one (``serial.tools.list_ports`` never lists ptys or network ports, so the port field is an
editable list that takes any path or pyserial URL such as ``socket://host:7000``).

The clinic station (optional): the room's name on the clinic's bus and the broker's URL. Both
or neither; each is checked as the command line checks ``--room`` and ``--broker``, and both
are kept between runs (QSettings), since a dosing room keeps its name and its clinic's broker.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from alarms.profile import load_profile, profile_names
from devices.registry import protocol_names
from kapmonitor.core.device_spec import SIM, DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.record.session import Drug, Route, SessionSetup
from kapmonitor.runner import scenario_names

__all__ = ["DeviceRow", "StartDialog", "serial_ports"]

ERROR_STYLE = "color: #ff6b6b; font-weight: bold;"
ROUTE_LABELS = {
    Route.IV: "IV (intravenous)",
    Route.IM: "IM (intramuscular)",
    Route.SUBLINGUAL: "sublingual",
    Route.INTRANASAL: "intranasal",
}
DOSE_UNITS = ("mg", "mg/kg", "µg")
PORT_HINT = "/dev/ttyUSB0, COM3 or socket://host:7000"
BROKER_HINT = "mqtt://HOST:1883 or mqtts://HOST:8883"
#: Where the room and broker are kept between runs (the user's config folder).
SETTINGS_ORGANIZATION, SETTINGS_APPLICATION = "kapmonitor", "dosing-room"
ROOM_KEY, BROKER_KEY = "station/room", "station/broker"


def station_problem(room: str, broker: str) -> str | None:
    """One sentence if the room and broker cannot be used; None if fine (or both empty)."""
    if not room and not broker:
        return None
    if not room:
        return "Enter this room's name for the station too, or clear the broker URL."
    if not broker:
        return f"Enter the broker URL too ({BROKER_HINT}), or clear the room name."
    from kapmonitor.station.broker import parse_broker_url  # paho loads only for the bus
    from kapmonitor.station.contract import check_room

    try:
        check_room(room)
        parse_broker_url(broker)
    except (ValueError, UserError) as exc:
        text = str(exc)
        return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
    return None


def serial_ports() -> list[tuple[str, str]]:
    """The serial ports present: (device, description). Never ptys or network ports."""
    try:
        from serial.tools.list_ports import comports

        return sorted((p.device, p.description or "") for p in comports())
    except Exception:  # a broken port enumeration must not stop a session from starting
        return []


def _editable(combo: QComboBox) -> QLineEdit:
    """Make ``combo`` editable; returns its line edit, for the placeholder and the typed text."""
    line = QLineEdit(combo)
    combo.setEditable(True)
    combo.setLineEdit(line)
    return line


def _error_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)  # full width
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class DeviceRow(QWidget):
    """One device: protocol, port (or scenario), remove, and a line for its error."""

    remove_requested = Signal(QWidget)

    def __init__(
        self,
        ports: Sequence[tuple[str, str]],
        parent: QWidget | None = None,
        protocol: str | None = None,
        port: str = "",
    ) -> None:
        super().__init__(parent)
        self._ports = list(ports)
        self.protocol = QComboBox(self)
        self.protocol.addItems([*protocol_names(), SIM])
        self.protocol.setPlaceholderText("choose…")
        self.protocol.setCurrentIndex(-1)  # no vendor's protocol (nor the simulator) by default
        self.protocol.setToolTip("The device's wire protocol; sim: the built-in simulator")
        self.port = QComboBox(self)
        self.port_line = _editable(self.port)
        self.port.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.port.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.port.setMinimumContentsLength(28)
        self.remove = QPushButton("Remove", self)
        self.remove.setAutoDefault(False)
        self.remove.setToolTip("Take this device out of the session")
        self.error = _error_label(self)

        line = QHBoxLayout()
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.protocol)
        line.addWidget(self.port, 1)
        line.addWidget(self.remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(line)
        layout.addWidget(self.error)

        if protocol is not None and self.protocol.findText(protocol) >= 0:
            self.protocol.setCurrentText(protocol)
        self._fill_ports()
        self.port.setEditText(port)
        if not port:
            self._default_scenario()
        self.protocol.currentTextChanged.connect(self._protocol_changed)
        self.port.editTextChanged.connect(lambda _text: self.set_error(None))
        self._was_sim = self.is_sim
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self))

    @property
    def is_sim(self) -> bool:
        return self.protocol.currentText() == SIM

    @property
    def has_protocol(self) -> bool:
        return self.protocol.currentIndex() >= 0

    def spec_text(self) -> str:
        """This row as the command line names it: ``PROTOCOL@PORT`` or ``sim:SCENARIO``."""
        target = self.port.currentText().strip()
        if self.is_sim:
            return f"{SIM}:{target}"
        return f"{self.protocol.currentText()}@{target}"

    def set_ports(self, ports: Sequence[tuple[str, str]]) -> None:
        self._ports = list(ports)
        if not self.is_sim:
            self._fill_ports()

    def set_error(self, text: str | None) -> None:
        self.error.setText(text or "")
        self.error.setVisible(bool(text))
        self.port.setToolTip(text or self._port_tooltip())

    def _port_tooltip(self) -> str:
        if self.is_sim:
            return "A simulator scenario, or a scenario .toml file"
        return f"Pick a port or type one: {PORT_HINT}"

    def _fill_ports(self) -> None:
        text = self.port.currentText()
        self.port.blockSignals(True)
        self.port.clear()
        if self.is_sim:
            self.port.addItems(scenario_names())
            self.port_line.setPlaceholderText("scenario name or .toml file")
        else:
            for device, description in self._ports:
                self.port.addItem(device)
                self.port.setItemData(
                    self.port.count() - 1, description, Qt.ItemDataRole.ToolTipRole
                )
            self.port_line.setPlaceholderText(PORT_HINT)
        self.port.setEditText(text)
        self.port.blockSignals(False)
        self.port.setToolTip(self._port_tooltip())

    def _protocol_changed(self, _text: str) -> None:
        if self.is_sim != self._was_sim:  # a port is no scenario, nor the other way round
            self.port.setEditText("")
        self._was_sim = self.is_sim
        self._fill_ports()
        self._default_scenario()
        self.set_error(None)

    def _default_scenario(self) -> None:
        if self.is_sim and self.port.count() and not self.port.currentText().strip():
            self.port.setCurrentIndex(max(0, self.port.findText("typical")))


class StartDialog(QDialog):
    """Asks for the session's header, devices and alarm profile.

    ``check_device(spec_text)`` (optional) is called for each device on OK, e.g. to open and
    close its port; it returns a sentence saying what is wrong, or None. Any problem keeps the
    dialog open with the sentence in red under that device. ``list_ports`` replaces the port
    enumeration (tests, or a platform-specific list).
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        check_device: Callable[[str], str | None] | None = None,
        list_ports: Callable[[], list[tuple[str, str]]] = serial_ports,
        defaults: SessionSetup | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Start a session")
        self.settings = settings or QSettings(SETTINGS_ORGANIZATION, SETTINGS_APPLICATION)
        self.setModal(True)
        self._check_device = check_device
        self._list_ports = list_ports
        self._ports = list_ports()
        self.rows: list[DeviceRow] = []

        # Who and what.
        self.patient = QLineEdit(self)
        self.patient.setPlaceholderText("the patient identifier as the clinic uses it")
        self.patient_error = _error_label(self)
        self.clinician = QLineEdit(self)
        self.operator = QLineEdit(self)
        self.operator.setPlaceholderText("who runs the monitor (recorded with acks and pauses)")
        self.drug = QComboBox(self)
        for drug in Drug:
            self.drug.addItem(drug.value, drug.value)
        self.route = QComboBox(self)
        for route in Route:
            self.route.addItem(ROUTE_LABELS.get(route, route.value), route.value)
        for combo in (self.drug, self.route):
            combo.setPlaceholderText("choose…")
            combo.setCurrentIndex(-1)
        self.drug_error = _error_label(self)
        self.route_error = _error_label(self)
        self.dose = QDoubleSpinBox(self)
        self.dose.setRange(0.0, 10000.0)
        self.dose.setDecimals(2)
        self.dose.setSingleStep(1.0)
        self.dose.setSpecialValueText("enter…")  # 0: not entered
        self.dose.setMinimumWidth(120)
        self.dose_unit = QComboBox(self)
        _editable(self.dose_unit).setPlaceholderText("unit…")
        self.dose_unit.addItems(DOSE_UNITS)
        self.dose_unit.setCurrentIndex(-1)
        self.dose_error = _error_label(self)
        dose_line = QHBoxLayout()
        dose_line.addWidget(self.dose)
        dose_line.addWidget(self.dose_unit)
        dose_line.addStretch(1)
        # Optional: the course shows mg/kg where a weight was given; 0 is "not given".
        self.weight = QDoubleSpinBox(self)
        self.weight.setRange(0.0, 400.0)
        self.weight.setDecimals(1)
        self.weight.setSuffix(" kg")
        self.weight.setSpecialValueText("optional")
        self.weight.setMinimumWidth(120)
        self.indication = QLineEdit(self)
        self.indication.setPlaceholderText("optional: the reason for treatment")

        self.profile = QComboBox(self)
        self.profile.setEditable(True)
        self.profile.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.profile.addItems(profile_names())
        self.profile.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.profile_browse = QPushButton("&File…", self)
        self.profile_browse.setAutoDefault(False)
        self.profile_browse.setToolTip("Use an alarm profile file (.toml)")
        self.profile_browse.clicked.connect(self._browse_profile)
        self.profile_error = _error_label(self)
        profile_line = QHBoxLayout()
        profile_line.addWidget(self.profile, 1)
        profile_line.addWidget(self.profile_browse)

        # The clinic station (optional): kept between runs.
        self.room = QLineEdit(str(self.settings.value(ROOM_KEY, "") or ""), self)
        self.room.setPlaceholderText("optional: this room's name at the station, e.g. room-3")
        self.broker = QLineEdit(str(self.settings.value(BROKER_KEY, "") or ""), self)
        self.broker.setPlaceholderText(f"optional: the clinic's broker, {BROKER_HINT}")
        self.station_error = _error_label(self)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow(self._buddy("&Patient identifier *", self.patient), self.patient)
        form.addRow("", self.patient_error)
        form.addRow(self._buddy("C&linician", self.clinician), self.clinician)
        form.addRow(self._buddy("&Operator", self.operator), self.operator)
        form.addRow(self._buddy("&Drug *", self.drug), self.drug)
        form.addRow("", self.drug_error)
        form.addRow(self._buddy("&Route *", self.route), self.route)
        form.addRow("", self.route_error)
        form.addRow(self._buddy("Do&se *", self.dose), dose_line)
        form.addRow("", self.dose_error)
        form.addRow(self._buddy("&Weight", self.weight), self.weight)
        form.addRow(self._buddy("&Indication", self.indication), self.indication)
        form.addRow(self._buddy("Alarm pro&file", self.profile), profile_line)
        form.addRow("", self.profile_error)

        # Devices.
        self.devices_box = QGroupBox("Devices", self)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(6)
        self.devices_error = _error_label(self)
        self.add_button = QPushButton("&Add device", self)
        self.add_button.setAutoDefault(False)
        self.add_button.clicked.connect(lambda: self.add_device(focus=True))
        self.refresh_button = QPushButton("Refres&h ports", self)
        self.refresh_button.setAutoDefault(False)
        self.refresh_button.setToolTip("Look again for serial ports (after plugging a cable in)")
        self.refresh_button.clicked.connect(self.refresh_ports)
        buttons_line = QHBoxLayout()
        buttons_line.addWidget(self.add_button)
        buttons_line.addWidget(self.refresh_button)
        buttons_line.addStretch(1)
        hint = QLabel(
            "Not every port is listed: type a path (/dev/pts/3) or a URL (socket://host:7000).",
            self,
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #8a939d;")
        box_layout = QVBoxLayout(self.devices_box)
        box_layout.addLayout(self.rows_layout)
        box_layout.addWidget(self.devices_error)
        box_layout.addLayout(buttons_line)
        box_layout.addWidget(hint)

        # Set once per room: after the devices, last in the tab order.
        self.station_box = QGroupBox("Clinic station (optional)", self)
        station_form = QFormLayout(self.station_box)
        station_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        station_form.addRow(self._buddy("Roo&m", self.room), self.room)
        station_form.addRow(self._buddy("&Broker URL", self.broker), self.broker)
        station_form.addRow("", self.station_error)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Start session")
        self.ok_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        self._layout = layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.devices_box)
        layout.addWidget(self.station_box)
        layout.addWidget(self.buttons)
        self.resize(720, self.sizeHint().height())

        if defaults is not None:
            self._apply_defaults(defaults)
        if not self.rows:
            self.add_device()
        self._fix_tab_order()
        self._clear_when_fixed()
        self.patient.setFocus()

    # --- devices --------------------------------------------------------------------------

    def add_device(self, protocol: str | None = None, port: str = "", focus: bool = False):
        """Add a device row; returns it."""
        row = DeviceRow(self._ports, self.devices_box, protocol, port)
        row.remove_requested.connect(self._remove_row)
        self.rows.append(row)
        self.rows_layout.addWidget(row)
        row.show()
        self.devices_error.hide()
        self._fix_tab_order()
        if focus:
            row.protocol.setFocus()
        return row

    def refresh_ports(self) -> None:
        self._ports = self._list_ports()
        for row in self.rows:
            row.set_ports(self._ports)

    def _remove_row(self, row: QWidget) -> None:
        if row not in self.rows:
            return
        index = self.rows.index(row)
        self.rows.remove(row)
        self.rows_layout.removeWidget(row)
        row.hide()
        row.deleteLater()
        self._fix_tab_order()
        if self.rows:
            self.rows[min(index, len(self.rows) - 1)].port.setFocus()
        else:
            self.add_button.setFocus()

    # --- the result -----------------------------------------------------------------------

    def setup(self) -> SessionSetup:
        """What the nurse entered (after OK)."""
        dose = self.dose.value()
        drug, route = self.drug.currentData(), self.route.currentData()
        return SessionSetup(
            patient=self.patient.text().strip(),
            clinician=self.clinician.text().strip(),
            operator=self.operator.text().strip(),
            drug=Drug(drug) if drug else None,
            route=Route(route) if route else None,
            dose=dose if dose > 0 else None,
            dose_unit=self.dose_unit.currentText().strip(),
            weight_kg=self.weight.value() or None,
            indication=self.indication.text().strip(),
            devices=tuple(row.spec_text() for row in self.rows),
            profile=self.profile.currentText().strip(),
            room=self.room.text().strip(),
            broker=self.broker.text().strip(),
        )

    def accept(self) -> None:
        if self.validate():
            self.settings.setValue(ROOM_KEY, self.room.text().strip())
            self.settings.setValue(BROKER_KEY, self.broker.text().strip())
            self.settings.sync()
            super().accept()

    def validate(self) -> bool:
        """Check every field and device; show each problem where it is. True if all is well."""
        first_bad: QWidget | None = None

        def bad(widget: QWidget) -> None:
            nonlocal first_bad
            if first_bad is None:
                first_bad = widget

        for label in self._errors():
            self._show(label, None)
        for row in self.rows:
            row.set_error(None)

        if not self.patient.text().strip():
            self._show(self.patient_error, "Enter the patient identifier.")
            bad(self.patient)
        if self.drug.currentIndex() < 0:
            self._show(self.drug_error, "Choose the drug.")
            bad(self.drug)
        if self.route.currentIndex() < 0:
            self._show(self.route_error, "Choose the route.")
            bad(self.route)
        if self.dose.value() <= 0:
            self._show(self.dose_error, "Enter the dose.")
            bad(self.dose)
        elif not self.dose_unit.currentText().strip():
            self._show(self.dose_error, "Choose the dose unit.")
            bad(self.dose_unit)

        profile = self.profile.currentText().strip()
        if not profile:
            self._show(self.profile_error, "Choose an alarm profile.")
            bad(self.profile)
        else:
            try:
                load_profile(profile)
            except UserError as exc:
                self._show(self.profile_error, str(exc))
                bad(self.profile)

        station = station_problem(self.room.text().strip(), self.broker.text().strip())
        if station:
            self._show(self.station_error, station)
            bad(self.broker if self.room.text().strip() else self.room)

        if not self.rows:
            self._show(self.devices_error, "Add at least one device.")
            bad(self.add_button)
        seen: dict[str, int] = {}
        for number, row in enumerate(self.rows, start=1):
            target = row.port.currentText().strip()
            if not row.has_protocol:
                row.set_error("Choose the device's protocol (sim for the simulator).")
                bad(row.protocol)
                continue
            if not target:
                row.set_error(
                    "Choose a simulator scenario."
                    if row.is_sim
                    else f"Choose or type the port ({PORT_HINT})."
                )
                bad(row.port)
                continue
            try:
                DeviceSpec.parse(row.spec_text())
            except UserError as exc:
                row.set_error(str(exc))
                bad(row.port)
                continue
            key = row.spec_text() if row.is_sim else target
            if not row.is_sim and key in seen:
                row.set_error(f"Device {seen[key]} already uses port '{target}'.")
                bad(row.port)
                continue
            seen[key] = number

        if first_bad is None and self._check_device is not None:
            QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
            try:
                for row in self.rows:
                    try:
                        problem = self._check_device(row.spec_text())
                    except Exception as exc:  # a checker's bug must not close the dialog
                        problem = f"this device could not be checked: {exc}"
                    if problem:
                        row.set_error(problem)
                        bad(row.port)
            finally:
                QGuiApplication.restoreOverrideCursor()

        if first_bad is not None:
            self._fit_height()
            first_bad.setFocus()
            return False
        return True

    # --- internals ------------------------------------------------------------------------

    def _buddy(self, text: str, widget: QWidget) -> QLabel:
        label = QLabel(text, self)
        label.setBuddy(widget)
        return label

    def _errors(self) -> tuple[QLabel, ...]:
        return (
            self.patient_error,
            self.drug_error,
            self.route_error,
            self.dose_error,
            self.profile_error,
            self.station_error,
            self.devices_error,
        )

    @staticmethod
    def _show(label: QLabel, text: str | None) -> None:
        label.setText(text or "")
        label.setVisible(bool(text))

    def _clear_when_fixed(self) -> None:
        """A field's error goes as soon as the field holds something (OK checks it again)."""

        def clear(label: QLabel, filled: Callable[[], bool]) -> Callable[..., None]:
            return lambda *_: self._show(label, None) if filled() else None

        self.patient.textChanged.connect(
            clear(self.patient_error, lambda: bool(self.patient.text().strip()))
        )
        self.drug.currentIndexChanged.connect(clear(self.drug_error, lambda: True))
        self.route.currentIndexChanged.connect(clear(self.route_error, lambda: True))
        self.dose.valueChanged.connect(clear(self.dose_error, lambda: self.dose.value() > 0))
        self.dose_unit.editTextChanged.connect(
            clear(self.dose_error, lambda: self.dose.value() > 0)
        )
        self.profile.editTextChanged.connect(clear(self.profile_error, lambda: True))
        for line in (self.room, self.broker):
            line.textChanged.connect(clear(self.station_error, lambda: True))

    def _fit_height(self) -> None:
        """Grow the dialog so every (wrapped) message shows whole, never clipped."""
        layout = self._layout
        layout.activate()
        width = self.width()
        needed = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else -1
        needed = max(needed, layout.totalSizeHint().height())
        if needed > self.height():
            self.resize(width, needed)

    def _browse_profile(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Alarm profile", "", "Alarm profiles (*.toml);;All files (*)"
        )
        if path:
            self.profile.setEditText(path)

    def _apply_defaults(self, setup: SessionSetup) -> None:
        self.patient.setText(setup.patient)
        self.clinician.setText(setup.clinician)
        self.operator.setText(setup.operator)
        for combo, value in ((self.drug, setup.drug), (self.route, setup.route)):
            if value is not None:
                index = combo.findData(value.value)
                if index >= 0:
                    combo.setCurrentIndex(index)
        if setup.dose:
            self.dose.setValue(setup.dose)
        if setup.dose_unit:
            self.dose_unit.setEditText(setup.dose_unit)
        if setup.weight_kg:
            self.weight.setValue(setup.weight_kg)
        self.indication.setText(setup.indication)
        if setup.profile:
            self.profile.setEditText(setup.profile)
        if setup.room or setup.broker:
            self.room.setText(setup.room)
            self.broker.setText(setup.broker)
        for text in setup.devices:
            try:
                spec = DeviceSpec.parse(text)
            except UserError:
                continue
            protocol = spec.text.partition("@")[0] if spec.kind != SIM else SIM
            self.add_device(protocol.split("+")[0], spec.target)

    def _fix_tab_order(self) -> None:
        chain: list[QWidget] = [
            self.patient,
            self.clinician,
            self.operator,
            self.drug,
            self.route,
            self.dose,
            self.dose_unit,
            self.weight,
            self.indication,
            self.profile,
            self.profile_browse,
        ]
        for row in self.rows:
            chain += [row.protocol, row.port, row.remove]
        chain += [
            self.add_button,
            self.refresh_button,
            self.room,
            self.broker,
            *self.buttons.buttons(),
        ]
        for a, b in itertools.pairwise(chain):
            QWidget.setTabOrder(a, b)
