"""PDF export: the session report a clinician files, prints or sends with the REMS form.

Drawn with reportlab (platypus for the flow of pages, reportlab.graphics for the trends), the
one export that needs a library beyond numpy; it is imported only when a PDF is written.
Content, in order:

- the header: patient (the pseudonym when de-identified), clinician and operator (left out when
  de-identified), drug, route and dose, start, dose (T0) and end, status, session id and uid,
  devices. An interrupted or still-running session says so in a box under the header;
- trends of SpO2, pulse/heart rate, respiratory rate and EtCO2 (where recorded) and NIBP
  (systolic ▼, diastolic ▲, mean ○) over the whole session on the dose-relative minute axis
  (minutes from the start when no dose was marked),
  with the least severe limit of each rule dashed, the events as numbered lines (the numbers of
  the events table) and alarm starts as coloured ticks. A series is decimated to its minimum and
  maximum per pixel column, so a 2-hour session draws ~1,000 points per trace rather than
  7,200; two samples further apart than :data:`~kapmonitor.review.summary.HOLD_MAX_S` (or a
  missing value) leave a gap, never a line across it. With sedation or dissociation scores, a
  lane above the NIBP plot prints each score as its number on the same axis (sedated and
  dissociated ones in bold colour); the scores' events are not drawn as event lines, which
  every 15 minutes would hide the trends;
- the summary (:func:`kapmonitor.review.summary.summarise`) and, in its own box, the REMS
  Patient Monitoring Form fields (:func:`kapmonitor.review.rems.rems_form`); the scores, one row
  per time scored (MOAA/S, dissociation, who scored), when there are any;
- the events (every event but the NIBP schedule's bookkeeping), an amended one shown with its
  correction; the alarm log: each condition with its start, end and acknowledgment (with the
  operator), then the pauses, limit changes and baseline lines.

Names and notes print as typed in any script an installed font has: each character in the
report's typeface or, where that lacks it (Chinese, Japanese, Korean), in an embedded fallback
font (:mod:`kapmonitor.export.pdf_fonts`).

Every page carries "kapmonitor <version>", the generation time and "page N of M". Times are the
local time of the machine writing the report, with its time zone in the header.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import BinaryIO

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from alarms.model import LogEntry, LogEvent, Priority
from alarms.profile import Profile
from kapmonitor.core.assessment import SOURCE as SCORE_SOURCE
from kapmonitor.core.codes import Code
from kapmonitor.export import patient_id, person
from kapmonitor.export.pdf_fonts import (
    SANS,
    SANS_BOLD,
    SANS_ITALIC,
    markup,
    register_fonts,
    runs,
)
from kapmonitor.record.session import EventRecord, SessionRecord, SessionStatus
from kapmonitor.review.rems import rems_form
from kapmonitor.review.scores import ScoreSummary, by_instant, is_score_event
from kapmonitor.review.summary import HOLD_MAX_S, minutes_text, summarise, usable

PAGE = A4
MARGIN = 14 * mm

#: The score lane's row labels, by scale key: short enough for the plots' left margin.
LANE_LABELS = {"moaas": "MOAA/S", "rating": "Dissoc.", "cadss": "CADSS"}

#: Event kinds left out of the events table: the NIBP schedule's reminders are bookkeeping.
QUIET_KINDS = frozenset({"nibp-scheduled"})

INK = colors.HexColor("#202020")
GREY = colors.HexColor("#808080")
LIGHT = colors.HexColor("#d8d8d8")
TRACE = colors.HexColor("#1f4e9e")
LIMIT = colors.HexColor("#c77c00")
DOSE = colors.HexColor("#000000")
EVENT = colors.HexColor("#7a7a7a")
PRIORITY_COLOURS = {
    Priority.HIGH: colors.HexColor("#d01c1c"),
    Priority.MEDIUM: colors.HexColor("#e0a800"),
    Priority.LOW: colors.HexColor("#1aa3b8"),
}

#: Priority as text colour: the signal colours, yellow darkened to be readable on paper.
PRIORITY_TEXT = PRIORITY_COLOURS | {Priority.MEDIUM: colors.HexColor("#a87800")}

_BODY = ParagraphStyle("body", fontName=SANS, fontSize=8, leading=10, alignment=TA_LEFT)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=7, leading=8.5)
_TITLE = ParagraphStyle("title", parent=_BODY, fontName=SANS_BOLD, fontSize=14, leading=17)
_H2 = ParagraphStyle("h2", parent=_BODY, fontName=SANS_BOLD, fontSize=10, leading=13, spaceBefore=6)
_WARN = ParagraphStyle("warn", parent=_BODY, fontName=SANS_BOLD, textColor=colors.white)


def write(record: SessionRecord, out: BinaryIO, *, deidentify: bool = False) -> None:
    """Write the session report as PDF to the binary stream ``out``."""
    register_fonts()
    summary = summarise(record)  # judged by the profile the session ran with
    profile = summary.profile
    assert profile is not None
    form = rems_form(record, profile, summary)
    info = record.info
    # De-identified: the session number and the day of the export (most often the day of the
    # session) are left out too.
    generated = time.strftime("%Y") if deidentify else _datetime(time.time())
    session = info.patient if deidentify else f"session {info.id}"
    footer = f"kapmonitor {_version()} · generated {generated} · {session}"
    doc = SimpleDocTemplate(
        out,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=f"KAP session report, {session}",
        invariant=deidentify,  # no creation date in the file's metadata
        author="kapmonitor",
        subject="Ketamine-assisted psychotherapy session: vital signs",
        creator=f"kapmonitor {_version()}",
    )
    width = PAGE[0] - 2 * MARGIN
    story: list = [Paragraph("KAP session report", _TITLE), Spacer(1, 2 * mm)]
    story.append(_header(record, deidentify, width))
    warning = _status_warning(record)
    if warning:
        story += [Spacer(1, 2 * mm), _box(warning, width)]
    scores = summary.scores
    story += [Paragraph("Trends", _H2), *_trends(record, profile, width, scores)]
    story += [
        KeepTogether([Paragraph("Summary", _H2), _pairs(summary.rows(), width)]),
        Spacer(1, 3 * mm),
        KeepTogether(_rems_box(form.rows(names=not deidentify), width)),
    ]
    if scores is not None and scores.scored:
        story.append(
            KeepTogether(
                [
                    Paragraph("Sedation and dissociation scores", _H2),
                    _scores_table(record, scores, deidentify, width),
                ]
            )
        )
    story += [Paragraph("Events", _H2), _events_table(record, deidentify, width)]
    story += [Paragraph("Alarm log", _H2), *_alarm_tables(record, deidentify, width)]
    doc.build(story, canvasmaker=_numbered_canvas(footer))


# --- text helpers -----------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("kapmonitor")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _datetime(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(wall))


def _clock_s(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


def _p(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    """A paragraph of plain text (user text: escaped, each character in a font that has it)."""
    return Paragraph(markup(text), style)


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "---"
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _grid(table: Table, *, header: bool = True) -> Table:
    style = TableStyle(
        [
            ("FONT", (0, 0), (-1, -1), SANS, 7.5),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, LIGHT),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ]
    )
    if header:
        style.add("FONT", (0, 0), (-1, 0), SANS_BOLD, 7.5)
        style.add("LINEBELOW", (0, 0), (-1, 0), 0.6, INK)
    table.setStyle(style)
    return table


# --- header -----------------------------------------------------------------------------------


def _header(record: SessionRecord, deidentify: bool, width: float) -> Table:
    info = record.info
    dose = record.dose_stamp
    patient = patient_id(info, deidentify) + (" (de-identified)" if deidentify else "")
    left_out = "(left out: de-identified)"
    drug = ", ".join(
        x
        for x in (
            info.drug.value if info.drug else "",
            info.route.value if info.route else "",
            f"{_num(info.dose)} {info.dose_unit}".strip() if info.dose is not None else "",
        )
        if x
    )
    devices = []
    for d in record.devices:
        if d.source == SCORE_SOURCE:
            continue  # the scores' source: a nurse, not a device
        serial = f", serial {d.serial_number}" if d.serial_number and not deidentify else ""
        devices.append(f"{d.source}{serial}")
    pairs = [
        ("Patient", patient),
        ("Clinician", person(info.clinician, deidentify) or (left_out if deidentify else "-")),
        ("Operator", person(info.operator, deidentify) or (left_out if deidentify else "-")),
        ("Drug, route, dose", drug or "not recorded"),
        (
            "Started",
            f"{_datetime(info.started)} ({time.strftime('%Z', time.localtime(info.started))})",
        ),
        (
            "Dose given (T0)",
            _datetime(dose.wall) if dose else "no dose marked: times are minutes from the start",
        ),
        ("Ended", _datetime(info.ended) if info.ended is not None else "not ended"),
        ("Status", info.status.value),
        ("Session", f"uid {info.uid}" if deidentify else f"{info.id}  (uid {info.uid})"),
        ("Devices", "; ".join(devices) or "none recorded"),
    ]
    rows = []
    for i in range(0, len(pairs), 2):
        row = []
        for label, value in pairs[i : i + 2]:
            row += [label, _p(value)]
        rows.append(row + [""] * (4 - len(row)))
    table = Table(rows, colWidths=[0.15 * width, 0.35 * width, 0.15 * width, 0.35 * width])
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), SANS, 8),
                ("FONT", (0, 0), (0, -1), SANS_BOLD, 8),
                ("FONT", (2, 0), (2, -1), SANS_BOLD, 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _status_warning(record: SessionRecord) -> str | None:
    info = record.info
    if info.status is SessionStatus.INTERRUPTED:
        end = f" at {_datetime(info.ended)}" if info.ended is not None else ""
        return (
            f"INTERRUPTED: the recording stopped{end} without the session being ended; nothing "
            "after that time was recorded, and no discharge check was made."
        )
    if info.status is SessionStatus.STOPPED_BY_SYSTEM:
        end = f" at {_datetime(info.ended)}" if info.ended is not None else ""
        return (
            f"STOPPED BY THE SYSTEM: the recording was stopped{end} by a shutdown, logout or "
            "Ctrl+C, not ended by the nurse; no discharge check was made."
        )
    if info.status is SessionStatus.ACTIVE:
        return "The session was still being recorded when this report was made: it is partial."
    return None


def _box(text: str, width: float) -> Table:
    table = Table([[_p(text, _WARN)]], colWidths=[width])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), PRIORITY_COLOURS[Priority.HIGH]),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


def _pairs(rows: Sequence[tuple[str, str]], width: float) -> Table:
    table = Table(
        [[_p(label, _SMALL), _p(value, _SMALL)] for label, value in rows],
        colWidths=[0.36 * width, 0.64 * width],
    )
    return _grid(table, header=False)


def _rems_box(rows: Sequence[tuple[str, str]], width: float) -> list:
    title = Paragraph(
        "<b>REMS Patient Monitoring Form</b> (esketamine): fields from this session", _BODY
    )
    body = [[title, ""]] + [[_p(label, _SMALL), _p(value, _SMALL)] for label, value in rows]
    table = Table(body, colWidths=[0.36 * width, 0.64 * width])
    table.setStyle(
        TableStyle(
            [
                ("SPAN", (0, 0), (1, 0)),
                ("BOX", (0, 0), (-1, -1), 1.0, INK),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, LIGHT),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return [table]


# --- trends -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """The shared time axis: minutes from the origin (the dose, or the start) to pixels."""

    origin: float  #: wall clock of minute 0
    lo: float  #: minutes
    hi: float
    left: float  #: pixels
    right: float

    def x(self, minutes: float) -> float:
        return self.left + (minutes - self.lo) / (self.hi - self.lo) * (self.right - self.left)

    def xs(self, minutes: np.ndarray) -> np.ndarray:
        """:meth:`x` of every element."""
        return self.left + (minutes - self.lo) / (self.hi - self.lo) * (self.right - self.left)


def _time_axis(record: SessionRecord, width: float) -> _Axis:
    dose = record.dose_stamp
    origin = dose.wall if dose is not None else record.info.started
    walls = [record.info.started]
    if record.info.ended is not None:
        walls.append(record.info.ended)
    for items in (record.numerics, record.nibp, record.events):
        if items:
            walls += [items[0].stamp.wall, items[-1].stamp.wall]
    lo = (min(walls) - origin) / 60.0
    hi = max((max(walls) - origin) / 60.0, lo + 1.0)
    return _Axis(origin, lo, hi, 34.0, width - 6.0)


def _trends(
    record: SessionRecord, profile: Profile, width: float, scores: ScoreSummary | None = None
) -> list:
    axis = _time_axis(record, width)
    events = _shown_events(record)
    alarm_starts = [
        e for e in record.alarms if e.event is LogEvent.ACTIVE and e.code and e.priority
    ]
    unit = "minutes from the dose" if record.dose_stamp else "minutes from the start"
    plots = [
        ("SpO2 %", (Code.SPO2,), (80.0, 102.0), 5.0),
        ("Pulse rate / heart rate, /min", (Code.PULSE_RATE, Code.HEART_RATE), (40.0, 140.0), 20.0),
    ]
    recorded = {n.code for n in record.numerics}
    rates = (Code.RESP_RATE, Code.AWAY_RESP_RATE)
    if recorded & set(rates):  # breathing, where a device gave it (issue 17)
        plots.append(("Respiratory rate, /min", rates, (0.0, 30.0), 5.0))
    if Code.CO2_ET in recorded:
        plots.append(("EtCO2, mmHg", (Code.CO2_ET,), (20.0, 60.0), 10.0))
    out = []
    for i, (title, codes, span, step) in enumerate(plots):
        out.append(
            _numeric_plot(
                record, profile, axis, title, codes, span, step, events, alarm_starts,
                numbers=i == 0, width=width,
            )
        )  # fmt: skip
    if scores is not None and scores.scored:
        out.append(_score_lane(scores, axis, events, width))
    out.append(_nibp_plot(record, profile, axis, events, alarm_starts, unit, width))
    return out


def _shown_events(record: SessionRecord) -> list[tuple[int, EventRecord]]:
    """The events drawn on the trends, with their numbers in the events table: those in force
    (an amended event is drawn where its correction puts it), device states and scores (their
    own lane) left out."""
    amended = {e.amends for e in record.events if e.amends is not None}
    return [
        (n, e)
        for n, e in _numbered_events(record)
        if e.id not in amended and e.kind != "device-state" and not is_score_event(e.kind, e.text)
    ]


def _numbered_events(record: SessionRecord) -> list[tuple[int, EventRecord]]:
    shown = [e for e in record.events if e.kind not in QUIET_KINDS]
    return list(enumerate(shown, 1))


def _frame(
    d: Drawing, axis: _Axis, bottom: float, top: float, lo: float, hi: float, step: float,
    title: str, *, labels: str | None, title_y: float | None = None,
) -> None:  # fmt: skip
    """Plot frame, grid, y ticks, x ticks (labelled when ``labels`` names the axis)."""
    frame = Rect(axis.left, bottom, axis.right - axis.left, top - bottom)
    frame.fillColor, frame.strokeColor, frame.strokeWidth = None, GREY, 0.5
    d.add(frame)
    y = math.ceil(lo / step) * step
    while y <= hi + 1e-9:
        py = bottom + (y - lo) / (hi - lo) * (top - bottom)
        d.add(Line(axis.left, py, axis.right, py, strokeColor=LIGHT, strokeWidth=0.3))
        d.add(String(axis.left - 3, py - 2.5, _num(y), fontName=SANS, fontSize=6.5,
                     fillColor=INK, textAnchor="end"))  # fmt: skip
        y += step
    span = axis.hi - axis.lo
    tick = next((s for s in (5, 10, 15, 30, 60, 120, 240) if span / s <= 12), 480)
    m = math.ceil(axis.lo / tick) * tick
    while m <= axis.hi + 1e-9:
        px = axis.x(m)
        d.add(Line(px, bottom, px, top, strokeColor=LIGHT, strokeWidth=0.3))
        if labels is not None:
            d.add(String(px, bottom - 8, f"{m:g}", fontName=SANS, fontSize=6.5,
                         fillColor=INK, textAnchor="middle"))  # fmt: skip
        m += tick
    if labels is not None:
        d.add(String((axis.left + axis.right) / 2, bottom - 16, labels, fontName=SANS,
                     fontSize=7, fillColor=INK, textAnchor="middle"))  # fmt: skip
    title_y = top + 2.5 if title_y is None else title_y
    d.add(String(axis.left + 3, title_y, title, fontName=SANS_BOLD, fontSize=7.5,
                 fillColor=INK))  # fmt: skip


def _marks(
    d: Drawing, axis: _Axis, bottom: float, top: float,
    events: list[tuple[int, EventRecord]], alarm_starts: list[LogEntry],
    codes: tuple[Code, ...], *, numbers: bool,
) -> None:  # fmt: skip
    """Event lines (the dose solid, others dotted), alarm-start ticks of the plot's codes."""
    labelled = -math.inf  # the x of the last number drawn: numbers never overprint
    t0 = next((e.stamp for _, e in events if e.kind == "dose"), None)
    for n, e in events:
        minutes = (e.stamp.wall - axis.origin) / 60.0
        if not axis.lo <= minutes <= axis.hi:
            continue
        px = axis.x(minutes)
        is_dose = e.kind == "dose" and e.stamp == t0
        line = Line(px, bottom, px, top, strokeColor=DOSE if is_dose else EVENT,
                    strokeWidth=0.9 if is_dose else 0.4)  # fmt: skip
        if not is_dose:
            line.strokeDashArray = [1, 1.5]
        d.add(line)
        label = "T0" if is_dose else str(n)
        if numbers and (is_dose or px - labelled >= 4 + 3 * len(label)):
            d.add(String(px, top + 2.5, label, fontName=SANS,
                         fontSize=5.5, fillColor=INK, textAnchor="middle"))  # fmt: skip
            labelled = px
    names = {c.value for c in codes}
    for a in alarm_starts:
        if a.code not in names or a.priority is None:
            continue
        px = axis.x((a.stamp.wall - axis.origin) / 60.0)
        d.add(Polygon([px - 2.2, top, px + 2.2, top, px, top - 4],
                      fillColor=PRIORITY_COLOURS[a.priority], strokeColor=None))  # fmt: skip


