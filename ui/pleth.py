"""The pleth wave and the capnogram of the last ~10 s, drawn as a monitor's sweep.

Sweep, not scroll: the trace is written left to right over a fixed 10-s window and wraps, with a
short erase bar ahead of the write head, as bedside monitors draw it. It maps straight onto the
ring buffer of :class:`~kapmonitor.live.PlethRing` (sample ``k`` is drawn at x = (k mod size)/fs),
so a frame costs one copy of the ring (1,000 samples at 100 Hz) and one ``setData``; nothing
moves that did not change, and a nurse's eye can rest on a beat instead of chasing it.

Devices deliver the pleth in blocks (a quarter of a second from the simulator); drawn as they
arrive the head would jump four times a second. The head is instead placed where the session's
clock (its monotonic side: a wall-clock step does not move it) says it should be,
:data:`DISPLAY_DELAY_S` behind the newest sample, so it moves smoothly at the frame rate.
Samples the device marked invalid (NaN) and lost blocks are gaps, never a flat line at 0; when
the wave stops arriving the view says so over the last trace.

One class, :class:`WaveSweep`, draws both waves: :class:`PlethSweep` fits its y range to the
wave (the pleth is in arbitrary units), :class:`CapnogramSweep` keeps 0-60 mmHg fixed, as a
capnograph does, so a plateau's height can be read and a rising EtCO2 is seen to rise.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from kapmonitor.core.model import Stamp
from kapmonitor.live import PlethRing, flags_text
from ui import theme

#: How far the drawn head lags the newest sample: a bit more than one device block.
DISPLAY_DELAY_S = 0.3
#: Width of the erase bar ahead of the head.
ERASE_S = 0.25
#: Seconds without the wave after which the view says "no pleth" ("no CO2 wave").
STALE_S = 2.0
#: The capnogram's fixed scale, mmHg (a capnograph's usual 0-60 range; a higher plateau is
#: drawn to the top edge, the EtCO2 tile gives its number).
CO2_Y_RANGE = (0.0, 60.0)
#: The capnogram is drawn again when its head has moved this far (10 times a second at most):
#: a breath takes seconds. Redrawn at every 20-Hz sample, with a grid (which made its axis
#: repaint each time), the breathing panel cost 1.5 % of a core at 30 frames a second; drawn
#: in 0.1-s steps without the grid, 0.4 % (900 frames, offscreen, this machine).
CO2_REDRAW_S = 0.1


class WaveSweep(QtWidgets.QWidget):
    """The sweep of one source's wave; :meth:`refresh` with its ring and the session's now.

    ``wave`` names it in the messages ("no pleth"); ``y_range`` fixes the scale (None: the
    range follows the wave); ``redraw_step_s`` is how far the head moves between redraws (0:
    whenever it or the wave changes).
    """

    def __init__(
        self,
        title: str,
        colour: str,
        *,
        wave: str,
        y_range: tuple[float, float] | None = None,
        redraw_step_s: float = 0.0,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.wave = wave
        self._fixed = y_range
        #: Seconds the head must move before the wave is drawn again (0: on every change).
        self.redraw_step_s = redraw_step_s
        self.title = QtWidgets.QLabel(title)
        self.title.setStyleSheet(theme.label_style(colour, 22, bold=True))
        self.status = QtWidgets.QLabel("")
        self.status.setStyleSheet(theme.label_style(theme.WARN, 20))
        self.status.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.plot = pg.PlotWidget(background=theme.BACKGROUND)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.disableAutoRange()
        item.hideAxis("left")
        item.hideAxis("bottom")
        item.getViewBox().setDefaultPadding(0)
        item.setContentsMargins(0, 4, 0, 4)
        pen = pg.mkPen(colour, width=1)
        pen.setCosmetic(True)
        self.curve = pg.PlotCurveItem(pen=pen, antialias=False, connect="finite")
        self.plot.addItem(self.curve)
        self.message = pg.TextItem("", color=theme.WARN, anchor=(0.5, 0.5))
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(28)
        font.setBold(True)
        self.message.setFont(font)
        self.message.setZValue(10)
        self.plot.addItem(self.message)

        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(8, 0, 8, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.status)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.plot, 1)

        self._ring: PlethRing | None = None
        self._x = np.zeros(0)
        self._y = np.zeros(0)
        self._y_range = (0.0, 1.0)
        self._shown_head = -1
        self._version = -1
        self._any_signal = False
        self._message = ""
        self._status = ""
        self.head = 0  #: index of the drawn write head in the ring (for tests)
        self._set_y_range(*(y_range or (0.0, 1.0)))
        self.plot.setXRange(0.0, 10.0, padding=0)

    def refresh(self, ring: PlethRing | None, now: Stamp) -> None:
        """Draw ``ring`` as it should look at ``now``; None: no source of the wave yet."""
        if ring is None:
            self._say(f"no {self.wave}", "")
            return
        if ring is not self._ring:
            self._ring = ring
            self._x = np.arange(ring.size) / ring.fs
            self._y = np.empty(ring.size)
            self._shown_head = -1
            self.plot.setXRange(0.0, ring.size / ring.fs, padding=0)
        # How many of the received samples are due on screen by now.
        hidden = 0
        if ring.end is not None:
            lag = ring.end.mono - (now.mono - DISPLAY_DELAY_S)
            hidden = min(max(0, round(lag * ring.fs)), ring.size // 2, ring.count)
        shown = ring.count - hidden
        head = shown % ring.size
        unchanged = head == self._shown_head and ring.version == self._version
        moved = (head - self._shown_head) % ring.size
        if unchanged or (self._shown_head >= 0 and moved < self._min_step(ring)):
            if ring.version != self._version:
                self._version = ring.version
                self._any_signal = bool(np.isfinite(ring.data).any())
            self._update_text(ring, now)
            return
        if ring.version != self._version:
            self._version = ring.version
            self._any_signal = bool(np.isfinite(ring.data).any())
        self._update_text(ring, now)
        self._shown_head = head
        self.head = head
        y = self._y
        np.copyto(y, ring.data)
        erase = hidden + max(1, round(ERASE_S * ring.fs))
        end = head + erase
        y[head : min(end, ring.size)] = np.nan
        if end > ring.size:
            y[: end - ring.size] = np.nan
        if self._fixed is None:
            self._fit(y)
        self.curve.setData(self._x, y)

    def _min_step(self, ring: PlethRing) -> int:
        return max(1, round(self.redraw_step_s * ring.fs))

    def _update_text(self, ring: PlethRing, now: Stamp) -> None:
        age = ring.age(now)
        if age is not None and age > STALE_S:
            self._say(f"NO {self.wave.upper()}", f"no {self.wave} for {_seconds(age)}")
        else:
            self._say("" if self._any_signal else "NO SIGNAL", flags_text(ring.flags))

    def _say(self, message: str, status: str) -> None:
        if message != self._message:
            self._message = message
            self.message.setText(message)
        if status != self._status:
            self._status = status
            self.status.setText(status)

    def _fit(self, y: np.ndarray) -> None:
        """Keep the wave filling the view; move the range only when it is clearly off."""
        finite = y[np.isfinite(y)]
        if len(finite) < 2:
            return
        lo, hi = float(finite.min()), float(finite.max())
        span = max(hi - lo, 1e-9)
        r_lo, r_hi = self._y_range
        r_span = r_hi - r_lo
        outside = lo < r_lo or hi > r_hi
        too_loose = span < 0.5 * r_span
        if outside or too_loose:
            self._set_y_range(lo - 0.08 * span, hi + 0.08 * span)

    @property
    def message_text(self) -> str:
        return self._message

    def _set_y_range(self, lo: float, hi: float) -> None:
        self._y_range = (lo, hi)
        self.plot.setYRange(lo, hi, padding=0)
        self.message.setPos(5.0 if self._ring is None else self._ring.window_s / 2, (lo + hi) / 2)


class PlethSweep(WaveSweep):
    """The pleth: arbitrary units, so the range follows the wave."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Pleth", theme.PLETH, wave="pleth", parent=parent)


class CapnogramSweep(WaveSweep):
    """The capnogram (the CO2 wave) on a fixed 0-60 mmHg scale, its 0/20/40/60 marked at left:
    a plateau's height is the end-tidal CO2, and a wave that does not return to 0 is
    rebreathing."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(
            "CO2",
            theme.CO2,
            wave="CO2 wave",
            y_range=CO2_Y_RANGE,
            redraw_step_s=CO2_REDRAW_S,
            parent=parent,
        )
        item = self.plot.getPlotItem()
        item.showAxis("left")
        axis = item.getAxis("left")
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(15)
        axis.setStyle(tickFont=font, tickTextOffset=3)
        axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
        axis.setPen(pg.mkPen(theme.GRID))
        axis.setWidth(34)
        axis.setTicks([[(v, f"{v:.0f}") for v in (0.0, 20.0, 40.0, 60.0)], []])
        lo, hi = CO2_Y_RANGE
        self._set_y_range(lo - 4.0, hi + 3.0)  # the 0 line, its tick and a 60 plateau in view


def _seconds(age: float) -> str:
    return f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min"
