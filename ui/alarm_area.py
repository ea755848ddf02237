"""The alarm area: a banner that is seen from across the room, the alarm list, ack and pause.

The engine decides (alarms/); this widget only draws what :meth:`AlarmService.snapshot` gives
it and turns the nurse's keys and clicks into signals. Colours and flash rates follow
``alarms.model.VISUAL`` (IEC 60601-1-8 table 2, see :mod:`ui.alarm_flash`); the words come from
:mod:`ui.alarm_text`. All flashing is driven by one timer that wakes
at the next on/off edge of any visible priority, with the phase taken from ``time.monotonic()``,
so every indicator of one priority flashes in step and a slow screen tick cannot change the rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from alarms.model import Alarm, AlarmState, AudioDue, Priority
from kapmonitor.core.model import Stamp
from kapmonitor.core.staleness import age
from ui.alarm_flash import next_edge, priority_lit, shade_of
from ui.alarm_text import (
    MARKERS,
    delay_text,
    format_age,
    format_countdown,
    format_value,
    state_text,
    tooltip,
)
from ui.elided_label import BannerLabel

__all__ = ["AlarmArea"]

_DARK = "#15181c"  #: the unlit signal's background
_PANEL = "#101316"
_TEXT = "#d8dde3"
_DIM = "#8a939d"
_AMBER = "#ffb300"


class _RowDelegate(QStyledItemDelegate):
    """Paints a selected row with an outline instead of the highlight colour.

    The default highlight would cover the flashing marker and the priority colours of the text.
    """

    PADDING = 14

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width() + 2 * self.PADDING, size.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        opt = QStyleOptionViewItem(option)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        opt.state &= ~QStyle.StateFlag.State_Selected
        opt.state &= ~QStyle.StateFlag.State_HasFocus
        background = index.data(Qt.ItemDataRole.BackgroundRole)
        if background is not None:
            painter.fillRect(option.rect, background)
        opt.rect = option.rect.adjusted(self.PADDING, 0, -self.PADDING, 0)
        super().paint(painter, opt, index)
        if selected:
            painter.save()
            painter.fillRect(option.rect, QColor(255, 255, 255, 28))
            painter.setPen(QPen(QColor("#9ecbff"), 2))
            r = option.rect.adjusted(0, 1, 0, -1)
            painter.drawLine(r.topLeft(), r.topRight())
            painter.drawLine(r.bottomLeft(), r.bottomRight())
            painter.restore()


class _Table(QTableWidget):
    """The alarm list; Enter acknowledges the selected alarm."""

    enter_pressed = Signal()

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.enter_pressed.emit()
            return
        super().keyPressEvent(event)


_COLUMNS = ("", "Alarm", "Value (limit)", "Device", "Since", "State", "Delay")
_MARKER, _MESSAGE, _VALUE, _SOURCE, _SINCE, _STATE, _DELAY = range(len(_COLUMNS))


class AlarmArea(QWidget):
    """The alarm banner, list and controls.

    Feed it on the screen's tick with ``update_alarms(*service.snapshot(), runner.now())``.

    Signals:
        acknowledge_requested(str): acknowledge this alarm id (the selected alarm, else the
            most urgent unacknowledged one). Button, ``ACK_KEY`` or Enter in the list.
        pause_requested(): pause the audio (button or ``PAUSE_KEY``).
    """

    acknowledge_requested = Signal(str)
    pause_requested = Signal()

    ACK_KEY = "F8"
    PAUSE_KEY = "F9"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AlarmArea")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"#AlarmArea {{ background: {_PANEL}; }}")
        self._alarms: list[Alarm] = []
        self._audio = AudioDue(None, 0.0)
        self._banner_priority: Priority | None = None
        self._banner_lit: bool | None = None
        self._marker_lit: list[bool | None] = []
        self._table_key: list | None = None
        self._baseline_text: str | None = None
        self._banner_idle = False

        # The banner: the highest priority, perceivable from 4 m.
        self.banner = QFrame(self)
        self.banner.setObjectName("banner")
        self.banner.setMinimumHeight(72)
        self.banner.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # The marker and the value are never cut: the font steps down, then the message is
        # elided (the whole message is in the list below and in the tooltip).
        self.banner_text = BannerLabel(parent=self.banner)
        self.banner_extra = QLabel(self.banner)
        side = QFont()
        side.setPixelSize(24)
        side.setBold(True)
        self.banner_extra.setFont(side)
        self.banner_extra.setMinimumWidth(
            self.banner_extra.fontMetrics().horizontalAdvance("MEDIUM PRIORITY") + 8
        )
        self.banner_extra.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout(self.banner)
        row.setContentsMargins(20, 6, 20, 6)
        row.addWidget(self.banner_text, 1)
        row.addWidget(self.banner_extra)

        # The list: every alarm, most urgent first.
        self.table = _Table(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setItemDelegate(_RowDelegate(self.table))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(38)
        # Two rows show; more scroll. The banner above always shows the most urgent, and the
        # trends and numerics below need the height more than a long list does.
        self.table.setFixedHeight(26 + 2 * 38)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_MARKER, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(_MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(_MARKER, 72)
        rows_font = QFont()
        rows_font.setPixelSize(20)
        self.table.setFont(rows_font)
        self.table.setStyleSheet(
            f"QTableWidget {{ background: {_PANEL}; color: {_TEXT}; border: none; }}"
            f"QHeaderView::section {{ background: {_DARK}; color: {_DIM}; border: none;"
            " padding: 3px 14px; font-size: 13px; }"
            f"QTableCornerButton::section {{ background: {_DARK}; border: none; }}"
        )
        self.table.enter_pressed.connect(self._request_ack)

        # Controls.
        button_font = QFont()
        button_font.setPixelSize(18)
        button_font.setBold(True)
        button_style = (
            "QPushButton { background: #26303a; color: #e8edf2; border: 1px solid #3b4956;"
            " border-radius: 4px; padding: 8px 18px; }"
            "QPushButton:hover { background: #2f3b47; }"
            "QPushButton:focus { border: 2px solid #9ecbff; }"
            "QPushButton:disabled { color: #5d6670; background: #1b2026; }"
        )
        self.ack_button = QPushButton(f"Acknowledge  [{self.ACK_KEY}]", self)
        self.pause_button = QPushButton(f"Audio pause  [{self.PAUSE_KEY}]", self)
        for button in (self.ack_button, self.pause_button):
            button.setFont(button_font)
            button.setStyleSheet(button_style)
            button.setAutoDefault(False)
        self.ack_button.setToolTip(
            "Acknowledge the selected alarm, or the most urgent one if none is selected: "
            "its sound stops while the condition lasts; the visual signal stays"
        )
        self.pause_button.setToolTip(
            "Pause the alarm sound for the profile's pause time; it always ends by itself"
        )
        self.ack_button.clicked.connect(self._request_ack)
        self.pause_button.clicked.connect(self.pause_requested)

        self.paused_label = QLabel(self)
        self.paused_label.setFont(button_font)
        self.paused_label.setStyleSheet(
            f"color: #000000; background: {_AMBER}; border-radius: 4px; padding: 6px 14px;"
        )
        self.paused_label.hide()

        self.baseline_label = QLabel(self)
        small = QFont()
        small.setPixelSize(16)
        self.baseline_label.setFont(small)
        self.baseline_label.setWordWrap(True)

        controls = QHBoxLayout()
        controls.setSpacing(12)
        controls.addWidget(self.ack_button)
        controls.addWidget(self.pause_button)
        controls.addWidget(self.paused_label)
        controls.addStretch(1)
        controls.addWidget(self.baseline_label, 3)  # beside the buttons: height is precious

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.banner)
        layout.addWidget(self.table, 1)
        layout.addLayout(controls)

        # Window-wide shortcuts: they work wherever the focus is in the main window.
        self.ack_shortcut = QShortcut(QKeySequence(self.ACK_KEY), self)
        self.ack_shortcut.activated.connect(self._request_ack)
        self.pause_shortcut = QShortcut(QKeySequence(self.PAUSE_KEY), self)
        self.pause_shortcut.activated.connect(self.pause_requested)

        #: The one timer behind every flashing signal in this widget.
        self.flash_timer = QTimer(self)
        self.flash_timer.setSingleShot(True)
        self.flash_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.flash_timer.timeout.connect(self.refresh_flash)

        self.update_alarms([], AudioDue(None, 0.0), "", Stamp.now())

    # --- input ----------------------------------------------------------------------------

    def update_alarms(
        self, alarms: list[Alarm], audio: AudioDue, baseline_text: str, now: Stamp
    ) -> None:
        """Show these alarms, the audio state and the baseline line; the session's ``now`` ages
        them (on the monotonic clock: a wall-clock step does not change an alarm's age)."""
        ordered = sorted(alarms, key=lambda a: (-a.priority, a.started.mono, a.id))
        selected = self.selected_alarm_id()
        self._alarms = ordered
        self._audio = audio
        self._fill_table(ordered, now, selected)
        self._fill_banner(ordered)
        self.ack_button.setEnabled(any(not a.acknowledged for a in ordered))
        if audio.paused_for > 0:
            self.paused_label.setText(f"Audio paused {format_countdown(audio.paused_for)}")
            self.paused_label.show()
        else:
            self.paused_label.hide()
        self._fill_baseline(baseline_text)
        self.refresh_flash()

    def set_keys(self, ack_key: str, pause_key: str, *, own_shortcuts: bool = True) -> None:
        """Use these keys and show them on the buttons.

        With ``own_shortcuts=False`` the keys are only shown: the main window's own actions
        handle them. Never register one key twice (here and in a window action): Qt then calls
        it ambiguous and neither fires.
        """
        self.ack_button.setText(f"Acknowledge  [{ack_key}]")
        self.pause_button.setText(f"Audio pause  [{pause_key}]")
        self.ack_shortcut.setKey(QKeySequence(ack_key))
        self.pause_shortcut.setKey(QKeySequence(pause_key))
        self.ack_shortcut.setEnabled(own_shortcuts)
        self.pause_shortcut.setEnabled(own_shortcuts)

    # --- what tests and the main window can read ------------------------------------------

    @staticmethod
    def lit(priority: Priority, t: float) -> bool:
        """Whether the visual signal of ``priority`` is lit at monotonic time ``t``."""
        return priority_lit(priority, t)

    @property
    def alarms(self) -> list[Alarm]:
        """The alarms shown, top row first."""
        return list(self._alarms)

    @property
    def banner_priority(self) -> Priority | None:
        return self._banner_priority

    @property
    def banner_lit(self) -> bool:
        return bool(self._banner_lit)

    def marker_lit(self, row: int) -> bool:
        return bool(self._marker_lit[row])

    def row_colour(self, row: int) -> QColor:
        """The priority colour of a row's message text."""
        return self._cell(row, _MESSAGE).foreground().color()

    def banner_colour(self) -> QColor | None:
        """The priority colour the banner shows (lit or not); None without alarms."""
        p = self._banner_priority
        return None if p is None else QColor(shade_of(p).fill)

    def selected_alarm_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), _MARKER)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def target_alarm_id(self) -> str | None:
        """What acknowledge acts on: the selected alarm if it waits for it, else the top one."""
        selected = self.selected_alarm_id()
        for alarm in self._alarms:
            if alarm.id == selected and not alarm.acknowledged:
                return alarm.id
        return next((a.id for a in self._alarms if not a.acknowledged), None)

    # --- flashing -------------------------------------------------------------------------

    def refresh_flash(self, t: float | None = None) -> None:
        """Apply the lit state at monotonic time ``t`` (now) and wake at the next edge."""
        scheduled = t is None
        if t is None:
            t = time.monotonic()
        p = self._banner_priority
        if p is not None:
            self._set_banner_lit(priority_lit(p, t))
        for row, alarm in enumerate(self._alarms):
            self._set_marker_lit(row, alarm.priority, priority_lit(alarm.priority, t))
        if not scheduled:
            return
        edges = [e for e in (next_edge(p, t) for p in {a.priority for a in self._alarms}) if e]
        if edges:
            self.flash_timer.start(max(5, math.ceil((min(edges) - t) * 1000) + 1))
        else:
            self.flash_timer.stop()

    def _set_banner_lit(self, lit: bool) -> None:
        if lit == self._banner_lit:
            return
        self._banner_lit = lit
        assert self._banner_priority is not None
        shade = shade_of(self._banner_priority)
        background = shade.fill if lit else _DARK
        colour = shade.on_fill if lit else shade.text
        self.banner.setStyleSheet(
            f"#banner {{ background: {background}; border: 4px solid {shade.fill};"
            " border-radius: 6px; }"
            f"QLabel {{ color: {colour}; background: transparent; }}"
        )

    def _set_marker_lit(self, row: int, priority: Priority, lit: bool) -> None:
        if self._marker_lit[row] == lit:
            return
        self._marker_lit[row] = lit
        item = self._cell(row, _MARKER)
        shade = shade_of(priority)
        item.setBackground(QColor(shade.fill if lit else _DARK))
        item.setForeground(QColor(shade.on_fill if lit else shade.text))

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        """A cell of the alarm list (:meth:`_fill_table` fills every cell of every row)."""
        item = self.table.item(row, column)
        if item is None:
            raise LookupError(f"the alarm list has no cell at row {row}, column {column}")
        return item

    # --- drawing --------------------------------------------------------------------------

    def _fill_banner(self, alarms: list[Alarm]) -> None:
        top = alarms[0] if alarms else None
        priority = top.priority if top else None
        if priority != self._banner_priority or top is None:
            self._banner_lit = None  # restyle on the next refresh
        self._banner_priority = priority
        if top is None:
            if self._banner_idle:
                return
            self._banner_idle = True
            self.banner_text.setText("No alarms")
            self.banner_extra.setText("")
            self.banner.setStyleSheet(
                f"#banner {{ background: {_DARK}; border: 4px solid #232930;"
                " border-radius: 6px; }"
                f"QLabel {{ color: #5d6670; background: transparent; }}"
            )
            self.banner.setToolTip("")
            return
        self._banner_idle = False
        value = format_value(top)
        short = format_value(replace(top, limit=None))  # the limit goes first when it is tight
        if top.state is AlarmState.LATCHED:
            value = f"{value}   (ended)" if value else "(ended)"
            short = f"{short}   (ended)" if short else "(ended)"
        self.banner_text.set_parts(MARKERS[top.priority], top.message, value, short)
        extra = f"{top.priority.name} PRIORITY"
        if len(alarms) > 1:
            extra += f"\n+{len(alarms) - 1} more"
        self.banner_extra.setText(extra)
        self.banner.setToolTip(tooltip(top))

    def _fill_table(self, alarms: list[Alarm], now: Stamp, selected: str | None) -> None:
        rows = []
        for alarm in alarms:
            started = time.strftime("%H:%M:%S", time.localtime(alarm.started.wall))
            texts = {
                _MARKER: MARKERS[alarm.priority],
                _MESSAGE: alarm.message,
                _VALUE: format_value(alarm),
                _SOURCE: "" if alarm.source == "session" else alarm.source,
                _SINCE: f"{started}  ({format_age(age(alarm.started, now))})",
                _STATE: state_text(alarm),
                _DELAY: delay_text(alarm),
            }
            rows.append((alarm, texts))
        # Called on every screen tick: touch the table only when what it shows has changed.
        key = [(a.id, a.priority, tuple(texts.values())) for a, texts in rows]
        if key == self._table_key:
            return
        self._table_key = key
        table = self.table
        table.blockSignals(True)
        table.setUpdatesEnabled(False)
        try:
            table.setRowCount(len(rows))
            self._marker_lit = [None] * len(rows)
            reselect = None
            for row, (alarm, texts) in enumerate(rows):
                shade = shade_of(alarm.priority)
                tip = tooltip(alarm)
                cells: dict[int, QTableWidgetItem] = {}
                for column, text in texts.items():
                    item = table.item(row, column)
                    if item is None:
                        item = QTableWidgetItem()
                        table.setItem(row, column, item)
                    cells[column] = item
                    item.setText(text)
                    item.setToolTip(tip)
                    item.setData(Qt.ItemDataRole.UserRole, alarm.id)
                    item.setBackground(QColor(_PANEL))
                    item.setForeground(QColor(_TEXT))
                    font = item.font()
                    font.setBold(column in (_MARKER, _MESSAGE))
                    item.setFont(font)
                cells[_MARKER].setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                cells[_MESSAGE].setForeground(QColor(shade.text))
                if alarm.state is AlarmState.LATCHED and not alarm.acknowledged:
                    cells[_STATE].setForeground(QColor(shade.text))
                elif alarm.acknowledged:
                    cells[_STATE].setForeground(QColor(_DIM))
                cells[_DELAY].setForeground(QColor(_DIM))
                cells[_SOURCE].setForeground(QColor(_DIM))
                if alarm.id == selected:
                    reselect = row
            if reselect is None:
                table.clearSelection()
            else:
                table.selectRow(reselect)
        finally:
            table.setUpdatesEnabled(True)
            table.blockSignals(False)

    def _fill_baseline(self, text: str) -> None:
        if text == self._baseline_text:
            return
        self._baseline_text = text
        inactive = "inactive" in text or text.startswith("no ")
        self.baseline_label.setText(f"Baseline: {text}" if text else "")
        self.baseline_label.setStyleSheet(
            f"color: {_AMBER if inactive else _DIM}; background: transparent;"
        )

    # --- actions --------------------------------------------------------------------------

    def _request_ack(self) -> None:
        alarm_id = self.target_alarm_id()
        if alarm_id is not None:
            self.acknowledge_requested.emit(alarm_id)