def _limits(
    d: Drawing, profile: Profile, codes: tuple[Code, ...], bottom: float, top: float,
    lo: float, hi: float, axis: _Axis,
) -> None:  # fmt: skip
    seen = set()
    for rule in profile.limits:
        if not set(rule.codes) & set(codes):
            continue
        level = rule.levels[0][1]
        if level in seen or not lo < level < hi:
            continue
        seen.add(level)
        py = bottom + (level - lo) / (hi - lo) * (top - bottom)
        d.add(Line(axis.left, py, axis.right, py, strokeColor=LIMIT, strokeWidth=0.5,
                   strokeDashArray=[3, 2]))  # fmt: skip


def _range(
    values: list[np.ndarray], default: tuple[float, float], step: float
) -> tuple[float, float]:
    """The default y range, widened to whole steps around any value outside it."""
    lo, hi = default
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if finite:
        lo = min(lo, math.floor(min(float(v.min()) for v in finite) / step) * step)
        hi = max(hi, math.ceil(max(float(v.max()) for v in finite) / step) * step)
    return lo, hi


def _numeric_plot(
    record: SessionRecord, profile: Profile, axis: _Axis, title: str, codes: tuple[Code, ...],
    span: tuple[float, float], step: float, events: list[tuple[int, EventRecord]],
    alarm_starts: list[LogEntry], *, numbers: bool, width: float,
) -> Drawing:  # fmt: skip
    # The first plot carries the event numbers above its frame, its title above them.
    height, bottom, top = (90.0 if numbers else 82.0), 6.0, 70.0
    series: dict[tuple[str, Code], tuple[list[float], list[float]]] = {}
    for n in record.numerics:
        if n.code in codes:
            times, measured = series.setdefault((n.source, n.code), ([], []))
            times.append(n.stamp.wall)
            measured.append(math.nan if n.value is None else n.value)
    arrays = [(np.asarray(w), np.asarray(v, dtype=float)) for w, v in series.values()]
    lo, hi = _range([v for _, v in arrays], span, step)
    d = Drawing(width, height)
    _frame(d, axis, bottom, top, lo, hi, step, title, labels=None,
           title_y=top + 10.5 if numbers else None)  # fmt: skip
    _limits(d, profile, codes, bottom, top, lo, hi, axis)
    for walls, values in arrays:
        minutes = (walls - axis.origin) / 60.0
        for points in _decimated(minutes, values, axis, HOLD_MAX_S / 60.0):
            ys = bottom + (points[1::2] - lo) / (hi - lo) * (top - bottom)
            flat = np.empty(points.size)
            flat[0::2], flat[1::2] = points[0::2], ys
            if flat.size == 2 or (flat.size == 4 and flat[0] == flat[2] and flat[1] == flat[3]):
                d.add(Circle(flat[0], flat[1], 0.7, fillColor=TRACE, strokeColor=None))
            else:
                d.add(PolyLine(flat.tolist(), strokeColor=TRACE, strokeWidth=0.6))
    if not arrays or all(not np.isfinite(v).any() for _, v in arrays):
        d.add(String((axis.left + axis.right) / 2, (bottom + top) / 2, "no values recorded",
                     fontName=SANS_ITALIC, fontSize=8, fillColor=GREY,
                     textAnchor="middle"))  # fmt: skip
    _marks(d, axis, bottom, top, events, alarm_starts, codes, numbers=numbers)
    return d


