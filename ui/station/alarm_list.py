"""The large view's alarm list: every alarm the station heard from a room, newest first.

One row per alarm (not per message): when it began, its priority in the standard's colour, what
it is, whether it is still active, latched or over (and when it ended), and who acknowledged it
in the room and when: the station shows acknowledging, it does not do it.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from alarms.model import Priority
from kapmonitor.station.model import AlarmEvent, AlarmView
from ui import theme
from ui.alarm_flash import shade_of
from ui.station.text import clock_text

COLUMNS = ("Began", "Priority", "Alarm", "State", "Acknowledged")


def alarm_rows(
    events: list[AlarmEvent], current: tuple[AlarmView, ...]
) -> list[tuple[str, str, str, str, str]]:
    """The table's rows: each alarm's latest known state; ``current`` (the room's set now)
    wins over the events, and the station's own link alarm comes from it."""
    latest: dict[str, AlarmView] = {}
    ended: dict[str, float] = {}
    for event in events:
        latest[event.alarm.id] = event.alarm
        if event.phase == "end":
            ended[event.alarm.id] = event.t
        else:
            ended.pop(event.alarm.id, None)
    for alarm in current:
        latest[alarm.id] = alarm
        ended.pop(alarm.id, None)
    rows = []
    for alarm in sorted(latest.values(), key=lambda a: -(a.started or 0.0)):
        state = f"ended {clock_text(ended[alarm.id])}" if alarm.id in ended else alarm.state
        ack = ""
        if alarm.acknowledged_by:
            ack = f"{alarm.acknowledged_by} at {clock_text(alarm.acknowledged_at)}".strip()
        rows.append((clock_text(alarm.started), alarm.priority, alarm.message, state, ack))
    return rows


class AlarmList(QtWidgets.QTreeWidget):
    """The rows of :func:`alarm_rows`, rebuilt only when they change."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(18)
        self.setFont(font)
        self.setStyleSheet(
            f"QTreeWidget {{ background: {theme.PANEL}; border: 1px solid {theme.BORDER}; }}"
            f"QHeaderView::section {{ background: {theme.PANEL}; color: {theme.TEXT_DIM};"
            f" border: none; border-bottom: 1px solid {theme.BORDER}; padding: 4px; }}"
        )
        header = self.header()
        header.setStretchLastSection(False)
        for column in range(len(COLUMNS)):
            mode = QtWidgets.QHeaderView.ResizeMode.ResizeToContents
            if COLUMNS[column] == "Alarm":
                mode = QtWidgets.QHeaderView.ResizeMode.Stretch
            header.setSectionResizeMode(column, mode)
        self.rows: list[tuple[str, str, str, str, str]] = []

    def show_alarms(self, events: list[AlarmEvent], current: tuple[AlarmView, ...]) -> None:
        rows = alarm_rows(events, current)
        if rows == self.rows:
            return
        self.rows = rows
        self.clear()
        for row in rows:
            item = QtWidgets.QTreeWidgetItem(list(row))
            colour = QtGui.QColor(shade_of(Priority.parse(row[1])).text)
            item.setForeground(1, colour)
            if not row[3].startswith("ended"):
                item.setForeground(2, colour)
            else:
                for column in range(len(COLUMNS)):
                    item.setForeground(column, QtGui.QColor(theme.TEXT_DIM))
            self.addTopLevelItem(item)
