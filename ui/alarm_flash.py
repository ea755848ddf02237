"""How an alarm signal looks and when it flashes: its colours on the dark screen, lit or not.

Colours and flash rates follow ``alarms.model.VISUAL`` (IEC 60601-1-8 table 2); the lit state is
a function of ``time.monotonic()`` alone, so every indicator of one priority flashes in step and
the screen's one flash timer can wake exactly at the next edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alarms.model import VISUAL, Priority


@dataclass(frozen=True)
class Shade:
    """A priority's colours on the dark screen."""

    fill: str  #: the lit signal's background
    on_fill: str  #: text on the lit background
    text: str  #: the priority's colour as text or border on the dark background


#: VISUAL's colour names as shades that read well on a dark background in a dim room.
_SHADES: dict[str, Shade] = {
    "red": Shade("#e0201b", "#ffffff", "#ff5a52"),
    "yellow": Shade("#ffd400", "#000000", "#ffd84d"),
    "cyan": Shade("#00d0f0", "#000000", "#5fe3ff"),
}


def shade_of(priority: Priority) -> Shade:
    name = VISUAL[priority].colour
    return _SHADES.get(name, Shade(name, "#000000", name))


def priority_lit(priority: Priority, t: float) -> bool:
    """Whether the visual signal of ``priority`` is lit at monotonic time ``t`` (seconds)."""
    visual = VISUAL[priority]
    if not visual.flash_hz:
        return True
    return (t * visual.flash_hz) % 1.0 < visual.duty_cycle


def next_edge(priority: Priority, t: float) -> float | None:
    """The next time after ``t`` at which the signal of ``priority`` switches; None: steady."""
    visual = VISUAL[priority]
    if not visual.flash_hz:
        return None
    k = math.floor(t * visual.flash_hz)
    for cycles in (k + visual.duty_cycle, k + 1, k + 1 + visual.duty_cycle, k + 2):
        edge = cycles / visual.flash_hz
        if edge > t + 1e-9:  # not the edge we are on (floating-point rounding)
            return edge
    raise AssertionError("unreachable")
