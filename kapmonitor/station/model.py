"""The nurse station's state: every room it hears, Qt-free and thread-safe.

The MQTT client's thread feeds :meth:`StationModel.handle`; the window (or the headless watch)
reads :meth:`StationModel.snapshot`, immutable views sorted most urgent first. The station never
decides a patient alarm: it shows what each room sent. It decides one thing itself, the only
alarm a distributed alarm system must raise on its own (IEC 60601-1-8): a room it can no longer
hear ("room link lost"), from the room's Last Will or from the silence of its heartbeats.
A message that breaks the contract is ignored and counted, never trusted and never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kapmonitor.station.contract import (
    PRIORITIES,
    STALE_S,
    ContractError,
    Kind,
    Message,
    Phase,
    RoomState,
    decode,
)

log = logging.getLogger(__name__)

LIVE = "live"
LINK_LOST = "link-lost"
ENDED = "ended"
#: The station's own technical alarm for a room it cannot hear.
ROOM_LINK_LOST = "room-link-lost"
ROOM_LINK_LOST_PRIORITY = "medium"
#: Station-side trend: a value a second for 6 h per code is plenty for a session.
TREND_POINTS = 6 * 3600
#: Pleth blocks kept per room (a few seconds for the large view).
PLETH_BLOCKS = 16
#: Alarm events kept per room (start / continue / end), for the large view's alarm list.
EVENT_LOG = 2000


@dataclass(frozen=True)
class AlarmView:
    """One alarm as the station shows it (the room's, or the station's own link alarm)."""

    id: str
    condition: str  #: "spo2-low", "no-data", "room-link-lost"
    message: str
    priority: str  #: "low" | "medium" | "high"
    state: str  #: "active" | "latched"
    kind: str  #: "physiological" | "technical"
    source: str  #: the room's device, or "station" for the station's own alarm
    started: float | None  #: wall clock at the room
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None  #: wall clock

    @property
    def rank(self) -> int:
        return PRIORITIES.index(self.priority) + 1


@dataclass(frozen=True)
class DeviceView:
    source: str
    state: str  #: the device's connection state as the room shows it
    detail: str = ""


@dataclass(frozen=True)
class NibpView:
    systolic: float | None
    diastolic: float | None
    mean: float | None
    t: float  #: wall clock of the reading
    next_due: str  #: the room's schedule sentence ("next in 3 min", "DUE NOW: ...")


@dataclass(frozen=True)
class AlarmEvent:
    """A phase of one room alarm as received (the large view's alarm list)."""

    t: float  #: wall clock at the room
    phase: str  #: start | continue | end
    alarm: AlarmView
    received: float  #: monotonic clock at the station


@dataclass(frozen=True)
class RoomView:
    """One room, at the time of the snapshot."""

    room: str
    state: str  #: live | link-lost | ended
    label: str  #: the pseudonymous label the room shows
    session: str
    drug: str | None
    minutes_since_dose: float | None
    devices: tuple[DeviceView, ...]
    numerics: dict[str, float | None]  #: code -> value (None: the device has none now)
    numerics_age_s: float | None  #: seconds since the latest numerics arrived
    nibp: NibpView | None
    alarms: tuple[AlarmView, ...]  #: most urgent first; "room-link-lost" leads when the link is
    link: str  #: a sentence: "connected", "lost: nothing for 8 s", "offline (Last Will)"
    audio_paused: bool
    #: The uid of the session's record in the clinic database; None: the room records nothing
    #: (or is of a version that does not say).
    record: str | None = None

    @property
    def top_priority(self) -> int:
        """0 none, 1 low, 2 medium, 3 high: the tile's colour."""
        return max((a.rank for a in self.alarms), default=0)


@dataclass
class _Room:
    name: str
    status: dict[str, Any] = field(default_factory=dict)
    status_offline: bool = False
    seen: float = 0.0  #: monotonic time of the last message
    numerics: dict[str, float | None] = field(default_factory=dict)
    numerics_seen: float | None = None
    since_dose: tuple[float, float] | None = None  #: (seconds since dose at room, seen at)
    nibp: NibpView | None = None
    alarms: dict[str, AlarmView] = field(default_factory=dict)
    alarm_seq: int = -1
    session: str = ""
    record: str | None = None  #: the record's uid, kept across the Last Will (which lacks it)
    trend: dict[str, deque[tuple[float, float | None]]] = field(default_factory=dict)
    pleth: deque[tuple[float, float, tuple[float, ...]]] = field(
        default_factory=lambda: deque(maxlen=PLETH_BLOCKS)
    )
    events: deque[AlarmEvent] = field(default_factory=lambda: deque(maxlen=EVENT_LOG))
    lost_since: float | None = None
    audio_paused: bool = False


def _alarm(body: dict[str, Any]) -> AlarmView:
    return AlarmView(
        id=str(body["id"]),
        condition=str(body["condition"]),
        message=str(body.get("message", body["condition"])),
        priority=str(body["priority"]),
        state=str(body["state"]),
        kind=str(body.get("kind", "physiological")),
        source=str(body.get("source", "")),
        started=_number(body.get("started")),
        acknowledged_by=_text(body.get("acknowledged_by")),
        acknowledged_at=_number(body.get("acknowledged_at")),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class StationModel:
    """Every room's latest state; safe to feed from one thread and read from another."""

    def __init__(
        self, stale_s: float = STALE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stale_s = stale_s
        self._clock = clock
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()
        self._connected = False
        self._link_text = "not connected"
        self.malformed = 0  #: messages on our topics that break the contract
        self.foreign = 0  #: messages of another schema version or outside our topics
        self.version = 0  #: grows with every change: a window redraws only when it moved

    # --- fed by the client's thread -----------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take one received message; False (and counted) when it is not ours or is broken."""
        try:
            message = decode(topic, payload)
        except ContractError as exc:
            with self._lock:
                if "schema version" in str(exc) or "not a room topic" in str(exc):
                    self.foreign += 1
                else:
                    self.malformed += 1
            log.debug("ignored a message on %r: %s", topic[:200], exc)
            return False
        try:
            with self._lock:
                self._apply(message, self._clock())
                self.version += 1
        except (KeyError, TypeError, ValueError) as exc:  # a field of the wrong shape inside
            with self._lock:
                self.malformed += 1
            log.debug("ignored a message on %r: %s", topic[:200], exc)
            return False
        return True

    def set_connected(self, connected: bool, text: str = "") -> None:
        """The station's own link to the broker: without it, no room can be seen."""
        with self._lock:
            self._connected = connected
            self._link_text = text or ("connected" if connected else "not connected")
            now = self._clock()
            for room in self._rooms.values():
                if connected:
                    room.seen = max(room.seen, now)  # each room gets its staleness time again
            self.version += 1

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def link_text(self) -> str:
        return self._link_text

    def _apply(self, message: Message, now: float) -> None:
        room = self._rooms.get(message.room)
        if room is None:
            room = self._rooms[message.room] = _Room(message.room)
        body = message.body
        if message.kind is Kind.PLETH_WANT:
            return  # another station's request: nothing the room's state changes by
        room.seen = now
        if message.kind is Kind.STATUS:
            room.status = body
            room.status_offline = body["state"] == RoomState.OFFLINE
            session = str(body.get("session", ""))
            if session and session != room.session:  # a new session in the room: a clean slate
                room.session, room.alarm_seq, room.record = session, -1, None
                room.trend.clear()
            record = body.get("record")
            if isinstance(record, str) and record:
                room.record = record
            room.audio_paused = bool(body.get("audio_paused", False))
            if room.status_offline:
                return
        else:
            room.status_offline = False  # it talks: it is there (its status may come later)
        if message.kind is Kind.NUMERICS:
            values = {str(k): _number(v) for k, v in body["values"].items()}
            room.numerics, room.numerics_seen = values, now
            since = _number(body.get("since_dose_s"))
            room.since_dose = None if since is None else (since, now)
            t = float(body["t"])
            for code, value in values.items():
                trend = room.trend.get(code)
                if trend is None:
                    trend = room.trend[code] = deque(maxlen=TREND_POINTS)
                trend.append((t, value))
        elif message.kind is Kind.NIBP:
            room.nibp = NibpView(
                _number(body.get("systolic")),
                _number(body.get("diastolic")),
                _number(body.get("mean")),
                float(body["t"]),
                str(body.get("next_due", "")),
            )
        elif message.kind is Kind.ALARM:
            self._alarm_event(room, body, now)
        elif message.kind is Kind.ALARMS:
            seq = body.get("seq")
            if isinstance(seq, int) and seq < room.alarm_seq:
                return  # older than a start or end already applied
            room.alarms = {a.id: a for a in (_alarm(x) for x in body["alarms"])}
            if isinstance(seq, int):
                room.alarm_seq = seq
        elif message.kind is Kind.PLETH:
            samples = tuple(_number(s) or float("nan") for s in body["samples"])
            room.pleth.append((float(body["t"]), float(body["fs"]), samples))

    def _alarm_event(self, room: _Room, body: dict[str, Any], now: float) -> None:
        alarm = _alarm(body["alarm"])
        room.events.append(AlarmEvent(float(body["t"]), str(body["phase"]), alarm, now))
        seq = body.get("seq")
        if isinstance(seq, int):
            if seq < room.alarm_seq:
                return  # the set already says what came after (a queued event, resent late)
            room.alarm_seq = seq
        if body["phase"] == Phase.END:
            room.alarms.pop(alarm.id, None)
        else:
            room.alarms[alarm.id] = alarm

    # --- read by the window -------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Check every room's staleness; the rooms whose link was lost just now."""
        now = self._clock()
        lost = []
        with self._lock:
            for room in self._rooms.values():
                is_lost = self._lost(room, now)
                if is_lost and room.lost_since is None:
                    room.lost_since = now
                    lost.append(room.name)
                    self.version += 1
                elif not is_lost and room.lost_since is not None:
                    room.lost_since = None
                    self.version += 1
        return lost

    def _lost(self, room: _Room, now: float) -> bool:
        if room.status.get("state") == RoomState.ENDED and not room.status_offline:
            return False
        return not self._connected or room.status_offline or now - room.seen > self.stale_s

    def rooms(self) -> list[str]:
        with self._lock:
            return sorted(self._rooms)

    def snapshot(self) -> list[RoomView]:
        """Every room, most urgent first (highest alarm priority, then the room's name)."""
        now = self._clock()
        with self._lock:
            views = [self._view(room, now) for room in self._rooms.values()]
        return sorted(views, key=lambda v: (-v.top_priority, v.room))

    def room(self, name: str) -> RoomView | None:
        now = self._clock()
        with self._lock:
            room = self._rooms.get(name)
            return None if room is None else self._view(room, now)

    def _view(self, room: _Room, now: float) -> RoomView:
        status = room.status
        lost = self._lost(room, now)
        if lost:
            state = LINK_LOST
        elif status.get("state") == RoomState.ENDED:
            state = ENDED
        else:
            state = LIVE
        alarms = sorted(room.alarms.values(), key=lambda a: (-a.rank, a.started or 0.0, a.id))
        if lost:
            alarms.insert(0, self._link_alarm(room, now))
        if not self._connected:
            link = f"station: {self._link_text}"
        elif room.status_offline:
            link = "offline (the broker gave the room's Last Will)"
        elif lost:
            link = f"lost: nothing from the room for {now - room.seen:.0f} s"
        else:
            link = "connected"
        since = None
        if room.since_dose is not None:
            since = (room.since_dose[0] + now - room.since_dose[1]) / 60
        devices = tuple(
            DeviceView(str(d.get("source", "")), str(d.get("state", "")), str(d.get("detail", "")))
            for d in status.get("devices", ())
            if isinstance(d, dict)
        )
        return RoomView(
            room=room.name,
            state=state,
            label=str(status.get("label", "")),
            session=room.session,
            drug=_text(status.get("drug")),
            minutes_since_dose=since,
            devices=devices,
            numerics=dict(room.numerics),
            numerics_age_s=None if room.numerics_seen is None else now - room.numerics_seen,
            nibp=room.nibp,
            alarms=tuple(alarms),
            link=link,
            audio_paused=room.audio_paused,
            record=room.record,
        )

    def _link_alarm(self, room: _Room, now: float) -> AlarmView:
        wall = time.time() - (now - (room.lost_since if room.lost_since is not None else now))
        return AlarmView(
            id=f"{ROOM_LINK_LOST}:{room.name}",
            condition=ROOM_LINK_LOST,
            message=f"Room link lost: {room.name}",
            priority=ROOM_LINK_LOST_PRIORITY,
            state="active",
            kind="technical",
            source="station",
            started=wall,
        )

    def station_alarms(self) -> list[AlarmView]:
        """The station's own alarms (one per room it cannot hear), most recent first."""
        return [a for v in self.snapshot() for a in v.alarms if a.condition == ROOM_LINK_LOST]

    def trend(self, name: str) -> dict[str, list[tuple[float, float | None]]]:
        """What the station received of a room's numerics since its session began:
        code -> [(wall time at the room, value)]; None is a gap."""
        with self._lock:
            room = self._rooms.get(name)
            return {} if room is None else {c: list(d) for c, d in room.trend.items()}

    def pleth(self, name: str) -> list[tuple[float, float, tuple[float, ...]]]:
        """The latest pleth blocks of a room: (wall time of the first sample, fs, samples)."""
        with self._lock:
            room = self._rooms.get(name)
            return [] if room is None else list(room.pleth)

    def alarm_events(self, name: str) -> list[AlarmEvent]:
        """Every alarm phase received from a room, oldest first."""
        with self._lock:
            room = self._rooms.get(name)
            return [] if room is None else list(room.events)