def _decimated(
    minutes: np.ndarray, values: np.ndarray, axis: _Axis, gap_min: float
) -> list[np.ndarray]:
    """Per unbroken stretch, the min and max of each pixel column as x, y pairs (flat).

    A stretch breaks at a missing value (NaN) and where two samples are more than ``gap_min``
    apart, so gaps stay gaps.
    """
    n = minutes.size
    if not n:
        return []
    brk = np.zeros(n, dtype=bool)
    brk[1:] = (np.diff(minutes) > gap_min) | np.isnan(values[:-1])
    seg = np.cumsum(brk)
    keep = ~np.isnan(values)
    minutes, values, seg = minutes[keep], values[keep], seg[keep]
    if not minutes.size:
        return []
    col = np.floor(axis.xs(minutes)).astype(np.int64)
    start = np.ones(minutes.size, dtype=bool)
    start[1:] = (seg[1:] != seg[:-1]) | (col[1:] != col[:-1])
    idx = np.flatnonzero(start)
    lows = np.minimum.reduceat(values, idx)
    highs = np.maximum.reduceat(values, idx)
    xs = col[idx] + 0.5
    segs = seg[idx]
    pts = np.empty(idx.size * 4)
    pts[0::4], pts[1::4], pts[2::4], pts[3::4] = xs, lows, xs, highs
    cuts = np.flatnonzero(np.diff(segs)) + 1
    return np.split(pts, cuts * 4)


