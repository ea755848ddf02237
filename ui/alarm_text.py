"""An alarm in words: its priority marker, value and limit with units, ages, the pause countdown,
its state and condition delay, and the tooltip that says it all.
"""

from __future__ import annotations

import math
import time

from alarms.breathing import ETCO2_RISE
from alarms.model import Alarm, AlarmKind, AlarmState, Priority
from kapmonitor.core.codes import Code

#: IEC-style priority markers, so colour is never the only cue.
MARKERS: dict[Priority, str] = {Priority.HIGH: "!!!", Priority.MEDIUM: "!!", Priority.LOW: "!"}


#: UCUM codes as the screen prints them; a score ("{score}", a count) has no unit to print.
_DISPLAY_UNITS = {"mm[Hg]": "mmHg", "1": "", "{score}": ""}


def _number(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _unit(code: str | None) -> str:
    if code is None:
        return ""
    try:
        unit = Code(code).unit
    except ValueError:
        return ""
    return _DISPLAY_UNITS.get(unit, unit)


def format_value(alarm: Alarm) -> str:
    """The value and the limit with their unit, e.g. "82 % (limit < 85 %)"; "" if neither."""
    unit = _unit(alarm.code)
    spaced = f" {unit}" if unit and unit != "/min" else unit

    if alarm.condition.startswith("bp-rise") or alarm.condition == ETCO2_RISE:
        parts = []
        if alarm.value is not None:
            parts.append(f"+{_number(alarm.value)}{spaced}")
        if alarm.limit is not None:
            parts.append(f"(limit +{_number(alarm.limit)}{spaced})")
        return " ".join(parts)
    direction = ""
    if alarm.condition.endswith("-low"):
        direction = "< "
    elif alarm.condition.endswith("-high"):
        direction = "> "
    parts = []
    if alarm.value is not None:
        parts.append(f"{_number(alarm.value)}{spaced}")
    if alarm.limit is not None:
        parts.append(f"(limit {direction}{_number(alarm.limit)}{spaced})")
    return " ".join(parts)


def format_age(seconds: float) -> str:
    """How long ago, coarse: "40 s", "3 min", "1 h 05 min"."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_countdown(seconds: float) -> str:
    """A pause left as m:ss, rounded up so it never shows 0:00 while still paused."""
    whole = max(0, math.ceil(seconds - 1e-9))
    return f"{whole // 60}:{whole % 60:02d}"


def state_text(alarm: Alarm) -> str:
    if alarm.state is AlarmState.LATCHED:
        text = "latched: condition ended"
        return text + ", acknowledged" if alarm.acknowledged else text + ", acknowledge"
    return "active, acknowledged" if alarm.acknowledged else "active"


def delay_text(alarm: Alarm) -> str:
    return f"delay {_number(alarm.delay_s)} s" if alarm.delay_s > 0 else "no delay"


def tooltip(alarm: Alarm) -> str:
    started = time.strftime("%H:%M:%S", time.localtime(alarm.started.wall))
    lines = [
        f"{MARKERS[alarm.priority]} {alarm.message}",
        f"Priority: {alarm.priority.label}"
        + (" (technical alarm)" if alarm.kind is AlarmKind.TECHNICAL else ""),
        f"Source: {alarm.source}",
        f"Started: {started}",
    ]
    value = format_value(alarm)
    if value:
        lines.append(f"Value: {value}")
    if alarm.delay_s > 0:
        lines.append(
            f"Condition delay: {_number(alarm.delay_s)} s (the condition lasted this long "
            "before it alarmed)"
        )
    else:
        lines.append("Condition delay: none (alarms on the first value beyond the limit)")
    lines.append(f"State: {state_text(alarm)}")
    return "\n".join(lines)
