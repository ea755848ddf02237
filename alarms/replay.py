"""Offline alarm replay: measurement JSON lines in, the alarm timeline out.

Input is what ``kapmonitor decode`` and ``kapmonitor record`` write, plus ``{"t": T, "event":
"dose"}`` lines and bare ``{"t": T}`` lines that only advance time. Time comes from the input
alone, so the same input always gives the same timeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from alarms.engine import AlarmEngine
from alarms.model import LogEntry, LogEvent
from kapmonitor.codes import Code
from kapmonitor.errors import UserError
from kapmonitor.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)

NIBP_PARTS = {Code.NIBP_SYS: "systolic", Code.NIBP_DIA: "diastolic", Code.NIBP_MEAN: "mean"}
DEFAULT_DEVICE = "input"


class ReplayError(UserError):
    pass


def read_items(lines: Iterable[str], name: str = "input") -> Iterator[Item | Stamp]:
    """Items from JSON lines; a bare ``{"t": T}`` gives just the Stamp to advance time to.

    NIBP parts with the same ``t`` and device are joined into one reading, as a cuff gives them.
    """
    nibp: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"{where} is not JSON: {exc.msg}") from None
        t = obj.get("t") if isinstance(obj, dict) else None
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ReplayError(f'{where} has no time: every line needs a finite number "t"')
        t = float(t)
        stamp = Stamp(t, t)
        device = str(obj.get("device", DEFAULT_DEVICE))
        code = _code(obj.get("code"))
        if nibp is not None and not (code in NIBP_PARTS and nibp["key"] == (t, device)):
            yield _reading(nibp)
            nibp = None
        if code in NIBP_PARTS:
            if nibp is None:
                nibp = {"key": (t, device), "stamp": stamp, "device": device, "flags": set()}
            nibp[NIBP_PARTS[code]] = _value(obj, where)
            nibp["flags"] |= _flags(obj, where)
        elif code is not None and "value" in obj:
            yield Numeric(device, code, _value(obj, where), stamp, frozenset(_flags(obj, where)))
        elif obj.get("event") == SessionEventKind.DOSE.value:
            yield SessionEvent(device, SessionEventKind.DOSE, stamp, str(obj.get("text", "")))
        elif "state" in obj:
            try:
                state = ConnectionState(obj["state"])
            except ValueError:
                raise ReplayError(f"{where}: unknown device state {obj['state']!r}") from None
            yield DeviceEvent(device, state, stamp, str(obj.get("detail", "")))
        elif set(obj) <= {"t", "device"}:
            yield stamp
        # Anything else (waveform blocks, vendor values, other events) does not alarm.
    if nibp is not None:
        yield _reading(nibp)


def _code(text: Any) -> Code | None:
    try:
        return Code(text) if text is not None else None
    except ValueError:
        return None  # a code the alarm system has no rule for


def _value(obj: dict, where: str) -> float | None:
    value = obj.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ReplayError(f'{where}: "value" must be a number or null')
    return value


def _flags(obj: dict, where: str) -> set[Flag]:
    try:
        return {Flag(f) for f in obj.get("flags", [])}
    except (ValueError, TypeError):
        raise ReplayError(f"{where}: unknown flag in {obj.get('flags')!r}") from None


def _reading(parts: dict[str, Any]) -> NibpReading:
    return NibpReading(
        parts["device"],
        parts.get("systolic"),
        parts.get("diastolic"),
        parts.get("mean"),
        parts["stamp"],
        frozenset(parts["flags"]),
    )


def timeline(engine: AlarmEngine, items: Iterable[Item | Stamp]) -> Iterator[dict[str, Any]]:
    """The alarm timeline: a record per condition that becomes active or inactive."""
    for item in items:
        entries = engine.tick(item) if isinstance(item, Stamp) else engine.process(item)
        for entry in entries:
            if entry.event in (LogEvent.ACTIVE, LogEvent.INACTIVE):
                yield timeline_record(entry)


def timeline_record(entry: LogEntry, origin: float = 0.0) -> dict[str, Any]:
    """An active/inactive log entry as a timeline line; ``t`` counts from ``origin``."""
    return {
        "t": round(entry.stamp.mono - origin, 4),
        "condition": entry.condition,
        "code": entry.code,
        "priority": entry.priority.label,
        "kind": entry.kind.value,
        "state": entry.event.value,
        "value": entry.value,
        "limit": entry.limit,
        "device": entry.source,
    }