def _nibp_plot(
    record: SessionRecord, profile: Profile, axis: _Axis, events: list[tuple[int, EventRecord]],
    alarm_starts: list[LogEntry], unit: str, width: float,
) -> Drawing:  # fmt: skip
    height, bottom, top = 112.0, 24.0, 100.0
    readings = [r for r in record.nibp if usable(r)]
    failed = [r for r in record.nibp if not usable(r)]
    values = [np.asarray([v for r in readings for _, v in r.parts() if v is not None], float)]
    lo, hi = _range(values, (40.0, 200.0), 20.0)
    d = Drawing(width, height)
    codes = (Code.NIBP_SYS, Code.NIBP_DIA, Code.NIBP_MEAN)
    # The standard PDF fonts have no triangles: the legend names the marks in words.
    title = "NIBP mmHg: systolic (down-pointing), diastolic (up-pointing), mean (circle)"
    _frame(d, axis, bottom, top, lo, hi, 20.0, title, labels=unit)
    _limits(d, profile, codes, bottom, top, lo, hi, axis)

    def y(v: float) -> float:
        return bottom + (v - lo) / (hi - lo) * (top - bottom)

    for r, systolic in [(r, s) for r in readings if (s := r.systolic) is not None]:
        px = axis.x((r.stamp.wall - axis.origin) / 60.0)
        sys_y = y(systolic)
        if r.diastolic is not None:
            dia_y = y(r.diastolic)
            d.add(Line(px, dia_y, px, sys_y, strokeColor=TRACE, strokeWidth=0.5))
            d.add(Polygon([px - 2.2, dia_y - 3.2, px + 2.2, dia_y - 3.2, px, dia_y],
                          fillColor=TRACE, strokeColor=None))  # fmt: skip
        d.add(Polygon([px - 2.2, sys_y + 3.2, px + 2.2, sys_y + 3.2, px, sys_y],
                      fillColor=TRACE, strokeColor=None))  # fmt: skip
        if r.mean is not None:
            d.add(Circle(px, y(r.mean), 1.1, fillColor=colors.white, strokeColor=TRACE,
                         strokeWidth=0.5))  # fmt: skip
    for r in failed:
        px = axis.x((r.stamp.wall - axis.origin) / 60.0)
        d.add(String(px, bottom + 2, "x", fontName=SANS, fontSize=6, fillColor=GREY,
                     textAnchor="middle"))  # fmt: skip
    if not readings:
        d.add(String((axis.left + axis.right) / 2, (bottom + top) / 2, "no NIBP reading",
                     fontName=SANS_ITALIC, fontSize=8, fillColor=GREY,
                     textAnchor="middle"))  # fmt: skip
    _marks(d, axis, bottom, top, events, alarm_starts, codes, numbers=False)
    return d


