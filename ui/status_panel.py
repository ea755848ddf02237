"""Device and recording status: one line the nurse glances at to know the data is flowing.

Each device shows a coloured dot and its state (green connected, amber no data or connecting,
red disconnected or reconnecting), with the driver's one-sentence detail as tooltip. The
recording status is dim while all is well and red capitals while the record is failing.
Where the room publishes to a clinic station, its link to the broker is said too (dim when
connected, amber otherwise: the room's own alarms go on either way).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from kapmonitor.core.model import ConnectionState

__all__ = ["STATE_COLOURS", "DeviceStatusPanel"]

GREEN = "#3ddc84"
AMBER = "#ffb300"
RED = "#ff5a52"
DIM = "#8a939d"
TEXT = "#d8dde3"

#: Colour of each connection state; anything unknown is amber.
STATE_COLOURS: dict[str, str] = {
    ConnectionState.CONNECTED.value: GREEN,
    ConnectionState.NO_DATA.value: AMBER,
    ConnectionState.CONNECTING.value: AMBER,
    ConnectionState.DISCONNECTED.value: RED,
    ConnectionState.RECONNECTING.value: RED,
}
STATE_TEXT: dict[str, str] = {
    ConnectionState.CONNECTED.value: "connected",
    ConnectionState.NO_DATA.value: "NO DATA",
    ConnectionState.CONNECTING.value: "connecting…",
    ConnectionState.DISCONNECTED.value: "DISCONNECTED",
    ConnectionState.RECONNECTING.value: "RECONNECTING…",
}


class _DeviceChip(QWidget):
    def __init__(self, name: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.dot = QLabel("●", self)
        self.name = QLabel(name, self)
        self.state = QLabel(self)
        bold = QFont()
        bold.setBold(True)
        self.state.setFont(bold)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.dot)
        layout.addWidget(self.name)
        layout.addWidget(self.state)
        self.name.setStyleSheet(f"color: {TEXT}; background: transparent;")
        self.colour = ""
        self._shown: tuple[str, str] | None = None

    def show_state(self, state: str, detail: str) -> None:
        # Called a few times a second with what mostly has not changed: a style sheet set
        # again re-styles the chip and lays out the window again, so only a change is shown.
        if (state, detail) == self._shown:
            return
        self._shown = (state, detail)
        colour = STATE_COLOURS.get(state, AMBER)
        if colour != self.colour:
            self.colour = colour
            self.dot.setStyleSheet(f"color: {colour}; background: transparent;")
            self.state.setStyleSheet(f"color: {colour}; background: transparent;")
        self.state.setText(STATE_TEXT.get(state, state))
        tip = f"{self.name.text()}: {state}" + (f"\n{detail}" if detail else "")
        self.setToolTip(tip)


class DeviceStatusPanel(QWidget):
    """A strip: each device's connection state, then the recording status at the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._chips: dict[str, _DeviceChip] = {}
        #: What the recording line shows, (ok, text); None before the first status.
        self._recording: tuple[bool, str] | None = None
        self._devices = QHBoxLayout()
        self._devices.setSpacing(28)
        self.recording_label = QLabel(self)
        self.recording_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.recording_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.recording_label.setAlignment(
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        self.empty_label = QLabel("no devices", self)
        self.empty_label.setStyleSheet(f"color: {DIM}; background: transparent;")
        self.station_label = QLabel(self)
        self.station_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.station_label.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addLayout(self._devices)
        layout.addWidget(self.empty_label)
        layout.addSpacing(28)
        layout.addWidget(self.station_label, 1)
        layout.addWidget(self.recording_label, 1)
        font = QFont()
        font.setPixelSize(16)
        self.setFont(font)
        self.update_status([], (True, ""))

    def update_status(self, rows: list[tuple[str, str, str]], recording: tuple[bool, str]) -> None:
        """``rows``: (device name, ConnectionState value, detail); ``recording``: (ok, text)."""
        names = [name for name, _, _ in rows]
        if names != list(self._chips):
            for chip in self._chips.values():
                self._devices.removeWidget(chip)
                chip.deleteLater()
            self._chips = {}
            for name in names:
                chip = _DeviceChip(name, self)
                self._devices.addWidget(chip)
                self._chips[name] = chip
        for name, state, detail in rows:
            self._chips[name].show_state(str(state), detail)
        self.empty_label.setVisible(not rows)
        self._show_recording(recording)

    def set_station_link(self, text: str | None) -> None:
        """The room's link to the clinic station ("station link: connected to ..."); None: the
        room publishes nothing and the line is hidden."""
        self.station_label.setVisible(text is not None)
        if text is None or text == self.station_label.text():
            return
        colour = DIM if ": connected" in text else AMBER
        self.station_label.setText(text)
        self.station_label.setToolTip(text)
        self.station_label.setStyleSheet(f"color: {colour}; background: transparent;")

    # --- for tests and the main window ----------------------------------------------------

    def device_state(self, name: str) -> tuple[str, str, str]:
        """(shown text, colour, tooltip) of one device."""
        chip = self._chips[name]
        return chip.state.text(), chip.colour, chip.toolTip()

    @property
    def recording_ok(self) -> bool:
        return self._recording is None or self._recording[0]

    # --- internals ------------------------------------------------------------------------

    def _show_recording(self, recording: tuple[bool, str]) -> None:
        if recording == self._recording:
            return  # unchanged: not styled and laid out again
        self._recording = recording
        ok, text = recording
        if ok:
            recording_text = not text or text.lower().startswith("recording")
            shown = text if recording_text else f"recording to {text}"
            self.recording_label.setText(f"● {shown}" if shown else "")
            self.recording_label.setStyleSheet(f"color: {DIM}; background: transparent;")
        else:
            prefixed = text.upper().startswith("RECORDING FAILING")
            shown = text if prefixed else f"RECORDING FAILING: {text}"
            self.recording_label.setText(shown)
            self.recording_label.setStyleSheet(
                "color: #ffffff; background: #b71c1c; font-weight: bold; padding: 2px 10px;"
                " border-radius: 4px;"
            )
        self.recording_label.setToolTip(text)
