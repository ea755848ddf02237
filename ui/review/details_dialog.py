"""The review's dialog for a session's weight and indication.

The weight sets the course's mg/kg, so a wrong one misleads the next dosing decision: a
reviewer corrects it here, with a reason, and the values before stay in the audit log.
"""

from __future__ import annotations

from PySide6 import QtWidgets

from kapmonitor.record.summaries import SessionDetails
from kapmonitor.review.changes import DetailsChange
from ui.review.form_footer import add_footer, show_missing


class DetailsDialog(QtWidgets.QDialog):
    """Weight (kg, blank: not known) and indication, and why they change. Until the change is
    complete and plausible, OK is disabled and a line under the fields says what is missing."""

    def __init__(self, current: SessionDetails, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Weight and indication")
        form = QtWidgets.QFormLayout(self)
        weight = "" if current.weight_kg is None else f"{current.weight_kg:g}"
        self.weight = QtWidgets.QLineEdit(weight)
        self.weight.setPlaceholderText("kg (blank: not known)")
        self.indication = QtWidgets.QLineEdit(current.indication)
        self.indication.setPlaceholderText("e.g. treatment-resistant depression")
        self.reason = QtWidgets.QLineEdit()
        self.reason.setPlaceholderText("why the record is corrected")
        form.addRow("Weight (kg)", self.weight)
        form.addRow("Indication", self.indication)
        form.addRow("Reason", self.reason)
        self.missing, self.ok = add_footer(self, form)
        for edit in (self.weight, self.indication, self.reason):
            edit.textChanged.connect(self._check)
        self._check()

    def _weight(self) -> float | None:
        """The weight typed, None when blank; raises ValueError for text that is no number."""
        text = self.weight.text().strip().replace(",", ".")
        return float(text) if text else None

    def change(self) -> DetailsChange:
        """The change as typed (the weight must read as a number: see :meth:`missing_text`)."""
        return DetailsChange(self._weight(), self.indication.text(), self.reason.text())

    def missing_text(self) -> str:
        """What OK still waits for, in a sentence; empty when the change can be saved."""
        try:
            change = self.change()
        except ValueError:
            return f"The weight '{self.weight.text().strip()}' is not a number of kilograms."
        if change.missing():
            return "Enter a reason to change the weight or indication."
        problems = change.problems()
        return f"{problems[0][0].upper()}{problems[0][1:]}." if problems else ""

    def _check(self) -> None:
        show_missing(self.missing, self.ok, self.missing_text())
