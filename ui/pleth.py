"""The pleth wave and the capnogram of the last ~10 s, drawn as a monitor's sweep.

Sweep, not scroll: the trace is written left to right over a fixed 10-s window and wraps, with a
short erase bar ahead of the write head, as bedside monitors draw it. It maps straight onto the
ring buffer of :class:`~kapmonitor.live.PlethRing` (sample ``k`` is drawn at x = (k mod size)/fs),
so a frame costs one copy of the ring (1,000 samples at 100 Hz); nothing moves that did not
change, and a nurse's eye can rest on a beat instead of chasing it.

Drawn by a plain widget (:class:`WaveCanvas`), not a pyqtgraph plot: a frame repaints only the
strips where samples changed (behind the write head and under the erase bar), with one path of
those samples. Through pyqtgraph's scene every frame ran its Python paint and bounds machinery
for the whole curve: the two sweeps were about two thirds of the screen's CPU at 1920x1080.

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

import math

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
#: a breath takes seconds.
CO2_REDRAW_S = 0.1
#: The capnogram's scale marks, mmHg, written at its left edge.
CO2_TICKS = (0.0, 20.0, 40.0, 60.0)
#: Width of that scale, px; blank space above and below the wave, px.
SCALE_PX = 34
MARGIN_PX = 4


class WaveCanvas(QtWidgets.QWidget):
    """Paints one wave across its width (NaN samples are gaps), an optional scale at its left
    and a message over its centre; :meth:`show_wave` repaints only what changed."""

    def __init__(
        self, colour: str, *, ticks: tuple[float, ...] = (), parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        # Every pixel is painted here: Qt need not fill the background first.
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._background = QtGui.QColor(theme.BACKGROUND)
        self._pen = QtGui.QPen(QtGui.QColor(colour), 1)
        self._pen.setCosmetic(True)
        self._ticks = ticks
        self._left = SCALE_PX if ticks else 0
        self._tick_font = QtGui.QFont(theme.TEXT_FONT)
        self._tick_font.setPixelSize(15)
        self._message_font = QtGui.QFont(theme.TEXT_FONT)
        self._message_font.setPixelSize(28)
        self._message_font.setBold(True)
        self._wave = np.zeros(0)  #: what is drawn, sample by sample
        self._lo, self._hi = 0.0, 1.0
        self.message = ""
        self.paints = 0  #: paint events so far (for tests and benchmarks)

    @property
    def wave(self) -> np.ndarray:
        return self._wave

    @property
    def y_range(self) -> tuple[float, float]:
        return self._lo, self._hi

    def set_range(self, lo: float, hi: float) -> None:
        if (lo, hi) != (self._lo, self._hi):
            self._lo, self._hi = lo, hi
            self.update()

    def set_message(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.update()

    def show_wave(self, wave: np.ndarray) -> bool:
        """Draw ``wave``; repaint the strips where it differs from what is drawn (all of it
        for a wave of another length). Whether anything changed."""
        if len(wave) != len(self._wave):
            self._wave = wave.copy()
            self.update()
            return True
        same = (wave == self._wave) | (np.isnan(wave) & np.isnan(self._wave))
        changed = np.flatnonzero(~same)
        if len(changed) == 0:
            return False
        self._wave[changed] = wave[changed]
        # One strip per run of changed samples (the head's, the erase bar's; both at a wrap),
        # each a sample wider on both sides: the lines to its neighbours change too.
        breaks = np.flatnonzero(np.diff(changed) > 1)
        starts = np.concatenate(([changed[0]], changed[breaks + 1]))
        ends = np.concatenate((changed[breaks], [changed[-1]]))
        height = self.height()
        for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
            x0 = math.floor(self._x_of(first - 1)) - 1
            x1 = math.ceil(self._x_of(last + 1)) + 1
            self.update(x0, 0, x1 - x0 + 1, height)
        return True

    def _x_of(self, index: float) -> float:
        n = max(1, len(self._wave))
        return self._left + index * (self.width() - self._left) / n

    def _y_of(self, values: np.ndarray) -> np.ndarray:
        top, bottom = MARGIN_PX, self.height() - MARGIN_PX
        span = self._hi - self._lo or 1.0
        return bottom - (values - self._lo) * ((bottom - top) / span)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        self.paints += 1
        rect = event.rect()
        painter = QtGui.QPainter(self)
        painter.fillRect(rect, self._background)
        if self._ticks and rect.left() < self._left:
            self._paint_scale(painter)
        n = len(self._wave)
        width = self.width() - self._left
        if n >= 2 and width > 0:
            # The samples under the strip, and one more on each side for the lines into it.
            first = max(0, math.floor((rect.left() - self._left) * n / width) - 1)
            last = min(n, math.ceil((rect.right() + 1 - self._left) * n / width) + 2)
            if last - first >= 2:
                index = np.arange(first, last)
                x = self._left + index * (width / n)
                y = self._y_of(self._wave[first:last])
                painter.setPen(self._pen)
                painter.drawPath(pg.arrayToQPath(x, y, connect="finite"))
        if self.message:
            painter.setFont(self._message_font)
            painter.setPen(QtGui.QColor(theme.WARN))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.message)
        painter.end()

    def _paint_scale(self, painter: QtGui.QPainter) -> None:
        """The scale's line and its marks (the capnogram's 0/20/40/60 mmHg)."""
        painter.setPen(QtGui.QColor(theme.GRID))
        edge = self._left - 1
        painter.drawLine(edge, 0, edge, self.height())
        painter.setFont(self._tick_font)
        painter.setPen(QtGui.QColor(theme.TEXT_DIM))
        ys = self._y_of(np.array(self._ticks))
        for value, y in zip(self._ticks, ys.tolist(), strict=True):
            painter.drawLine(edge - 4, round(y), edge, round(y))
            box = QtCore.QRectF(0, y - 10, edge - 6, 20)
            align = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
            painter.drawText(box, align, f"{value:.0f}")


class WaveSweep(QtWidgets.QWidget):
    """The sweep of one source's wave; :meth:`refresh` with its ring and the session's now.

    ``wave`` names it in the messages ("no pleth"); ``y_range`` fixes the scale (None: the
    range follows the wave) and ``ticks`` marks it at the left; ``redraw_step_s`` is how far the
    head moves between redraws (0: whenever it or the wave changes).
    """

    def __init__(
        self,
        title: str,
        colour: str,
        *,
        wave: str,
        y_range: tuple[float, float] | None = None,
        ticks: tuple[float, ...] = (),
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
        self.canvas = WaveCanvas(colour, ticks=ticks)

        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(8, 0, 8, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.status)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.canvas, 1)

        self._ring: PlethRing | None = None
        self._y = np.zeros(0)
        self._shown_head = -1
        self._version = -1
        self._any_signal = False
        self._status = ""
        self.head = 0  #: index of the drawn write head in the ring (for tests)
        self.redraws = 0  #: frames on which the wave was drawn again (for tests)
        self._set_y_range(*(y_range or (0.0, 1.0)))

    @property
    def message_text(self) -> str:
        return self.canvas.message

    @property
    def y_range(self) -> tuple[float, float]:
        return self.canvas.y_range

    def drawn_wave(self) -> np.ndarray:
        """The wave as drawn, sample by sample, the ring's layout (NaN: blank)."""
        return self.canvas.wave.copy()

    def refresh(self, ring: PlethRing | None, now: Stamp) -> None:
        """Draw ``ring`` as it should look at ``now``; None: no source of the wave yet."""
        if ring is None:
            self._say(f"no {self.wave}", "")
            return
        if ring is not self._ring:
            self._ring = ring
            self._y = np.empty(ring.size)
            self._shown_head = -1
        # How many of the received samples are due on screen by now.
        hidden = 0
        if ring.end is not None:
            lag = ring.end.mono - (now.mono - DISPLAY_DELAY_S)
            hidden = min(max(0, round(lag * ring.fs)), ring.size // 2, ring.count)
        shown = ring.count - hidden
        head = shown % ring.size
        unchanged = head == self._shown_head and ring.version == self._version
        moved = (head - self._shown_head) % ring.size
        if ring.version != self._version:
            self._version = ring.version
            self._any_signal = bool(np.isfinite(ring.data).any())
        self._update_text(ring, now)
        if unchanged or (self._shown_head >= 0 and moved < self._min_step(ring)):
            return
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
        self.redraws += self.canvas.show_wave(y)

    def _min_step(self, ring: PlethRing) -> int:
        return max(1, round(self.redraw_step_s * ring.fs))

    def _update_text(self, ring: PlethRing, now: Stamp) -> None:
        age = ring.age(now)
        if age is not None and age > STALE_S:
            self._say(f"NO {self.wave.upper()}", f"no {self.wave} for {_seconds(age)}")
        else:
            self._say("" if self._any_signal else "NO SIGNAL", flags_text(ring.flags))

    def _say(self, message: str, status: str) -> None:
        self.canvas.set_message(message)
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
        r_lo, r_hi = self.canvas.y_range
        r_span = r_hi - r_lo
        outside = lo < r_lo or hi > r_hi
        too_loose = span < 0.5 * r_span
        if outside or too_loose:
            self._set_y_range(lo - 0.08 * span, hi + 0.08 * span)

    def _set_y_range(self, lo: float, hi: float) -> None:
        self.canvas.set_range(lo, hi)


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
            ticks=CO2_TICKS,
            redraw_step_s=CO2_REDRAW_S,
            parent=parent,
        )
        lo, hi = CO2_Y_RANGE
        self._set_y_range(lo - 4.0, hi + 3.0)  # the 0 line, its tick and a 60 plateau in view


def _seconds(age: float) -> str:
    return f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min"
