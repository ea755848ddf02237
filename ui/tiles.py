"""Numeric tiles: the big numbers a nurse reads from across the room.

A tile shows its label and unit, the value in digits well over 96 px high, and one small line of
why the value may be missing or doubtful ("sensor off", "searching", "no data for 40 s").
A missing value is always "---", never 0. A value that stops updating is greyed after
:data:`~kapmonitor.core.staleness.STALE_S` seconds and blanked to "---" after
:data:`~kapmonitor.core.staleness.BLANK_S` (the rule the discharge checklist uses too): an old
number must not pass for a current one.

Setters only touch a QLabel when its text or style really changes, so calling them on every
frame of a 30-Hz timer costs next to nothing.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from PySide6 import QtCore, QtGui, QtWidgets

from kapmonitor.core.model import Flag, Flags
from kapmonitor.core.staleness import BLANK_S, NIBP_STALE_MIN, STALE_S
from kapmonitor.live import age_text, flags_text
from ui import theme

MISSING = "---"


def _header(label: QtWidgets.QWidget, unit: QtWidgets.QWidget, limits: QtWidgets.QWidget):
    """A tile's top line: its name, its unit, and the alarm limits on the right."""
    top = QtWidgets.QHBoxLayout()
    top.addWidget(label)
    top.addSpacing(12)
    top.addWidget(unit, 0, QtCore.Qt.AlignmentFlag.AlignBottom)
    top.addStretch(1)
    top.addSpacing(10)  # the unit never touches the limits in a narrow tile
    top.addWidget(limits)
    return top


class _Label(QtWidgets.QLabel):
    """A QLabel that ignores setText/setStyleSheet calls that would change nothing."""

    def __init__(self, text: str = "", style: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self._style = ""
        self.set_style(style)

    def set_text(self, text: str) -> None:
        if text != self.text():
            self.setText(text)

    def set_style(self, style: str) -> None:
        if style != self._style:
            self._style = style
            self.setStyleSheet(style)


#: Pictures of its text a big value keeps (SpO2 and pulse values, "---", grey when stale).
PICTURES_KEPT = 200


class BigValue(QtWidgets.QWidget):
    """A big number drawn tight: the widget is as high as the digits, not the font's line.

    A QLabel at 160 px reserves ~190 px of line height for 120 px digits; on a 1080p screen
    shared with an alarm bar that difference decides whether three big tiles fit. Repaints only
    when its text or colour changes, from a picture of the text kept per (text, colour): Qt
    draws glyphs this large as outlines every time (176 µs for "97" at 127 px on this machine,
    the picture 10 µs), and a tile shows the same few values over and over.
    """

    def __init__(self, text: str, colour: str, px: int, widest: str, parent=None) -> None:
        super().__init__(parent)
        font = QtGui.QFont(theme.NUMBER_FONT)
        font.setPixelSize(px)
        font.setBold(True)
        self.setFont(font)
        self._text = text
        self.colour = colour
        metrics = QtGui.QFontMetrics(font)
        self._digits = metrics.tightBoundingRect("0123456789")
        self._widest = metrics.horizontalAdvance(widest)
        self._pictures: dict[tuple[str, str, float], QtGui.QPixmap] = {}
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent, False)
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )

    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update()

    def set_colour(self, colour: str) -> None:
        if colour != self.colour:
            self.colour = colour
            self.update()

    @property
    def digit_height(self) -> int:
        return self._digits.height()

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self._widest + 8, self._digits.height() + 24)

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self._widest + 4, self._digits.height() + 8)

    def paintEvent(self, event) -> None:
        picture = self._picture()
        ratio = picture.devicePixelRatio()
        # Right-aligned; the digits' box centred vertically (its top is above the baseline).
        x = self.width() - picture.width() / ratio - 2
        baseline = (self.height() - self._digits.height()) / 2 - self._digits.top()
        painter = QtGui.QPainter(self)
        painter.drawPixmap(QtCore.QPointF(x, baseline - self.fontMetrics().ascent()), picture)
        painter.end()

    def _picture(self) -> QtGui.QPixmap:
        """The text in its colour on a transparent picture, its top at the font's ascent."""
        ratio = self.devicePixelRatioF()
        key = (self._text, self.colour, ratio)
        picture = self._pictures.get(key)
        if picture is not None:
            return picture
        if len(self._pictures) >= PICTURES_KEPT:
            self._pictures.clear()  # a tile cycles through a few values: start again
        metrics = self.fontMetrics()
        width, height = max(1, metrics.horizontalAdvance(self._text)), metrics.height()
        picture = QtGui.QPixmap(round(width * ratio), round(height * ratio))
        picture.setDevicePixelRatio(ratio)
        picture.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(picture)
        painter.setFont(self.font())
        painter.setPen(QtGui.QColor(self.colour))
        painter.drawText(QtCore.QPointF(0, metrics.ascent()), self._text)
        painter.end()
        self._pictures[key] = picture
        return picture


