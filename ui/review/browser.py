"""The session browser: every recorded session, newest first, filtered as the clinician types.

The list is read once (headers only, no measurements) and filtered in memory: 10,000 sessions
filter in a few milliseconds, faster than a query per keystroke. Interrupted sessions (the
recorder stopped without ending them) are listed like the others, in amber, so nothing recorded
is hidden. Enter or a double-click opens a session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from kapmonitor.core.identifiers import matches
from kapmonitor.record.session import SessionInfo, SessionStatus
from kapmonitor.review.model import ReviewModel
from ui import theme

COLUMNS = ("Session", "Started", "Patient", "Clinician", "Drug", "Minutes", "Status")
#: Sessions that ended without the discharge check: listed in the warning colour.
ENDED_EARLY = (SessionStatus.INTERRUPTED, SessionStatus.STOPPED_BY_SYSTEM)


@dataclass(frozen=True)
class Filter:
    """What the clinician typed: text matches anywhere, case-insensitive; dates are local days."""

    patient: str = ""
    clinician: str = ""
    status: SessionStatus | None = None
    since: float | None = None  #: wall clock, inclusive
    until: float | None = None  #: wall clock, exclusive

    def accepts(self, s: SessionInfo) -> bool:
        return (
            matches(self.patient, s.patient)
            and matches(self.clinician, s.clinician)
            and (self.status is None or s.status == self.status)
            and (self.since is None or s.started >= self.since)
            and (self.until is None or s.started < self.until)
        )


def _minutes(s: SessionInfo) -> str:
    return "-" if s.ended is None else f"{(s.ended - s.started) / 60:.0f}"


class SessionModel(QtCore.QAbstractTableModel):
    """Sessions as table rows; ``set_filter`` narrows them without reading the database again."""

    def __init__(self, sessions: list[SessionInfo], parent=None) -> None:
        super().__init__(parent)
        self.all = sessions
        self.shown = sessions

    def set_filter(self, f: Filter) -> None:
        self.beginResetModel()
        self.shown = [s for s in self.all if f.accepts(s)]
        self.endResetModel()

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.shown)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if (
            orientation == QtCore.Qt.Orientation.Horizontal
            and role == QtCore.Qt.ItemDataRole.DisplayRole
        ):
            return COLUMNS[section]
        return None

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        s = self.shown[index.row()]
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            col = index.column()
            if col == 0:
                return str(s.id)
            if col == 1:
                return time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started))
            if col == 2:
                return s.patient
            if col == 3:
                return s.clinician
            if col == 4:
                drug = s.drug.value if s.drug else ""
                return f"{drug} {s.dose:g} {s.dose_unit}".strip() if s.dose is not None else drug
            if col == 5:
                return _minutes(s)
            return s.status.text
        if role == QtCore.Qt.ItemDataRole.ForegroundRole and s.status in ENDED_EARLY:
            return QtGui.QBrush(QtGui.QColor(theme.WARN))
        if role == QtCore.Qt.ItemDataRole.UserRole:
            return s.id
        return None


class SessionBrowser(QtWidgets.QWidget):
    """Find a session; ``open_session(id)`` when one is chosen."""

    open_session = QtCore.Signal(int)
    open_course = QtCore.Signal(str)  #: the selected session's patient: their treatment course

    def __init__(self, reviews: ReviewModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"kapmonitor review — sessions in {reviews.url}")
        layout = QtWidgets.QVBoxLayout(self)
        filters = QtWidgets.QHBoxLayout()
        self.patient = QtWidgets.QLineEdit(placeholderText="Patient")
        self.clinician = QtWidgets.QLineEdit(placeholderText="Clinician")
        self.status = QtWidgets.QComboBox()
        self.status.addItem("Any status", None)
        for status in SessionStatus:
            self.status.addItem(status.text.capitalize(), status)
        self.use_dates = QtWidgets.QCheckBox("From")
        today = QtCore.QDate.currentDate()
        self.since = QtWidgets.QDateEdit(today.addMonths(-1))
        self.until = QtWidgets.QDateEdit(today)
        for d in (self.since, self.until):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
        for w in (self.patient, self.clinician, self.status, self.use_dates, self.since):
            filters.addWidget(w)
        filters.addWidget(QtWidgets.QLabel("to"))
        filters.addWidget(self.until)
        self.count = QtWidgets.QLabel()
        self.count.setStyleSheet(theme.label_style(theme.TEXT_DIM, 15))
        filters.addStretch(1)
        filters.addWidget(self.count)
        self.course_button = QtWidgets.QPushButton("Course")
        self.course_button.setToolTip("The selected patient's sessions side by side")
        self.course_button.clicked.connect(self.course_current)
        filters.addWidget(self.course_button)
        layout.addLayout(filters)

        self.model = SessionModel(reviews.sessions(), self)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        # Widths from the font, not from measuring 10,000 rows (resizeColumnsToContents would).
        metrics = self.table.fontMetrics()
        samples = ("Session 0", "2026-01-01 00:00", "KAP-PT-000000", "Dr Clarissa Whitfield",
                   "esketamine 84 mg", "Minutes")  # fmt: skip
        for col, sample in enumerate(samples):
            self.table.setColumnWidth(col, metrics.horizontalAdvance(sample) + 24)
        self.table.doubleClicked.connect(self._open_index)
        layout.addWidget(self.table, 1)
        self.table.installEventFilter(self)

        self.patient.textChanged.connect(self.apply_filter)
        self.clinician.textChanged.connect(self.apply_filter)
        self.status.currentIndexChanged.connect(self.apply_filter)
        self.use_dates.toggled.connect(self.apply_filter)
        for d in (self.since, self.until):
            d.setEnabled(False)
            self.use_dates.toggled.connect(d.setEnabled)
        self.since.dateChanged.connect(self.apply_filter)
        self.until.dateChanged.connect(self.apply_filter)
        self.apply_filter()

    def eventFilter(self, watched, event) -> bool:
        if (
            watched is self.table
            and event.type() == QtCore.QEvent.Type.KeyPress
            and event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)
        ):
            self.open_current()
            return True
        return super().eventFilter(watched, event)

    def current_filter(self) -> Filter:
        since = until = None
        if self.use_dates.isChecked():
            since = QtCore.QDateTime(self.since.date(), QtCore.QTime(0, 0)).toSecsSinceEpoch()
            end = self.until.date().addDays(1)
            until = QtCore.QDateTime(end, QtCore.QTime(0, 0)).toSecsSinceEpoch()
        return Filter(
            self.patient.text().strip(),
            self.clinician.text().strip(),
            self.status.currentData(),
            since,
            until,
        )

    def apply_filter(self) -> None:
        self.model.set_filter(self.current_filter())
        shown, total = len(self.model.shown), len(self.model.all)
        self.count.setText(f"{shown:,} of {total:,} sessions")
        if shown:
            self.table.selectRow(0)

    def open_current(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            self._open_index(index)

    def course_current(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            self.open_course.emit(self.model.shown[index.row()].patient)

    def _open_index(self, index: QtCore.QModelIndex) -> None:
        self.open_session.emit(self.model.shown[index.row()].id)
