"""What a room's tile says, as plain text: numbers, ages and states as a nurse reads them.

Kept apart from the widgets so every wording rule (a missing value is "---", never 0; an old
value is not shown as current; a lost room says so in words) is one function.
"""

from __future__ import annotations

import math
import re
import time

from kapmonitor.core.assessment import DISSOCIATION_CODES, SCALES
from kapmonitor.core.codes import Code
from kapmonitor.core.staleness import BLANK_S, NIBP_STALE_MIN, STALE_S
from kapmonitor.live import age_text
from kapmonitor.station.model import (
    ENDED,
    LINK_LOST,
    ROOM_LINK_LOST,
    AlarmView,
    NibpView,
    RoomView,
)
from ui.status_panel import STATE_TEXT

MISSING = "---"
_NEXT_IN = re.compile(r"next in (\d+(?:\.\d+)?) min")
#: A schedule sentence other than "next in N min" is shown this long after its reading.
SENTENCE_FRESH_S = 60.0
#: Breathing values a room may send (capnograph or impedance): (label, codes in preference).
BREATHING = (
    ("RR", (Code.AWAY_RESP_RATE, Code.RESP_RATE)),
    ("EtCO2", (Code.CO2_ET,)),
)


def value_text(value: float | None, decimals: int = 0) -> str:
    """A numeric as digits; None or not finite: "---" (a missing value is never 0)."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{decimals}f}"


def numerics_fresh(view: RoomView) -> bool | None:
    """True: current; False: old but still shown grey; None: too old to show at all.

    The room's own screen greys a value after STALE_S and blanks it after BLANK_S; the station
    applies the same rule to what it last received, so a lost room's numbers fade, never lie.
    """
    age = view.numerics_age_s
    if age is None or age > BLANK_S:
        return None
    return age <= STALE_S and view.state != LINK_LOST  # a room not heard: nothing looks current


def numeric(view: RoomView, *codes: Code) -> float | None:
    """The first of ``codes`` the room has a value for; None when too old to show."""
    if numerics_fresh(view) is None:
        return None
    for code in codes:
        value = view.numerics.get(code.value)
        if value is not None:
            return value
    return None


def breathing_text(view: RoomView) -> str:
    """ "RR 14   EtCO2 38", only for the values the room's devices send (else "")."""
    parts = []
    for label, codes in BREATHING:
        if any(code.value in view.numerics for code in codes):
            parts.append(f"{label} {value_text(numeric(view, *codes))}")
    return "   ".join(parts)


def scores_text(view: RoomView) -> str:
    """ "MOAA/S 3   Dissociation mild": the room's last scores (held until the next), or ""."""
    parts = []
    for code, scale in SCALES.items():
        value = view.numerics.get(code.value)
        if value is None or not math.isfinite(value):
            continue
        if not 0 <= value <= scale.maximum or not float(value).is_integer():
            continue  # not a score (a room of another version, or a damaged message)
        level = int(value)
        words = scale.levels if scale.code in DISSOCIATION_CODES else ()
        parts.append(f"{scale.name} {words[level] if words else level}")
    return "   ".join(parts)


def dose_text(view: RoomView) -> str:
    if view.minutes_since_dose is None:
        return "no dose yet"
    minutes = max(0, int(view.minutes_since_dose))
    return (
        f"dose {minutes} min ago"
        if minutes < 120
        else f"dose {minutes // 60} h {minutes % 60} min ago"
    )


def nibp_text(nibp: NibpView | None) -> str:
    """ "128/82 (97)" or "---/---"."""
    if nibp is None:
        return f"{MISSING}/{MISSING}"
    text = f"{value_text(nibp.systolic)}/{value_text(nibp.diastolic)}"
    return text + (f" ({value_text(nibp.mean)})" if nibp.mean is not None else "")


def next_due(sentence: str, age_s: float) -> str:
    """The room's schedule sentence as of now. The room sends it with each reading only, so
    "next in 5 min" is counted down from the reading; any other sentence ("before the dose:
    take the baseline readings") is shown only while the reading is fresh."""
    sentence = sentence.strip()
    match = _NEXT_IN.fullmatch(sentence)
    if match:
        left = float(match.group(1)) * 60 - age_s
        if not math.isfinite(left):
            return ""
        return "next NIBP DUE NOW" if left <= 0 else f"next in {math.ceil(left / 60):.0f} min"
    return sentence if age_s < SENTENCE_FRESH_S else ""


def nibp_detail(nibp: NibpView | None, now: float | None = None) -> tuple[str, bool]:
    """ "12 min ago · next in 3 min" and whether it needs a look (old reading, or due now)."""
    if nibp is None:
        return "no reading yet", False
    now = time.time() if now is None else now
    age = max(0.0, now - nibp.t)
    due = next_due(nibp.next_due, age)
    old = age > NIBP_STALE_MIN * 60
    parts = [age_text(age)] + ([due] if due else [])
    return " · ".join(parts), old or "DUE NOW" in due


def alarm_text(alarm: AlarmView) -> str:
    """The alarm's message, with "(ack by X)" when somebody in the room acknowledged it."""
    text = "ROOM LINK LOST" if alarm.condition == ROOM_LINK_LOST else alarm.message
    if alarm.state == "latched":
        text += " (ended, latched)"
    if alarm.acknowledged_by:
        text += f" (ack {alarm.acknowledged_by})"
    return text


def link_text(view: RoomView) -> str:
    """The room's link in plain words: the tile's footer."""
    if view.state == LINK_LOST:
        return f"link {view.link}"
    if view.state == ENDED:
        return "session ended"
    return "link: connected"


def device_text(state: str) -> str:
    return STATE_TEXT.get(state, state)


def clock_text(wall: float | None) -> str:
    return "" if wall is None else time.strftime("%H:%M:%S", time.localtime(wall))
