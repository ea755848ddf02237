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
    #: The largest change between two values of one device less than ``max_jump[1]`` seconds
    #: apart that physiology allows; a larger one is flagged questionable by the parsers.
    #: None: the quantity may change freely (a waveform, a cuff reading taken minutes apart).
    max_jump: tuple[float, float] | None = None


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


# Physical ranges: wide enough for every value a supported device can measure (so that no real
# reading is ever set aside), narrow enough that a decoded impossibility is caught.
# - SpO2 0-100 %: a saturation; the Nonin 9560's declared range is 0-100 %.
# - Pulse and heart rate 15-350 /min: the widest declared measuring ranges of the supported
#   devices (Nonin 18-321, Masimo 25-240, Contec 25-250, GE and Philips ECG 15-300) with room
#   above for a neonatal tachycardia; a rate outside it is a decoding error, not a patient.
# - NIBP 10-300 mmHg: oscillometric cuffs measure systolic 30-270 and diastolic from 10 (GE,
#   Philips adult ranges); 300 is above any cuff's inflation limit for an adult.
# - Perfusion index 0-20 %: Masimo's declared PI range (0.02-20 %); Contec noise decoded as
#   342 % shows what lies outside it.
# Jumps (between two values of one device, the second less than the window after the last value
# that passed): SpO2 cannot fall or rise 30 points in 2 s (the fastest desaturation in apnoea is
# a few % a second, and oximeters average over 4-8 beats); a 4-beat pulse average cannot move
# 100 /min in 2 s (even a sudden SVT appears over several beats). A probe sliding off, a
# doubled count on a dicrotic notch or a decoding error can. A real change of that size is
# flagged for at most the window, after which the new level is the reference.
SPO2_JUMP = (30.0, 2.0)
RATE_JUMP = (100.0, 2.0)
RATE_RANGE = (15.0, 350.0)
NIBP_RANGE = (10.0, 300.0)

CODE_INFO: dict[Code, CodeInfo] = {
    # LOINC 2708-6 is "Oxygen saturation in Arterial blood"; US Core's pulse-oximetry profile
    # adds 59408-5 (by pulse oximetry). Exports carry both; the primary is the specific one.
    Code.SPO2: CodeInfo(150456, "%", "59408-5", "SpO2", (0.0, 100.0), SPO2_JUMP),
    Code.PULSE_RATE: CodeInfo(149530, "/min", "8889-8", "PR", RATE_RANGE, RATE_JUMP),
    Code.HEART_RATE: CodeInfo(147842, "/min", "8867-4", "HR", RATE_RANGE, RATE_JUMP),
    Code.NIBP_SYS: CodeInfo(150021, "mm[Hg]", "8480-6", "NIBP sys", NIBP_RANGE),
    Code.NIBP_DIA: CodeInfo(150022, "mm[Hg]", "8462-4", "NIBP dia", NIBP_RANGE),
    Code.NIBP_MEAN: CodeInfo(150023, "mm[Hg]", "8478-0", "NIBP mean", NIBP_RANGE),
    # The pleth wave has no unit of its own: devices send it in arbitrary counts ("1").
    Code.PLETH: CodeInfo(150452, "1", None, "Pleth"),
    Code.PERFUSION: CodeInfo(150448, "%", None, "PI", (0.0, 20.0)),
}