class _Tile(QtWidgets.QFrame):
    """A tile's frame, and the alarm limits in its top right corner that every tile has."""

    def __init__(self, limits_px: int, parent=None) -> None:
        super().__init__(parent)
        self.limits = _Label("", theme.label_style(theme.TEXT_DIM, limits_px))
        self.limits.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.setObjectName("tile")
        self.setStyleSheet(
            f"QFrame#tile {{ background-color: {theme.PANEL}; border: 1px solid {theme.BORDER};"
            " border-radius: 6px; }"
        )
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Preferred
        )

    def set_limits(self, text: str) -> None:
        """The alarm limits in force, small at the top right ("< 90  < 85")."""
        self.limits.set_text(text)


class NumericTile(_Tile):
    """One numeric: ``NumericTile("SpO2", "%", theme.SPO2)``.

    ``value_px`` is the pixel size of the value's font (its digits are about 0.73 of it high);
    ``decimals`` how many digits after the point are shown.
    """

    def __init__(
        self,
        label: str,
        unit: str,
        colour: str,
        *,
        value_px: int = 150,
        decimals: int = 0,
        label_px: int = 30,
        widest_digits: int = 3,
        parent=None,
    ) -> None:
        super().__init__(max(18, label_px * 2 // 3), parent)
        self.colour = colour
        self.value_px = value_px
        self.decimals = decimals
        self.stale_s = STALE_S
        self.blank_s = BLANK_S
        self.label = _Label(label, theme.label_style(colour, label_px, bold=True))
        self.unit = _Label(unit, theme.label_style(theme.TEXT_DIM, max(18, label_px * 2 // 3)))
        self.value = BigValue(MISSING, colour, value_px, "8" * widest_digits)
        self.small_px = max(18, label_px * 3 // 4)
        self.status = _Label("", theme.label_style(theme.TEXT, self.small_px))
        self.quality = _Label("", theme.label_style(theme.TEXT_DIM, self.small_px))
        self.quality.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)

        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(16, 4, 16, 4)
        grid.setVerticalSpacing(0)
        grid.addLayout(_header(self.label, self.unit, self.limits), 0, 0, 1, 2)
        grid.addWidget(self.value, 1, 0, 1, 2)
        grid.addWidget(self.status, 2, 0)
        grid.addWidget(self.quality, 2, 1)
        grid.setRowStretch(1, 1)

    def format(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    def set_value(
        self, value: float | None, flags: Flags = frozenset(), age_s: float | None = None
    ) -> None:
        """Show ``value`` (None or NaN: "---") with why it may be missing and how old it is."""
        shown = None if value is None or math.isnan(value) else value
        #: How long it has not been updated, once that is long enough to grey it.
        stale_for = age_s if age_s is not None and age_s >= self.stale_s else None
        stale = stale_for is not None
        blank = age_s is not None and age_s >= self.blank_s
        self.value.set_text(MISSING if shown is None or blank else self.format(shown))
        self.value.set_colour(theme.TEXT_STALE if stale else self.colour)
        words = flags_text(flags)
        if stale_for is not None:
            words = ", ".join(w for w in (words, f"no update for {_duration(stale_for)}") if w)
        elif shown is None and not words and age_s is not None:
            words = "no value"
        warn = bool(flags & {Flag.SENSOR_OFF, Flag.ARTIFACT, Flag.QUESTIONABLE}) or stale
        self.status.set_text(words)
        self.status.set_style(theme.label_style(theme.WARN if warn else theme.TEXT, self.small_px))

    def set_quality(self, level: int | None, text: str = "") -> None:
        """Signal quality, 0 (none) to 3 (good), as bars and a word; None hides it."""
        if level is None:
            self.quality.set_text("")
            return
        lit = theme.SIGNAL_COLOURS[max(0, min(3, level))]
        bars = "".join(
            f'<span style="color:{lit if i < level else theme.GRID}">&#9646;</span>'
            for i in range(3)
        )
        self.quality.set_text(f"{text} {bars}")

    # For tests and the lead's debugging.
    def value_text(self) -> str:
        return self.value.text()

    def status_text(self) -> str:
        return self.status.text()


class EtCO2Tile(NumericTile):
    """End-tidal CO2, with the inspired CO2 small beside it ("FiCO2 2"): an inspired CO2 above
    0 is rebreathing, which the end-tidal value alone does not show. The inspired value follows
    the tile's rules (grey when stale, "---" when missing or blank); it appears once a device
    sends one."""

    def __init__(self, *, value_px: int = 96, label_px: int = 24, parent=None) -> None:
        super().__init__(
            "EtCO2", "mmHg", theme.BREATHING, value_px=value_px, label_px=label_px, parent=parent
        )
        self.inspired_px = max(20, label_px)

    def set_inspired(
        self, value: float | None, flags: Flags = frozenset(), age_s: float | None = None
    ) -> None:
        """The inspired (minimum) CO2; ``age_s`` None with no value: no device sends one."""
        if age_s is None and value is None:
            self.quality.set_text("")
            return
        stale = age_s is not None and age_s >= self.stale_s
        blank = age_s is not None and age_s >= self.blank_s
        shown = MISSING if not _ok(value) or blank else self.format(value)
        self.quality.set_text(f"FiCO2 {shown}")
        doubtful = stale or bool(flags & {Flag.OUT_OF_RANGE, Flag.QUESTIONABLE})
        colour = theme.TEXT_STALE if stale else (theme.WARN if doubtful else theme.TEXT)
        self.quality.set_style(theme.label_style(colour, self.inspired_px))

    def inspired_text(self) -> str:
        return self.quality.text()


class NibpTile(_Tile):
    """Systolic/diastolic (mean), the reading's age, the schedule and the change from baseline."""

    def __init__(self, *, value_px: int = 136, parent=None) -> None:
        super().__init__(20, parent)
        self.value_px = value_px
        self._baseline: tuple[float, float] | None = None
        self._rise_rule: tuple[float, float] | None = None
        self._due_now = False
        self._shown: tuple[float, float] | None = None  #: the valid sys/dia on display
        small = 24
        self.label = _Label("NIBP", theme.label_style(theme.NIBP, 30, bold=True))
        self.unit = _Label("mmHg", theme.label_style(theme.TEXT_DIM, 20))
        self.value = BigValue(f"{MISSING}/{MISSING}", theme.NIBP, value_px, "188/118")
        self.mean = _Label("", self._mean_style(theme.NIBP_MEAN))
        self.mean.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        )
        self.age = _Label("no reading yet", theme.label_style(theme.TEXT, small))
        self.schedule = _Label("", theme.label_style(theme.TEXT, small))
        self.schedule.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        )
        self.delta = _Label("", theme.label_style(theme.TEXT, small))
        self.note = _Label("", theme.label_style(theme.TEXT_DIM, 20))
        self.note.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter
        )

        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(16, 4, 16, 4)
        grid.setVerticalSpacing(2)
        grid.addLayout(_header(self.label, self.unit, self.limits), 0, 0, 1, 2)
        # sys/dia alone on its line, as big as the tile allows; the mean under it, right.
        grid.addWidget(self.value, 1, 0, 1, 2)
        grid.addWidget(self.age, 2, 0)
        grid.addWidget(self.mean, 2, 1)
        grid.addWidget(self.delta, 3, 0)
        grid.addWidget(self.schedule, 3, 1)
        grid.addWidget(self.note, 4, 0, 1, 2)
        grid.setRowStretch(1, 1)
        # Half the width each: a highlighted "DUE NOW" must not squeeze the baseline change.
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

    def _mean_style(self, colour: str) -> str:
        return theme.label_style(colour, max(24, self.value_px // 3), family=theme.NUMBER_FONT)

    def set_reading(
        self,
        systolic: float | None,
        diastolic: float | None,
        mean: float | None = None,
        flags: Flags = frozenset(),
        age_s: float | None = None,
        *,
        last_valid: tuple[float | None, float | None, float] | None = None,
    ) -> None:
        """Show the newest reading; ``last_valid`` (sys, dia, age_s) is shown under a failed one."""
        self.value.set_text(f"{_int(systolic)}/{_int(diastolic)}")
        self.mean.set_text(f"({_int(mean)})" if _ok(mean) else "")
        stale = age_s is not None and age_s >= NIBP_STALE_MIN * 60
        colour = theme.TEXT_STALE if stale else theme.NIBP
        self.value.set_colour(colour)
        self.mean.set_style(self._mean_style(theme.TEXT_STALE if stale else theme.NIBP_MEAN))
        shown = (float(systolic), float(diastolic)) if _ok(systolic) and _ok(diastolic) else None
        failed = shown is None
        if age_s is None:
            self.age.set_text("no reading yet")
        else:
            what = flags_text(flags) or ("no value" if failed else "")
            self.age.set_text(", ".join(w for w in (what, age_text(age_s)) if w))
        warn = failed or stale
        self.age.set_style(theme.label_style(theme.WARN if warn else theme.TEXT, 24))
        self._shown = shown
        if failed and last_valid is not None:
            s, d, age = last_valid
            self.note.set_text(f"last {_int(s)}/{_int(d)}, {age_text(age)}")
        else:
            self.note.set_text("")
        self._update_delta()

    def set_schedule(self, next_due_text: str, due_now: bool) -> None:
        """The NIBP schedule: "next in 2 min", or ``due_now`` for a highlighted "DUE NOW"."""
        self._due_now = due_now
        if due_now:
            self.schedule.set_text("DUE NOW")
            self.schedule.set_style(
                theme.label_style("#000000", 26, bold=True, background=theme.DUE_NOW, border="none")
            )
        else:
            self.schedule.set_text(next_due_text)
            self.schedule.set_style(theme.label_style(theme.TEXT, 24))

    @property
    def due_now(self) -> bool:
        return self._due_now

    def set_baseline(
        self, systolic: float | tuple[float, float] | None = None, diastolic: float | None = None
    ) -> None:
        """The pre-dose baseline: ``set_baseline(124, 78)``, ``set_baseline((124, 78))``, or
        ``set_baseline(None)`` when there is none (yet)."""
        self._baseline = baseline_pair(systolic, diastolic)
        self._update_delta()

    def set_rise_rule(self, rule: tuple[float, float] | None) -> None:
        """The profile's rise-from-baseline limits (sys, dia): a change this big is coloured."""
        self._rise_rule = rule
        self._update_delta()

    def _update_delta(self) -> None:
        shown = self._shown
        if self._baseline is None:
            self.delta.set_text("no baseline")
            self.delta.set_style(theme.label_style(theme.TEXT_DIM, 24))
            return
        if shown is None:
            b_sys, b_dia = self._baseline
            self.delta.set_text(f"baseline {b_sys:.0f}/{b_dia:.0f}")
            self.delta.set_style(theme.label_style(theme.TEXT_DIM, 24))
            return
        d_sys = round(shown[0] - self._baseline[0])
        d_dia = round(shown[1] - self._baseline[1])
        self.delta.set_text(f"{d_sys:+d}/{d_dia:+d} vs baseline")
        high = self._rise_rule is not None and (
            d_sys >= self._rise_rule[0] or d_dia >= self._rise_rule[1]
        )
        self.delta.set_style(theme.label_style(theme.WARN if high else theme.TEXT, 24, bold=high))

    def value_text(self) -> str:
        return self.value.text()


def baseline_pair(
    systolic: float | tuple[float, float] | None, diastolic: float | None = None
) -> tuple[float, float] | None:
    """(sys, dia) from either two numbers or one pair; None stays None."""
    if systolic is None:
        return None
    if isinstance(systolic, tuple | list):
        return float(systolic[0]), float(systolic[1])
    if diastolic is None:
        raise ValueError("a baseline needs both systolic and diastolic")
    return float(systolic), float(diastolic)


def _ok(value: float | None) -> TypeGuard[float]:
    """A value to show: neither missing nor NaN."""
    return value is not None and not math.isnan(value)


def _int(value: float | None) -> str:
    return f"{value:.0f}" if _ok(value) else MISSING


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