def _score_lane(
    scores: ScoreSummary, axis: _Axis, events: list[tuple[int, EventRecord]], width: float
) -> Drawing:
    """Each score as its number on the time axis, a row per scale: sedated (MOAA/S <= 3) and
    dissociated scores in bold colour, so the deep stretches stand out at a glance."""
    courses = [c for c in (scores.sedation, scores.dissociation) if c is not None]
    row_h = 11.0
    bottom, top = 4.0, 4.0 + row_h * len(courses)
    d = Drawing(width, top + 12.0)
    frame = Rect(axis.left, bottom, axis.right - axis.left, top - bottom)
    frame.fillColor, frame.strokeColor, frame.strokeWidth = None, GREY, 0.5
    d.add(frame)
    title = "Scores: MOAA/S and dissociation (bold red: sedated, MOAA/S 3 or less; dissociated)"
    d.add(String(axis.left + 3, top + 2.5, title, fontName=SANS_BOLD, fontSize=7.5, fillColor=INK))
    for row, course in enumerate(courses):
        y = top - row_h * (row + 1) + 3.0
        d.add(String(axis.left - 3, y, LANE_LABELS.get(course.scale.key, course.scale.name),
                     fontName=SANS, fontSize=6, fillColor=INK, textAnchor="end"))  # fmt: skip
        labelled = -math.inf  # numbers never overprint: a later one close by is left out
        for s in course.scores:
            minutes = (s.wall - axis.origin) / 60.0
            px = axis.x(minutes)
            strong = course.inside(s)
            # A sedated or dissociated score is drawn even where it overprints a mild one.
            if not axis.lo <= minutes <= axis.hi or (px - labelled < 6.0 and not strong):
                continue
            d.add(String(px, y, str(s.value), fontName=SANS_BOLD if strong else SANS,
                         fontSize=7 if strong else 6.5,
                         fillColor=PRIORITY_TEXT[Priority.HIGH] if strong else INK,
                         textAnchor="middle"))  # fmt: skip
            labelled = px
    _marks(d, axis, bottom, top, [(n, e) for n, e in events if e.kind == "dose"], [], (),
           numbers=False)  # fmt: skip
    return d


