"""What breathing values say about the patient's breaths, and the capnogram's flat line.

Issue 17's alarms hinge on telling three things apart that can all look like "no CO2":

- **no breath (apnoea)**, a patient state: the capnograph says so (its no-breath flag), the
  rate reads 0, or the capnogram comes marked breathless;
- **a sampling line that is off or blocked**, a technical state: the device's line flags
  (``LINE_BLOCKED``; ``SENSOR_OFF`` on a CO2 value, the FilterLine not connected), its "no valid
  CO2 value" (``MEASUREMENT_FAILED`` on a CO2 value), or a flat capnogram while the oximeter
  reads SpO2 and pulse and the device says nothing of apnoea;
- **no capnograph at all**: nothing is said, and nothing alarms.

A value flagged line-off or blocked says nothing about breaths, whatever number it carries:
a capnograph that draws no gas counts no breaths, and calling that apnoea would be a false
emergency (and the line's real cause hidden). :func:`says_no_breath` is the one judgement, used
by the alarm engine and by the review summary's "time with no breath", so the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kapmonitor.core.codes import CO2_RANGE, Code
from kapmonitor.core.model import Flag, Flags

if TYPE_CHECKING:
    import numpy as np

#: The condition ids of the breathing rules that are not [[limit]] rules (as "bp-rise-...").
APNEA = "apnea"
ETCO2_RISE = "etco2-rise"
#: Breaths a minute, counted in the chest (impedance) or in the airway's CO2.
RATE_CODES = frozenset({Code.RESP_RATE, Code.AWAY_RESP_RATE})
#: Values a capnograph measures in the gas its sampling line draws.
CO2_CODES = frozenset({Code.CO2_ET, Code.CO2_INSP_MIN, Code.CO2, Code.AWAY_RESP_RATE})
BREATHING_CODES = RATE_CODES | CO2_CODES
#: Flags that say the sampling line is off (SENSOR_OFF on a CO2 value) or blocked.
LINE_FLAGS = frozenset({Flag.SENSOR_OFF, Flag.LINE_BLOCKED})


#: Why a capnograph gives no CO2 signal, as the "no CO2 signal" alarm says it.
LINE = "sampling line off or blocked"
NO_VALUE = "the capnograph measures no CO2"


def no_signal(code: Code, flags: Flags, airway_rate: bool) -> str | None:
    """Why the flags on a value of ``code`` say there is no CO2 signal, or None.

    The line off or blocked (LINE_BLOCKED; SENSOR_OFF on a CO2 value), or the capnograph's own
    "no valid value" (MEASUREMENT_FAILED on a CO2 value: an IntelliVue's CO2 values are invalid
    while its line is off). ``airway_rate``: the device's MDC_RESP_RATE is counted in the airway
    (a capnograph with no separate airway rate), so a sensor-off flag on it is the line's; on a
    monitor that counts it in the chest (impedance), sensor-off there is leads off, the ordinary
    sensor-off condition.
    """
    if code not in BREATHING_CODES:
        return None
    if Flag.LINE_BLOCKED in flags:
        return LINE
    if Flag.SENSOR_OFF in flags and (code in CO2_CODES or airway_rate):
        return LINE
    if Flag.MEASUREMENT_FAILED in flags and code in CO2_CODES:
        return NO_VALUE
    return None


def says_no_breath(code: Code, value: float | None, flags: Flags) -> bool | None:
    """True: no breath; False: breathing; None: this value says nothing either way.

    ``value`` must be one a limit may judge (:func:`alarms.engine.trusted`) or None: an
    impossible value is no evidence and the caller leaves it out.
    """
    if code not in BREATHING_CODES or flags & LINE_FLAGS:
        return None
    if Flag.NO_BREATH in flags:
        return True
    if code in RATE_CODES:
        return None if value is None else value == 0
    if code is Code.CO2_ET and value is not None and value > 0:
        return False  # an end-tidal value: a breath ended
    return None


def sample_range(samples: np.ndarray) -> tuple[float, float] | None:
    """The lowest and highest sample of a capnogram block, NaN (marked invalid) left out; None
    when none is valid."""
    if not samples.size:
        return None
    low, high = float(samples.min()), float(samples.max())
    if low == low and high == high:  # no NaN: the usual block, in two reductions
        return low, high
    valid = samples[samples == samples]
    if not valid.size:
        return None
    return float(valid.min()), float(valid.max())


def possible(low: float, high: float) -> bool:
    """Whether a block's lowest and highest samples are CO2 values that can be: a block with an
    infinite or out-of-range sample is a decoding error, no evidence of anything."""
    floor, ceiling = CO2_RANGE
    return floor <= low and high <= ceiling


@dataclass
class FlatWatch:
    """How long a capnogram has stayed flat: no breath's CO2 swing, in its own time.

    Blocks arrive in order, each as its lowest and highest valid sample. The current flat run
    starts at the earliest block from which every sample lies within ``mmhg`` of every other;
    a block that swings further starts a new run. A block that cannot be judged (no valid
    sample; the engine also resets on impossible samples and on line or no-breath flags) ends
    the run: flatness must be seen, never assumed across what was not seen.
    """

    since: float | None = None  #: mono start of the current flat run
    low: float = math.inf  #: its lowest and highest sample
    high: float = -math.inf
    #: mono start of the latest block: the run is judged at the block's own stamp, so a block
    #: counts once its successor arrives (never ahead of the time the engine is at)
    latest: float = -math.inf

    def reset(self) -> None:
        self.since, self.low, self.high = None, math.inf, -math.inf

    def add(self, start: float, low: float, high: float, mmhg: float) -> None:
        """Take one block's lowest and highest sample."""
        self.latest = start
        if self.since is not None and max(high, self.high) - min(low, self.low) < mmhg:
            self.low, self.high = min(low, self.low), max(high, self.high)
            return
        # A swing (a breath, or the first block): a run can only begin with a flat block.
        self.reset()
        if high - low < mmhg:
            self.since, self.low, self.high = start, low, high

    def flat(self, span_s: float) -> bool:
        """Whether the capnogram has been flat for at least ``span_s`` seconds."""
        return self.since is not None and self.latest - self.since >= span_s
