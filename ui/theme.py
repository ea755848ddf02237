"""The dark theme of the dosing-room screen: a dim room, a nurse reading it from 4 m away.

Black background (no large bright areas to light the room), light-grey text, and one colour per
parameter as monitors use them: SpO2 and pleth cyan, pulse green, NIBP white. Alarm colours
come from alarms.model.VISUAL (IEC 60601-1-8: red, yellow, cyan) and are used for nothing else.
"""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from alarms.model import VISUAL, Priority
from kapmonitor.core.codes import Code

BACKGROUND = "#000000"
PANEL = "#0b0d10"  #: tiles and plots sit on this
BORDER = "#22262c"
TEXT = "#d6d9de"
TEXT_DIM = "#8a9099"  #: labels, units, secondary lines
TEXT_STALE = "#5c6168"  #: a value that is no longer current
GRID = "#2a2f36"

SPO2 = "#00e0ff"  #: cyan
PULSE = "#3dff6e"  #: green
HEART_RATE = "#9cff57"  #: yellow-green: ECG heart rate next to the oximeter's pulse
PERFUSION = "#5aa9c8"  #: muted cyan-blue, the oximeter's secondary value
NIBP = "#f2f2f2"  #: white
NIBP_MEAN = "#a0a4aa"
PLETH = SPO2
#: Breathing (respiratory rate, EtCO2, the capnogram): a muted sand, the capnograph's
#: traditional yellow kept away from the medium-priority alarm yellow.
BREATHING = "#e0cf8f"
CO2 = BREATHING

PARAMETER_COLOURS: dict[Code, str] = {
    Code.SPO2: SPO2,
    Code.PULSE_RATE: PULSE,
    Code.HEART_RATE: HEART_RATE,
    Code.PERFUSION: PERFUSION,
    Code.NIBP_SYS: NIBP,
    Code.NIBP_DIA: NIBP,
    Code.NIBP_MEAN: NIBP_MEAN,
    Code.PLETH: PLETH,
    Code.RESP_RATE: BREATHING,
    Code.AWAY_RESP_RATE: BREATHING,
    Code.CO2_ET: BREATHING,
    Code.CO2_INSP_MIN: BREATHING,
    Code.CO2: CO2,
}

#: IEC 60601-1-8 colour names mapped to shades that read well on black.
_ALARM_SHADES = {"red": "#ff3030", "yellow": "#ffd400", "cyan": "#00e0ff"}
ALARM_COLOURS: dict[Priority, str] = {p: _ALARM_SHADES[v.colour] for p, v in VISUAL.items()}

#: Text that needs a second look ("sensor off", a stale value): amber, not an alarm colour.
WARN = "#ffb347"
#: Background of the NIBP tile's "DUE NOW".
DUE_NOW = "#ffb347"
#: Signal-quality bars, by level 0 (none) to 3 (good).
SIGNAL_COLOURS = (TEXT_STALE, WARN, "#e8e070", SPO2)

#: The nurse's scores (ui.trends' lanes, ui.score_tile): MOAA/S pink, dissociation mint; neither
#: an alarm colour nor a measured parameter's.
SEDATION = "#ff8fc8"
DISSOCIATION = "#8fe3c0"

DOSE = "#ff9f1c"  #: the dose line (T0): orange, not an alarm colour
MARKER = "#c9a0ff"  #: nurse markers: lavender

#: Font family for numbers: condensed, so big digits fit a narrow tile.
NUMBER_FONT = "DejaVu Sans Condensed"
TEXT_FONT = "DejaVu Sans"
BASE_FONT_PX = 18

STYLESHEET = f"""
QWidget {{
    background-color: {BACKGROUND};
    color: {TEXT};
}}
QToolTip {{
    background-color: {PANEL};
    color: {TEXT};
    border: 1px solid {BORDER};
}}
QCheckBox::indicator {{
    width: 15px;
    height: 15px;
    border: 1px solid {TEXT_DIM};
    border-radius: 2px;
    background-color: {PANEL};
}}
QCheckBox::indicator:checked {{
    background-color: {PERFUSION};
    border-color: {TEXT};
}}
QCheckBox::indicator:disabled {{
    border-color: {TEXT_STALE};
}}
"""


def palette() -> QtGui.QPalette:
    pal = QtGui.QPalette()
    colours = {
        QtGui.QPalette.ColorRole.Window: BACKGROUND,
        QtGui.QPalette.ColorRole.WindowText: TEXT,
        QtGui.QPalette.ColorRole.Base: PANEL,
        QtGui.QPalette.ColorRole.AlternateBase: BACKGROUND,
        QtGui.QPalette.ColorRole.Text: TEXT,
        QtGui.QPalette.ColorRole.Button: PANEL,
        QtGui.QPalette.ColorRole.ButtonText: TEXT,
        QtGui.QPalette.ColorRole.Highlight: "#1f4e66",
        QtGui.QPalette.ColorRole.HighlightedText: TEXT,
        QtGui.QPalette.ColorRole.ToolTipBase: PANEL,
        QtGui.QPalette.ColorRole.ToolTipText: TEXT,
        QtGui.QPalette.ColorRole.PlaceholderText: TEXT_DIM,
    }
    for role, colour in colours.items():
        pal.setColor(role, QtGui.QColor(colour))
    for role in (QtGui.QPalette.ColorRole.WindowText, QtGui.QPalette.ColorRole.Text):
        pal.setColor(QtGui.QPalette.ColorGroup.Disabled, role, QtGui.QColor(TEXT_STALE))
    return pal


def apply_dark_theme(app: QtWidgets.QApplication) -> None:
    """Give the whole application the dark palette and stylesheet."""
    app.setStyle("Fusion")  # follows the palette on every platform
    app.setPalette(palette())
    app.setStyleSheet(STYLESHEET)
    # The font goes on the application, not in the stylesheet: a stylesheet font would override
    # every widget's own setFont (the big numerics set theirs in their own stylesheets anyway).
    font = QtGui.QFont(TEXT_FONT)
    font.setPixelSize(BASE_FONT_PX)
    app.setFont(font)


def label_style(
    colour: str,
    px: int,
    *,
    bold: bool = False,
    family: str = TEXT_FONT,
    background: str | None = None,
    border: str | None = None,
) -> str:
    """A QLabel stylesheet with its own colour and font, whatever the application's sheet says."""
    parts = [
        f"color: {colour};",
        f"font-family: '{family}';",
        f"font-size: {px}px;",
        f"font-weight: {'bold' if bold else 'normal'};",
        f"background-color: {background or 'transparent'};",
        f"border: {border or 'none'};",
    ]
    if background or border:
        parts.append("border-radius: 4px; padding: 0px 8px;")
    return " ".join(parts)
