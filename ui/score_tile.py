"""The nurse's scores on the dosing-room screen: the last MOAA/S and dissociation score, and the
reminder that the next one is due.

A tile in the small row under the NIBP tile, read as the NIBP tile's schedule is: the last
scores with their time ("MOAA/S 3 · dissociation mild · 10:47"), grey once older than the
plan's interval (an old score must not pass for how the patient is now), and the prompt from
:func:`kapmonitor.core.assessment.prompt` naming the key that opens the scoring dialog. A score
that falls due is highlighted as "DUE NOW" is on the NIBP tile; it is a reminder, never an
alarm: no sound, nothing in the alarm area.

Setters touch a label only when its text or style changes (the main window calls them on its
status refresh, a few times a second).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from PySide6 import QtCore, QtWidgets

from kapmonitor.core.assessment import SCALES
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Numeric, Stamp
from ui import theme
from ui.tiles import _Label, _Tile  # the tiles' own frame and cheap label: this is a tile too

TEXT_PX = 22


def score_words(code: Code, value: float) -> str:
    """A score as the screen says it: "MOAA/S 3", "dissociation mild", "CADSS 12"."""
    scale = SCALES[code]
    number = int(value)
    if code is Code.DISSOCIATION and 0 <= number < len(scale.levels):
        return f"dissociation {scale.levels[number]}"
    return f"{scale.name} {number}"


def clock(stamp: Stamp) -> str:
    """The wall time a nurse reads: "10:47"."""
    return time.strftime("%H:%M", time.localtime(stamp.wall))


@dataclass(frozen=True)
class _Part:
    words: str
    stamp: Stamp
    colour: str
    stale: bool


class ScoreTile(_Tile):
    """The last scores, and under them the next score's prompt (wrapped onto a second line
    when the tile is narrow: the key must never be cut off)."""

    def __init__(self, key: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(18, parent)
        self.key = key
        self._due = False
        self._readout_plain = ""
        self._stale: dict[Code, bool] = {}
        # No title: each score names its scale ("MOAA/S 3"), in its lane's colour.
        self.readout = _Label("", theme.label_style(theme.TEXT, TEXT_PX))
        self.readout.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.prompt = _Label("", theme.label_style(theme.TEXT, TEXT_PX))
        self.prompt.setWordWrap(True)
        for label in (self.readout, self.prompt):  # never widen the right column
            label.setSizePolicy(
                QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
            )
        column = QtWidgets.QVBoxLayout(self)
        column.setContentsMargins(14, 6, 14, 6)
        column.setSpacing(4)
        column.addWidget(self.readout)
        column.addWidget(self.prompt, 1, QtCore.Qt.AlignmentFlag.AlignTop)
        self.set_scores(None, None, None, 15.0)

    def set_scores(
        self,
        moaas: Numeric | None,
        dissociation: Numeric | None,
        now: Stamp | None,
        every_min: float,
    ) -> None:
        """The newest MOAA/S and dissociation score (None: none yet), each grey once older
        than ``every_min`` minutes at ``now`` (the session's now: intervals on the monotonic
        clock); their time of day is what the nurse reads."""
        parts = []
        for score, colour in ((moaas, theme.SEDATION), (dissociation, theme.DISSOCIATION)):
            if score is None or score.value is None:
                continue
            stale = now is not None and now.mono - score.stamp.mono > every_min * 60
            self._stale[score.code] = stale
            words = score_words(score.code, score.value)
            parts.append(_Part(words, score.stamp, theme.TEXT_STALE if stale else colour, stale))
        if not parts:
            self._readout_plain = "no sedation score yet"
            self.readout.set_text(_span(self._readout_plain, theme.TEXT_DIM))
            return
        together = len({p.stamp for p in parts}) == 1
        plain, rich = [], []
        for part in parts:
            text = part.words if together else f"{part.words} {clock(part.stamp)}"
            plain.append(text)
            rich.append(_span(text, part.colour))
        if together:
            newest = parts[0]
            plain.append(clock(newest.stamp))
            rich.append(
                _span(clock(newest.stamp), theme.TEXT_STALE if newest.stale else theme.TEXT)
            )
        self._readout_plain = " · ".join(plain)
        self.readout.set_text(_span(" · ", theme.TEXT_DIM).join(rich))

    def set_prompt(self, text: str, due: bool) -> None:
        """The next score: "next score in 12 min (M)", or highlighted when one is due."""
        self._due = due
        if due:
            self.prompt.set_text(f"{text} — press {self.key}")
            self.prompt.set_style(
                theme.label_style(
                    "#000000", TEXT_PX, bold=True, background=theme.DUE_NOW, border="none"
                )
            )
        else:
            self.prompt.set_text(f"{text} ({self.key})")
            self.prompt.set_style(theme.label_style(theme.TEXT, TEXT_PX - 2))

    # --- for tests ------------------------------------------------------------------------

    @property
    def due(self) -> bool:
        return self._due

    def readout_text(self) -> str:
        """The readout as plain text: "MOAA/S 3 · dissociation mild · 10:47"."""
        return self._readout_plain

    def stale(self, code: Code) -> bool:
        """Whether the newest score of ``code`` is shown grey (older than the interval)."""
        return self._stale.get(code, False)

    def prompt_text(self) -> str:
        return self.prompt.text()


def _span(text: str, colour: str) -> str:
    return f'<span style="color:{colour}">{html.escape(text)}</span>'
