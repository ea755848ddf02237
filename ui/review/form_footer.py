"""The foot of a review dialog: a line that says what OK still waits for, then OK and Cancel.

Until a change is complete, OK is disabled and the line says why, so a click on OK (or Enter)
that does nothing is never left unexplained.
"""

from __future__ import annotations

from PySide6 import QtWidgets

from ui import theme


def add_footer(
    dialog: QtWidgets.QDialog, form: QtWidgets.QFormLayout
) -> tuple[QtWidgets.QLabel, QtWidgets.QPushButton]:
    """Add the "missing" line and OK/Cancel to ``form``; return (the line, the OK button)."""
    missing = QtWidgets.QLabel()
    missing.setWordWrap(True)
    missing.setStyleSheet(f"color: {theme.WARN};")
    form.addRow(missing)
    buttons = QtWidgets.QDialogButtonBox(
        QtWidgets.QDialogButtonBox.StandardButton.Ok
        | QtWidgets.QDialogButtonBox.StandardButton.Cancel
    )
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    return missing, buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)


def show_missing(missing: QtWidgets.QLabel, ok: QtWidgets.QPushButton, text: str) -> None:
    """OK enabled only when nothing is missing; the line shows what is."""
    ok.setEnabled(not text)
    missing.setText(text)
    missing.setVisible(bool(text))
