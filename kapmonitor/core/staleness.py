"""When a value is too old to count as current: one rule for the screen and the discharge check.

A number that stopped updating must not pass for a current one: the tiles grey it after
:data:`STALE_S` and blank it after :data:`BLANK_S`, and the discharge checklist does not accept a
value the screen shows grey. Both ask this module, so the screen and the checklist can never
disagree about what is current.

An age is an interval, so it is measured on the monotonic clock (``Stamp.mono``), against the
session's "now" in the devices' time base (:meth:`kapmonitor.runner.SessionRunner.now`): a step
of the wall clock (NTP, a user changing the time) neither freshens nor ages a value.
"""

from __future__ import annotations

from kapmonitor.core.model import Stamp

#: Seconds without an update after which a numeric is shown grey: no longer current.
STALE_S = 10.0
#: Seconds without an update after which a numeric is blanked to "---".
BLANK_S = 30.0
#: Minutes after which an NIBP reading is shown grey (longer than any scheduled interval).
NIBP_STALE_MIN = 20.0


def age(stamp: Stamp, now: Stamp) -> float:
    """Seconds from ``stamp`` to ``now`` on the monotonic clock (never negative)."""
    return max(0.0, now.mono - stamp.mono)


def is_current(stamp: Stamp, now: Stamp, stale_after_s: float = STALE_S) -> bool:
    """Whether a value stamped ``stamp`` is still current at ``now`` (not yet shown grey)."""
    return age(stamp, now) < stale_after_s
