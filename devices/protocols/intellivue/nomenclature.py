"""IntelliVue nomenclature and constants: serial settings, timing, session SPDU and ROSE
types, object classes, attribute and physio ids, the codes kapmonitor maps them to, units,
MeasurementState bits and FLOAT specials."""

from __future__ import annotations

from devices.protocols.base import SerialSettings
from kapmonitor.core.codes import Code

SERIAL = SerialSettings(115200)
SERIAL_19200 = SerialSettings(19200)
BAUD_OPTIONS: dict[str, SerialSettings] = {"115200": SERIAL, "19200": SERIAL_19200}
#: Bytes a second the monitor sends while polled for numerics, alarms and waves: the real MP90
#: sessions average 2,120 B/s (516 kB in 243 s); places the frames of a plain byte file in time.
BYTE_RATE = 2100.0

TICKS = 8000  #: RelativeTime units a second (1/8 ms)
NUMERIC_PERIOD = 1.024  #: seconds between numerics poll results
WAVE_PERIOD = 0.256  #: seconds of wave in one wave poll result
KEEP_ALIVE_S = 3.0  #: the driver renews its polls this often (the keep-alive)
POLL_DURATION_S = 60.0  #: the period a poll request asks for (renewed long before it ends)
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 10.0, 130.0

# Session SPDU types (first byte of a frame's user data)
CN_SPDU = 0x0D  #: association request
AC_SPDU = 0x0E  #: association result (accepted)
RF_SPDU = 0x0C  #: association refused
FN_SPDU = 0x09  #: release request
DN_SPDU = 0x0A  #: release response
AB_SPDU = 0x19  #: abort
DATA_SPDU = 0xE1  #: data export message (the session id's first byte)
SESSION_ID = 0xE100
P_CONTEXT_ID = 2
ROIV, RORS, ROER, ROLRS = 1, 2, 3, 5
CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT, CMD_GET, CMD_SET = 0, 1, 3, 4
CMD_CONFIRMED_SET, CMD_CONFIRMED_ACTION = 5, 7
NOM_PART_OBJ = 1
NOM_MOC_VMS_MDS = 0x0021
NOM_MOC_VMO_METRIC_NU = 0x0006
NOM_MOC_VMO_METRIC_SA_RT = 0x0009
NOM_MOC_VMO_AL_MON = 0x0036
NOM_NOTI_MDS_CREAT = 0x0D06
NOM_ACT_POLL_MDIB_DATA = 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT = 0xF13B
NOM_ATTR_GRP_VMO_DYN = 0x0803

# Attribute ids
NOM_ATTR_NU_VAL_OBS = 0x0950
NOM_ATTR_NU_CMPD_VAL_OBS = 0x094B
NOM_ATTR_SA_VAL_OBS = 0x096E
NOM_ATTR_SA_CMPD_VAL_OBS = 0x0967
NOM_ATTR_SA_SPECN = 0x096D
NOM_ATTR_SCALE_SPECN_I16 = 0x096F
NOM_ATTR_TIME_PD_SAMP = 0x098D
NOM_ATTR_TIME_STAMP_ABS = 0x0990
NOM_ATTR_TIME_STAMP_REL = 0x0991
NOM_ATTR_TIME_ABS = 0x0987
NOM_ATTR_TIME_REL = 0x098F
NOM_ATTR_SYS_TYPE = 0x0984
NOM_ATTR_ID_MODEL = 0x0928
NOM_ATTR_TIME_PD_POLL = 0xF13E
NOM_ATTR_POLL_RTSA_PRIO_LIST = 0xF23A
NOM_POLL_PROFILE_SUPPORT = 0x0001
NOM_ATTR_POLL_PROFILE_EXT = 0xF001

