"""Labels that never widen their window: they show what fits and elide the rest with "…".

A plain QLabel asks its layout for the width of its whole text, so one long status message (a
device's reason, a file path) widened the dosing-room window past the screen and pushed the
banner, the alarm state and the status line off it. :class:`ElidedLabel` asks for no width of
its own and elides its text to the width it is given; the whole text is its tooltip.
:class:`BannerLabel` is the alarm banner's: the priority marker and the value stay whole, the
font steps down before anything is cut, and only the message is elided.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class _FittedLabel(QLabel):
    """A label that asks for no width of its own and refits its text (:meth:`_fit`) to the
    width it is given whenever that changes."""

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit()

    def _width(self) -> int:
        # Not laid out yet (hidden): its width means nothing; it fits itself when shown.
        return self.contentsRect().width() if self.isVisible() else 1 << 20

    def _fit(self) -> None:
        raise NotImplementedError


class ElidedLabel(_FittedLabel):
    """One line of text, elided to the label's width; :meth:`text` is the whole text."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self._fit()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """What the label shows (the text, or its start and "…")."""
        return super().text()

    def _fit(self) -> None:
        width = self._width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width)
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


class BannerLabel(_FittedLabel):
    """The alarm banner's line: ``marker  message   value``, fitted to the width it has.

    The largest of ``sizes`` (pixel sizes) at which the whole line fits is used; when none
    does, the line with the ``short`` value (the value without its limit, say) is tried the
    same way; failing that, the smallest size with the message elided: the marker (the
    priority, never colour alone) and the value (what the alarm is about) are never cut.
    """

    def __init__(self, sizes: tuple[int, ...] = (40, 34, 28), parent: QWidget | None = None):
        super().__init__(parent)
        self.sizes = sizes
        self._parts = ("", "", "", "")
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        font = self.font()
        font.setPixelSize(sizes[0])
        font.setBold(True)
        self.setFont(font)

    def set_parts(self, marker: str, message: str, value: str = "", short: str = "") -> None:
        self._parts = (marker, message, value, short or value)
        self._fit()

    def setText(self, text: str) -> None:
        self.set_parts("", text)

    def _fit(self) -> None:
        marker, message, value, short = self._parts
        head = f"{marker}  " if marker else ""
        width = self._width()
        font = self.font()
        fitted = False
        for tail in dict.fromkeys(f"   {v}" if v else "" for v in (value, short)):
            for size in self.sizes:
                font.setPixelSize(size)
                metrics = QFontMetrics(font)
                if metrics.horizontalAdvance(head + message + tail) <= width:
                    fitted = True
                    break
            if fitted:
                break
        if not fitted:
            room = width - metrics.horizontalAdvance(head + tail)
            message = metrics.elidedText(message, Qt.TextElideMode.ElideRight, max(room, 0))
        if self.font().pixelSize() != font.pixelSize():
            self.setFont(font)
        super().setText(head + message + tail)
