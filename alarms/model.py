"""The alarm system's vocabulary: priorities, alarms as the screen shows them, and the log.

Numbers follow IEC 60601-1-8 as quoted in shared/reference/clinical-and-alarms.md: three
priorities with their colours and flash rates. The engine decides; ui/ only draws and plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from kapmonitor.core.model import Stamp


class Priority(IntEnum):
    """Alarm priority; a larger value is more urgent, so ``max()`` picks the one to sound."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls[text.upper()]


@dataclass(frozen=True)
class VisualSignal:
    """How an alarm of one priority looks (IEC 60601-1-8 table 2)."""

    colour: str
    flash_hz: float | None  #: None: steady
    duty_cycle: float  #: fraction of each flash period the signal is lit (20-60 %)


VISUAL: dict[Priority, VisualSignal] = {
    Priority.HIGH: VisualSignal("red", 2.0, 0.5),  # 1.4-2.8 Hz
    Priority.MEDIUM: VisualSignal("yellow", 0.6, 0.5),  # 0.4-0.8 Hz
    Priority.LOW: VisualSignal("cyan", None, 1.0),  # steady
}


class AlarmKind(StrEnum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


class TechnicalCondition(StrEnum):
    """A condition of the equipment rather than the patient, defined once.

    Each has three names that must not drift apart: its value, the name the alarm log and the
    session record store (hyphens, as the physiological rule ids: "no-data"); its key in a
    profile's ``[technical]`` table (underscores, as TOML keys: ``no_data``); and the message a
    nurse reads. Records and profile files written before keep loading: neither name changed.
    """

    profile_key: str
    message: str

    def __new__(cls, name: str, profile_key: str, message: str) -> TechnicalCondition:
        member = str.__new__(cls, name)
        member._value_ = name
        member.profile_key = profile_key
        member.message = message
        return member

    SENSOR_OFF = "sensor-off", "sensor_off", "Sensor off or probe fault"
    SIGNAL_QUALITY = (
        "signal-quality",
        "signal_quality",
        "Poor signal: searching, artifact or low perfusion",
    )
    NO_DATA = "no-data", "no_data", "No data from the device"
    DISCONNECTED = "disconnected", "disconnected", "Device disconnected"
    NIBP_FAILED = "nibp-failed", "nibp_failed", "NIBP measurement failed"
    RECORDING_FAILING = "recording-failing", "recording_failing", "Recording is failing"
    NIBP_OVERDUE = "nibp-overdue", "nibp_overdue", "NIBP reading overdue"
    #: The room cannot reach the clinic's station (the broker): the room's own alarms go on.
    STATION_LINK_LOST = "station-link-lost", "station_link_lost", "Station link lost"
    #: At the station: a room it can no longer hear (Last Will or silence).
    ROOM_LINK_LOST = "room-link-lost", "room_link_lost", "Room link lost"
    #: The capnograph's sampling line is off or blocked (its own flags), or the capnogram is
    #: flat while SpO2 and pulse read: the equipment, never apnoea (issue 17).
    NO_CO2_SIGNAL = "no-co2-signal", "no_co2_signal", "No CO2 signal"


class AlarmState(StrEnum):
    """What the screen shows for an alarm."""

    ACTIVE = "active"  #: the condition exists
    LATCHED = "latched"  #: the condition ended, the signal waits for an acknowledgment


@dataclass(frozen=True)
class Alarm:
    """One alarm as the screen and the sound see it."""

    id: str  #: stable key: condition, level and source
    condition: str  #: a limit rule's id, e.g. "spo2-low", or a :class:`TechnicalCondition`
    message: str  #: what a nurse reads, e.g. "SpO2 low"
    priority: Priority
    kind: AlarmKind
    source: str  #: the device, or "session" for session-level conditions
    code: str | None  #: the measurement's IEEE 11073 id; None for most technical alarms
    value: float | None  #: the value that triggered it
    limit: float | None  #: the limit in force when it triggered
    delay_s: float  #: the condition delay, disclosed on screen
    started: Stamp
    state: AlarmState
    acknowledged: bool


class LogEvent(StrEnum):
    ACTIVE = "active"  #: a condition began (after its delay)
    INACTIVE = "inactive"  #: a condition ended
    ACKNOWLEDGED = "acknowledged"
    AUDIO_PAUSED = "audio-paused"
    AUDIO_RESUMED = "audio-resumed"
    LIMIT_CHANGED = "limit-changed"
    BASELINE = "baseline"  #: the pre-dose baseline was set, or found missing


@dataclass(frozen=True)
class LogEntry:
    """One line of the alarm log, which belongs to the session record."""

    stamp: Stamp
    event: LogEvent
    condition: str | None = None
    priority: Priority | None = None
    kind: AlarmKind | None = None
    source: str | None = None
    code: str | None = None
    value: float | None = None
    limit: float | None = None
    operator: str | None = None
    text: str = ""


@dataclass(frozen=True)
class AudioDue:
    """What the loudspeaker should do now."""

    priority: Priority | None  #: the burst to play; None: silence
    paused_for: float  #: seconds of audio pause left (0: not paused)