# Physio ids (the low 16 bits of the SCADA code)
NOM_ECG_CARD_BEAT_RATE = 0x4182
NOM_PULS_OXIM_SAT_O2 = 0x4BB8
NOM_PULS_OXIM_PULS_RATE = 0x4822
NOM_PULS_OXIM_PERF_REL = 0x4BB0
NOM_PULS_OXIM_PLETH = 0x4BB4
NOM_PRESS_BLD_NONINV = 0x4A04
NOM_PRESS_BLD_NONINV_SYS = 0x4A05
NOM_PRESS_BLD_NONINV_DIA = 0x4A06
NOM_PRESS_BLD_NONINV_MEAN = 0x4A07
NOM_PRESS_BLD_NONINV_PULS_RATE = 0xF0E5
NOM_ECG_V_P_C_CNT = 0x4261
NIBP_PARTS = (NOM_PRESS_BLD_NONINV_SYS, NOM_PRESS_BLD_NONINV_DIA, NOM_PRESS_BLD_NONINV_MEAN)
PLETH_LABEL = 0x00024BB4  #: the pleth's TextId (partition SCADA) for the wave priority list
# Breathing (issue 17; VSCaptureMP's and OpenICE's tables agree): impedance respiration rate,
# airway (CO2) respiration rate, the CO2 wave, end-tidal and inspired minimum CO2.
NOM_RESP_RATE = 0x500A
NOM_AWAY_RESP_RATE = 0x5012
NOM_AWAY_CO2 = 0x50AC
NOM_AWAY_CO2_ET = 0x50B0
NOM_AWAY_CO2_INSP_MIN = 0x50BA
CO2_LABEL = 0x000250AC  #: the CO2 wave's TextId, for the wave priority list

#: Physio ids kapmonitor has an IEEE 11073 code for (the NOM_ names are the 11073 RefIds).
PHYSIO_CODES: dict[int, Code] = {
    NOM_ECG_CARD_BEAT_RATE: Code.HEART_RATE,
    NOM_PULS_OXIM_SAT_O2: Code.SPO2,
    NOM_PULS_OXIM_PULS_RATE: Code.PULSE_RATE,
    NOM_PULS_OXIM_PERF_REL: Code.PERFUSION,
    NOM_RESP_RATE: Code.RESP_RATE,
    NOM_AWAY_RESP_RATE: Code.AWAY_RESP_RATE,
    NOM_AWAY_CO2_ET: Code.CO2_ET,
    NOM_AWAY_CO2_INSP_MIN: Code.CO2_INSP_MIN,
}
#: Waves kept, by physio id; others (ECG, impedance respiration) are counted and logged.
WAVE_CODES: dict[int, Code] = {NOM_PULS_OXIM_PLETH: Code.PLETH, NOM_AWAY_CO2: Code.CO2}
#: Names for the DeviceValue keys of common unmapped ids (else the hex id is the name).
PHYSIO_NAMES: dict[int, str] = {
    NOM_ECG_V_P_C_CNT: "ECG_V_P_C_CNT",
    NOM_PRESS_BLD_NONINV_PULS_RATE: "PRESS_BLD_NONINV_PULS_RATE",
    0x0300: "ECG_AMPL_ST",
    0x0301: "ECG_AMPL_ST_I",
    0x0302: "ECG_AMPL_ST_II",
    0x0303: "ECG_AMPL_ST_V1",
    0x480A: "PULS_RATE",
    0xE004: "TEMP",
}
#: Unit codes to UCUM (spec: NOM_DIM_*).
UNITS: dict[int, str] = {
    0x0000: "",
    0x0200: "1",
    0x0220: "%",
    0x0512: "mm",
    0x0AA0: "/min",
    0x0AE0: "/min",  # NOM_DIM_RESP_PER_MIN
    0x0F03: "kPa",
    0x0F20: "mm[Hg]",
    0x17A0: "Cel",
}
UNIT_MMHG, UNIT_KPA = 0x0F20, 0x0F03
KPA_TO_MMHG = 7.500615758

# MeasurementState bits
INVALID = 0x8000
QUESTIONABLE = 0x4000
UNAVAILABLE = 0x2000
CALIBRATION_ONGOING = 0x1000
TEST_DATA = 0x0800
DEMO_DATA = 0x0400
MSMT_ONGOING = 0x0020
MSMT_STATE_IN_ALARM = 0x0002

# FLOAT specials (mantissa)
FLOAT_NAN = 0x7FFFFF
FLOAT_NRES = 0x800000
FLOAT_PINF = 0x7FFFFE
FLOAT_NINF = 0x800002
