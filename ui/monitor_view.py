"""The live view of the dosing-room screen: trends, pleth and the big numbers.

Layout (landscape, 1920×1080 or what the main window leaves of it): trends top left, the pleth
sweep under them, under it breathing (the capnogram, the respiratory rate and EtCO2 tiles, or
"Breathing not monitored" when no device sends breathing: :mod:`ui.breathing_panel`), the tiles
in a column on the right: SpO2 (with signal quality), pulse rate, NIBP (age, schedule, change
from baseline), and a small row with the nurse's scores (the last MOAA/S and dissociation score
and when the next is due: :mod:`ui.score_tile`), the perfusion index and, once an ECG sends it,
the heart rate. The scores share the small row because the big numbers above leave no height
for another row at 1080p.

The view never redraws by itself: the main window's QTimer calls :meth:`MonitorView.refresh`
(at most 25 Hz) after draining the hub into the :class:`~kapmonitor.live.LiveBuffers`; the
trends, which show the whole session in minutes, only every second (or at once for a marker,
the dose or an alarm start).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtWidgets

from alarms.profile import Profile
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Stamp
from kapmonitor.core.staleness import age
from kapmonitor.live import LiveBuffers, signal_quality
from ui import theme
from ui.breathing_panel import BreathingPanel
from ui.pleth import PlethSweep
from ui.score_tile import ScoreTile
from ui.tiles import NibpTile, NumericTile, baseline_pair
from ui.trends import TrendPlot

#: The trends' share of the left column's height (pleth 2, breathing 3)...
TRENDS_STRETCH = 6
#: ... and how much more for each score lane shown.
LANE_STRETCH = 2
#: The schedule text for the NIBP tile at the session's now: ("next in 3 min", due_now).
ScheduleProvider = Callable[[Stamp], tuple[str, bool]]


class MonitorView(QtWidgets.QWidget):
    """Trends (top left), pleth and breathing (bottom left), tiles (right)."""

    def __init__(
        self,
        profile: Profile | None = None,
        *,
        schedule: ScheduleProvider | None = None,
        score_key: str = "M",
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.trends = TrendPlot()
        self.pleth = PlethSweep()
        self.breathing = BreathingPanel()
        self.spo2 = NumericTile("SpO2", "%", theme.SPO2, value_px=127)
        self.pulse = NumericTile("PR", "/min", theme.PULSE, value_px=127)
        self.nibp = NibpTile(value_px=126)
        self.scores = ScoreTile(score_key)
        self.pi = NumericTile("PI", "%", theme.PERFUSION, value_px=52, decimals=1, label_px=22)
        self.hr = NumericTile("HR", "/min", theme.HEART_RATE, value_px=52, label_px=22)
        self.hr.hide()  # until an ECG sends a heart rate
        #: Called on each refresh for the NIBP tile's "next in …"/"DUE NOW", if set.
        self.schedule_provider = schedule
        self.numeric_tiles: dict[Code, NumericTile] = {
            Code.SPO2: self.spo2,
            Code.PULSE_RATE: self.pulse,
            Code.PERFUSION: self.pi,
            Code.HEART_RATE: self.hr,
        }

        left = QtWidgets.QVBoxLayout()
        left.setSpacing(6)
        left.addWidget(self.trends, TRENDS_STRETCH)
        left.addWidget(self.pleth, 2)
        left.addWidget(self.breathing, 3)
        right = QtWidgets.QVBoxLayout()
        right.setSpacing(6)
        right.addWidget(self.spo2, 30)
        right.addWidget(self.pulse, 30)
        right.addWidget(self.nibp, 34)
        small = QtWidgets.QHBoxLayout()
        small.setSpacing(8)
        small.addWidget(self.scores, 3)
        small.addWidget(self.pi, 1)
        small.addWidget(self.hr, 1)
        right.addLayout(small, 16)
        self._left = left
        self.trends.lanes_changed.connect(self._make_room_for_lanes)
        columns = QtWidgets.QHBoxLayout(self)
        columns.setContentsMargins(4, 4, 4, 4)
        columns.setSpacing(10)
        columns.addLayout(left, 63)
        columns.addLayout(right, 37)
        self.set_profile(profile)

    def _make_room_for_lanes(self, lanes: int) -> None:
        """Score lanes take their height from the pleth and breathing below, not from the
        vital signs' rows (squeezed, their axis titles ran into each other at 1080p)."""
        self._left.setStretchFactor(self.trends, TRENDS_STRETCH + LANE_STRETCH * lanes)

    # --- pass-throughs for the main window ----------------------------------------------------

    def set_profile(self, profile: Profile | None) -> None:
        """Show the profile's limits on the trends and the tiles."""
        self.trends.set_profile(profile)
        if profile is None:
            for tile in (*self.numeric_tiles.values(), self.nibp):
                tile.set_limits("")
            self.breathing.set_limits("", "")
            self.nibp.set_rise_rule(None)
            return
        self.spo2.set_limits(_limit_text(profile, (Code.SPO2,)))
        self.pulse.set_limits(_limit_text(profile, (Code.PULSE_RATE,)))
        self.hr.set_limits(_limit_text(profile, (Code.HEART_RATE,)))
        self.nibp.set_limits(_limit_text(profile, (Code.NIBP_SYS, Code.NIBP_DIA)))
        self.breathing.set_limits(
            # (the rate's rules cover the airway rate too)
            _limit_text(profile, (Code.RESP_RATE,), compact=True),
            _limit_text(profile, (Code.CO2_ET,), compact=True),
        )
        rise = profile.baseline_rise
        self.nibp.set_rise_rule(None if rise is None else (rise.systolic, rise.diastolic))

    def set_baseline(
        self, systolic: float | tuple[float, float] | None = None, diastolic: float | None = None
    ) -> None:
        """The pre-dose NIBP baseline: ``set_baseline(124, 78)``, ``set_baseline((124, 78))``
        or ``set_baseline(None)``."""
        baseline = baseline_pair(systolic, diastolic)
        self.nibp.set_baseline(baseline)
        self.trends.set_baseline(baseline)

    def set_schedule(self, next_due_text: str, due_now: bool) -> None:
        self.nibp.set_schedule(next_due_text, due_now)

    # --- the frame ----------------------------------------------------------------------------

    def refresh(
        self, buffers: LiveBuffers, now: Stamp, *, trends: bool = True, numbers: bool = True
    ) -> None:
        """Update everything from ``buffers`` as of the session's ``now``; ``trends=False``
        leaves the trends as they are and ``numbers=False`` the tiles (the main window redraws
        them at slower rates: only the waves move at the frame rate).

        Everything the view shows of time is an interval (minutes from the dose, ages: grey,
        blank, "40 s ago"), measured on ``now.mono``: a wall-clock step moves nothing.
        """
        if trends:
            self.trends.refresh(buffers, now.mono)
        self.pleth.refresh(buffers.first_pleth(), now)
        self.breathing.refresh(buffers, now, numbers=numbers)
        if numbers:
            self._refresh_numbers(buffers, now)

    def _refresh_numbers(self, buffers: LiveBuffers, now: Stamp) -> None:
        """The tiles: values, their ages and flags, signal quality, NIBP and its schedule."""
        for code, tile in self.numeric_tiles.items():
            latest = buffers.latest.get(code)
            if latest is None:
                tile.set_value(None)
                continue
            if tile.isHidden():
                tile.show()
            tile.set_value(latest.value, latest.flags, latest.age(now))
        spo2 = buffers.latest.get(Code.SPO2)
        if spo2 is None:
            self.spo2.set_quality(None)
        else:
            pi = buffers.latest.get(Code.PERFUSION)
            level, word = signal_quality(spo2.flags, None if pi is None else pi.value)
            self.spo2.set_quality(level, f"signal {word}")
        reading = buffers.latest_nibp
        if reading is None:
            self.nibp.set_reading(None, None)
        else:
            valid = buffers.last_valid_nibp
            last_valid = None
            if valid is not None and valid is not reading:
                last_valid = (valid.systolic, valid.diastolic, age(valid.stamp, now))
            self.nibp.set_reading(
                reading.systolic,
                reading.diastolic,
                reading.mean,
                reading.flags,
                age(reading.stamp, now),
                last_valid=last_valid,
            )
        if self.schedule_provider is not None:
            self.set_schedule(*self.schedule_provider(now))


def _limit_text(profile: Profile, codes: tuple[Code, ...], *, compact: bool = False) -> str:
    """The first (least severe) level of each limit on ``codes``: "alarm < 90", "alarm < 50 or
    > 120", "sys > 160"; ``compact`` writes a low and a high as "alarm 8–30" (a narrow tile)."""
    low = high = None
    parts = []
    for rule in profile.limits:
        if not set(rule.codes) & set(codes):
            continue
        limit = rule.levels[0][1]
        if len(codes) > 1:  # NIBP: name the part
            part = "sys" if Code.NIBP_SYS in rule.codes else "dia"
            parts.append(f"{part} {'<' if rule.direction == 'low' else '>'} {limit:g}")
        elif rule.direction == "low":
            low = limit
        else:
            high = limit
    if parts:
        return "  ".join(parts)
    if low is not None and high is not None:
        return f"alarm {low:g}–{high:g}" if compact else f"alarm < {low:g} or > {high:g}"
    if low is not None:
        return f"alarm < {low:g}"
    if high is not None:
        return f"alarm > {high:g}"
    return ""
