"""The NIBP schedule tied to the dose: when readings are due, in minutes after T0.

A schedule is a list of segments ``(until_min, every_min)``: the kap-default one reads every
5 minutes to 60, then every 15 (the 40-minute reading, when ketamine's blood pressure rise
peaks, falls on it). The alarm engine uses it for the overdue reminder, the screen for "next in
3 min" and "due now".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Segments = Sequence[tuple[float, float]]


def latest_due(segments: Segments, elapsed_min: float) -> tuple[float, float] | None:
    """The latest reading due at or before ``elapsed_min``: (minute, interval), or None."""
    latest = None
    start = 0.0
    for until, every in segments:
        if elapsed_min < start + every:
            break
        last = min(until, elapsed_min)
        n = math.floor((last - start) / every + 1e-9)
        latest = (start + n * every, every)
        start = until
        if until > elapsed_min:
            break
    return latest


def next_due(segments: Segments, elapsed_min: float) -> float | None:
    """The first reading due after ``elapsed_min`` (minutes after the dose), or None."""
    start = 0.0
    for until, every in segments:
        if elapsed_min < until:
            n = math.floor((max(elapsed_min, start) - start) / every + 1e-9) + 1
            due = start + n * every
            if due <= until:
                return due
        start = until
    return None
