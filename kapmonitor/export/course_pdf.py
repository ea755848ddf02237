"""The course report: a patient's sessions side by side, the charts across the course, the notes.

Landscape, A4 or US Letter: the table has a column per figure. The page set-up (margins,
fonts, footer with "page N of M") is the session report's (:mod:`kapmonitor.export.pdf`), so
the two reports look like one family in a chart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import BinaryIO

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape, letter
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table

from kapmonitor.export.pdf import (
    _BODY,
    _H2,
    _SMALL,
    _TITLE,
    MARGIN,
    TRACE,
    _box,
    _datetime,
    _grid,
    _numbered_canvas,
    _p,
    _version,
)
from kapmonitor.export.pdf_fonts import SANS, register_fonts
from kapmonitor.review.course import COLUMNS, Course, CourseSession, cells

PAPERS = {"a4": A4, "letter": letter}
DIASTOLIC = colors.HexColor("#c0504d")
#: One colour per session in the overlay, cycling; the newest is drawn last and darkest.
SESSION_COLOURS = [
    colors.HexColor(c) for c in ("#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
]


def write(course: Course, out: BinaryIO, *, paper: str = "a4") -> None:
    """Write the course report as PDF to the binary stream ``out``."""
    register_fonts()
    page = landscape(PAPERS[paper])
    footer = f"kapmonitor {_version()} · generated {_datetime(time.time())} · course"
    doc = SimpleDocTemplate(
        out,
        pagesize=page,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=f"KAP treatment course, {course.patient}",
        author="kapmonitor",
        subject="Ketamine-assisted psychotherapy: blood pressure response across sessions",
        creator=f"kapmonitor {_version()}",
    )
    width = page[0] - 2 * MARGIN
    n = len(course.sessions)
    story: list = [
        Paragraph("KAP treatment course", _TITLE),
        _p(f"Patient {course.patient} · {n} session{'s' if n != 1 else ''}, oldest first", _BODY),
        Spacer(1, 2 * mm),
    ]
    for note in course.notes:
        story += [_box(note, width), Spacer(1, 1.5 * mm)]
    story += [Paragraph("Sessions", _H2), _table(course.sessions, width)]
    story.append(
        _p(
            "Empty cell: not known or not recorded (never 0). * interrupted session. "
            "Rise: mmHg above the pre-dose baseline, after the dose.",
            _BODY,
        )
    )
    story.append(Paragraph("Charts", _H2))
    charts = _charts(course.sessions, width)
    story.append(KeepTogether(charts))
    doc.build(story, canvasmaker=_numbered_canvas(footer, page[0]))


def _table(sessions: Sequence[CourseSession], width: float) -> Table:
    rows = [[_p(c, _SMALL) for c, _ in COLUMNS]] + [cells(s) for s in sessions]
    weights = [3, 10, 7, 5, 4, 6, 6, 6, 4, 5, 4, 6, 5, 5, 5, 5, 6]
    total = sum(weights)
    table = Table(rows, colWidths=[width * w / total for w in weights], repeatRows=1)
    return _grid(table)


def _plot(
    width: float,
    height: float,
    title: str,
    series: list[list[tuple[float, float]]],
    styles: list[tuple[colors.Color, bool]],
    x_label: str,
    y_label: str,
) -> Drawing:
    """A line or scatter plot (reportlab's own chart widget, with its axes and ticks)."""
    d = Drawing(width, height)
    d.add(String(4, height - 10, title, fontName=SANS, fontSize=8))
    present = [s for s in series if s]
    if not present:
        d.add(String(width / 2, height / 2, "nothing recorded", fontName=SANS, fontSize=8,
                     textAnchor="middle"))  # fmt: skip
        return d
    plot = LinePlot()
    plot.x, plot.y = 34, 26
    plot.width, plot.height = int(width - 44), int(height - 46)
    plot.data = [s if s else [(0.0, 0.0)] for s in series]
    for i, (colour, joined) in enumerate(styles):
        line = plot.lines[i]
        line.strokeColor = colour if series[i] else colors.transparent
        line.strokeWidth = 1 if joined else 0.01
        if not joined:
            line.symbol = makeMarker("FilledCircle", size=4, fillColor=colour)
            line.strokeColor = colors.transparent
    if not all(joined for _, joined in styles):  # dots: room so none sits on an axis
        xs = [x for s in present for x, _ in s]
        ys = [y for s in present for _, y in s]
        for axis, values in ((plot.xValueAxis, xs), (plot.yValueAxis, ys)):
            pad = max(1.0, (max(values) - min(values)) * 0.1)
            axis.valueMin, axis.valueMax = min(values) - pad, max(values) + pad
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName = SANS
        axis.labels.fontSize = 7
    d.add(plot)
    d.add(String(plot.x + plot.width / 2, 4, x_label, fontName=SANS, fontSize=7,
                 textAnchor="middle"))  # fmt: skip
    d.add(String(plot.x + 4, plot.y + plot.height - 2, y_label, fontName=SANS, fontSize=7))
    return d


def _charts(sessions: Sequence[CourseSession], width: float) -> list:
    """Dose against rise, time to recover, and the BP courses overlaid from the dose."""
    w, h = width / 3 - 4, 62 * mm
    rise = _plot(
        w, h, "Dose against peak rise (systolic blue, diastolic red)",
        [_pairs_of(sessions, "dose", "rise_systolic"),
         _pairs_of(sessions, "dose", "rise_diastolic")],
        [(TRACE, False), (DIASTOLIC, False)],
        f"dose ({_unit(sessions)})", "mmHg",
    )  # fmt: skip
    recovery = _plot(
        w, h, "Time to recover, by session",
        [[(float(i + 1), s.recovery_minutes) for i, s in enumerate(sessions)
          if s.recovery_minutes is not None]],
        [(TRACE, True)],
        "session (oldest = 1)", "min",
    )  # fmt: skip
    overlay_series = [[(m, sys) for m, sys, _ in s.bp_course] for s in sessions]
    last = len(SESSION_COLOURS) - 1
    n = len(sessions)
    colours = [SESSION_COLOURS[max(0, last - (n - 1 - i))] for i in range(n)]
    overlay = _plot(
        w, h, "Systolic BP from the dose, each session (newest darkest)",
        overlay_series, [(c, True) for c in colours],
        "minutes from dose", "mmHg",
    )  # fmt: skip
    return [Table([[rise, recovery, overlay]], colWidths=[width / 3] * 3)]


def _pairs_of(sessions: Sequence[CourseSession], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) of each session that has both: a session without a dose is not placed at 0."""
    pairs = ((getattr(s, x), getattr(s, y)) for s in sessions)
    return [(a, b) for a, b in pairs if a is not None and b is not None]


def _unit(sessions: Sequence[CourseSession]) -> str:
    units = {s.dose_unit for s in sessions if s.dose is not None and s.dose_unit}
    return " or ".join(sorted(units)) or "unit not given"
