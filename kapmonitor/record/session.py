"""A recorded session as plain data: what exports, review and replay read.

Measurements are the pipeline's own item types, with the stamps their devices gave them, so a
session read back from the database is the same stream that was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from alarms.model import LogEntry
from kapmonitor.core.model import DeviceValue, NibpReading, Numeric, Stamp, WaveformBlock


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  #: ended by the nurse (the discharge checklist) or the recording's end
    INTERRUPTED = "interrupted"  #: the recording process ended without closing the session
    #: The system stopped the recording (SIGTERM or SIGINT: shutdown, logout, Ctrl+C): the
    #: record was flushed and closed, but nobody ended the session through the discharge check.
    STOPPED_BY_SYSTEM = "stopped-by-system"

    @property
    def text(self) -> str:
        """The status as a reader of the record says it."""
        return _STATUS_TEXT[self]


_STATUS_TEXT = {
    SessionStatus.ACTIVE: "active",
    SessionStatus.COMPLETED: "completed",
    SessionStatus.INTERRUPTED: "interrupted",
    SessionStatus.STOPPED_BY_SYSTEM: "stopped by the system",
}


class Drug(StrEnum):
    KETAMINE = "ketamine"  #: racemic
    ESKETAMINE = "esketamine"


class Route(StrEnum):
    IV = "iv"
    IM = "im"
    SUBLINGUAL = "sublingual"
    INTRANASAL = "intranasal"


@dataclass(frozen=True)
class SessionSetup:
    """What is known when a session begins: who, what drug, which devices, which alarm profile.

    One record from where it is asked (the start dialog, ``record``, the demo) to the runner,
    which opens the devices and loads the profile, and to the store, which keeps the rest as the
    session's header. How a session is run (speed, seed, database) is not part of it.
    """

    patient: str  #: the patient identifier as the clinic uses it
    clinician: str = ""
    operator: str = ""
    drug: Drug | None = None
    route: Route | None = None
    dose: float | None = None
    dose_unit: str = ""
    #: Optional, for the course's mg/kg and the reason for treatment; kept beside the header
    #: (kapmonitor.record.summaries) and amendable in review.
    weight_kg: float | None = None
    indication: str = ""
    devices: tuple[str, ...] = ()  #: as the command line names them: PROTOCOL@PORT, sim:SCENARIO
    profile: str = "kap-default"  #: the alarm profile: a name or a .toml file
    #: The clinic bus (kapmonitor.station): the room's name there and the broker's URL; empty:
    #: the room publishes nothing. Not part of the record's header.
    room: str = ""
    broker: str = ""
    label: str = ""  #: the pseudonymous label the station shows; never the patient identifier


@dataclass(frozen=True)
class SessionInfo:
    """Who, what and when: the session's header."""

    id: int
    uid: str  #: a UUID, stable across databases and exports
    patient: str  #: the patient identifier as the clinic uses it
    clinician: str
    operator: str
    drug: Drug | None
    route: Route | None
    dose: float | None
    dose_unit: str
    started: float  #: wall clock, seconds since the epoch
    ended: float | None
    status: SessionStatus
    alarm_profile: str


@dataclass(frozen=True)
class DeviceInfo:
    source: str  #: the device as the user named it (the items' source)
    protocol: str
    port: str
    serial_number: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """A session event: the dose (T0), a marker, a note, a device state change, an amendment."""

    id: int
    stamp: Stamp
    kind: str  #: "dose", "marker", "note", "device-state", "nibp-scheduled", …
    text: str
    source: str | None = None  #: the device, for device-state events
    author: str | None = None
    amends: int | None = None  #: the event this one corrects (the original is kept)


@dataclass
class SessionRecord:
    """Everything recorded in one session, in time order within each list."""

    info: SessionInfo
    devices: list[DeviceInfo] = field(default_factory=list)
    numerics: list[Numeric] = field(default_factory=list)
    nibp: list[NibpReading] = field(default_factory=list)
    waves: list[WaveformBlock] = field(default_factory=list)
    values: list[DeviceValue] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    alarms: list[LogEntry] = field(default_factory=list)
    #: The alarm profile's TOML as the session ran with it ("" when not stored): review and the
    #: report judge limits by the profile in force, not by today's copy of it.
    profile_text: str = ""

    @property
    def dose_stamp(self) -> Stamp | None:
        """T0: the first dose event that no later event amends."""
        amended = {e.amends for e in self.events if e.amends is not None}
        for event in self.events:
            if event.kind == "dose" and event.id not in amended:
                return event.stamp
        return None

    def minutes_from_dose(self, stamp: Stamp) -> float | None:
        dose = self.dose_stamp
        return None if dose is None else (stamp.wall - dose.wall) / 60.0