def _scores_table(
    record: SessionRecord, scores: ScoreSummary, deidentify: bool, width: float
) -> Table:
    """One row per time scored: time, minutes from the dose, MOAA/S, dissociation, who."""
    names = {c.scale.code: c.scale.name for c in (scores.sedation, scores.dissociation) if c}
    codes = list(names)
    rows: list[list] = [["time", "dose", *names.values(), "by"]]
    for group in by_instant(scores.scores):
        values = {s.scale.code: s for s in group}
        who = sorted({person(s.author, deidentify) for s in group} - {""})
        rows.append(
            [
                _clock_s(group[0].wall),
                _rel(record, group[0].wall),
                *[_p(values[c].words, _SMALL) if c in values else "-" for c in codes],
                ", ".join(who),
            ]
        )
    score_w = 0.66 / max(len(codes), 1)
    widths = [0.1, 0.08, *[score_w] * len(codes), 0.16]
    return _grid(Table(rows, colWidths=[w * width for w in widths], repeatRows=1))


# --- events and alarms ------------------------------------------------------------------------


def _rel(record: SessionRecord, wall: float) -> str:
    """Minutes from the dose ("+38 min"), or "" without a dose."""
    dose = record.dose_stamp
    return "" if dose is None else minutes_text((wall - dose.wall) / 60.0)


