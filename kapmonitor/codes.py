"""Measurement codes: IEEE 11073-10101 reference ids with their UCUM unit and LOINC code.

Every measurement in kapmonitor is named by its IEEE 11073 reference id (the string the standard
calls the *RefId*), so that devices, alarms, the record and exports all speak one vocabulary.
Numeric codes (the 32-bit context-free code, partition 2 offset) and LOINC codes are carried for
exports; sources are listed in shared/reference/clinical-and-alarms.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class CodeInfo:
    """What an export needs to know about a measurement code."""

    mdc_code: int  #: IEEE 11073-10101 context-free code (partition 2 = SCADA)
    unit: str  #: UCUM unit
    loinc: str | None  #: LOINC code, where one exists
    label: str  #: short human name, as a monitor would print it
    #: The values the quantity can physically take (inclusive): outside it a value is
    #: flagged out-of-range by the parsers, and an alarm limit outside it is refused.
    physical_range: tuple[float, float] = (-math.inf, math.inf)


class Code(StrEnum):
    """IEEE 11073 reference ids of the measurements kapmonitor handles."""

    SPO2 = "MDC_PULS_OXIM_SAT_O2"
    PULSE_RATE = "MDC_PULS_OXIM_PULS_RATE"
    HEART_RATE = "MDC_ECG_HEART_RATE"
    NIBP_SYS = "MDC_PRESS_BLD_NONINV_SYS"
    NIBP_DIA = "MDC_PRESS_BLD_NONINV_DIA"
    NIBP_MEAN = "MDC_PRESS_BLD_NONINV_MEAN"
    PLETH = "MDC_PULS_OXIM_PLETH"
    PERFUSION = "MDC_PULS_OXIM_PERF_REL"

    @property
    def info(self) -> CodeInfo:
        return CODE_INFO[self]

    @property
    def unit(self) -> str:
        return CODE_INFO[self].unit

    @property
    def physical_range(self) -> tuple[float, float]:
        return CODE_INFO[self].physical_range


CODE_INFO: dict[Code, CodeInfo] = {
    # LOINC 2708-6 is "Oxygen saturation in Arterial blood"; US Core's pulse-oximetry profile
    # adds 59408-5 (by pulse oximetry). Exports carry both; the primary is the specific one.
    Code.SPO2: CodeInfo(150456, "%", "59408-5", "SpO2", (0.0, 100.0)),
    Code.PULSE_RATE: CodeInfo(149530, "/min", "8889-8", "PR", (20.0, 300.0)),
    Code.HEART_RATE: CodeInfo(147842, "/min", "8867-4", "HR", (20.0, 300.0)),
    Code.NIBP_SYS: CodeInfo(150021, "mm[Hg]", "8480-6", "NIBP sys", (0.0, 300.0)),
    Code.NIBP_DIA: CodeInfo(150022, "mm[Hg]", "8462-4", "NIBP dia", (0.0, 300.0)),
    Code.NIBP_MEAN: CodeInfo(150023, "mm[Hg]", "8478-0", "NIBP mean", (0.0, 300.0)),
    # The pleth wave has no unit of its own: devices send it in arbitrary counts ("1").
    Code.PLETH: CodeInfo(150452, "1", None, "Pleth"),
    Code.PERFUSION: CodeInfo(150448, "%", None, "PI", (0.0, 20.0)),
}
