"""One room's tile on the station: readable from across a nurses' room, 8 on a 1080p screen.

From top to bottom: the room and its label with the time since the dose; the alarm banner in the
IEC 60601-1-8 colour of the room's most urgent alarm, flashing as the standard says (red 2 Hz,
yellow 0.6 Hz, cyan steady), or "no alarms"; SpO2 and pulse in digits over 90 px high; the last
NIBP with its age and when the next is due; breathing values where the room has them; each
device's state and the room's link. A room the station cannot hear says "ROOM LINK LOST" in
words on its banner and its last values fade (grey, then "---") as on the room's own screen.
A click opens the room's large view.
"""

from __future__ import annotations

import time

from PySide6 import QtCore, QtWidgets

from alarms.model import Priority
from kapmonitor.core.codes import Code
from kapmonitor.station.model import LINK_LOST, RoomView
from ui import theme
from ui.alarm_flash import shade_of
from ui.station import text
from ui.status_panel import STATE_COLOURS
from ui.tiles import BigValue

#: Digit size of SpO2 and pulse: four tiles side by side on 1920 px still fit "100" and "120".
BIG_PX = 104
NIBP_PX = 42
TITLE_PX = 32
BANNER_PX = 28
LINE_PX = 22
SMALL_PX = 18


def _label(px: int, colour: str = theme.TEXT, *, bold: bool = False) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setStyleSheet(theme.label_style(colour, px, bold=bold))
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
    return label


def _set(label: QtWidgets.QLabel, value: str, style: str | None = None) -> None:
    """Touch the label only when something changed (the window ticks 4 times a second)."""
    if label.text() != value:
        label.setText(value)
    if style is not None and label.styleSheet() != style:
        label.setStyleSheet(style)


class _Numeral(QtWidgets.QWidget):
    """A parameter's name over its big value."""

    def __init__(self, name: str, unit: str, colour: str, widest: str) -> None:
        super().__init__()
        self.colour = colour
        self.name = _label(LINE_PX, colour, bold=True)
        self.name.setText(f"{name} <span style='color:{theme.TEXT_DIM}'>{unit}</span>")
        self.value = BigValue(text.MISSING, colour, BIG_PX, widest)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.name)
        layout.addWidget(self.value, 1)

    def set_value(self, value: float | None, fresh: bool | None) -> None:
        self.value.set_text(text.value_text(value) if fresh is not None else text.MISSING)
        self.value.set_colour(self.colour if fresh else theme.TEXT_STALE)


