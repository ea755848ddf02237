"""Breathing on the dosing-room screen: the capnogram, the respiratory rate and EtCO2.

Ketamine with other sedatives can slow breathing; a falling rate and a rising EtCO2 show it
minutes before the SpO2 falls (later still on oxygen). The panel shows what a capnograph (or a
monitor's chest-impedance rate) sends: the capnogram sweeping on a fixed 0-60 mmHg scale, the
rate, and EtCO2 with the inspired CO2 small beside it. The tiles follow the other tiles' rules
(grey when stale, "---" when blank or missing, never 0 for a missing value).

Without any breathing value or CO2 wave from any device this session the panel says so in plain
words, "Breathing not monitored", in place of the tiles: empty tiles would look like monitoring.
Once breathing has been seen the tiles stay, so a capnograph that drops out greys and blanks as
any device does, and its alarms say why.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from kapmonitor.core.codes import Code
from kapmonitor.core.model import Stamp
from kapmonitor.live import Latest, LiveBuffers
from ui import theme
from ui.pleth import CapnogramSweep
from ui.tiles import EtCO2Tile, NumericTile

NOT_MONITORED = "Breathing not monitored"
#: What the notice says under its title: why, and what would change it.
NOT_MONITORED_WHY = "no respiratory rate, EtCO2 or capnogram from any device"
#: The rates, airway (capnograph) first: it counts breaths that move gas, where a chest
#: (impedance) rate still counts efforts against a closed airway.
RATE_CODES = (Code.AWAY_RESP_RATE, Code.RESP_RATE)


class BreathingPanel(QtWidgets.QWidget):
    """The capnogram, the rate and EtCO2 tiles, or the notice that breathing is not monitored."""

    def __init__(self, *, value_px: int = 96, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.capnogram = CapnogramSweep()
        self.rate = NumericTile("RR", "/min", theme.BREATHING, value_px=value_px, label_px=24)
        self.etco2 = EtCO2Tile(value_px=value_px, label_px=24)
        self.notice = _notice()

        monitored = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(monitored)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.capnogram, 24)
        row.addWidget(self.rate, 11)
        row.addWidget(self.etco2, 15)
        self.pages = QtWidgets.QStackedLayout(self)
        self.pages.addWidget(self.notice)
        self.pages.addWidget(monitored)
        self._monitored_page = monitored
        # From 1280 px wide the column gives the panel all it needs; narrower than any screen
        # the room uses, it is cut rather than widening the window past the screen.
        self.setMinimumWidth(1)

    @property
    def monitored(self) -> bool:
        """Whether the tiles are shown (some device has sent breathing this session)."""
        return self.pages.currentWidget() is self._monitored_page

    def set_limits(self, rate: str, etco2: str) -> None:
        self.rate.set_limits(rate)
        self.etco2.set_limits(etco2)

    def refresh(self, buffers: LiveBuffers, now: Stamp, *, numbers: bool = True) -> None:
        """Show the capnogram and (unless ``numbers`` is False) the newest breathing values as
        of the session's ``now``."""
        if not buffers.breathing_monitored:
            if self.monitored:
                self.pages.setCurrentWidget(self.notice)
            return
        if not self.monitored:
            self.pages.setCurrentWidget(self._monitored_page)
        self.capnogram.refresh(buffers.first_co2(), now)
        if not numbers:
            return
        rate = _first(buffers, RATE_CODES)
        if rate is None:
            self.rate.set_value(None)
        else:
            self.rate.label.set_text(rate[0].info.label)
            self.rate.set_value(rate[1].value, rate[1].flags, rate[1].age(now))
        etco2 = buffers.latest.get(Code.CO2_ET)
        if etco2 is None:
            self.etco2.set_value(None)
        else:
            self.etco2.set_value(etco2.value, etco2.flags, etco2.age(now))
        inspired = buffers.latest.get(Code.CO2_INSP_MIN)
        if inspired is None:
            self.etco2.set_inspired(None)
        else:
            self.etco2.set_inspired(inspired.value, inspired.flags, inspired.age(now))


def _first(buffers: LiveBuffers, codes: tuple[Code, ...]) -> tuple[Code, Latest] | None:
    for code in codes:
        latest = buffers.latest.get(code)
        if latest is not None:
            return code, latest
    return None


def _notice() -> QtWidgets.QFrame:
    """A tile-shaped frame that says, large and plain, that breathing is not monitored."""
    frame = QtWidgets.QFrame()
    frame.setObjectName("notice")
    frame.setStyleSheet(
        f"QFrame#notice {{ background-color: {theme.PANEL}; border: 1px solid {theme.BORDER};"
        " border-radius: 6px; }"
    )
    title = QtWidgets.QLabel(NOT_MONITORED)
    title.setObjectName("notMonitored")
    title.setStyleSheet(theme.label_style(theme.WARN, 44, bold=True))
    why = QtWidgets.QLabel(NOT_MONITORED_WHY)
    why.setStyleSheet(theme.label_style(theme.TEXT_DIM, 22))
    why.setWordWrap(True)
    for label in (title, why):
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    layout = QtWidgets.QVBoxLayout(frame)
    layout.addStretch(1)
    layout.addWidget(title)
    layout.addWidget(why)
    layout.addStretch(1)
    return frame