def _events_table(record: SessionRecord, deidentify: bool, width: float):
    numbered = _numbered_events(record)
    if not numbered:
        return _p("No events were recorded.", _SMALL)
    number_of = {e.id: n for n, e in numbered}
    corrections: dict[int, EventRecord] = {}
    for e in record.events:
        if e.amends is not None:
            corrections[e.amends] = e  # in time order: the latest correction wins
    rows: list[list] = [["#", "time", "dose", "kind", "what", "by"]]
    for n, e in numbered:
        text = e.text
        if e.kind == "device-state" and e.source:
            text = f"{e.source}: {text}"
        if e.amends is not None:
            ref = number_of.get(e.amends)
            text += f"  [corrects #{ref}]" if ref else f"  [corrects event {e.amends}]"
        fix = corrections.get(e.id)
        cell = markup(text)
        if fix is not None:
            cell = (
                f"<strike>{cell}</strike> <i>corrected by #{number_of.get(fix.id, '?')} at "
                f"{_clock_s(fix.stamp.wall)}: {markup(fix.text)}</i>"
            )
        rows.append(
            [
                str(n),
                _clock_s(e.stamp.wall),
                _rel(record, e.stamp.wall),
                e.kind,
                Paragraph(cell, _SMALL),
                person(e.author, deidentify),
            ]
        )
    widths = [0.05, 0.1, 0.08, 0.12, 0.47, 0.18]
    return _grid(Table(rows, colWidths=[w * width for w in widths], repeatRows=1))


