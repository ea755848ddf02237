"""Scoring sedation and dissociation at the bedside, from the keyboard alone.

The main window opens this dialog with one key (M), stamped when the key was pressed: the time
the nurse looked at the patient, not the time the dialog was closed. It asks for:

- the MOAA/S (0-5), as six big buttons with what each level means, highest first, as the scale
  is printed; the digit keys 0-5 pick one;
- then the dissociation scale the profile chose (``[assessment] dissociation``): the four-step
  rating (none, mild, moderate, severe; keys 0-3) as buttons, or the CADSS total (0-92) typed
  into a spin box;
- who scored it, filled in with the session's operator.

Picking a score moves on to the next scale, then to OK, so "M 3 1 Enter" scores MOAA/S 3 and a
mild dissociation. Either scale may be left out (Tab past it; Backspace clears a pick) but not
both: OK waits for a score and a name. Esc or Cancel records nothing.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.core.assessment import MOAAS, AssessmentPlan, Scale
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Stamp
from ui import theme

BUTTON_PX = 22
HEADING_PX = 22
#: The spin box's value for "not scored": one below the scale's 0.
NOT_SCORED = -1


def _button_style(colour: str) -> str:
    return (
        f"QPushButton {{ font-size: {BUTTON_PX}px; text-align: left; padding: 8px 14px;"
        f" color: {theme.TEXT}; background-color: {theme.PANEL};"
        f" border: 1px solid {theme.BORDER}; border-radius: 4px; }}"
        f" QPushButton:checked {{ color: #000000; background-color: {colour};"
        f" font-weight: bold; border: 1px solid {colour}; }}"
    )


def _heading(text: str, colour: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(theme.label_style(colour, HEADING_PX, bold=True))
    return label


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(theme.label_style(theme.TEXT_DIM, 18))
    return label


class ScaleButtons(QFrame):
    """One scale's scores as big buttons; while it has the focus the digit keys pick, the
    arrows move, Backspace or Delete clear. ``picked`` carries the score (None: cleared) and
    whether to move on to the next scale (a digit or a click: yes; the arrows: no, the nurse
    is still choosing)."""

    picked = Signal(object, bool)

    def __init__(self, scale: Scale, colour: str, *, columns: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self._value: int | None = None
        self.setObjectName("scale")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # The frame that has the keys is outlined: the nurse sees where a digit goes.
        self.setStyleSheet(
            f"QFrame#scale {{ border: 2px solid {theme.BORDER}; border-radius: 6px; }}"
            f" QFrame#scale:focus {{ border: 2px solid {theme.DUE_NOW}; }}"
        )
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 8, 8, 8)
        grid.setSpacing(6)
        self.buttons: dict[int, QPushButton] = {}
        # Highest first, as the MOAA/S is printed (5 alert ... 0 no response); the rating reads
        # left to right from none to severe.
        order = range(scale.maximum, -1, -1) if columns == 1 else range(scale.maximum + 1)
        for i, score in enumerate(order):
            button = QPushButton(f"{score}   {scale.levels[score]}")
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes from scale to scale
            button.setStyleSheet(_button_style(colour))
            button.clicked.connect(lambda _checked=False, s=score: self.pick(s))
            grid.addWidget(button, i // columns, i % columns)
            self.buttons[score] = button

    def value(self) -> int | None:
        return self._value

    def pick(self, score: int | None, move_on: bool = True) -> None:
        self._value = score
        for k, button in self.buttons.items():
            button.setChecked(k == score)
        self.picked.emit(score, move_on and score is not None)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
            digit = key - Qt.Key.Key_0
            if digit <= self.scale.maximum:
                self.pick(digit)
            return  # a digit past the scale does nothing (it must not reach the dialog)
        if key in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self.pick(None, move_on=False)
            return
        step = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
        }.get(Qt.Key(key))
        if step is not None:
            start = self._value if self._value is not None else (0 if step > 0 else 1)
            self.pick(max(0, min(self.scale.maximum, start + step)), move_on=False)
            return
        super().keyPressEvent(event)


class AssessmentDialog(QDialog):
    """The scoring dialog; after ``accepted``, :meth:`scores` and :meth:`author` say what to
    record (the caller records it at the stamp it took when the key was pressed)."""

    def __init__(
        self,
        plan: AssessmentPlan,
        operator: str,
        stamp: Stamp,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.plan = plan
        self.setWindowTitle("Score sedation and dissociation")
        self.setMinimumWidth(820)  # "2   moderate" whole on its button, four to a row
        at = time.strftime("%H:%M:%S", time.localtime(stamp.wall))
        title = _heading(f"Sedation and dissociation at {at}", theme.TEXT)

        self.moaas = ScaleButtons(MOAAS, theme.SEDATION)
        dissociation = plan.dissociation
        self.rating: ScaleButtons | None = None
        self.cadss: QSpinBox | None = None
        if dissociation.levels:  # the four-step rating
            self.rating = ScaleButtons(dissociation, theme.DISSOCIATION, columns=4)
            dissociation_keys = f"keys 0–{dissociation.maximum}"
            dissociation_widget: QWidget = self.rating
        else:  # a total: typed
            spin = QSpinBox()
            spin.setRange(NOT_SCORED, dissociation.maximum)
            spin.setSpecialValueText("not scored")
            spin.setValue(NOT_SCORED)
            spin.setStyleSheet(f"QSpinBox {{ font-size: {BUTTON_PX + 4}px; padding: 6px; }}")
            spin.setMinimumWidth(220)
            self.cadss = spin
            dissociation_keys = f"type the total, 0–{dissociation.maximum}"
            dissociation_widget = spin

        self.author_edit = QLineEdit(operator)
        self.author_edit.setStyleSheet(  # a field that looks like one: it may be edited
            f"font-size: {BUTTON_PX}px; padding: 4px 8px; background-color: {theme.PANEL};"
            f" border: 1px solid {theme.TEXT_DIM}; border-radius: 4px;"
        )
        self.problem = QLabel()
        self.problem.setStyleSheet(theme.label_style(theme.WARN, 18))
        self.ok_button = QPushButton("OK — record")
        self.cancel_button = QPushButton("Cancel")
        for button in (self.ok_button, self.cancel_button):
            button.setStyleSheet(f"font-size: {BUTTON_PX}px; padding: 6px 18px;")
        self.ok_button.setDefault(True)
        self.ok_button.clicked.connect(self.accept)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(_heading("MOAA/S (sedation)", theme.SEDATION))
        layout.addWidget(_hint("keys 0–5; Tab to leave it out"))
        layout.addWidget(self.moaas)
        layout.addSpacing(6)
        heading = "Dissociation rating" if self.rating is not None else "CADSS total (dissociation)"
        layout.addWidget(_heading(heading, theme.DISSOCIATION))
        layout.addWidget(_hint(dissociation_keys))
        row = QHBoxLayout()
        row.addWidget(dissociation_widget)
        if self.cadss is not None:
            row.addStretch(1)
        layout.addLayout(row)
        layout.addSpacing(6)
        who = QHBoxLayout()
        who.addWidget(_heading("Scored by", theme.TEXT))
        who.addWidget(self.author_edit, 1)
        layout.addLayout(who)
        layout.addWidget(self.problem)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.ok_button)
        layout.addLayout(buttons)

        QWidget.setTabOrder(self.moaas, dissociation_widget)
        QWidget.setTabOrder(dissociation_widget, self.ok_button)
        QWidget.setTabOrder(self.ok_button, self.author_edit)
        QWidget.setTabOrder(self.author_edit, self.cancel_button)
        # A score picked moves on: MOAA/S to the dissociation scale, that to OK.
        self.moaas.picked.connect(lambda _s, on: self._moved_on(on, dissociation_widget))
        if self.rating is not None:
            self.rating.picked.connect(lambda _s, on: self._moved_on(on, self.ok_button))
        else:
            assert self.cadss is not None
            self.cadss.valueChanged.connect(lambda _value: self._check())
        self.author_edit.textChanged.connect(lambda _text: self._check())
        self._check()
        self.moaas.setFocus()

    def _moved_on(self, move_on: bool, then: QWidget) -> None:
        self._check()
        if move_on:
            then.setFocus(Qt.FocusReason.TabFocusReason)
            if isinstance(then, QSpinBox):
                then.selectAll()

    def scores(self) -> dict[Code, int]:
        """The scores picked, by code (either may be missing, never both once accepted)."""
        scores: dict[Code, int] = {}
        moaas = self.moaas.value()
        if moaas is not None:
            scores[Code.MOAAS] = moaas
        if self.rating is not None:
            rating = self.rating.value()
            if rating is not None:
                scores[self.plan.dissociation.code] = rating
        elif self.cadss is not None and self.cadss.value() != NOT_SCORED:
            scores[self.plan.dissociation.code] = self.cadss.value()
        return scores

    def author(self) -> str:
        return " ".join(self.author_edit.text().split())

    def _check(self) -> None:
        """OK only with a score and a name; say what is missing."""
        if not self.scores():
            problem = "Pick a MOAA/S or a dissociation score (or both)."
        elif not self.author():
            problem = "Say who scored it."
        else:
            problem = ""
        self.problem.setText(problem)
        self.ok_button.setEnabled(not problem)

    def accept(self) -> None:
        if self.ok_button.isEnabled():  # Enter on a field with nothing picked does nothing
            super().accept()
