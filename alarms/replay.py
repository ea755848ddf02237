"""Offline alarm replay: measurement JSON lines in, the alarm timeline out.

Input is what ``kapmonitor decode`` and ``kapmonitor record`` write, plus ``{"t": T, "event":
"dose"}`` lines and bare ``{"t": T}`` lines that only advance time. Time comes from the input
alone, so the same input always gives the same timeline.

The capnogram (``{"t", "code": "MDC_AWAY_CO2", "fs", "samples", "flags"}``, ``null`` for an
invalid sample) is read too: a breathless or flat capnogram alarms (issue 17). Other waveforms
(the pleth) never alarm and are skipped. Input written without waves (``record --no-waves``)
has no capnogram, so a flat capnogram that the device flagged in no other way is not seen.

``record`` writes its own alarm lines (``{"t", "condition", ..., "state": "active"}``) among the
measurements: they are what the live engine decided, not input, so they are skipped. A
single-device ``record`` names the device only on its connection-state lines; a line with no
device belongs to the one device the input has named so far (or ``input`` if none or several).

Each device's time must not run backwards: a measurement or device-state line stamped before
that device's previous one is refused with one sentence naming the line, rather than ordered
(which would need the whole input in memory) or replayed (the engine keeps time moving forward,
so a condition held in back-dated samples would never last its delay: an alarm hidden). A bare
time line earlier than now carries nothing and is ignored. Values that are not finite (NaN,
Infinity, 1e400), bytes that are not UTF-8 and nesting too deep to read are refused the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from alarms.engine import AlarmEngine
from alarms.model import LogEntry, LogEvent
from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)

NIBP_PARTS = {Code.NIBP_SYS: "systolic", Code.NIBP_DIA: "diastolic", Code.NIBP_MEAN: "mean"}
DEFAULT_DEVICE = "input"


class ReplayError(UserError):
    pass


def _not_finite(text: str) -> float:
    raise ValueError(f"{text} is not a finite number")


def _finite(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else _not_finite(text)


def _parse(line: str, where: str) -> Any:
    try:
        return json.loads(line, parse_constant=_not_finite, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{where} is not JSON: {exc.msg}") from None
    except ValueError as exc:  # NaN, Infinity, 1e400, an integer of thousands of digits
        raise ReplayError(
            f'{where} has a value that cannot be read ({exc}): "t" and every value must be '
            "finite numbers"
        ) from None
    except RecursionError:
        raise ReplayError(f"{where} is nested too deeply to be a measurement") from None


def _lines(lines: Iterable[str | bytes], name: str) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded one by one so that bytes that are not UTF-8 name their line."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise ReplayError(
                    f"{name} line {number} is not UTF-8 text: is it a JSON lines file?"
                ) from None
        yield number, line


def read_items(lines: Iterable[str | bytes], name: str = "input") -> Iterator[Item | Stamp]:
    """Items from JSON lines; a bare ``{"t": T}`` gives just the Stamp to advance time to.

    NIBP parts with the same ``t`` and device are joined into one reading, as a cuff gives them.
    """
    nibp: dict[str, Any] | None = None
    named: set[str] = set()  #: the devices lines have named so far
    last: dict[str, tuple[float, int]] = {}  #: per device: the latest time and its line
    for number, line in _lines(lines, name):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        obj = _parse(line, where)
        t = obj.get("t") if isinstance(obj, dict) else None
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise ReplayError(f'{where} has no time: every line needs a finite number "t"')
        t = _float(t, where, '"t"')
        if "condition" in obj:
            continue  # an alarm line that record wrote: what the live engine decided
        stamp = Stamp(t, t)
        if "device" in obj:
            device = str(obj["device"])
            named.add(device)
        else:
            device = next(iter(named)) if len(named) == 1 else DEFAULT_DEVICE
        code = _code(obj.get("code"))
        if (code is not None and "value" in obj) or "state" in obj:
            before = last.get(device)
            if before is not None and t < before[0]:
                raise ReplayError(
                    f"{where} goes back in time: t = {t:g} is before t = {before[0]:g} on line "
                    f"{before[1]} for device '{device}'; sort the input by time"
                )
            last[device] = (t, number)
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
        elif code is Code.CO2 and "samples" in obj:
            yield _capnogram(obj, device, stamp, where)
        elif obj.get("event") == SessionEventKind.DOSE.value:
            yield SessionEvent(device, SessionEventKind.DOSE, stamp, str(obj.get("text", "")))
        elif "state" in obj:
            try:
                state = ConnectionState(obj["state"])
            except (ValueError, TypeError):
                raise ReplayError(f"{where}: unknown device state {obj['state']!r}") from None
            yield DeviceEvent(device, state, stamp, str(obj.get("detail", "")))
        elif set(obj) <= {"t", "device"}:
            yield stamp
        # Anything else (waveform blocks, vendor values, other events) does not alarm.
    if nibp is not None:
        yield _reading(nibp)


def _float(number: int | float, where: str, what: str) -> float:
    try:
        return float(number)  # an integer too large for a float raises OverflowError
    except OverflowError:
        raise ReplayError(f"{where}: {what} is too large to be a measurement") from None


def _code(text: Any) -> Code | None:
    try:
        return Code(text) if text is not None else None
    except (ValueError, TypeError):
        return None  # a code the alarm system has no rule for


def _value(obj: dict[str, Any], where: str) -> float | None:
    value = obj.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReplayError(f'{where}: "value" must be a number or null')
    return _float(value, where, '"value"')


def _flags(obj: dict[str, Any], where: str) -> set[Flag]:
    try:
        return {Flag(f) for f in obj.get("flags", [])}
    except (ValueError, TypeError):
        raise ReplayError(f"{where}: unknown flag in {obj.get('flags')!r}") from None


def _capnogram(obj: dict[str, Any], device: str, stamp: Stamp, where: str) -> WaveformBlock:
    """A capnogram block; its ``t`` is its first sample's, which may lie before the previous
    line's (a block ends where it was stamped), so it is not held to the time order."""
    import numpy as np  # here: the replay of numerics alone starts without numpy

    fs = obj.get("fs")
    if isinstance(fs, bool) or not isinstance(fs, int | float) or not 0 < fs <= 10_000:
        raise ReplayError(f'{where}: "fs" must be a sampling rate in Hz (a number above 0)')
    samples = obj["samples"]
    if not isinstance(samples, list) or not samples:
        raise ReplayError(f'{where}: "samples" must be a non-empty list of numbers or null')
    values = []
    for x in samples:
        if x is None:
            values.append(math.nan)  # a sample the device marked invalid
        elif isinstance(x, bool) or not isinstance(x, int | float):
            raise ReplayError(f'{where}: "samples" must be a non-empty list of numbers or null')
        else:
            values.append(_float(x, where, "a sample"))
    flags = frozenset(_flags(obj, where))
    return WaveformBlock(device, Code.CO2, stamp, float(fs), np.asarray(values), flags)


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
        "priority": None if entry.priority is None else entry.priority.label,
        "kind": None if entry.kind is None else entry.kind.value,
        "state": entry.event.value,
        "value": entry.value,
        "limit": entry.limit,
        "device": entry.source,
    }