@dataclass
class _Span:
    start: LogEntry
    end: LogEntry | None = None
    ack: LogEntry | None = None


def _alarm_tables(record: SessionRecord, deidentify: bool, width: float) -> list:
    spans: list[_Span] = []
    open_: dict[tuple, _Span] = {}
    last: dict[tuple, _Span] = {}
    other: list[LogEntry] = []
    for e in record.alarms:
        key = (e.condition, e.priority, e.source, e.code)
        if e.event is LogEvent.ACTIVE:
            span = _Span(e)
            spans.append(span)
            open_[key] = last[key] = span
        elif e.event is LogEvent.INACTIVE and key in open_:
            open_.pop(key).end = e
        elif e.event is LogEvent.ACKNOWLEDGED and key in last and last[key].ack is None:
            last[key].ack = e
        else:
            other.append(e)
    out: list = []
    if not spans:
        out.append(_p("No alarm condition became active.", _SMALL))
    else:
        rows: list[list] = [["start", "dose", "priority", "alarm", "value / limit", "end",
                             "acknowledged"]]  # fmt: skip
        for s in spans:
            a = s.start
            value = _num(a.value) if a.value is not None else ""
            limit = f" / {_num(a.limit)}" if a.limit is not None else ""
            ack = ""
            if s.ack is not None:
                who = person(s.ack.operator, deidentify)
                ack = _clock_s(s.ack.stamp.wall) + (f" by {who}" if who else "")
            rows.append(
                [
                    _clock_s(a.stamp.wall),
                    _rel(record, a.stamp.wall),
                    a.priority.label if a.priority else "",
                    Paragraph(markup(f"{a.text or a.condition} ({a.source})"), _SMALL),
                    value + limit,
                    _clock_s(s.end.stamp.wall) if s.end else "not ended",
                    Paragraph(markup(ack), _SMALL),
                ]
            )
        widths = [0.1, 0.08, 0.08, 0.38, 0.1, 0.1, 0.16]
        table = Table(rows, colWidths=[w * width for w in widths], repeatRows=1)
        _grid(table)
        table.setStyle(
            TableStyle(
                [
                    ("TEXTCOLOR", (2, i), (2, i), PRIORITY_TEXT[s.start.priority])
                    for i, s in enumerate(spans, 1)
                    if s.start.priority is not None
                ]
            )
        )
        out.append(table)
    if other:
        rows = [["time", "dose", "entry", "by"]]
        for e in other:
            text = e.event.value + (f": {e.text}" if e.text else "")
            if e.event is LogEvent.LIMIT_CHANGED and e.condition:
                text = f"limit changed, {e.condition}: {e.text}"
            rows.append(
                [
                    _clock_s(e.stamp.wall),
                    _rel(record, e.stamp.wall),
                    Paragraph(markup(text), _SMALL),
                    person(e.operator, deidentify),
                ]
            )
        widths = [0.1, 0.08, 0.64, 0.18]
        out += [
            Spacer(1, 2 * mm),
            _grid(Table(rows, colWidths=[w * width for w in widths], repeatRows=1)),
        ]
    return out


# --- pages ------------------------------------------------------------------------------------


def _numbered_canvas(footer: str, page_width: float = PAGE[0]) -> type[Canvas]:
    """A canvas that writes the footer with "page N of M" once the page count is known
    (``page_width``: the course report is landscape)."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]  # reportlab's; its stubs leave it out

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFillColor(GREY)
                text = self.beginText(MARGIN, MARGIN - 2 * mm)
                for font, run in runs(footer):
                    text.setFont(font or SANS, 7)
                    text.textOut(run)
                self.drawText(text)
                self.setFont(SANS, 7)
                self.drawRightString(
                    page_width - MARGIN, MARGIN - 2 * mm, f"page {self.getPageNumber()} of {total}"
                )
                super().showPage()
            super().save()

    return NumberedCanvas
