"""The review window: one recorded session, for the clinician after the session.

Plots of every vital over the whole session (zoom with the wheel or the buttons, step from one
event or alarm to the next), a cursor read-out, and tabs: the summary with the REMS monitoring
form, the NIBP readings, the events with notes and amendments, the alarms, the audit trail.
Notes and amendments go straight to the record as new events; an amendment names the event it
corrects, so the original is kept, and the store audits who, when and why. Every export format
of the registry (:data:`kapmonitor.export.formats.FORMATS`) is a button.

The window is a view over a :class:`~kapmonitor.review.session_review.SessionReview`, which
reads and writes the record. The session is loaded without its pleth (a 2-hour session has
720,000 samples the trends do not need); the pleth row loads the waveform for what is on screen
when it is shown, up to :data:`PLETH_MAX_MIN` minutes at a time.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.export import FORMATS, export_session
from kapmonitor.record.session import EventRecord, SessionRecord, SessionStatus
from kapmonitor.review import rems
from kapmonitor.review.changes import Amendment, Assessment, DetailsChange
from kapmonitor.review.session_review import SessionReview
from kapmonitor.review.summary import SessionSummary
from kapmonitor.review.timeline import QUIET_KINDS, Timeline
from ui import theme
from ui.review.details_dialog import DetailsDialog
from ui.review.form_footer import add_footer, show_missing
from ui.review.plots import ReviewPlots

#: The pleth is drawn only for views this short (minutes): longer, it is a solid band.
PLETH_MAX_MIN = 2.0
#: Stepping to an event or alarm shows this many minutes around it when zoomed further out.
STEP_SPAN_MIN = 10.0


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


def _date_time(wall: float | None) -> str:
    return "-" if wall is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(wall))


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(headers: list[str]) -> QtWidgets.QTableWidget:
    table = QtWidgets.QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _cell(table: QtWidgets.QTableWidget, row: int, column: int) -> QtWidgets.QTableWidgetItem:
    """A cell :func:`_fill` wrote (it writes every cell of every row)."""
    item = table.item(row, column)
    if item is None:
        raise LookupError(f"no cell at row {row}, column {column}")
    return item


def _fill(
    table: QtWidgets.QTableWidget, rows: list[list[str]], data: list[float] | None = None
) -> None:
    """Every cell of ``rows``; ``data`` (the minute of each row) goes with its first cell."""
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            item = QtWidgets.QTableWidgetItem(text)
            if data is not None and c == 0:
                item.setData(QtCore.Qt.ItemDataRole.UserRole, data[r])
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


class AmendDialog(QtWidgets.QDialog):
    """The corrected text and why: both are needed, the original stays in the record. Until
    both are given, OK is disabled and a line under the fields says what is still missing, so
    a click on OK (or Enter) that does nothing is never left unexplained."""

    def __init__(self, event: EventRecord, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.event_id = event.id
        self.setWindowTitle("Amend event")
        form = QtWidgets.QFormLayout(self)
        form.addRow("Original", QtWidgets.QLabel(f"{event.kind}: {event.text or '-'}"))
        self.text = QtWidgets.QLineEdit(event.text)
        self.reason = QtWidgets.QLineEdit()
        self.reason.setPlaceholderText("why the record is corrected")
        form.addRow("Corrected text", self.text)
        form.addRow("Reason", self.reason)
        self.missing, self.ok = add_footer(self, form)
        for edit in (self.text, self.reason):
            edit.textChanged.connect(self._check)
        self._check()

    def amendment(self) -> Amendment:
        """The correction as typed."""
        return Amendment(self.event_id, self.text.text(), self.reason.text())

    def missing_text(self) -> str:
        """What OK still waits for, in a sentence; empty when the amendment is complete."""
        needed = self.amendment().missing()
        return f"Enter {' and '.join(needed)} to amend the event." if needed else ""

    def _check(self) -> None:
        show_missing(self.missing, self.ok, self.missing_text())


class ReviewWindow(QtWidgets.QMainWindow):
    """One session under review: a view over its :class:`SessionReview`."""

    def __init__(self, review: SessionReview, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.review = review
        self.session_id = review.session_id
        self.reviewer = review.reviewer
        self._pleth_cache: tuple[float, float, np.ndarray, np.ndarray] | None = None
        info = self.record.info
        self.setWindowTitle(f"kapmonitor review — session {self.session_id}, {info.patient}")

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(8, 8, 8, 8)
        self.header = QtWidgets.QLabel(self._header_text())
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        outer.addWidget(self.header)
        outer.addLayout(self._toolbar())

        self.plots = ReviewPlots(self.timeline)
        self.readout = QtWidgets.QLabel()
        self.readout.setStyleSheet(theme.label_style(theme.TEXT, 16, family=theme.NUMBER_FONT))
        self.readout.setWordWrap(True)  # a long read-out wraps; it never widens the window
        self.readout.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.readout)
        left_layout.addWidget(self.plots, 1)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setMinimumWidth(480)
        self.summary_table = _table(["", ""])
        self.summary_table.horizontalHeader().setVisible(False)
        self.summary_table.setWordWrap(True)
        self.nibp_table = _table(["Time", "Min", "Sys", "Dia", "Mean", "Flags"])
        self.events_table = _table(["Time", "Min", "Event", "By"])
        self.alarms_table = _table(["Start", "Min", "Priority", "Alarm", "End", "Acknowledged"])
        self.audit_table = _table(["When", "Who", "What", "Detail"])
        self.tabs.addTab(self.summary_table, "Summary")
        self.tabs.addTab(self._rems_tab(), "REMS form")
        self.tabs.addTab(self.nibp_table, "NIBP")
        self.tabs.addTab(self._events_tab(), "Events")
        self.tabs.addTab(self.alarms_table, "Alarms")
        self.tabs.addTab(self.audit_table, "Audit")
        for table in (self.nibp_table, self.events_table, self.alarms_table):
            table.cellDoubleClicked.connect(lambda r, c, t=table: self._go_to_row(t, r))

        right = QtWidgets.QWidget()
        right_layout = QtWidgets.QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.tabs, 1)
        right_layout.addLayout(self._export_row())
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([1000, 560])
        outer.addWidget(split, 1)
        self.message = QtWidgets.QLabel()
        self.message.setStyleSheet(theme.label_style(theme.TEXT_DIM, 15))
        outer.addWidget(self.message)

        self._pleth_timer = QtCore.QTimer(self, singleShot=True, interval=150)
        self._pleth_timer.timeout.connect(self._load_pleth)
        self._wire_plots()
        self._fill_tables()
        self._update_readout(self.plots.cursor_x)

    @property
    def record(self) -> SessionRecord:
        return self.review.record

    @property
    def timeline(self) -> Timeline:
        return self.review.timeline

    @property
    def summary(self) -> SessionSummary:
        return self.review.summary

    # --- the parts ----------------------------------------------------------------------------

    def _wire_plots(self) -> None:
        """Connect the plots to the window: a new view loads its pleth; the cursor is read out."""
        self.plots.top.sigXRangeChanged.connect(lambda *_: self._pleth_timer.start())
        self.plots.cursor_moved.connect(self._update_readout)

    def _header_text(self) -> str:
        i = self.record.info
        dose = f"{i.drug.value if i.drug else 'drug not recorded'}"
        if i.dose is not None:
            dose += f" {i.dose:g} {i.dose_unit}"
        if i.route:
            dose += f" {i.route.value}"
        status = i.status.text
        if i.status is SessionStatus.INTERRUPTED:
            status = f"<span style='color:{theme.WARN}'>INTERRUPTED — the record ends early</span>"
        elif i.status is SessionStatus.STOPPED_BY_SYSTEM:
            status = (
                f"<span style='color:{theme.WARN}'>STOPPED BY THE SYSTEM — "
                "ended without the discharge check</span>"
            )
        dose_at = self.timeline.origin
        t0 = _clock(dose_at.wall) if dose_at else "<i>no dose marked: minutes from the start</i>"
        return (
            f"<b>{i.patient}</b> &nbsp; session {i.id} &nbsp; {_date_time(i.started)} → "
            f"{_date_time(i.ended)} &nbsp; {status}<br>"
            f"Clinician {i.clinician or '-'} · nurse {i.operator or '-'} · {dose} · dose at {t0}"
            f" · {self._details_text()} · reviewer {self.reviewer}"
        )

    def _details_text(self) -> str:
        d = self.review.details()
        weight = "weight not given" if d.weight_kg is None else f"{d.weight_kg:g} kg"
        return f"{weight} · {d.indication or 'indication not given'}"

    def _toolbar(self) -> QtWidgets.QHBoxLayout:
        bar = QtWidgets.QHBoxLayout()

        def button(text: str, slot, tip: str = "") -> QtWidgets.QPushButton:
            b = QtWidgets.QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            bar.addWidget(b)
            return b

        self.prev_button = button("◀ Previous", lambda: self.step(-1), "previous event or alarm")
        self.next_button = button("Next ▶", lambda: self.step(1), "next event or alarm")
        button("Zoom in", lambda: self.plots.zoom(0.5), "around the cursor")
        button("Zoom out", lambda: self.plots.zoom(2.0))
        button("Whole session", lambda: self.plots.show_all())
        self.pleth_button = button("Pleth", self._toggle_pleth, "the pleth waveform on demand")
        self.pleth_button.setCheckable(True)
        button("Add note…", self._ask_note, "a note at the cursor, in the record")
        self.details_button = button(
            "Weight and indication…", self._ask_details, "correct them, with a reason (audited)"
        )
        bar.addStretch(1)
        return bar

    def _export_row(self) -> QtWidgets.QHBoxLayout:
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Export"))
        self.export_buttons: dict[str, QtWidgets.QPushButton] = {}
        for fmt in FORMATS.values():
            b = QtWidgets.QPushButton(fmt.label)
            b.setToolTip(f"the whole session as {fmt.name.upper()}, to a file you choose")
            b.clicked.connect(lambda _=False, f=fmt.name: self._ask_export(f))
            row.addWidget(b)
            self.export_buttons[fmt.name] = b
        self.deidentify = QtWidgets.QCheckBox("De-identify")
        self.deidentify.setToolTip(
            "a pseudonym for the patient; no names or serial numbers; dates shifted; no notes"
        )
        row.addWidget(self.deidentify)
        row.addStretch(1)
        return row

    def _rems_tab(self) -> QtWidgets.QWidget:
        """The REMS monitoring form as the record gives it, and the clinician's assessment."""
        w = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(w)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rems_table = _table(["", ""])
        self.rems_table.horizontalHeader().setVisible(False)
        self.rems_table.setWordWrap(True)
        layout.addWidget(self.rems_table, 1)
        box = QtWidgets.QGroupBox("Clinician's assessment (written to the record, signed)")
        form = QtWidgets.QFormLayout(box)
        self.assessment: dict[str, QtWidgets.QComboBox] = {}
        for name in rems.YES_NO_FIELDS:
            combo = QtWidgets.QComboBox()
            for label, value in (("not assessed", None), ("No", False), ("Yes", True)):
                combo.addItem(label, value)
            form.addRow(name.capitalize(), combo)
            self.assessment[name] = combo
        self.ready_set = QtWidgets.QCheckBox("Ready to leave at")
        self.ready_time = QtWidgets.QTimeEdit()
        self.ready_time.setDisplayFormat("HH:mm")
        form.addRow(self.ready_set, self.ready_time)
        save = QtWidgets.QPushButton("Save assessment")
        save.clicked.connect(self._save_assessment)
        form.addRow(save)
        layout.addWidget(box)
        return w

    def save_assessment(self, assessment: Assessment) -> list[int]:
        """Write the assessment to the record: one event per field."""
        ids = self.review.save_assessment(assessment)
        self._redraw("Assessment saved to the record.")
        return ids

    def assessment_entered(self) -> Assessment:
        """The assessment as the form holds it (fields left "not assessed" are left out)."""
        answers: dict[str, bool] = {
            name: combo.currentData()
            for name, combo in self.assessment.items()
            if combo.currentData() is not None
        }
        ready = self.ready_time.time().toString("HH:mm") if self.ready_set.isChecked() else None
        return Assessment(answers, ready)

    def _save_assessment(self) -> None:
        try:
            self.save_assessment(self.assessment_entered())
        except UserError as exc:
            self.say(str(exc))

    def _events_tab(self) -> QtWidgets.QWidget:
        w = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(w)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.events_table, 1)
        row = QtWidgets.QHBoxLayout()
        self.amend_button = QtWidgets.QPushButton("Amend selected…")
        self.amend_button.clicked.connect(self._ask_amend)
        row.addWidget(self.amend_button)
        row.addStretch(1)
        layout.addLayout(row)
        return w

    def _fill_tables(self) -> None:
        t = self.timeline
        self.summary_table.setRowCount(0)
        _fill(self.summary_table, [list(r) for r in self.summary_rows()])
        self.summary_table.setColumnWidth(0, 250)  # labels wrap; the figures get the room
        self.summary_table.resizeRowsToContents()
        _fill(self.rems_table, [list(r) for r in self.rems_rows()])
        self.rems_table.setColumnWidth(0, 250)
        self.rems_table.resizeRowsToContents()
        rows, xs = [], []
        for r, x in zip(self.record.nibp, t.nibp_x, strict=True):
            flags = ", ".join(sorted(f.value for f in r.flags))
            rows.append(
                [
                    _clock(r.stamp.wall),
                    f"{x:+.0f}",
                    _fmt(r.systolic),
                    _fmt(r.diastolic),
                    _fmt(r.mean),
                    flags or ("failed" if r.systolic is None else ""),
                ]
            )
            xs.append(x)
        _fill(self.nibp_table, rows, xs)
        marks = [m for m in t.marks if m.event.kind not in QUIET_KINDS]
        _fill(
            self.events_table,
            [
                [
                    _clock(m.event.stamp.wall),
                    f"{m.x:+.1f}",
                    m.text,
                    (m.correction or m.event).author or "",
                ]
                for m in marks
            ],
            [m.x for m in marks],
        )
        for row, m in enumerate(marks):
            cell = _cell(self.events_table, row, 2)
            cell.setData(QtCore.Qt.ItemDataRole.UserRole, m.event.id)
            if m.correction is not None:
                cell.setToolTip(
                    f"Original: {m.event.text or '-'} ({m.event.author or '-'})\n"
                    f"Amended by {m.correction.author}: {m.correction.text}"
                )
        _fill(
            self.alarms_table,
            [
                [
                    _clock(t.wall(a.start)),
                    f"{a.start:+.1f}",
                    a.priority.label if a.priority else "-",
                    a.entry.text or a.entry.condition or "",
                    _clock(t.wall(a.end)) if a.end is not None else "not ended",
                    (
                        f"{(a.acknowledged - a.start) * 60:.0f} s by {a.acknowledged_by or '-'}"
                        if a.acknowledged is not None
                        else "no"
                    ),
                ]
                for a in t.alarms
            ],
            [a.start for a in t.alarms],
        )
        _fill(
            self.audit_table,
            [[_date_time(a.at), a.who, a.action, a.detail] for a in self.review.audit_log()],
        )

    def summary_rows(self) -> list[tuple[str, str]]:
        return self.summary.rows()

    def rems_rows(self) -> list[tuple[str, str]]:
        return self.review.rems_form().rows()

    # --- moving about -------------------------------------------------------------------------

    def step(self, direction: int) -> float | None:
        """Put the cursor on the next (or previous) event or alarm, and show it."""
        x = self.timeline.next_step(self.plots.cursor_x, direction)
        if x is None:
            self.say("No more events or alarms that way.")
            return None
        lo, hi = self.plots.x_range()
        self.plots.centre_on(x, min(hi - lo, STEP_SPAN_MIN))
        self.plots.set_cursor(x)
        return x

    def _go_to_row(self, table: QtWidgets.QTableWidget, row: int) -> None:
        x = _cell(table, row, 0).data(QtCore.Qt.ItemDataRole.UserRole)
        if x is not None:
            lo, hi = self.plots.x_range()
            self.plots.centre_on(x, min(hi - lo, STEP_SPAN_MIN))
            self.plots.set_cursor(x)

    def _update_readout(self, x: float) -> None:
        t = self.timeline
        parts = [f"{'T' if t.dose_relative else 'start'} {x:+.1f} min  {_clock(t.wall(x))}"]
        for code, label, unit in (
            (Code.SPO2, "SpO2", "%"),
            (Code.PULSE_RATE, "PR", "/min"),
            (Code.HEART_RATE, "HR", "/min"),
            (Code.PERFUSION, "PI", "%"),
        ):
            trace = t.trace(code)
            if trace is not None:
                value = trace.value_at(x)
                parts.append(f"{label} {_fmt(value, 1 if code is Code.PERFUSION else 0)} {unit}")
        i = t.nibp_at(x)
        if i is not None:
            s, d, m = t.nibp[i]
            parts.append(f"NIBP {_fmt(s)}/{_fmt(d)} ({_fmt(m)}) at {t.nibp_x[i]:+.0f} min")
        if t.scores is not None:  # the last score of each scale taken by then
            for course in (t.scores.sedation, t.scores.dissociation):
                last = None if course is None else course.last_at(t.wall(x))
                if last is not None:
                    parts.append(
                        f"{last.scale.name} {last.value} at {t.minutes(last.wall):+.0f} min"
                    )
        active = [a for a in t.alarms if a.start <= x <= (a.end if a.end is not None else t.x_max)]
        if active:
            parts.append(
                "alarm: " + ", ".join(a.entry.text or a.entry.condition or "" for a in active)
            )
        self.readout.setText("   ".join(parts))

    def say(self, text: str) -> None:
        self.message.setText(text)

    # --- the pleth ----------------------------------------------------------------------------

    def _toggle_pleth(self, on: bool) -> None:
        self.plots.set_pleth_visible(on)
        if on:
            self._load_pleth()

    def show_pleth_at(self, x: float, span_min: float = 0.5) -> int:
        """Show the pleth for ``span_min`` minutes around x; returns the samples shown."""
        self.pleth_button.setChecked(True)
        self.plots.set_pleth_visible(True)
        self.plots.centre_on(x, span_min)
        self.plots.set_cursor(x)
        return self._load_pleth()

    def _load_pleth(self) -> int:
        if not self.plots.plots["pleth"].isVisible():
            return 0
        lo, hi = self.plots.x_range()
        if hi - lo > PLETH_MAX_MIN:
            self.plots.set_pleth(
                np.empty(0),
                np.empty(0),
                f"zoom to {PLETH_MAX_MIN:g} minutes or less to see the pleth",
            )
            return 0
        cache = self._pleth_cache
        if cache is None or lo < cache[0] or hi > cache[1]:
            margin = (hi - lo) / 2
            x, y = self.review.pleth(lo - margin, hi + margin)
            self._pleth_cache = cache = (lo - margin, hi + margin, x, y)
        _, _, x, y = cache
        samples = int(np.isfinite(y[(x >= lo) & (x <= hi)]).sum())
        self.plots.set_pleth(x, y, "" if samples else "no pleth recorded here")
        return samples

    # --- writing to the record ----------------------------------------------------------------

    def add_note(self, text: str, x: float | None = None) -> int:
        """A note about the moment under the cursor (or x), written to the record now."""
        event_id, stamp = self.review.add_note(text, self.plots.cursor_x if x is None else x)
        self._redraw(f"Note added at {_clock(stamp.wall)}.")
        return event_id

    def amend(self, amendment: Amendment) -> int:
        """Correct an event: a new event names it; the original is kept and the change audited."""
        new_id = self.review.amend(amendment)
        self._redraw(f"Event {amendment.event_id} amended; the original is kept.")
        return new_id

    def set_details(self, change: DetailsChange) -> None:
        """Correct the session's weight or indication; the values before stay in the audit log."""
        self.review.set_details(change)
        self._redraw("Weight and indication saved; the values before are kept in the audit.")

    def _redraw(self, message: str) -> None:
        """Show the record as read again after a write (the new event and its audit line)."""
        lo, hi = self.plots.x_range()
        cursor = self.plots.cursor_x
        old = self.plots
        self.plots = ReviewPlots(self.timeline)
        old.parentWidget().layout().replaceWidget(old, self.plots)
        old.deleteLater()
        self.plots.set_pleth_visible(self.pleth_button.isChecked())
        self._wire_plots()
        self.plots.set_x_range(lo, hi)
        self.plots.set_cursor(cursor)
        self.header.setText(self._header_text())
        self._fill_tables()
        self.say(message)

    def _ask_note(self) -> None:
        text, ok = QtWidgets.QInputDialog.getText(
            self, "Add note", f"Note at {self.plots.cursor_x:+.1f} min:"
        )
        if ok and text.strip():
            self.add_note(text)

    def _ask_amend(self) -> None:
        row = self.events_table.currentRow()
        item = self.events_table.item(row, 2) if row >= 0 else None
        if item is None:
            self.say("Select the event to amend first.")
            return
        event_id = item.data(QtCore.Qt.ItemDataRole.UserRole)
        event = next(e for e in self.record.events if e.id == event_id)
        dialog = AmendDialog(event, self)
        if dialog.exec():
            self.amend(dialog.amendment())

    def _ask_details(self) -> None:
        dialog = DetailsDialog(self.review.details(), self)
        if dialog.exec():
            try:
                self.set_details(dialog.change())
            except UserError as exc:
                self.say(str(exc))

    # --- exports --------------------------------------------------------------------------------

    def export(self, fmt: str, path: Path | str) -> Path:
        """Write the session as ``fmt`` (with its waveforms); every format has a button."""
        path = Path(path)
        record = self.review.full_record()
        export_session(record, fmt, path, deidentify=self.deidentify.isChecked())
        self.say(f"Exported as {fmt.upper()} to {path}.")
        return path

    def _ask_export(self, fmt: str) -> None:
        suggested = f"session-{self.session_id}{FORMATS[fmt].suffix}"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export as {fmt.upper()}", suggested)
        if not path:
            return
        try:
            self.export(fmt, path)
        except UserError as exc:
            QtWidgets.QMessageBox.warning(self, "Export", str(exc))
