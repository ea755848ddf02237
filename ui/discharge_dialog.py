"""The discharge check: end the session only when the patient is ready, or say why not.

The caller (the main window) works out the checklist from the session: time since the dose,
blood pressure against the baseline, SpO2 and pulse. Items it cannot judge (is the patient
alert?) have ``ok=None`` and become checkboxes the nurse ticks. "End session" is enabled only
when every item is met, or the nurse ticks the override and writes a reason, which the dialog
returns for the record (a :class:`DischargeOutcome`). Then the dialog shows the session summary
it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "CheckLine",
    "DischargeDialog",
    "DischargeOutcome",
    "JudgedItem",
    "SummaryGrid",
    "SummaryView",
]

GREEN = "#3ddc84"
RED = "#ff6b6b"
AMBER = "#ffb300"
DIM = "#8a939d"


class CheckLine(Protocol):
    """One line of the discharge check as the dialog reads it (e.g. the runner's
    :class:`~kapmonitor.core.discharge.CheckItem`)."""

    @property
    def label(self) -> str:
        """E.g. "≥ 2 h since the dose"."""

    @property
    def ok(self) -> bool | None:
        """True met, False not met, None: the nurse confirms it with a tick."""

    @property
    def detail(self) -> str:
        """E.g. "2 h 05 min" or "128/80 vs 124/78 mmHg"."""


@dataclass(frozen=True)
class JudgedItem:
    """One line of the check as it stood when the session ended."""

    label: str
    ok: bool  #: met, by the caller's judgement or the nurse's tick
    detail: str
    confirmed_by_nurse: bool  #: the caller could not judge it: the nurse ticked it (or not)


@dataclass(frozen=True)
class DischargeOutcome:
    """What the record keeps: each item as judged, and the override's reason if used."""

    ended: bool  #: the nurse pressed "End session"
    items: tuple[JudgedItem, ...]
    override: bool  #: ended by the override, with not every item met
    override_reason: str | None  #: the nurse's reason; None unless ``override``


Summary = Mapping[str, object]


class SummaryGrid(QWidget):
    """The session summary: label → value, two columns, selectable text."""

    def __init__(self, summary: Summary | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._summary: dict[str, str] = {}
        self.title = QLabel("Session summary", self)
        font = QFont()
        font.setPixelSize(22)
        font.setBold(True)
        self.title.setFont(font)
        self._grid = QGridLayout()
        self._grid.setHorizontalSpacing(24)
        self._grid.setVerticalSpacing(6)
        self._grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self._grid)
        layout.addStretch(1)
        if summary is not None:
            self.set_summary(summary)

    def set_summary(self, summary: Summary) -> None:
        while (taken := self._grid.takeAt(0)) is not None:
            widget = taken.widget()
            if widget is not None:
                widget.deleteLater()
        self._summary = {str(k): str(v) for k, v in summary.items()}
        for row, (label, value) in enumerate(self._summary.items()):
            name = QLabel(label, self)
            name.setStyleSheet(f"color: {DIM};")
            name.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            text = QLabel(value, self)
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._grid.addWidget(name, row, 0)
            self._grid.addWidget(text, row, 1)

    def summary(self) -> dict[str, str]:
        return dict(self._summary)

    def text(self) -> str:
        """The summary as plain text, one "label: value" a line (for the clipboard or a print)."""
        return "\n".join(f"{k}: {v}" for k, v in self._summary.items())


class SummaryView(QDialog):
    """The session summary on its own, after the session has ended: ``SummaryView(d).exec()``."""

    def __init__(self, summary: Summary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Session summary")
        self.grid = SummaryGrid(summary, self)
        self.close_button = QPushButton("Close", self)
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.accept)
        line = QHBoxLayout()
        line.addStretch(1)
        line.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.grid, 1)
        layout.addLayout(line)
        self.resize(640, self.sizeHint().height())

    def summary(self) -> dict[str, str]:
        return self.grid.summary()

    def text(self) -> str:
        return self.grid.text()


