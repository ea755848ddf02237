"""The session's trends: every numeric since the start, on minutes from the dose.

Four rows share one time axis: SpO2; pulse rate (and ECG heart rate when there is one); NIBP as
points (systolic ▼ over diastolic ▲ joined by a thin line, the mean as a small dot); perfusion
index. The alarm limits of the profile are dashed lines in the alarm colour of their level, with
a faint band beyond the first level on the SpO2 and pulse rows. The dose and the nurse's markers
are labelled vertical lines, their labels stacked on levels where they would overprint
(:mod:`ui.marker_labels`: "DOSE", "dissociation" and "note" pressed a minute apart stay readable);
each alarm start is a small diamond in its priority's colour at the
value that triggered it (technical alarms, with no value, sit at the top of the SpO2 row).

Under them, once the nurse has scored, two small lanes: MOAA/S (0-5) and dissociation (the
rating 0-3, or the CADSS total), each score a point, a thin step joining one to the next (a
score holds until the next is taken; nothing is drawn past the last). A lane is hidden until its
first score, and the time axis moves to the lowest row shown. The scores come from
``LiveBuffers.scores``, a plain list, and are redrawn only when one arrives.

Cheap to refresh: :meth:`TrendPlot.refresh` looks at the buffers' versions and only calls
``setData`` for what changed (numerics arrive once a second); the values go in as views of the
buffers' arrays, the minutes (x) are computed once per change. The time axis is moved in steps of
:data:`X_STEP_MIN` minutes, not on every frame, so a refresh with no new data repaints nothing.
Curves: pen width 1, no antialiasing, peak downsampling with clip-to-view, NaN gaps kept
(``connect='finite'``: where a device dropped out the buffers put a NaN, see
:mod:`kapmonitor.live`), auto-range off. NIBP readings are points, never joined in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from alarms.model import Priority
from alarms.profile import Profile
from kapmonitor.core.assessment import CADSS, DISSOCIATION_RATING, MOAAS, Scale
from kapmonitor.core.codes import Code
from kapmonitor.core.model import SessionEventKind
from kapmonitor.live import LiveBuffers, Series
from ui import theme
from ui.marker_labels import level_positions, levels_that_fit, stack_levels

#: Where the first level of marker labels sits (fraction of the top row's height): below the
#: diamonds of technical alarms, which sit at the top of that row.
LABEL_TOP = 0.86
#: The time axis grows in steps of this many minutes (so it moves rarely).
X_STEP_MIN = 5.0
#: The right edge of the time axis stays at least this far past now.
X_HEADROOM_MIN = 1.0
AXIS_WIDTH = 78
TICK_PX = 15
#: A lane's title, across the left of its axis: "MOAA/S" fits beside the tick numbers.
LANE_TITLE_PX = 14


@dataclass(frozen=True)
class _RowSpec:
    """What one row shows and how its y axis may move."""

    name: str
    title: str
    colour: str
    y_range: tuple[float, float]  #: the default range; it widens to fit the data
    stretch: int  #: its share of the height
    y_floor: float | None = None  #: the range never goes below this
    y_ceiling: float | None = None
    #: Shade beyond the limits (not where codes of different meaning share a row).
    bands: bool = True
    #: A lane of scores: hidden until its first score, its title beside the axis.
    lane: bool = False
    #: Hidden until its first value (breathing: most rooms have no capnograph).
    on_data: bool = False
    #: Draw the profile's limits (not on a row whose codes have different units).
    limits: bool = True

    @property
    def joins(self) -> bool:
        """Whether the row joins the layout only once it has something to show."""
        return self.lane or self.on_data


ROW_SPECS = (
    _RowSpec("spo2", "SpO2 %", theme.SPO2, (84, 101), 3, y_ceiling=101),
    _RowSpec("pulse", "PR /min", theme.PULSE, (35, 145), 3, y_floor=0),
    _RowSpec("nibp", "NIBP mmHg", theme.NIBP, (50, 190), 4, y_floor=0, bands=False),
    _RowSpec("pi", "PI %", theme.PERFUSION, (0, 8), 2, y_floor=0, bands=False),
    # RR /min (solid) and EtCO2 mmHg (dashed) share a row: both read 0-60, and a falling rate
    # with a rising EtCO2 is the picture of ketamine's respiratory depression. Their limits are
    # on the tiles (six lines of two units on one row would not read).
    _RowSpec(
        "breathing",
        "RR · EtCO2",
        theme.BREATHING,
        (0, 60),
        2,
        y_floor=0,
        bands=False,
        on_data=True,
        limits=False,
    ),
    _RowSpec("moaas", "MOAA/S", theme.SEDATION, (-0.9, 5.9), 2, bands=False, lane=True),
    _RowSpec("dissociation", "Dissoc.", theme.DISSOCIATION, (-0.9, 3.9), 2, bands=False, lane=True),
)
#: The y axis of a score lane: its range and the ticks that carry a number (the others, a grid
#: line only: a lane is too low for six numbers).
LANE_AXES: dict[Code, tuple[tuple[float, float], tuple[int, ...]]] = {
    Code.MOAAS: ((-0.9, 5.9), (1, 3, 5)),
    Code.DISSOCIATION: ((-0.9, 3.9), (0, 3)),
}
#: The CADSS total's lane starts at 0-30 (the trials' totals rarely passed it) and widens.
CADSS_SPAN = 30.0


@dataclass
class _Lane:
    """What a score lane draws: the scores as points, steps from one to the next."""

    points: pg.ScatterPlotItem
    steps: pg.PlotCurveItem
    title: pg.LabelItem
    code: Code | None = None  #: the scale shown (the dissociation lane: rating or CADSS)


@dataclass
class _Row:
    """One row on screen: its plot, its current y range, its limit lines and alarm diamonds."""

    spec: _RowSpec
    plot: pg.PlotItem
    alarm_points: pg.ScatterPlotItem
    y_lo: float
    y_hi: float
    limit_items: list[QtWidgets.QGraphicsItem] = field(default_factory=list)


ROW_OF: dict[Code, str] = {
    Code.SPO2: "spo2",
    Code.PULSE_RATE: "pulse",
    Code.HEART_RATE: "pulse",
    Code.NIBP_SYS: "nibp",
    Code.NIBP_DIA: "nibp",
    Code.NIBP_MEAN: "nibp",
    Code.PERFUSION: "pi",
    Code.RESP_RATE: "breathing",
    Code.AWAY_RESP_RATE: "breathing",
    Code.CO2_ET: "breathing",
    Code.MOAAS: "moaas",
    Code.DISSOCIATION: "dissociation",
    Code.CADSS: "dissociation",
}
#: What a score lane is named by the scale it shows.
LANE_TITLES: dict[Code, str] = {
    Code.MOAAS: "MOAA/S",
    Code.DISSOCIATION: "Dissoc.",
    Code.CADSS: "CADSS",
}
CURVE_COLOURS = {
    Code.SPO2: theme.SPO2,
    Code.PULSE_RATE: theme.PULSE,
    Code.HEART_RATE: theme.HEART_RATE,
    Code.PERFUSION: theme.PERFUSION,
    Code.RESP_RATE: theme.BREATHING,
    Code.AWAY_RESP_RATE: theme.BREATHING,
    Code.CO2_ET: theme.BREATHING,
}
#: Curves drawn dashed: EtCO2 beside the rate on the breathing row.
DASHED = frozenset({Code.CO2_ET})


def _pen(colour: str, style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine) -> QtGui.QPen:
    pen = pg.mkPen(colour, width=1, style=style)
    pen.setCosmetic(True)
    return pen


class TrendPlot(pg.GraphicsLayoutWidget):
    """All numerics of the session on one dose-relative time axis."""

    #: The number of score lanes shown changed (the view gives the trends more height).
    lanes_changed = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        #: Vertical lines per marker: one per row of measurements, the label on the top row.
        self.event_lines: list[tuple[float, list[pg.InfiniteLine]]] = []
        #: The markers' lines on the score lanes (unlabelled), with the lane's plot.
        self.lane_event_lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self.setBackground(theme.BACKGROUND)
        self.ci.setContentsMargins(4, 4, 12, 4)
        self.ci.setSpacing(2)
        self.rows: dict[str, _Row] = {}
        first: pg.PlotItem | None = None
        #: The lanes in the layout. A lane joins it with its first score: a hidden item in
        #: pyqtgraph's layout still takes its share of the height from the rows above.
        self._shown_lanes: set[str] = set()
        for i, spec in enumerate(ROW_SPECS):
            if spec.joins:
                plot = pg.PlotItem()
                self._park(plot)
            else:
                plot = self.addPlot(row=i, col=0)
            self._style_plot(plot, spec)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            if not spec.joins:
                self.ci.layout.setRowStretchFactor(i, spec.stretch)
            y_lo, y_hi = spec.y_range
            plot.setYRange(y_lo, y_hi, padding=0)
            alarm_points = pg.ScatterPlotItem(size=11, symbol="d", pxMode=True)
            alarm_points.setZValue(20)
            plot.addItem(alarm_points)
            self.rows[spec.name] = _Row(spec, plot, alarm_points, y_lo, y_hi)
        self.rows["spo2"].plot.getViewBox().sigResized.connect(lambda _box: self.stack_labels())
        self.lanes = {
            spec.name: self._make_lane(self.rows[spec.name].plot, spec)
            for spec in ROW_SPECS
            if spec.lane
        }
        self.x_axis = self.rows["pi"].plot.getAxis("bottom")
        self._x_label = "minutes"
        self._place_time_axis()

        self.curves: dict[Code, pg.PlotDataItem] = {}
        for code, colour in CURVE_COLOURS.items():
            style = QtCore.Qt.PenStyle.DashLine if code in DASHED else QtCore.Qt.PenStyle.SolidLine
            curve = pg.PlotDataItem(
                pen=_pen(colour, style), antialias=False, connect="finite", name=code.info.label
            )
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self.rows[ROW_OF[code]].plot.addItem(curve)
            self.curves[code] = curve
        nibp = self.rows["nibp"].plot
        self.nibp_link = pg.PlotCurveItem(pen=_pen(theme.NIBP_MEAN), connect="pairs")
        self.nibp_sys = pg.ScatterPlotItem(
            symbol="t", size=12, pen=pg.mkPen(None), brush=pg.mkBrush(theme.NIBP)
        )
        self.nibp_dia = pg.ScatterPlotItem(
            symbol="t1", size=12, pen=pg.mkPen(None), brush=pg.mkBrush(theme.NIBP)
        )
        self.nibp_mean = pg.ScatterPlotItem(
            symbol="o", size=5, pen=pg.mkPen(None), brush=pg.mkBrush(theme.NIBP_MEAN)
        )
        for item in (self.nibp_link, self.nibp_sys, self.nibp_dia, self.nibp_mean):
            nibp.addItem(item)
        self.baseline_lines: list[pg.InfiniteLine] = []
        self._baseline: tuple[float, float] | None = None

        self.dose_lines: list[pg.InfiniteLine] = []
        self._seen: dict[object, int] = {}
        self._origin: float | None = None
        self._dose: float | None = None
        self._n_markers = 0
        self._x_range: tuple[float, float] | None = None
        self.set_x_range(0.0, X_STEP_MIN)

    # --- set-up ---------------------------------------------------------------------------------

    def _style_plot(self, plot: pg.PlotItem, spec: _RowSpec) -> None:
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.disableAutoRange()
        plot.showGrid(x=True, y=True, alpha=0.18)
        font = QtGui.QFont(theme.TEXT_FONT)
        font.setPixelSize(TICK_PX)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(_pen(theme.GRID))
            axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
            axis.setStyle(tickFont=font, tickTextOffset=4)
            # The axis draws the grid across the whole row too, so every new point repainted
            # it, ticks and all, from its recorded drawing (a third of a trends repaint): kept
            # as pixels, it is drawn again only when its range or ticks change.
            axis.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        left = plot.getAxis("left")
        left.setWidth(AXIS_WIDTH)
        if not spec.lane:  # a lane's title lies across its axis (_make_lane)
            left.setLabel(spec.title, color=spec.colour, **{"font-size": f"{TICK_PX + 1}px"})
        plot.getViewBox().setDefaultPadding(0)

    def set_profile(self, profile: Profile | None) -> None:
        """Draw the profile's alarm limits: dashed lines per level, a faint band beyond."""
        for row in self.rows.values():
            for item in row.limit_items:
                row.plot.removeItem(item)
            row.limit_items.clear()
        if profile is None:
            return
        done: set[tuple[str, float]] = set()
        for rule in profile.limits:
            rows = {ROW_OF[c] for c in rule.codes if c in ROW_OF}
            rows = {name for name in rows if self.rows[name].spec.limits}
            for name in sorted(rows):
                row = self.rows[name]
                for k, (priority, limit) in enumerate(rule.levels):
                    if (name, limit) in done:
                        continue
                    done.add((name, limit))
                    colour = theme.ALARM_COLOURS[priority]
                    # NIBP rows carry limits of two codes: name them, on the side of the line
                    # away from the other code's (sys low below its line, dia high above).
                    label, opts = None, {}
                    if name == "nibp" and k == 0:
                        part = "sys" if Code.NIBP_SYS in rule.codes else "dia"
                        label = f"{part} {'<' if rule.direction == 'low' else '>'} {limit:g}"
                        anchor = (1, 0) if rule.direction == "low" else (1, 1)
                        opts = {"position": 0.995, "color": colour, "anchors": [anchor, anchor]}
                    line = pg.InfiniteLine(
                        pos=limit,
                        angle=0,
                        pen=_pen(colour, QtCore.Qt.PenStyle.DashLine),
                        movable=False,
                        label=label,
                        labelOpts=opts,
                    )
                    line.setZValue(-5)
                    row.plot.addItem(line)
                    row.limit_items.append(line)
                    if row.spec.bands and k == 0:
                        band = _band(limit, rule.direction, colour)
                        row.plot.addItem(band)
                        row.limit_items.append(band)

    def set_baseline(self, baseline: tuple[float, float] | None) -> None:
        """Faint dotted lines at the pre-dose baseline systolic and diastolic.

        The main window passes the baseline a few times a second; the same one again changes
        nothing (remaking the lines repainted every trend row each time).
        """
        if baseline == self._baseline:
            return
        self._baseline = baseline
        plot = self.rows["nibp"].plot
        for line in self.baseline_lines:
            plot.removeItem(line)
        self.baseline_lines = []
        if baseline is None:
            return
        # Labels left of the limit labels; sys above its line, dia below.
        for value, anchor in zip(baseline, ((1, 1), (1, 0)), strict=True):
            line = pg.InfiniteLine(
                pos=value,
                angle=0,
                pen=_pen(theme.TEXT_DIM, QtCore.Qt.PenStyle.DotLine),
                movable=False,
                label=f"baseline {value:.0f}",
                labelOpts={"position": 0.8, "color": theme.TEXT_DIM, "anchors": [anchor, anchor]},
            )
            line.setZValue(-6)
            plot.addItem(line)
            self.baseline_lines.append(line)

    # --- refresh ------------------------------------------------------------------------------

    def refresh(self, buffers: LiveBuffers, now: float | None = None) -> None:
        """Bring the plot up to date with ``buffers`` at monotonic time ``now`` (default: the
        newest point); does nothing when nothing changed."""
        origin = buffers.origin
        moved = origin != self._origin
        if moved:
            self._origin = origin
            self._seen.clear()
            self._n_markers = 0
            self._clear_events()
        if buffers.dose_time != self._dose:
            self._dose = buffers.dose_time
            label = "minutes from dose" if self._dose is not None else "minutes"
            self._x_label = label
            self.x_axis.setLabel(label, color=theme.TEXT_DIM, **{"font-size": f"{TICK_PX}px"})
        if origin is None:
            return
        for code, curve in self.curves.items():
            series = buffers.trends[code]
            if self._changed(code, series):
                row = ROW_OF[code]
                self._fit_y(row, series.v, self._seen.get(("n", code), 0))
                self._seen[("n", code)] = series.n
                curve.setData(buffers.minutes_from_dose(series.t), series.v)
                if self.rows[row].spec.on_data and series.n and self._show_lane(row, True):
                    self._place_time_axis()
                    self.lanes_changed.emit(len(self._shown_lanes))
        if self._changed("nibp", buffers.nibp):
            self._update_nibp(buffers)
        if len(buffers.markers) != self._n_markers:
            for marker in buffers.markers[self._n_markers :]:
                self._add_event(
                    buffers.minutes_from_dose(marker.t),
                    marker.kind,
                    marker.text,
                    marker.from_device,
                )
            self._n_markers = len(buffers.markers)
            self.stack_labels()
        if self._seen.get("scores", 0) != buffers.scores_version:
            self._seen["scores"] = buffers.scores_version
            self._update_scores(buffers)
        if self._changed("alarms", buffers.alarm_starts) or self._seen.pop("alarms-y", False):
            self._update_alarm_points(buffers)
        last = now if now is not None else _last_time(buffers)
        if last is not None:
            first = buffers.minutes_from_dose(buffers.session_start)
            self._follow(first, buffers.minutes_from_dose(last))

    def has_events_to_draw(self, buffers: LiveBuffers) -> bool:
        """Whether a marker, the dose or an alarm start arrived since the last refresh: the
        window redraws the trends at once for those, whatever the trends' own slower rate."""
        return (
            buffers.origin != self._origin
            or buffers.dose_time != self._dose
            or len(buffers.markers) != self._n_markers
            or self._seen.get("alarms") != buffers.alarm_starts.version
            or self._seen.get("scores", 0) != buffers.scores_version
        )

    def _changed(self, key: object, thing: Series) -> bool:
        if self._seen.get(key) == thing.version:
            return False
        self._seen[key] = thing.version
        return True

    def _fit_y(self, name: str, values: np.ndarray, seen: int) -> None:
        """Widen a row's range to the new values (never narrow it: the axis stays still)."""
        new = values[seen:]
        new = new[np.isfinite(new)]
        if not len(new):
            return
        row = self.rows[name]
        lo, hi = float(new.min()), float(new.max())
        span = row.y_hi - row.y_lo
        y_lo, y_hi = row.y_lo, row.y_hi
        if lo < y_lo:
            y_lo = lo - 0.05 * span
            if row.spec.y_floor is not None:
                y_lo = max(y_lo, row.spec.y_floor)
        if hi > y_hi:
            y_hi = hi + 0.05 * span
            if row.spec.y_ceiling is not None:
                y_hi = min(y_hi, row.spec.y_ceiling)
        if (y_lo, y_hi) != (row.y_lo, row.y_hi):
            row.y_lo, row.y_hi = y_lo, y_hi
            row.plot.setYRange(y_lo, y_hi, padding=0)
            self._seen["alarms-y"] = True

    def _update_nibp(self, buffers: LiveBuffers) -> None:
        nibp = buffers.nibp
        x = buffers.minutes_from_dose(nibp.t)
        sys_, dia, mean = nibp.column("sys"), nibp.column("dia"), nibp.column("mean")
        ok = np.isfinite(sys_) & np.isfinite(dia)
        self._fit_y("nibp", np.concatenate([sys_[ok], dia[ok]]), 0)
        self.nibp_sys.setData(x[ok], sys_[ok])
        self.nibp_dia.setData(x[ok], dia[ok])
        has_mean = np.isfinite(mean)
        self.nibp_mean.setData(x[has_mean], mean[has_mean])
        if ok.any():
            self.nibp_link.setData(
                np.repeat(x[ok], 2), np.column_stack([sys_[ok], dia[ok]]).ravel()
            )
        else:
            self.nibp_link.setData([], [])

    # --- the score lanes ----------------------------------------------------------------------

    def _make_lane(self, plot: pg.PlotItem, spec: _RowSpec) -> _Lane:
        """A score lane: points over thin steps, its title across the axis (a lane is too low
        for a rotated axis label), hidden until its first score."""
        steps = pg.PlotCurveItem(pen=_pen(spec.colour + "90"))
        points = pg.ScatterPlotItem(
            symbol="o", size=11, pen=pg.mkPen(theme.BACKGROUND), brush=pg.mkBrush(spec.colour)
        )
        points.setZValue(15)
        plot.addItem(steps)
        plot.addItem(points)
        title = pg.LabelItem(spec.title, color=spec.colour, size=f"{LANE_TITLE_PX}px")
        title.setParentItem(plot)
        title.anchor(itemPos=(0, 0.5), parentPos=(0, 0.5), offset=(0, 0))
        lane = _Lane(points, steps, title)
        self._set_lane_scale(
            spec.name, lane, MOAAS if spec.name == "moaas" else DISSOCIATION_RATING
        )
        return lane

    def _set_lane_scale(self, name: str, lane: _Lane, scale: Scale, top: float = 0.0) -> None:
        """The lane's title and y axis for ``scale`` (the CADSS: 0 to ``top`` or more)."""
        row = self.rows[name]
        axis = row.plot.getAxis("left")
        if scale.code in LANE_AXES:
            (y_lo, y_hi), numbered = LANE_AXES[scale.code]
            ticks = [(float(k), str(k)) for k in numbered]
            grid = [(float(k), "") for k in range(scale.maximum + 1) if k not in numbered]
            axis.setTicks([ticks, grid])
        else:  # a total: pyqtgraph's own ticks, the range widened to the highest score
            y_hi = max(CADSS_SPAN, 1.1 * top)
            y_lo = -0.05 * y_hi
            axis.setTicks(None)
        if lane.code is not scale.code:
            lane.code = scale.code
            lane.title.setText(LANE_TITLES[scale.code], color=row.spec.colour)
        if (y_lo, y_hi) != (row.y_lo, row.y_hi):
            row.y_lo, row.y_hi = y_lo, y_hi
            row.plot.setYRange(y_lo, y_hi, padding=0)
            self._seen["alarms-y"] = True

    def _update_scores(self, buffers: LiveBuffers) -> None:
        """Redraw the lanes from ``buffers.scores`` (called only when a score arrived)."""
        per_lane: dict[str, list] = {name: [] for name in self.lanes}
        for score in buffers.scores:
            per_lane[ROW_OF[score.code]].append(score)
        moved = False  #: a lane appeared or went: the time axis moves
        for name, scores in per_lane.items():
            lane = self.lanes[name]
            if not scores:
                lane.points.setData([], [])
                lane.steps.setData([], [])
                moved |= self._show_lane(name, False)
                continue
            x = buffers.minutes_from_dose(np.array([s.t for s in scores]))
            y = np.array([s.value for s in scores])
            if name == "dissociation":
                last = CADSS if scores[-1].code is Code.CADSS else DISSOCIATION_RATING
                self._set_lane_scale(name, lane, last, float(y.max()))
            lane.points.setData(x, y)
            lane.steps.setData(np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1])
            moved |= self._show_lane(name, True)
        if moved:
            self._place_time_axis()
            self.lanes_changed.emit(len(self._shown_lanes))

    def _show_lane(self, name: str, show: bool) -> bool:
        """Put a lane in the layout (under the rows above it) or take it out; whether that
        changed anything."""
        if show == (name in self._shown_lanes):
            return False
        row = self.rows[name]
        if show:
            index = list(self.rows).index(name)
            row.plot.show()
            self.ci.addItem(row.plot, row=index, col=0)
            self.ci.layout.setRowStretchFactor(index, row.spec.stretch)
            self._shown_lanes.add(name)
        else:
            self.ci.removeItem(row.plot)
            self._park(row.plot)
            self._shown_lanes.discard(name)
        return True

    def _park(self, plot: pg.PlotItem) -> None:
        """Keep a row that is out of the layout in the scene, hidden: an item with no parent
        and no scene is Python's to delete, and a garbage collection on another thread (a
        driver's) deleting a Qt item crashed the process."""
        self.scene().addItem(plot)
        plot.hide()

    def _place_time_axis(self) -> None:
        """Put the minutes (values and label) under the lowest row shown, none on the others."""
        shown = [
            row
            for name, row in self.rows.items()
            if not row.spec.joins or name in self._shown_lanes
        ]
        for row in self.rows.values():
            axis = row.plot.getAxis("bottom")
            lowest = row is shown[-1]
            axis.setStyle(showValues=lowest)
            if lowest:
                self.x_axis = axis
                axis.setLabel(self._x_label, color=theme.TEXT_DIM, **{"font-size": f"{TICK_PX}px"})
            else:
                axis.showLabel(False)

    def is_shown(self, name: str) -> bool:
        """Whether a row is on screen (rows that join with their first data may not be)."""
        return not self.rows[name].spec.joins or name in self._shown_lanes

    @property
    def lanes_shown(self) -> list[str]:
        """The score lanes on screen (for tests): "moaas", "dissociation"."""
        return [name for name in self.lanes if name in self._shown_lanes]

    def _update_alarm_points(self, buffers: LiveBuffers) -> None:
        starts = buffers.alarm_starts
        x = buffers.minutes_from_dose(starts.t)
        priorities, values = starts.column("priority"), starts.column("value")
        per_row: dict[str, list[dict]] = {name: [] for name in self.rows}
        for i, code in enumerate(buffers.alarm_start_codes):
            # An alarm on a code without a row here (breathing: EtCO2, the rate, apnoea) or on
            # none (technical) is a diamond at the top of the SpO2 row, not at its value there.
            try:
                row_name = ROW_OF.get(Code(code)) if code else None
            except ValueError:
                row_name = None
            name = row_name or "spo2"
            row = self.rows[name]
            y = values[i]
            if not math.isfinite(y) or row_name is None:
                y = row.y_hi - 0.04 * (row.y_hi - row.y_lo)
            colour = theme.ALARM_COLOURS[Priority(int(priorities[i]))]
            per_row[name].append(
                {"pos": (x[i], y), "brush": pg.mkBrush(colour), "pen": pg.mkPen(theme.BACKGROUND)}
            )
        for name, spots in per_row.items():
            self.rows[name].alarm_points.setData(spots)

    def _clear_events(self) -> None:
        measured = [row for row in self.rows.values() if not row.spec.joins]
        for _, lines in self.event_lines:
            for row, line in zip(measured, lines, strict=True):
                row.plot.removeItem(line)
        for plot, line in self.lane_event_lines:
            plot.removeItem(line)
        self.event_lines.clear()
        self.lane_event_lines.clear()
        self.dose_lines = []

    def _add_event(
        self, x: float, kind: SessionEventKind, text: str, from_device: bool = False
    ) -> None:
        dose = kind is SessionEventKind.DOSE
        colour = theme.DOSE if dose else theme.MARKER
        lines = []
        for i, row in enumerate(self.rows.values()):
            if row.spec.joins:  # the lanes' lines are theirs, unlabelled: not one of ``lines``
                line = _event_line(x, colour, dose)
                row.plot.addItem(line)
                self.lane_event_lines.append((row.plot, line))
                continue
            label = None
            if i == 0:
                label = "DOSE" if dose else (text or kind.value)
                if dose and from_device:
                    label = "DOSE (scenario)"
            line = _event_line(x, colour, dose, label)
            if label:  # a tight box: more levels of labels fit in the row
                line.label.textItem.document().setDocumentMargin(1)
                line.label.updateTextPos()
            row.plot.addItem(line)
            lines.append(line)
        self.event_lines.append((x, lines))
        if dose:
            self.dose_lines = lines

    @property
    def labelled(self) -> list[tuple[float, pg.InfiniteLine]]:
        """The labelled line (top row) of each marker, with its x."""
        return [(x, lines[0]) for x, lines in self.event_lines]

    def stack_labels(self) -> None:
        """Put the marker labels on levels so that none overprints another at the view's
        current scale (called when markers arrive, the time axis moves or the plot resizes)."""
        labelled = self.labelled
        if not labelled:
            return
        box = self.rows["spo2"].plot.getViewBox()
        width, height = box.width(), box.height()
        left, right = self._x_range or (0.0, X_STEP_MIN)
        if width <= 0 or height <= 0 or right <= left:
            return
        labels = [line.label for _, line in labelled]
        tall = max(label.boundingRect().height() for label in labels) + 1
        levels = stack_levels(
            [x for x, _ in labelled],
            [label.boundingRect().width() for label in labels],
            width / (right - left),
            max_levels=levels_that_fit(tall, height, top=LABEL_TOP),
        )
        for label, position in zip(
            labels, level_positions(levels, tall, height, top=LABEL_TOP), strict=True
        ):
            label.setPosition(position)

    def _follow(self, first: float, now: float) -> None:
        """Keep the whole session in view, moving the right edge in steps."""
        left = min(first, 0.0) if self._dose is not None else first
        left = math.floor(left)
        right = self._x_range[1] if self._x_range else X_STEP_MIN
        if now + X_HEADROOM_MIN > right or (self._x_range and left != self._x_range[0]):
            right = max(
                X_STEP_MIN * math.ceil((now + X_HEADROOM_MIN) / X_STEP_MIN), left + X_STEP_MIN
            )
            self.set_x_range(left, right)

    def set_x_range(self, left: float, right: float) -> None:
        if self._x_range == (left, right):
            return
        self._x_range = (left, right)
        self.rows["spo2"].plot.setXRange(left, right, padding=0)
        self.stack_labels()

    @property
    def x_range(self) -> tuple[float, float] | None:
        return self._x_range

    @property
    def x_label(self) -> str:
        return self.x_axis.labelText


