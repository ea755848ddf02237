"""The course window: a patient's sessions side by side, and the charts across the course.

A view of :class:`~kapmonitor.review.course.Course` (no store here): the table has one row
per session, oldest first, with the same cells as the course report; interrupted sessions are
shaded and marked, an unknown value is an empty cell. Three charts show whether the response
grows with the dose: dose against peak rise (systolic and diastolic), time to recover by
session, and each session's systolic BP on one axis of minutes from the dose (newest darkest).
The notes above the table inform the next dosing decision; they never prescribe one.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from kapmonitor.review.course import COLUMNS, Course, CourseSession, cells
from ui import theme

SYSTOLIC = "#4f9fe8"
DIASTOLIC = "#e8706a"


class CourseWindow(QtWidgets.QWidget):
    """One patient's course."""

    def __init__(self, course: Course, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.course = course
        n = len(course.sessions)
        self.setWindowTitle(f"kapmonitor course — {course.patient} ({n} sessions)")
        layout = QtWidgets.QVBoxLayout(self)
        title = QtWidgets.QLabel(
            f"Treatment course of {course.patient}: {n} session{'s' if n != 1 else ''}, "
            "oldest first"
        )
        title.setStyleSheet(theme.label_style(theme.TEXT, 18))
        layout.addWidget(title)
        self.notes = QtWidgets.QLabel("\n".join(course.notes))
        self.notes.setWordWrap(True)
        self.notes.setVisible(bool(course.notes))
        self.notes.setStyleSheet("background: #5a4500; color: white; padding: 6px;")
        layout.addWidget(self.notes)

        self.table = QtWidgets.QTableWidget(n, len(COLUMNS))
        # Titles on two lines: the columns are as wide as their numbers, not their names.
        self.table.setHorizontalHeaderLabels([c.replace(" ", "\n", 1) for c, _ in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        shade = QtGui.QBrush(QtGui.QColor("#4a3a1a"))
        for row, s in enumerate(course.sessions):
            for col, text in enumerate(cells(s)):
                item = QtWidgets.QTableWidgetItem(text)
                if s.interrupted:
                    item.setBackground(shade)
                    item.setToolTip("interrupted: the recording ended without closing the session")
                self.table.setItem(row, col, item)
        # Smaller than the theme's text: every column in view on a clinic's screen.
        self.table.setStyleSheet("QTableWidget, QHeaderView::section { font-size: 12px; }")
        self.table.resizeColumnsToContents()  # at most a few dozen rows
        layout.addWidget(self.table, 2)

        charts = QtWidgets.QHBoxLayout()
        self.rise_plot = _plot("Dose against peak rise", f"dose ({_unit(course)})", "mmHg")
        self.recovery_plot = _plot("Time to recover", "session (oldest = 1)", "min")
        self.overlay_plot = _plot("Systolic BP from the dose", "minutes from dose", "mmHg")
        for p in (self.rise_plot, self.recovery_plot, self.overlay_plot):
            charts.addWidget(p)
        layout.addLayout(charts, 3)
        self._draw(course.sessions)

    def _draw(self, sessions: tuple[CourseSession, ...]) -> None:
        self.rise_plot.addLegend(offset=(5, 5))
        for key, colour, name in (("rise_systolic", SYSTOLIC, "systolic"),
                                  ("rise_diastolic", DIASTOLIC, "diastolic")):  # fmt: skip
            xs, ys = _pairs(sessions, key)
            self.rise_plot.plot(xs, ys, pen=None, symbol="o", symbolBrush=colour, name=name)
        recovery = [(i + 1.0, s.recovery_minutes) for i, s in enumerate(sessions)]
        known = [(x, y) for x, y in recovery if y is not None]
        self.recovery_plot.plot(
            [x for x, _ in known], [y for _, y in known], pen=SYSTOLIC, symbol="o",
            symbolBrush=SYSTOLIC,
        )  # fmt: skip
        n = len(sessions)
        for i, s in enumerate(sessions):
            if not s.bp_course:
                continue
            shade = 90 + int(165 * (i + 1) / n)  # newest brightest on the dark theme
            tone = QtGui.QColor(shade // 3, shade // 2 + 40, shade)
            pen = pg.mkPen(tone, width=2 if i == n - 1 else 1)
            xs, ys = [p[0] for p in s.bp_course], [p[1] for p in s.bp_course]
            self.overlay_plot.plot(xs, ys, pen=pen, name=f"session {s.session_id}")


def _plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(title=title)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMouseEnabled(x=True, y=False)
    return plot


def _pairs(sessions: tuple[CourseSession, ...], key: str) -> tuple[list[float], list[float]]:
    """(dose, value) of the sessions that have both: one without a dose is not placed at 0."""
    pairs = [(s.dose, getattr(s, key)) for s in sessions]
    known = [(x, y) for x, y in pairs if x is not None and y is not None]
    return [x for x, _ in known], [y for _, y in known]


def _unit(course: Course) -> str:
    units = {s.dose_unit for s in course.sessions if s.dose is not None and s.dose_unit}
    return " or ".join(sorted(units)) or "unit not given"