class DischargeDialog(QDialog):
    """The discharge checklist, then the summary.

    ``summary`` is the summary to show after "End session", or a function that gets the
    outcome (so the caller can end the session then) and returns it; None: close at once.

    Signals:
        end_requested(DischargeOutcome): the nurse pressed "End session"; the argument is
        :meth:`outcome`.
    """

    end_requested = Signal(object)

    def __init__(
        self,
        items: Sequence[CheckLine],
        summary: Summary | Callable[[DischargeOutcome], Summary] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Discharge check")
        self.setModal(True)
        self.items = list(items)
        self._summary = summary
        self._ended = False
        self.confirm_boxes: dict[int, QCheckBox] = {}

        self.pages = QStackedWidget(self)
        check_page = QWidget(self.pages)
        heading = QLabel("Before the patient leaves", check_page)
        font = QFont()
        font.setPixelSize(22)
        font.setBold(True)
        heading.setFont(font)

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(8)
        grid.setColumnStretch(2, 1)
        mark_font = QFont()
        mark_font.setPixelSize(22)
        mark_font.setBold(True)
        self.marks: list[QLabel] = []
        for row, item in enumerate(self.items):
            mark = QLabel(check_page)
            mark.setFont(mark_font)
            mark.setMinimumWidth(28)
            mark.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.marks.append(mark)
            if item.ok is None:
                box = QCheckBox(item.label, check_page)
                box.setToolTip("Tick when you have checked this yourself")
                box.toggled.connect(self._update)
                self.confirm_boxes[row] = box
                grid.addWidget(box, row, 1)
            else:
                grid.addWidget(QLabel(item.label, check_page), row, 1)
            detail = QLabel(item.detail, check_page)
            detail.setStyleSheet(f"color: {DIM};")
            detail.setWordWrap(True)
            grid.addWidget(mark, row, 0)
            grid.addWidget(detail, row, 2)

        self.override = QCheckBox(
            "&Override: end the session although not every item is met", check_page
        )
        self.override_reason_edit = QLineEdit(check_page)
        self.override_reason_edit.setPlaceholderText("reason (recorded with the session)")
        self.override_reason_edit.setEnabled(False)
        self.override.toggled.connect(self.override_reason_edit.setEnabled)
        self.override.toggled.connect(self._override_toggled)
        self.override_reason_edit.textChanged.connect(self._update)
        self.status = QLabel(check_page)
        self.status.setWordWrap(True)

        self.end_button = QPushButton("&End session", check_page)
        self.end_button.setDefault(True)
        self.cancel_button = QPushButton("&Continue monitoring", check_page)
        self.cancel_button.setAutoDefault(False)
        self.end_button.clicked.connect(self._end)
        self.cancel_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.end_button)

        check_layout = QVBoxLayout(check_page)
        check_layout.addWidget(heading)
        check_layout.addLayout(grid)
        check_layout.addSpacing(10)
        check_layout.addWidget(self.override)
        check_layout.addWidget(self.override_reason_edit)
        check_layout.addWidget(self.status)
        check_layout.addStretch(1)
        check_layout.addLayout(buttons)

        summary_page = QWidget(self.pages)
        self.summary_view = SummaryGrid(parent=summary_page)
        self.close_button = QPushButton("Close", summary_page)
        self.close_button.clicked.connect(self.accept)
        close_line = QHBoxLayout()
        close_line.addStretch(1)
        close_line.addWidget(self.close_button)
        summary_layout = QVBoxLayout(summary_page)
        summary_layout.addWidget(self.summary_view, 1)
        summary_layout.addLayout(close_line)

        self.pages.addWidget(check_page)
        self.pages.addWidget(summary_page)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        self.resize(760, self.sizeHint().height())
        self._update()

    # --- state ----------------------------------------------------------------------------

    def item_met(self, index: int) -> bool:
        item = self.items[index]
        if item.ok is None:
            return self.confirm_boxes[index].isChecked()
        return item.ok

    @property
    def all_met(self) -> bool:
        return all(self.item_met(i) for i in range(len(self.items)))

    @property
    def can_end(self) -> bool:
        return self.all_met or (
            self.override.isChecked() and bool(self.override_reason_edit.text().strip())
        )

    def override_reason(self) -> str | None:
        """The nurse's reason when the session ended by override; None if every item was met."""
        return self.outcome().override_reason

    @property
    def ended(self) -> bool:
        """True once the nurse pressed "End session"."""
        return self._ended

    def outcome(self) -> DischargeOutcome:
        """What the record keeps: each item as judged, and the override's reason if used."""
        overridden = not self.all_met and self.override.isChecked()
        return DischargeOutcome(
            ended=self._ended,
            items=tuple(
                JudgedItem(item.label, self.item_met(i), item.detail, item.ok is None)
                for i, item in enumerate(self.items)
            ),
            override=overridden,
            override_reason=self.override_reason_edit.text().strip() if overridden else None,
        )

    def reject(self) -> None:
        if self._ended:  # the session has ended: closing the summary is not a cancel
            self.accept()
        else:
            super().reject()

    # --- internals ------------------------------------------------------------------------

    def _override_toggled(self, on: bool) -> None:
        if on:
            self.override_reason_edit.setFocus()
        self._update()

    def _update(self) -> None:
        for i, mark in enumerate(self.marks):
            item = self.items[i]
            met = self.item_met(i)
            if item.ok is None and not met:
                mark.setText("?")
                mark.setStyleSheet(f"color: {AMBER};")
            else:
                mark.setText("✓" if met else "✗")
                mark.setStyleSheet(f"color: {GREEN if met else RED};")
        self.end_button.setEnabled(self.can_end)
        if self.all_met:
            self.status.setText("Every item is met.")
            self.status.setStyleSheet(f"color: {GREEN};")
        elif self.override.isChecked() and not self.override_reason_edit.text().strip():
            self.status.setText("Write the reason for the override to end the session.")
            self.status.setStyleSheet(f"color: {AMBER};")
        elif self.override.isChecked():
            self.status.setText("The session will end with the override and its reason.")
            self.status.setStyleSheet(f"color: {AMBER};")
        else:
            missing = [self.items[i].label for i in range(len(self.items)) if not self.item_met(i)]
            self.status.setText("Not yet met: " + "; ".join(missing))
            self.status.setStyleSheet(f"color: {RED};")

    def _end(self) -> None:
        if not self.can_end:
            return
        self._ended = True
        outcome = self.outcome()
        self.end_requested.emit(outcome)
        summary = self._summary(outcome) if callable(self._summary) else self._summary
        if summary is None:
            self.accept()
            return
        self.summary_view.set_summary(summary)
        self.pages.setCurrentIndex(1)
        self.close_button.setDefault(True)
        self.close_button.setFocus()