def _event_line(x: float, colour: str, dose: bool, label: str | None = None) -> pg.InfiniteLine:
    """A marker's vertical line (the dose's solid), labelled on the top row only."""
    line = pg.InfiniteLine(
        pos=x,
        angle=90,
        pen=_pen(colour, QtCore.Qt.PenStyle.SolidLine if dose else QtCore.Qt.PenStyle.DashLine),
        movable=False,
        label=label,
        labelOpts={
            "position": 0.93,
            "color": colour,
            "anchors": [(0, 0.5), (0, 0.5)],
            "fill": pg.mkBrush(0, 0, 0, 200),
        },
    )
    line.setZValue(10)
    return line


def _band(limit: float, direction: str, colour: str) -> QtWidgets.QGraphicsRectItem:
    """A faint rectangle from ``limit`` outwards, far past any plausible value."""
    far = 1e4
    y0, y1 = (limit - far, limit) if direction == "low" else (limit, limit + far)
    band = QtWidgets.QGraphicsRectItem(QtCore.QRectF(-1e6, y0, 2e6, y1 - y0))
    fill = QtGui.QColor(colour)
    fill.setAlpha(26)
    band.setBrush(QtGui.QBrush(fill))
    band.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
    band.setZValue(-10)
    return band


def _last_time(buffers: LiveBuffers) -> float | None:
    times = [s.t[-1] for s in buffers.trends.values() if s.n]
    if buffers.nibp.n:
        times.append(buffers.nibp.t[-1])
    return max(times) if times else None
