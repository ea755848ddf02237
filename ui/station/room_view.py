"""A room shown large at the station: its trends since the session began, its pleth, its alarms.

Opened by a click on the room's tile; Escape or Back returns to the grid. The trends and the
pleth are the dosing room's own widgets (:class:`ui.trends.TrendPlot`,
:class:`ui.pleth.PlethSweep`) fed from what the station received (:mod:`ui.station.feed`), so a
nurse reads the same picture at the station as at the bedside. A room publishes its pleth only
while a station asks for it: the view asks every :data:`PLETH_ASK_S` seconds while it is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from kapmonitor.core.codes import Code
from kapmonitor.core.model import NibpReading, Numeric, Stamp
from kapmonitor.station.model import LINK_LOST, RoomView, StationModel
from ui import theme
from ui.pleth import PlethSweep
from ui.station import text
from ui.station.alarm_list import AlarmList
from ui.station.feed import NibpLog, RoomFeed
from ui.station.history import RecordHistory, before_live
from ui.trends import TrendPlot

#: A room sends its pleth for 30 s after a request: ask again well before that ends.
PLETH_ASK_S = 20.0
#: The pleth sweeps at this rate while the view shows (the grid alone never runs it).
SWEEP_HZ = 20
#: The trends take new numerics once a second, as on the room's screen.
TRENDS_EVERY_S = 1.0
#: The station's few buttons: big enough to hit without looking twice.
BUTTON_STYLE = (
    f"QPushButton {{ font-size: 22px; padding: 6px 18px; color: {theme.TEXT};"
    f" background: {theme.PANEL}; border: 1px solid {theme.TEXT_DIM}; border-radius: 6px; }}"
)


class RoomLargeView(QtWidgets.QWidget):
    """One room, large. ``ask_pleth(room)`` sends the station's pleth request.

    Signals:
        back_requested(): the nurse wants the grid again.
    """

    back_requested = QtCore.Signal()

    def __init__(
        self,
        model: StationModel,
        ask_pleth: Callable[[str], None],
        nibp: NibpLog,
        parent: QtWidgets.QWidget | None = None,
        *,
        history: RecordHistory | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.nibp = nibp
        self.history = history  #: the clinic database (``station --db``), or None
        self._ask_pleth = ask_pleth
        self.room: str | None = None
        self.feed: RoomFeed | None = None
        self._trends_at = 0.0

        self.back = QtWidgets.QPushButton("◀  Back to all rooms (Esc)")
        self.back.setStyleSheet(BUTTON_STYLE)
        self.back.clicked.connect(self.back_requested)
        self.title = QtWidgets.QLabel()
        self.title.setStyleSheet(theme.label_style(theme.TEXT, 34, bold=True))
        self.title.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.detail = QtWidgets.QLabel()
        self.detail.setStyleSheet(theme.label_style(theme.DOSE, 22))
        self.link = QtWidgets.QLabel()
        self.link.setStyleSheet(theme.label_style(theme.TEXT_DIM, 20))
        #: Why the trends start at the station's start, not the session's (the database
        #: did not answer or lacks the session); empty otherwise.
        self.history_note = QtWidgets.QLabel()
        self.history_note.setStyleSheet(theme.label_style(theme.WARN, 18))
        self.history_note.hide()
        self.numbers = QtWidgets.QLabel()
        self.numbers.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.numbers.setStyleSheet(theme.label_style(theme.TEXT, 30, bold=True))
        self.trends = TrendPlot()
        self.pleth = PlethSweep()
        self.alarms = AlarmList()
        alarms_title = QtWidgets.QLabel("Alarms (acknowledged in the room)")
        alarms_title.setStyleSheet(theme.label_style(theme.TEXT_DIM, 20, bold=True))

        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.back)
        head.addSpacing(20)
        head.addWidget(self.title)
        head.addSpacing(20)
        head.addWidget(self.detail)
        head.addStretch(1)
        head.addWidget(self.link)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.numbers)
        right.addWidget(self.pleth, 2)
        right.addWidget(alarms_title)
        right.addWidget(self.alarms, 3)
        self._body = body = QtWidgets.QHBoxLayout()
        body.addWidget(self.trends, 3)
        body.addLayout(right, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(head)
        layout.addWidget(self.history_note)
        layout.addLayout(body, 1)

        self.sweep = QtCore.QTimer(self)
        self.sweep.setInterval(int(1000 / SWEEP_HZ))
        self.sweep.timeout.connect(self._sweep)
        self.asker = QtCore.QTimer(self)
        self.asker.setInterval(int(PLETH_ASK_S * 1000))
        self.asker.timeout.connect(self._ask)

    # --- opened and closed by the window ----------------------------------------------------

    def open_room(self, room: str) -> None:
        """Show ``room``: a fresh feed (everything received since its session began, after
        what the clinic database recorded before it; loaded here, in the Qt thread, once per
        opening: see :mod:`ui.station.history`)."""
        self.room = room
        self.feed = RoomFeed(room, self.nibp)
        note = self._fill_history(room, self.feed)
        self.history_note.setText(note)
        self.history_note.setVisible(bool(note))
        fresh = TrendPlot()  # nothing of the previous room's curves, markers or axes stays
        self._body.replaceWidget(self.trends, fresh)
        self.trends.hide()  # out of the layout, it would be drawn in a corner until deleted
        self.trends.deleteLater()
        self.trends = fresh
        self._trends_at = 0.0
        self._ask()
        self.asker.start()
        self.sweep.start()
        self.refresh()

    def _fill_history(self, room: str, feed: RoomFeed) -> str:
        """Put the record's trends from before the station's first received value into the
        fresh feed, ahead of the live data; the sentence to show when it could not."""
        view = self.model.room(room)
        if self.history is None or view is None or view.record is None:
            return ""
        record = self.history.record(view.record)
        if isinstance(record, str):
            return record
        firsts = [points[0][0] for points in self.model.trend(room).values() if points]
        readings = self.nibp.readings(room)
        history = before_live(
            record,
            room,
            min(firsts, default=None),
            readings[0].t if readings else None,
            [(r.t, r.systolic, r.diastolic) for r in readings],
        )
        items: list[Numeric | NibpReading] = [*history.numerics, *history.nibp]
        items.sort(key=lambda i: i.stamp.wall)
        feed.buffers.ingest(items)
        return ""

    def close_room(self) -> None:
        self.asker.stop()
        self.sweep.stop()
        self.room = None
        self.feed = None

    # --- the window's tick (model changed) and the sweep ---------------------------------------

    def refresh(self) -> None:
        """Take what the model holds now for the room; the trends at most once a second."""
        if self.room is None or self.feed is None:
            return
        view = self.model.room(self.room)
        if view is not None:
            self._header(view)
            self.alarms.show_alarms(self.model.alarm_events(self.room), view.alarms)
        now = time.monotonic()
        if now - self._trends_at >= TRENDS_EVERY_S:
            self._trends_at = now
            self.feed.update(self.model)
            self.trends.refresh(self.feed.buffers, time.time())

    def _header(self, view: RoomView) -> None:
        label = f"  <span style='color:{theme.TEXT_DIM}; font-weight:normal'>{view.label}</span>"
        self.title.setText(view.room + (label if view.label else ""))
        drug = f"{view.drug} · " if view.drug else ""
        self.detail.setText(drug + text.dose_text(view))
        lost = view.state == LINK_LOST
        self.link.setText(text.link_text(view))
        self.link.setStyleSheet(theme.label_style(theme.WARN if lost else theme.TEXT_DIM, 20,
                                                  bold=lost))  # fmt: skip
        spo2 = text.value_text(text.numeric(view, Code.SPO2))
        pulse = text.value_text(text.numeric(view, Code.PULSE_RATE, Code.HEART_RATE))
        parts = [
            f"<span style='color:{theme.SPO2}'>SpO2 {spo2}</span>",
            f"<span style='color:{theme.PULSE}'>Pulse {pulse}</span>",
            f"<span style='color:{theme.NIBP}'>NIBP {text.nibp_text(view.nibp)}</span>",
        ]
        breathing = text.breathing_text(view)
        if breathing:
            parts.append(breathing)
        scores = text.scores_text(view)
        if scores:
            parts.append(f"<span style='color:{theme.TEXT_DIM}'>{scores}</span>")
        self.numbers.setText("&nbsp;&nbsp;&nbsp;".join(parts))

    def _sweep(self) -> None:
        if self.feed is None:
            return
        self.feed.update_pleth(self.model)
        wall = time.time()
        self.pleth.refresh(self.feed.buffers.first_pleth(), Stamp(wall, wall))

    def _ask(self) -> None:
        if self.room is not None:
            self._ask_pleth(self.room)