class RoomTile(QtWidgets.QFrame):
    """A room at a glance; emits :attr:`clicked` with the room's name."""

    clicked = QtCore.Signal(str)

    def __init__(self, room: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.room = room
        self.view: RoomView | None = None
        self.priority: Priority | None = None  #: the banner's priority (None: no alarm)
        self.lit = True
        self.setObjectName("roomTile")
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{room}: click for trends, pleth and the alarm list")
        self.title = _label(TITLE_PX, theme.TEXT, bold=True)
        self.title.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.dose = _label(LINE_PX, theme.DOSE)
        self.dose.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.dose.setSizePolicy(  # its whole text; the title yields
            QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.banner = _label(BANNER_PX, theme.TEXT_DIM, bold=True)
        self.banner.setMinimumHeight(BANNER_PX + 16)
        self.spo2 = _Numeral("SpO2", "%", theme.SPO2, "100")
        self.pulse = _Numeral("Pulse", "/min", theme.PULSE, "188")
        self.nibp_name = _label(LINE_PX, theme.NIBP, bold=True)
        self.nibp_name.setText("NIBP")
        self.nibp_name.setToolTip("the last cuff reading, mmHg: systolic/diastolic (mean)")
        self.nibp_name.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.nibp = _label(NIBP_PX, theme.NIBP, bold=True)
        self.nibp.setStyleSheet(
            theme.label_style(theme.NIBP, NIBP_PX, bold=True, family=theme.NUMBER_FONT)
        )
        self.nibp_detail = _label(SMALL_PX, theme.TEXT_DIM)
        self.nibp_detail.setWordWrap(True)  # the room's schedule sentence, whole
        # two lines always: the values of tiles side by side stay level whatever the sentence
        self.nibp_detail.setMinimumHeight(self.nibp_detail.fontMetrics().lineSpacing() * 2 + 4)
        self.nibp_detail.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.breathing = _label(LINE_PX + 4, theme.TEXT, bold=True)
        self.devices = _label(SMALL_PX, theme.TEXT_DIM)
        self.devices.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.link = _label(SMALL_PX, theme.TEXT_DIM)
        self.link.setWordWrap(True)  # a lost link's reason is said whole
        self.link.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )

        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.dose)
        numbers = QtWidgets.QHBoxLayout()
        numbers.setSpacing(10)
        numbers.addWidget(self.spo2, 1)
        numbers.addWidget(self.pulse, 1)
        nibp = QtWidgets.QHBoxLayout()
        nibp.addWidget(self.nibp_name)
        nibp.addWidget(self.nibp, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.banner)
        layout.addLayout(numbers, 1)
        layout.addLayout(nibp)
        layout.addWidget(self.nibp_detail)
        layout.addWidget(self.breathing)
        layout.addWidget(self.devices)
        layout.addWidget(self.link)
        self._frame_style = ""
        self._paint_frame()

    # --- what the window calls ------------------------------------------------------------------

    def show_view(self, view: RoomView, now: float | None = None) -> None:
        """Show ``view`` (the window calls this when the model changed)."""
        self.view = view
        now = time.time() if now is None else now
        label = (
            f" <span style='color:{theme.TEXT_DIM}; font-weight:normal; font-size:{LINE_PX + 2}px'>"
            f"{view.label}</span>"
        )
        _set(self.title, view.room + (label if view.label else ""))
        _set(self.dose, text.dose_text(view))
        fresh = text.numerics_fresh(view)
        self.spo2.set_value(text.numeric(view, Code.SPO2), fresh)
        self.pulse.set_value(text.numeric(view, Code.PULSE_RATE, Code.HEART_RATE), fresh)
        _set(self.nibp, text.nibp_text(view.nibp))
        detail, look = text.nibp_detail(view.nibp, now)
        _set(self.nibp_detail, detail, theme.label_style(theme.WARN if look else theme.TEXT_DIM,
                                                         SMALL_PX))  # fmt: skip
        breathing = text.breathing_text(view)
        _set(self.breathing, breathing)
        self.breathing.setVisible(bool(breathing))
        _set(self.devices, self._devices_html(view))
        lost = view.state == LINK_LOST
        link = text.link_text(view) + ("   room audio paused" if view.audio_paused else "")
        _set(self.link, link, theme.label_style(theme.WARN if lost else theme.TEXT_DIM, SMALL_PX,
                                                bold=lost))  # fmt: skip
        top = view.alarms[0] if view.alarms else None
        self.priority = Priority(top.rank) if top is not None else None
        more = len(view.alarms) - 1
        banner = "no alarms" if top is None else text.alarm_text(top)
        if top is not None and more > 0:
            banner += f"  (+{more})"
        _set(self.banner, banner)
        self.banner.setToolTip("\n".join(text.alarm_text(a) for a in view.alarms))
        self._paint_banner()
        self._paint_frame()

    def set_lit(self, lit: bool) -> None:
        """The flash's phase (the window's flash timer, in step for every tile)."""
        if lit != self.lit:
            self.lit = lit
            self._paint_banner()

    # --- internals ------------------------------------------------------------------------

    def _devices_html(self, view: RoomView) -> str:
        parts = []
        for device in view.devices:
            colour = STATE_COLOURS.get(device.state, theme.WARN)
            parts.append(
                f"<span style='color:{colour}'>●</span> {device.source} "
                f"<span style='color:{colour}'>{text.device_text(device.state)}</span>"
            )
        if not parts:
            return "devices: not known" if view.state == LINK_LOST else "no devices reported"
        return "&nbsp;&nbsp;&nbsp;".join(parts)

    def _paint_banner(self) -> None:
        if self.priority is None:
            style = theme.label_style(theme.TEXT_DIM, BANNER_PX)
        else:
            shade = shade_of(self.priority)
            if self.lit:
                style = theme.label_style(
                    shade.on_fill, BANNER_PX, bold=True, background=shade.fill
                )
            else:
                style = theme.label_style(
                    shade.text, BANNER_PX, bold=True, border=f"2px solid {shade.text}"
                )
        if style != self.banner.styleSheet():
            self.banner.setStyleSheet(style)

    def _paint_frame(self) -> None:
        """The tile's border is the priority's colour, steady: the room is found at a glance."""
        colour = theme.BORDER if self.priority is None else shade_of(self.priority).text
        width = 2 if self.priority is None else 6
        style = (
            f"QFrame#roomTile {{ background-color: {theme.PANEL}; border: {width}px solid "
            f"{colour}; border-radius: 8px; }}"
        )
        if style != self._frame_style:
            self._frame_style = style
            self.setStyleSheet(style)

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(self.room)
        super().mousePressEvent(event)
