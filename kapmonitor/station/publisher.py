"""The room side of the bus: what a dosing room publishes for the clinic's station.

A :class:`RoomPublisher` reads the session's hub and alarm log like the recorder does (its own
bounded queue, so it can never slow a device reader or the alarms) and publishes on its own
thread through a :class:`~kapmonitor.station.broker.BrokerLink`, which queues and never blocks.
The room stays the primary alarm system: a broker that is down, slow or refusing changes nothing
in the room's monitoring, alarms or record; the room only raises its own low-priority technical
alarm "station link lost", so the nurse in the room knows the station no longer sees them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from alarms.model import Alarm, LogEntry, LogEvent
from kapmonitor.core.codes import Code
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    Item,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    WaveformBlock,
)
from kapmonitor.station.broker import BrokerLink, BrokerUrl, Credentials, LinkState
from kapmonitor.station.contract import (
    ALARM_RESEND_S,
    NUMERICS_PERIOD_S,
    PLETH_WANT_S,
    ContractError,
    Kind,
    Phase,
    RoomState,
    check_room,
    decode,
    encode,
    topic,
)

log = logging.getLogger(__name__)

#: How often the publisher looks at its queues and the alarm state, seconds.
TICK_S = 0.1
#: The publisher's queue: a minute of a few devices with waves; beyond, it drops (counted).
QUEUE_SIZE = 20_000
#: A status is re-sent this often even unchanged (a retained message a broker may have lost).
STATUS_RESEND_S = 30.0


class RoomSource(Protocol):
    """What the publisher asks the session for (the runner answers)."""

    def alarm_state(self) -> tuple[list[Alarm], bool]:
        """The room's alarms and whether its audio is paused."""
        ...

    def device_rows(self) -> list[tuple[str, str, str]]: ...

    def next_nibp(self) -> str: ...

    def since_dose_s(self) -> float | None: ...

    def set_station_link(self, lost: bool, text: str) -> None:
        """Raise or clear the room's "station link lost" technical alarm."""
        ...


@dataclass(frozen=True)
class RoomIdentity:
    room: str
    label: str = ""  #: the pseudonymous label the room shows; never the patient identifier
    drug: str | None = None


