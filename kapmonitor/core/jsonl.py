"""Items as JSON lines: the output of ``decode`` and of the headless ``record``.

One object per measurement: ``{"t", "code", "value", "unit", "flags"}``; an NIBP reading gives its
three parts with the same ``t`` (the time the cuff measured); a waveform block gives
``{"t", "code", "fs", "samples"}``; a value with no IEEE 11073 code gives
``{"t", "key", "value", "unit", "flags", "text"}``. ``t`` is seconds from the start of the
stream. Missing values and invalid samples are ``null``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kapmonitor.core.model import (
    DeviceEvent,
    DeviceValue,
    Flags,
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    WaveformBlock,
)

Record = dict[str, Any]


def _t(mono: float, origin: float) -> float:
    return round(mono - origin, 4)


def _flags(flags: Flags) -> list[str]:
    return sorted(f.value for f in flags)


def _sample(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def records(item: Item, origin: float, *, with_source: bool = False) -> list[Record]:
    """The JSON objects for ``item``; ``origin`` is the monotonic time of the stream's start."""
    out: list[Record]
    if isinstance(item, Numeric):
        out = [
            {
                "t": _t(item.stamp.mono, origin),
                "code": item.code.value,
                "value": item.value,
                "unit": item.unit,
                "flags": _flags(item.flags),
            }
        ]
    elif isinstance(item, NibpReading):
        t = _t(item.stamp.mono, origin)
        out = [
            {
                "t": t,
                "code": code.value,
                "value": value,
                "unit": code.unit,
                "flags": _flags(item.flags),
            }
            for code, value in item.parts()
        ]
    elif isinstance(item, WaveformBlock):
        out = [
            {
                "t": _t(item.stamp.mono, origin),
                "code": item.code.value,
                "fs": item.fs,
                "samples": [_sample(x) for x in item.samples.tolist()],
                "flags": _flags(item.flags),
            }
        ]
    elif isinstance(item, DeviceValue):
        out = [
            {
                "t": _t(item.stamp.mono, origin),
                "key": item.key,
                "value": item.value,
                "unit": item.unit,
                "flags": _flags(item.flags),
                "text": item.text,
            }
        ]
    elif isinstance(item, DeviceEvent):
        out = [{"t": _t(item.stamp.mono, origin), "state": item.state.value, "detail": item.detail}]
        with_source = True
    elif isinstance(item, SessionEvent):
        out = [{"t": _t(item.stamp.mono, origin), "event": item.kind.value, "text": item.text}]
        if item.author:
            out[0]["author"] = item.author
    else:
        raise TypeError(f"not an item: {item!r}")
    if with_source:
        for record in out:
            record["device"] = item.source
    return out


def dumps(record: Record) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False)
