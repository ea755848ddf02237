"""A recording read from a file, and the pieces every reader builds it from: the table of track
and signal names, units in UCUM, values and NIBP readings flagged when out of their physical
range, pleth cut into blocks of at most 1 s, and the optional reader packages loaded on demand.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import NO_FLAGS, Flag, Item, NibpReading, Numeric, Stamp, WaveformBlock

INSTALL_HINT = "install it with: pip install 'kapmonitor[import]'"

#: Longest waveform block, seconds.
BLOCK_S = 1.0
SYS, DIA, MEAN = "sys", "dia", "mean"

#: Normalised track/signal name -> kapmonitor code (numerics).
NUMERIC_CODES: dict[str, Code] = {
    "SPO2": Code.SPO2,
    "PLETHSPO2": Code.SPO2,
    "PLETHSATO2": Code.SPO2,
    "HR": Code.HEART_RATE,
    "PLETHHR": Code.PULSE_RATE,
    "PULSE": Code.PULSE_RATE,
    "PR": Code.PULSE_RATE,
    "PI": Code.PERFUSION,
    # kapmonitor's own .vital export names its scores by their labels ("MOAA/S", ...): read
    # back, they are scores again (from the "assessment" device, as they were written).
    "MOAAS": Code.MOAAS,
    "DISSOCIATION": Code.DISSOCIATION,
    "CADSS": Code.CADSS,
}
#: Normalised name -> the part of a NIBP reading it carries.
NIBP_PARTS: dict[str, str] = {
    "NIBPSBP": SYS,
    "NIBPSYS": SYS,
    "NBPSYS": SYS,
    "NIBPDBP": DIA,
    "NIBPDIA": DIA,
    "NBPDIAS": DIA,
    "NBPDIA": DIA,
    "NIBPMBP": MEAN,
    "NIBPMEAN": MEAN,
    "NBPMEAN": MEAN,
}
PLETH_NAMES = frozenset({"PLETH"})
#: Units as files write them -> UCUM.
UCUM = {"mmhg": "mm[Hg]", "bpm": "/min", "pm": "/min", "/min": "/min", "%": "%"}


def normalise(name: str) -> str:
    return "".join(c for c in name.upper() if c.isalnum())


def ucum(unit: str) -> str:
    return UCUM.get(unit.strip().lower(), unit.strip())


@dataclass
class Recording:
    """A file's contents as kapmonitor items, in time order."""

    name: str  #: the file, as the user named it
    fmt: str  #: "vital" or "wfdb"
    started: float  #: wall clock of time 0
    ended: float
    items: list[Item] = field(default_factory=list)
    truncated: bool = False  #: the file ends early: this is what it held up to the cut
    out_of_range: int = 0  #: values outside their physical range, stored None and flagged

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(i.source for i in self.items))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    # vitaldb imports wfdb, which warns about pandas deprecations on import; vitaldb leaves its
    # file for the collector to close. Neither is ours to report.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def require(module: str, what: str) -> Any:
    with quiet():
        try:
            return __import__(module)
        except ImportError:
            raise UserError(
                f"reading {what} needs the '{module}' package, which is not installed: "
                f"{INSTALL_HINT} (or pip install {module})"
            ) from None


def finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


OUT_OF_RANGE = frozenset({Flag.OUT_OF_RANGE})


def _in_range(code: Code, value: float | None) -> bool:
    low, high = code.physical_range
    return value is None or low <= value <= high


def numeric(source: str, code: Code, value: float | None, stamp: Stamp) -> Numeric:
    """A value outside the physical range is kept, flagged: stored, never alarmed on."""
    flags = NO_FLAGS if _in_range(code, value) else OUT_OF_RANGE
    return Numeric(source, code, value, stamp, flags)


def nibp_reading(
    source: str, values: tuple[float | None, float | None, float | None], stamp: Stamp
) -> NibpReading:
    codes = (Code.NIBP_SYS, Code.NIBP_DIA, Code.NIBP_MEAN)
    sane = all(_in_range(c, v) for c, v in zip(codes, values, strict=True))
    return NibpReading(source, *values, stamp, NO_FLAGS if sane else OUT_OF_RANGE)


def count_out_of_range(items: list[Item]) -> int:
    return sum(Flag.OUT_OF_RANGE in i.flags for i in items if isinstance(i, Numeric | NibpReading))


def blocks(
    source: str, start: float, t0: float, fs: float, samples: np.ndarray
) -> Iterator[WaveformBlock]:
    """A run of samples starting at ``start`` (wall) as blocks of at most 1 s."""
    step = max(1, round(fs * BLOCK_S))
    for i in range(0, len(samples), step):
        offset = start - t0 + i / fs
        yield WaveformBlock(
            source, Code.PLETH, Stamp(offset, t0 + offset), fs, samples[i : i + step]
        )
