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
    RESP_RATE = "MDC_RESP_RATE"  #: breaths a minute from the chest (impedance) or a capnograph
    AWAY_RESP_RATE = "MDC_AWAY_RESP_RATE"  #: breaths a minute counted in the airway's CO2
    CO2_ET = "MDC_AWAY_CO2_ET"  #: end-tidal CO2
    CO2_INSP_MIN = "MDC_AWAY_CO2_INSP_MIN"  #: inspired (minimum) CO2: rebreathing shows here
    CO2 = "MDC_AWAY_CO2"  #: the capnogram, the CO2 wave
    # Scored by the nurse, not measured by a device (kapmonitor.core.assessment): IEEE 11073
    # names no sedation or dissociation scale, so these are kapmonitor's own reference ids.
    MOAAS = "KAP_SCORE_MOAAS"  #: Modified Observer's Assessment of Alertness/Sedation, 0-5
    DISSOCIATION = "KAP_SCORE_DISSOCIATION"  #: dissociation rating: 0 none to 3 severe
    CADSS = "KAP_SCORE_CADSS"  #: Clinician-Administered Dissociative States Scale, total 0-92

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
# Breathing (issue 17): a respiratory rate 0-150 /min (0 is a measured apnoea, not a missing
# value; capnographs and impedance monitors count to 120-150, e.g. Capnostream 0-150, Philips
# 0-150 /min); CO2 0-150 mmHg (Capnostream's and Philips' measuring range; an EtCO2 above it is
# a decoding error). EtCO2 cannot move 30 mmHg within 5 s (it follows alveolar CO2, which
# changes over minutes; a line coming off gives None with a flag, not a jump).
# LOINC: 9279-1 "Respiratory rate" (the FHIR vital-signs profile's code) for both rates; 19891-1
# "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration" for EtCO2; no LOINC
# code for the inspired minimum or the wave was found, so they carry their IEEE 11073 code only.
BREATH_RANGE = (0.0, 150.0)
CO2_RANGE = (0.0, 150.0)
CO2_JUMP = (30.0, 5.0)
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
    # SCADA partition (2 * 65536) + the IntelliVue/11073 term code: 20490, 20498, 20656,
    # 20666, 20652 (VSCaptureMP and OpenICE's tables; shared/reference/breathing-and-station.md).
    Code.RESP_RATE: CodeInfo(151562, "/min", "9279-1", "RR", BREATH_RANGE),
    Code.AWAY_RESP_RATE: CodeInfo(151570, "/min", "9279-1", "awRR", BREATH_RANGE),
    Code.CO2_ET: CodeInfo(151728, "mm[Hg]", "19891-1", "EtCO2", CO2_RANGE, CO2_JUMP),
    Code.CO2_INSP_MIN: CodeInfo(151738, "mm[Hg]", None, "FiCO2", CO2_RANGE),
    # The capnogram in mmHg (devices send CO2 partial pressure, not arbitrary counts).
    Code.CO2: CodeInfo(151724, "mm[Hg]", None, "CO2"),
    # The scores: term codes 0xF001-0xF003 of the SCADA partition, in the range IEEE 11073-10101
    # keeps for private use (0xF000-0xFFFF), so no export passes them off as standard terms. No
    # LOINC code for the MOAA/S, a four-step dissociation rating or the CADSS total was found.
    # UCUM "{score}": a dimensionless count with an annotation. Any score may follow any other.
    Code.MOAAS: CodeInfo(2 * 65536 + 0xF001, "{score}", None, "MOAA/S", (0.0, 5.0)),
    Code.DISSOCIATION: CodeInfo(2 * 65536 + 0xF002, "{score}", None, "Dissociation", (0.0, 3.0)),
    Code.CADSS: CodeInfo(2 * 65536 + 0xF003, "{score}", None, "CADSS", (0.0, 92.0)),
}