class RoomPublisher:
    """Publishes one room's session to the clinic's broker."""

    def __init__(
        self,
        identity: RoomIdentity,
        url: BrokerUrl,
        credentials: Credentials,
        hub: Hub[Item],
        alarm_log: Hub[LogEntry],
        source: RoomSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.room = check_room(identity.room)
        self.source = source
        self.session = str(uuid.uuid4())  #: the session as the bus knows it (no record id)
        #: The record's uid (SessionInfo.uid: a random uuid, no patient data), set by the runner
        #: once the session is recorded: a station with the clinic database fills its trends
        #: from the record's start. None: the room records nothing (the field is left out).
        self.record: str | None = None
        self._clock = clock
        self._items = hub.subscribe("station", maxsize=QUEUE_SIZE)
        self._log = alarm_log.subscribe("station", maxsize=QUEUE_SIZE)
        self._hub, self._alarm_hub = hub, alarm_log
        self._values: dict[str, float | None] = {}
        self._published: dict[str, dict[str, Any]] = {}  #: alarm id -> last body sent
        self._resent: dict[str, float] = {}  #: alarm id -> monotonic time of last send
        self._acks: dict[tuple[str, str], tuple[str, float]] = {}
        self._seq = 0  #: orders alarm messages: a station keeps the newest state
        self._paused = False  #: the room's audio pause, shown at the station
        self._pleth_until = 0.0  #: monotonic time until which a station wants the pleth
        self._status_sent: dict[str, Any] | None = None
        self._status_at = 0.0
        self._resync = threading.Event()  #: (re)connected: send the retained state again
        self._stop = threading.Event()
        self._ended = False
        self.sent = 0  #: messages handed to the link
        self.link = BrokerLink(
            url,
            credentials,
            client_id=f"kapmonitor-room-{self.room}",
            will=(topic(self.room, Kind.STATUS), self._status_body(RoomState.OFFLINE)),
            subscriptions=(topic(self.room, Kind.PLETH_WANT),),
            on_message=self._on_message,
            on_state=self._on_link,
        )
        self._thread = threading.Thread(target=self._run, name="station-publisher", daemon=True)

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self.link.start()
        self._thread.start()

    def stop(self, ended: bool = True) -> None:
        """Stop publishing; ``ended``: the session ended (not the room vanished)."""
        self._stop.set()
        self._thread.join(2.0)
        self._hub.unsubscribe(self._items)
        self._alarm_hub.unsubscribe(self._log)
        last = None
        if ended and self.link.state is LinkState.CONNECTED:
            self._send(
                Kind.ALARMS,
                {"t": self._clock(), "seq": self._next(), "alarms": []},
                qos=1,
                retain=True,
            )
            last = (topic(self.room, Kind.STATUS), self._status_body(RoomState.ENDED))
        self.link.stop(last)

    def _on_link(self, state: LinkState, text: str) -> None:
        if state is LinkState.CONNECTED:
            self._resync.set()
        try:
            self.source.set_station_link(state is not LinkState.CONNECTED, f"station link: {text}")
        except Exception:  # the room's alarms must not depend on this working
            log.exception("could not set the station-link alarm")

    def _on_message(self, topic_text: str, payload: bytes) -> None:
        try:
            message = decode(topic_text, payload)
        except ContractError as exc:
            log.debug("ignored a message on %r: %s", topic_text[:200], exc)
            return
        if message.kind is Kind.PLETH_WANT:
            seconds = min(max(float(message.body["for_s"]), 0.0), PLETH_WANT_S)
            self._pleth_until = time.monotonic() + seconds

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        next_numerics = time.monotonic()
        while not self._stop.wait(TICK_S):
            try:
                now = time.monotonic()
                if self._resync.is_set():
                    self._resync.clear()
                    self._status_sent = None
                    self._publish_alarm_set()
                self._drain_items()
                self._drain_log()
                self._alarms(now)
                self._status(now)
                if now >= next_numerics:
                    next_numerics = max(next_numerics + NUMERICS_PERIOD_S, now)
                    self._send(
                        Kind.NUMERICS,
                        {
                            "t": self._clock(),
                            "values": self._values,
                            "since_dose_s": self.source.since_dose_s(),
                        },
                    )
            except Exception:  # a bug here must not end the room's publishing for good
                log.exception("publishing to the station failed")

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _send(self, kind: Kind, body: dict[str, Any], qos: int = 0, retain: bool = False) -> None:
        if self.link.publish(topic(self.room, kind), encode(self.room, kind, body), qos, retain):
            self.sent += 1

    def _drain_items(self) -> None:
        for item in self._items.drain():
            if isinstance(item, Numeric):
                self._values[item.code.value] = item.value
            elif isinstance(item, NibpReading):
                self._send(
                    Kind.NIBP,
                    {
                        "t": self._clock(),
                        "systolic": item.systolic,
                        "diastolic": item.diastolic,
                        "mean": item.mean,
                        "next_due": self.source.next_nibp(),
                    },
                    qos=1,
                )
            elif isinstance(item, SessionEvent) and item.kind in (
                SessionEventKind.DOSE,
                SessionEventKind.MARKER,
                SessionEventKind.SCORE,
            ):
                self._send(
                    Kind.EVENTS,
                    {"t": self._clock(), "kind": item.kind.value, "label": item.text},
                    qos=1,
                )
            elif (
                isinstance(item, WaveformBlock)
                and item.code is Code.PLETH
                and time.monotonic() < self._pleth_until
            ):
                samples = [None if s != s else round(float(s), 4) for s in item.samples]
                self._send(Kind.PLETH, {"t": self._clock(), "fs": item.fs, "samples": samples})

    def _drain_log(self) -> None:
        for entry in self._log.drain():
            if entry.event is LogEvent.ACKNOWLEDGED and entry.condition and entry.source:
                self._acks[(entry.condition, entry.source)] = (entry.operator or "", self._clock())

    def _alarm_body(self, alarm: Alarm) -> dict[str, Any]:
        who = self._acks.get((alarm.condition, alarm.source)) if alarm.acknowledged else None
        return {
            "id": alarm.id,
            "condition": alarm.condition,
            "message": alarm.message,
            "priority": alarm.priority.label,
            "state": alarm.state.value,
            "kind": alarm.kind.value,
            "source": alarm.source,
            "started": alarm.started.wall,
            "acknowledged_by": who[0] if who else None,
            "acknowledged_at": who[1] if who else None,
        }

    def _alarms(self, now: float) -> None:
        alarms, paused = self.source.alarm_state()
        current = {a.id: self._alarm_body(a) for a in alarms}
        changed = False
        for alarm_id, body in current.items():
            old = self._published.get(alarm_id)
            if old is None:
                self._event(Phase.START, body, now)
                changed = True
            elif old != body:
                self._event(Phase.CONTINUE, body, now)
                changed = True
            elif now - self._resent.get(alarm_id, now) >= ALARM_RESEND_S:
                self._event(Phase.CONTINUE, body, now)  # IHE ACM's periodic re-send
        for alarm_id in set(self._published) - set(current):
            self._event(Phase.END, {**self._published[alarm_id], "state": "ended"}, now)
            self._resent.pop(alarm_id, None)
            changed = True
        self._published = current
        self._paused = paused
        if changed:
            self._publish_alarm_set()

    def _event(self, phase: Phase, body: dict[str, Any], now: float) -> None:
        self._resent[body["id"]] = now
        self._send(
            Kind.ALARM,
            {"t": self._clock(), "seq": self._next(), "phase": phase.value, "alarm": body},
            qos=1,
        )

    def _publish_alarm_set(self) -> None:
        self._send(
            Kind.ALARMS,
            {"t": self._clock(), "seq": self._next(), "alarms": list(self._published.values())},
            qos=1,
            retain=True,
        )

    def _status_body(self, state: RoomState) -> bytes:
        """A status without devices: the Last Will ("offline") and the last word ("ended")."""
        fields = {
            "state": state.value,
            "session": self.session,
            "label": self.identity.label,
            "drug": self.identity.drug,
            **self._record_field(),
        }
        return encode(self.room, Kind.STATUS, fields)

    def _record_field(self) -> dict[str, str]:
        return {} if self.record is None else {"record": self.record}

    def _status(self, now: float) -> None:
        """The retained status, sent when it changes (and now and then: a broker may lose it)."""
        body: dict[str, Any] = {
            "state": RoomState.LIVE.value,
            "session": self.session,
            "label": self.identity.label,
            "drug": self.identity.drug,
            **self._record_field(),
            "devices": [
                {"source": s, "state": st, "detail": d} for s, st, d in self.source.device_rows()
            ],
            "audio_paused": self._paused,
        }
        if body != self._status_sent or now - self._status_at >= STATUS_RESEND_S:
            self._status_sent, self._status_at = body, now
            self._send(Kind.STATUS, {"t": self._clock(), **body}, qos=1, retain=True)
