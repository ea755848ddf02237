"""The review plots: every vital over the whole session, on one zoomable dose-relative axis.

Rows share the x axis (minutes from the dose): the events' labels, in a row of their own so they
never cover a trace, stacked on as many levels as close events need at the current zoom
(:mod:`ui.marker_labels`); the alarms, one lane per condition with a bar
from its start to its end in its priority's colour (a tick where it was acknowledged); the
sedation and dissociation scores, each as its number on a lane per scale (sedated or dissociated
ones in the warning colour), shown only when the session has scores, whose events it draws in
place of dashed lines (the events table still lists them); SpO2;
pulse rate and ECG heart rate; NIBP (systolic ▼ over diastolic ▲ joined by a line, the mean as
a dot, a failed reading as an x on the axis); perfusion index; and the pleth waveform, hidden
until it is asked for. Events are dashed vertical lines through every row; where a
vital's alarm began, a diamond in the priority's colour sits on its curve. A cursor line
runs through every row; the window reads the values under it. The mouse wheel and drag zoom
and pan in time only; the y ranges stay put so a clinician compares like with like. No axis
scales its numbers by an SI prefix (pyqtgraph's "(x0.001)"): each row's unit is in its title.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from alarms.model import VISUAL, Priority
from kapmonitor.core.codes import Code
from kapmonitor.review.timeline import QUIET_KINDS, Timeline
from ui import theme
from ui.marker_labels import stack_levels

ROWS = {  # name: (title, default y range, stretch)
    "events": ("", (0.0, 1.0), 0),  # the labels name themselves; a title would not fit
    "alarms": ("Alarms", (0.0, 1.0), 0),  # as high as its lanes need
    "scores": ("", (0.0, 1.0), 0),  # a lane per scale, named by its ticks; hidden without
    "spo2": ("SpO2 %", (80.0, 101.0), 3),
    "pulse": ("PR /min", (35.0, 150.0), 3),
    "nibp": ("NIBP mmHg", (40.0, 200.0), 4),
    "pi": ("PI %", (0.0, 10.0), 2),
    "pleth": ("Pleth", (-1.0, 1.0), 3),
}
ROW_OF = {
    Code.SPO2: "spo2",
    Code.PULSE_RATE: "pulse",
    Code.HEART_RATE: "pulse",
    Code.PERFUSION: "pi",
}
COLOURS = {
    Code.SPO2: theme.SPO2,
    Code.PULSE_RATE: theme.PULSE,
    Code.HEART_RATE: theme.HEART_RATE,
    Code.PERFUSION: theme.PERFUSION,
}
TICK_PX = 14
LABEL_PX = 12  #: event labels' font
MAX_LEVELS = 5  #: levels of event labels at most (more overlap the least they can)
LANE_PX = 20  #: an alarm lane's height: its 12 px label does not run into the next lane's
ALARM_ROW_PX = (48, 280)  #: the alarm row's least and greatest height
SCORE_LANE_PX = 22  #: a score lane's height: its 14 px number and some air
#: The scores lane's names, by scale key: short enough for the left axis.
SCORE_NAMES = {"moaas": "MOAA/S", "rating": "Dissoc.", "cadss": "CADSS"}


def _pen(colour: str, width: float = 1, style=QtCore.Qt.PenStyle.SolidLine) -> QtGui.QPen:
    pen = pg.mkPen(colour, width=width, style=style)
    pen.setCosmetic(True)
    return pen


def alarm_colour(priority: Priority | None, alpha: int) -> QtGui.QColor:
    colour = QtGui.QColor(VISUAL[priority].colour if priority else theme.TEXT_DIM)
    colour.setAlpha(alpha)
    return colour


class ReviewPlots(pg.GraphicsLayoutWidget):
    """The session's plots. ``cursor_moved(x)`` says where the clinician put the cursor."""

    cursor_moved = QtCore.Signal(float)

    def __init__(self, timeline: Timeline, parent=None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.setBackground(theme.BACKGROUND)
        self.ci.setContentsMargins(4, 4, 12, 4)
        self.ci.setSpacing(2)
        self.plots: dict[str, pg.PlotItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        self.curves: dict[tuple[Code, str], pg.PlotDataItem] = {}
        for i, (name, (title, y_range, stretch)) in enumerate(ROWS.items()):
            plot = self.addPlot(row=i, col=0)
            self.plots[name] = plot
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=True, y=False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setYRange(*y_range, padding=0)
            axis = plot.getAxis("left")
            axis.enableAutoSIPrefix(False)
            axis.setWidth(70)
            axis.setLabel(title, color=theme.TEXT_DIM, **{"font-size": f"{TICK_PX}px"})
            font = QtGui.QFont(theme.TEXT_FONT)
            font.setPixelSize(TICK_PX)
            for side in ("left", "bottom"):
                plot.getAxis(side).setTickFont(font)
                plot.getAxis(side).setTextPen(theme.TEXT_DIM)
            if i:
                plot.setXLink(self.plots[next(iter(ROWS))])
            plot.getAxis("bottom").setStyle(showValues=name == "pleth")
            self.ci.layout.setRowStretchFactor(i, stretch)
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            cursor = pg.InfiniteLine(angle=90, movable=False, pen=_pen(theme.TEXT, 1))
            cursor.setZValue(30)
            plot.addItem(cursor, ignoreBounds=True)
            self.cursors.append(cursor)
        self.top: pg.PlotItem = self.plots[next(iter(ROWS))]  #: every row's x follows it
        self.event_labels: list[pg.InfiniteLine] = []
        self.score_items: list[pg.TextItem] = []  #: each score's number in the scores' lane
        self._draw_event_row()
        self._draw_alarms()
        self._draw_scores()
        self._draw_marks()
        self._draw_numerics()
        self._draw_nibp()
        self._draw_alarm_starts()
        self.pleth_curve = pg.PlotDataItem(pen=_pen(theme.PLETH), connect="finite")
        self.plots["pleth"].addItem(self.pleth_curve)
        self.pleth_note = pg.TextItem("", color=theme.TEXT_DIM, anchor=(0.5, 0.5))
        self.plots["pleth"].addItem(self.pleth_note, ignoreBounds=True)
        self.set_pleth_visible(False)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.show_all()
        self.set_cursor(timeline.x_min)
        events = self.plots["events"]
        events.sigXRangeChanged.connect(lambda *_: self.place_event_labels())
        events.vb.sigResized.connect(lambda *_: self.place_event_labels())
        self.place_event_labels()

    # --- what the window asks -----------------------------------------------------------------

    def x_range(self) -> tuple[float, float]:
        lo, hi = self.top.viewRange()[0]
        return float(lo), float(hi)

    def set_x_range(self, lo: float, hi: float) -> None:
        self.top.setXRange(lo, hi, padding=0)

    def show_all(self) -> None:
        t = self.timeline
        self.set_x_range(t.x_min - 1.0, t.x_max + 1.0)

    def zoom(self, factor: float, around: float | None = None) -> None:
        """Zoom in (factor < 1) or out around a point (the cursor), keeping it where it is."""
        lo, hi = self.x_range()
        c = self.cursor_x if around is None else around
        span = min(max((hi - lo) * factor, 0.05), (self.timeline.x_max - self.timeline.x_min) + 2)
        f = (c - lo) / (hi - lo) if hi > lo else 0.5
        self.set_x_range(c - span * f, c + span * (1 - f))

    def centre_on(self, x: float, span: float | None = None) -> None:
        lo, hi = self.x_range()
        span = span or (hi - lo)
        self.set_x_range(x - span / 2, x + span / 2)

    def set_cursor(self, x: float) -> None:
        self.cursor_x = float(x)
        for line in self.cursors:
            line.setValue(self.cursor_x)
        self.cursor_moved.emit(self.cursor_x)

    def set_pleth_visible(self, visible: bool) -> None:
        self.plots["pleth"].setVisible(visible)
        row = list(ROWS).index("pleth")
        self.ci.layout.setRowStretchFactor(row, ROWS["pleth"][2] if visible else 0)
        self.ci.layout.setRowMaximumHeight(row, 10_000 if visible else 0)
        label = "minutes from the dose" if self.timeline.dose_relative else "minutes from the start"
        for name in ROWS:
            bottom = name == self.bottom_row(visible)
            axis = self.plots[name].getAxis("bottom")
            axis.setStyle(showValues=bottom)
            axis.setLabel(label if bottom else "", color=theme.TEXT_DIM)
            axis.showLabel(bottom)

    def bottom_row(self, pleth_visible: bool | None = None) -> str:
        visible = self.plots["pleth"].isVisible() if pleth_visible is None else pleth_visible
        return "pleth" if visible else "pi"

    def set_pleth(self, x: np.ndarray, y: np.ndarray, note: str = "") -> None:
        self.pleth_curve.setData(x, y)
        lo, hi = self.x_range()
        self.pleth_note.setText(note)
        self.pleth_note.setPos((lo + hi) / 2, 0.0)
        if y.size and np.isfinite(y).any():
            finite = y[np.isfinite(y)]
            pad = max(float(np.ptp(finite)) * 0.05, 1e-3)
            self.plots["pleth"].setYRange(float(finite.min()) - pad, float(finite.max()) + pad)

    # --- drawing ----------------------------------------------------------------------------

    def _draw_numerics(self) -> None:
        for (code, source), trace in self.timeline.traces.items():
            row = ROW_OF.get(code)
            if row is None:
                continue
            curve = pg.PlotDataItem(
                trace.x, trace.y, pen=_pen(COLOURS[code]), connect="finite", antialias=False
            )
            self.plots[row].addItem(curve)  # first: clipping needs the plot's view box
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self.curves[(code, source)] = curve

    def _draw_nibp(self) -> None:
        t = self.timeline
        plot = self.plots["nibp"]
        ok = np.isfinite(t.nibp[:, 0]) & np.isfinite(t.nibp[:, 1])
        x = t.nibp_x[ok]
        sys_, dia, mean = t.nibp[ok, 0], t.nibp[ok, 1], t.nibp[ok, 2]
        link = pg.PlotCurveItem(
            np.repeat(x, 2), np.column_stack([sys_, dia]).ravel(), pen=_pen(theme.NIBP_MEAN),
            connect="pairs",
        )  # fmt: skip
        plot.addItem(link)
        for y, symbol, size, colour in (
            (sys_, "t", 12, theme.NIBP),
            (dia, "t1", 12, theme.NIBP),
            (mean, "o", 5, theme.NIBP_MEAN),
        ):
            finite = np.isfinite(y)
            plot.addItem(
                pg.ScatterPlotItem(x[finite], y[finite], symbol=symbol, size=size,
                                   pen=pg.mkPen(None), brush=pg.mkBrush(colour))
            )  # fmt: skip
        failed = t.nibp_x[~ok]
        if failed.size:  # a reading the cuff could not make: an x on the axis, not a 0
            plot.addItem(
                pg.ScatterPlotItem(failed, np.full(failed.size, ROWS["nibp"][1][0] + 6),
                                   symbol="x", size=10, pen=_pen(theme.WARN), brush=None)
            )  # fmt: skip

    def place_event_labels(self) -> None:
        """Stack the event labels for the current zoom: a label shares a level only with labels
        it does not touch; the events row is as high as the levels in use. A label that would
        run past the right edge of the view ends at its line instead of starting there."""
        if not self.event_labels:
            return
        plot = self.plots["events"]
        lo, hi = self.x_range()
        width_px = plot.vb.width()
        if hi <= lo or width_px <= 0:
            return
        px_per_min = width_px / (hi - lo)
        widths = [line.label.boundingRect().width() for line in self.event_labels]
        starts = []
        for line, width in zip(self.event_labels, widths, strict=True):
            flip = (line.value() - lo) * px_per_min + width > width_px
            anchor = (1, 0) if flip else (0, 0)
            line.label.anchors = [anchor, anchor]
            starts.append(line.value() - (width / px_per_min if flip else 0.0))
        levels = stack_levels(starts, widths, px_per_min, max_levels=MAX_LEVELS)
        used = max(levels) + 1
        label_px = max(line.label.boundingRect().height() for line in self.event_labels)
        row = list(ROWS).index("events")
        height = used * label_px + 4
        if self.ci.layout.rowMinimumHeight(row) != height:
            self.ci.layout.setRowFixedHeight(row, height)
        plot.setYRange(-used, 0, padding=0)
        for line, level in zip(self.event_labels, levels, strict=True):
            line.label.setPosition(1.0 - level / used)

    def _draw_event_row(self) -> None:
        plot = self.plots["events"]
        plot.showGrid(x=False, y=False)
        plot.getAxis("left").setStyle(showValues=False, tickLength=0)
        plot.hideAxis("bottom")
        plot.setYRange(-1, 0, padding=0)
        self.ci.layout.setRowFixedHeight(list(ROWS).index("events"), LABEL_PX + 8)

    def _draw_marks(self) -> None:
        shown = [m for m in self.timeline.marks if m.event.kind not in QUIET_KINDS]
        if self.score_items:  # the scores' lane shows them
            shown = [m for m in shown if not m.score]
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(LABEL_PX)
        for mark in shown:
            colour = theme.DOSE if mark.event.kind == "dose" else theme.MARKER
            for name, plot in self.plots.items():
                labelled = name == "events"
                line = pg.InfiniteLine(
                    pos=mark.x, angle=90, movable=False,
                    pen=_pen(colour, 1, QtCore.Qt.PenStyle.DashLine),
                    label=mark.text[:40] if labelled else None,
                    labelOpts={"position": 1.0, "color": colour, "anchors": [(0, 0), (0, 0)]},
                )  # fmt: skip
                line.setZValue(10)
                plot.addItem(line, ignoreBounds=True)
                if labelled:
                    line.label.setFont(font)
                    self.event_labels.append(line)

    def _draw_scores(self) -> None:
        """A lane per scale scored (MOAA/S above dissociation), each score as its number where
        it was taken; sedated and dissociated ones in the warning colour. No scores: no row."""
        plot = self.plots["scores"]
        row = list(ROWS).index("scores")
        scores = self.timeline.scores
        courses = [] if scores is None else [c for c in (scores.sedation, scores.dissociation) if c]
        if not courses:
            plot.setVisible(False)
            self.ci.layout.setRowMaximumHeight(row, 0)
            return
        plot.showGrid(x=True, y=False, alpha=0.25)
        n = len(courses)
        plot.setYRange(-n + 0.5, 0.5, padding=0)
        self.ci.layout.setRowFixedHeight(row, n * SCORE_LANE_PX + 8)
        plot.getAxis("left").setTicks(
            [[(-i, SCORE_NAMES.get(c.scale.key, c.scale.name)) for i, c in enumerate(courses)]]
        )
        font = QtGui.QFont(theme.NUMBER_FONT)
        font.setPixelSize(TICK_PX)
        font.setBold(True)
        for lane, course in enumerate(courses):
            for s in course.scores:
                colour = theme.WARN if course.inside(s) else theme.TEXT
                item = pg.TextItem(str(s.value), color=colour, anchor=(0.5, 0.5))
                item.setFont(font)
                item.setToolTip(f"{s.words}{f' ({s.author})' if s.author else ''}")
                item.setPos(self.timeline.minutes(s.wall), -lane)
                plot.addItem(item, ignoreBounds=True)
                self.score_items.append(item)

    def _draw_alarms(self) -> None:
        """One lane per alarm condition (and source), newest condition at the bottom."""
        plot = self.plots["alarms"]
        plot.showGrid(x=True, y=False, alpha=0.25)
        plot.getAxis("left").setStyle(showValues=False)
        end = self.timeline.x_max
        lanes: dict[tuple[str | None, str | None], int] = {}
        for span in self.timeline.alarms:
            lanes.setdefault((span.entry.condition, span.entry.source), len(lanes))
        n = max(len(lanes), 1)
        plot.setYRange(-n + 0.5, 0.5, padding=0.05)
        height = min(max(n * LANE_PX + 12, ALARM_ROW_PX[0]), ALARM_ROW_PX[1])
        self.ci.layout.setRowFixedHeight(list(ROWS).index("alarms"), height)
        # a condition's levels share its lane; the more urgent is drawn over the less
        for span in sorted(self.timeline.alarms, key=lambda a: a.priority or 0):
            lane = lanes[(span.entry.condition, span.entry.source)]
            stop = span.end if span.end is not None else end
            plot.addItem(
                pg.BarGraphItem(x0=[span.start], x1=[max(stop, span.start + 0.05)], y=[-lane],
                                height=0.7, brush=alarm_colour(span.priority, 200),
                                pen=pg.mkPen(None))
            )  # fmt: skip
            if span.acknowledged is not None:
                plot.addItem(
                    pg.ScatterPlotItem([span.acknowledged], [-lane], symbol="|", size=14,
                                       pen=_pen(theme.TEXT, 2))
                )  # fmt: skip
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(12)
        for (condition, _), lane in lanes.items():
            first = next(a for a in self.timeline.alarms if a.entry.condition == condition)
            label = pg.TextItem(first.entry.text or condition or "", color=theme.TEXT,
                                anchor=(0, 0.5), fill=pg.mkBrush(0, 0, 0, 170))  # fmt: skip
            # (a dark backing: light text stays readable over a yellow or cyan bar)
            label.setFont(font)
            label.setPos(first.start, -lane)
            label.setZValue(5)
            plot.addItem(label, ignoreBounds=True)

    def _draw_alarm_starts(self) -> None:
        """A diamond in the priority's colour where a vital's alarm began, on its own curve."""
        t = self.timeline
        nibp_column = {Code.NIBP_SYS.value: 0, Code.NIBP_DIA.value: 1, Code.NIBP_MEAN.value: 2}
        points: dict[str, list[dict]] = {}
        for span in sorted(t.alarms, key=lambda a: a.priority or 0):  # the most urgent on top
            code = span.entry.code
            if code is None:
                continue
            row: str | None
            if code in nibp_column:
                i = t.nibp_at(span.start)
                row, y = "nibp", None if i is None else float(t.nibp[i, nibp_column[code]])
            else:
                known = next((c for c in ROW_OF if c.value == code), None)
                trace = t.trace(known) if known is not None else None
                row = ROW_OF[known] if known is not None and trace is not None else None
                y = trace.value_at(span.start) if trace is not None else None
            if row is None or y is None or np.isnan(y):
                continue
            colour = alarm_colour(span.priority, 255)
            points.setdefault(row, []).append(
                {"pos": (span.start, y), "brush": pg.mkBrush(colour), "pen": _pen(theme.TEXT)}
            )
        for row, spots in points.items():
            scatter = pg.ScatterPlotItem(symbol="d", size=12, pxMode=True)
            scatter.addPoints(spots)
            scatter.setZValue(20)
            self.plots[row].addItem(scatter)

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        for plot in self.plots.values():
            if plot.isVisible() and plot.sceneBoundingRect().contains(event.scenePos()):
                self.set_cursor(plot.vb.mapSceneToView(event.scenePos()).x())
                return
