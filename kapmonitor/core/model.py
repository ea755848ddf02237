"""The items that flow from devices to alarms, the record and the screen.

They are small and immutable so that one item can be handed to several consumers on several
threads without copying or locking. Each carries the :class:`Stamp` its device layer gave it;
nothing downstream re-stamps an item. A missing or invalid value is ``None`` plus :class:`Flag`
members that say why, never 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING

from kapmonitor.core.codes import Code

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, slots=True)
class Stamp:
    """When the device layer saw an item: once, at the source.

    ``mono`` orders items and measures intervals (immune to clock changes); ``wall`` is what the
    record and reports show.
    """

    mono: float  #: seconds, time.monotonic() scale
    wall: float  #: seconds since the Unix epoch

    @classmethod
    def now(cls) -> Stamp:
        return cls(time.monotonic(), time.time())

    def shifted(self, seconds: float) -> Stamp:
        """The same clock pair ``seconds`` later (earlier if negative)."""
        return Stamp(self.mono + seconds, self.wall + seconds)


class Flag(StrEnum):
    """Why a value is missing or should be read with care."""

    SENSOR_OFF = "sensor-off"
    SEARCHING = "searching"
    ARTIFACT = "artifact"
    OUT_OF_RANGE = "out-of-range"
    QUESTIONABLE = "questionable"
    LOW_PERFUSION = "low-perfusion"
    MEASUREMENT_FAILED = "measurement-failed"
    DEMO = "demo"  #: the device sends demo or test data, not the patient's (IntelliVue)
    #: A capnograph detected no breath (apnoea): a patient state, unlike a line that is off.
    NO_BREATH = "no-breath"
    #: The CO2 sampling line is blocked (occlusion, water): no CO2 reading, a technical state.
    LINE_BLOCKED = "line-blocked"


Flags = frozenset[Flag]
NO_FLAGS: Flags = frozenset()


@dataclass(frozen=True, slots=True)
class Numeric:
    """One periodic value (SpO2, pulse rate, heart rate, perfusion index)."""

    source: str  #: the device that produced it, as the user named it
    code: Code
    value: float | None
    stamp: Stamp
    flags: Flags = NO_FLAGS

    @property
    def unit(self) -> str:
        return self.code.unit


@dataclass(frozen=True, slots=True)
class NibpReading:
    """One cuff measurement: systolic, diastolic and mean belong together.

    ``stamp`` is the time the cuff measured, which for a monitor polled every few seconds can be
    well before the time the reading arrived.
    """

    source: str
    systolic: float | None
    diastolic: float | None
    mean: float | None
    stamp: Stamp
    flags: Flags = NO_FLAGS

    def parts(self) -> tuple[tuple[Code, float | None], ...]:
        return (
            (Code.NIBP_SYS, self.systolic),
            (Code.NIBP_DIA, self.diastolic),
            (Code.NIBP_MEAN, self.mean),
        )


_np: ModuleType | None = None


def _numpy() -> ModuleType:
    """numpy, imported on first use (`kapmonitor --help` starts without it) and then kept: an
    ``import`` statement per waveform block goes through every import hook installed (Qt's
    shiboken adds one), some 2 µs a block, a tenth of a second for a 2-hour session's review."""
    global _np
    if _np is None:
        import numpy

        _np = numpy
    return _np


@dataclass(frozen=True, slots=True, eq=False)
class WaveformBlock:
    """Consecutive samples of one waveform at a fixed rate; ``stamp`` is the first sample's time.

    Samples are a read-only float array; a sample the device marked invalid is NaN.
    """

    source: str
    code: Code
    stamp: Stamp
    fs: float  #: samples per second
    samples: np.ndarray
    flags: Flags = NO_FLAGS

    def __post_init__(self) -> None:
        np = _numpy()
        samples = np.asarray(self.samples, dtype=np.float64)
        if samples is self.samples:
            samples = samples.copy()
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.fs


@dataclass(frozen=True, slots=True)
class DeviceValue:
    """A device value kapmonitor has no IEEE 11073 code for, kept under a vendor key.

    Dropping what a device sends because it is not mapped loses data a clinician may want
    (OpenICE users asked for exactly this); it is kept, recorded and exported under ``key``
    (e.g. ``MASIMO_SPCO``). ``value`` is None when the device sent no number; ``text`` is the
    value as the device sent it.
    """

    source: str
    key: str
    value: float | None
    unit: str  #: UCUM, "" when unknown
    stamp: Stamp
    flags: Flags = NO_FLAGS
    text: str = ""


class ConnectionState(StrEnum):
    """The life of a device connection, as the user sees it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    NO_DATA = "no-data"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A device changed connection state; ``detail`` says why in one plain sentence."""

    source: str
    state: ConnectionState
    stamp: Stamp
    detail: str = ""


class SessionEventKind(StrEnum):
    """Things that happen in a session that are not measurements."""

    DOSE = "dose"
    NIBP_SCHEDULED = "nibp-scheduled"
    MARKER = "marker"
    #: A sedation or dissociation score: the text says it in words, the author scored it; the
    #: number itself travels as a Numeric at the same stamp (core.assessment). Not
    #: "assessment": that is the clinician's REMS answer in review ("sedation: yes").
    SCORE = "score"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A session event such as the dose (T0); the simulator's scenario emits these too."""

    source: str
    kind: SessionEventKind
    stamp: Stamp
    text: str = ""
    #: who did it (the nurse who marked the dose): kept apart from the text, so a de-identified
    #: export can leave the name out and keep what happened
    author: str | None = None


Measurement = Numeric | NibpReading | WaveformBlock | DeviceValue
Item = Numeric | NibpReading | WaveformBlock | DeviceValue | DeviceEvent | SessionEvent
