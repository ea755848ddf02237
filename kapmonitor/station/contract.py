"""The versioned topic and payload contract between rooms and stations (docs/station-protocol.md).

Topics are ``kapmonitor/v1/room/<room>/<kind>``; payloads are small JSON objects that carry
their schema version ``"v"`` so another tool can subscribe and a later version can change them
without a station misreading them. Nothing here names the patient: a room sends the pseudonymous
label it shows, never the patient identifier, unless the clinic configures it to.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SCHEMA = 1  #: the payloads' version ("v"); a station ignores (and counts) any other
PREFIX = f"kapmonitor/v{SCHEMA}/room"
#: What a station subscribes to: every room's every topic.
ALL_ROOMS = f"{PREFIX}/+/#"
#: A payload larger than this is not ours (a pleth block of 1 s at 125 Hz is ~2 KiB).
MAX_PAYLOAD = 64 * 1024
#: A room name: short, safe in a topic (no wildcards, no slashes) and in a file name.
ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

#: How often a room re-sends each active alarm ("continue", as IHE ACM re-sends), seconds.
ALARM_RESEND_S = 10.0
#: How often a room sends its numerics (also its heartbeat), seconds.
NUMERICS_PERIOD_S = 1.0
#: MQTT keep-alive: the broker sends the Last Will after 1.5 x this of silence (7.5 s), inside
#: the 10 s within which a station must show a room gone (paho's default is 60 s).
KEEPALIVE_S = 5
#: A station calls a room's link lost when nothing came from it for this long (heartbeats are 1 s).
STALE_S = 6.0
#: How long a room keeps sending the pleth after a station asked for it, seconds.
PLETH_WANT_S = 30.0


class Kind(StrEnum):
    """The last part of a room topic."""

    #: retained; the Last Will sets it offline. Optional ``"record"``: the uid of the room's
    #: record in the clinic database (a random uuid, no patient data), absent when the room
    #: records nothing; a station without the database ignores it.
    STATUS = "status"
    NUMERICS = "numerics"  #: about once a second; also the room's heartbeat
    NIBP = "nibp"  #: each cuff reading
    ALARM = "alarm"  #: start / continue / end of one alarm (QoS 1)
    ALARMS = "alarms"  #: retained: the room's active alarms, the whole set
    EVENTS = "events"  #: dose, markers
    PLETH = "pleth"  #: waveform blocks, only while a station wants them
    PLETH_WANT = "pleth/want"  #: a station asks a room for its pleth (the one topic it writes)


class RoomState(StrEnum):
    LIVE = "live"
    ENDED = "ended"  #: the session ended normally (the room said so)
    OFFLINE = "offline"  #: the Last Will: the room vanished


class Phase(StrEnum):
    """IHE ACM's alarm phases."""

    START = "start"
    CONTINUE = "continue"
    END = "end"


class ContractError(ValueError):
    """A message that does not follow this contract (malformed, foreign or another version)."""


def check_room(name: str) -> str:
    """``name`` if it can be a room's topic part, else ContractError."""
    if not ROOM_NAME.fullmatch(name):
        raise ContractError(
            f"room name {name!r} must be 1-32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def topic(room: str, kind: Kind) -> str:
    return f"{PREFIX}/{room}/{kind.value}"


def parse_topic(text: str) -> tuple[str, Kind]:
    """The room and kind of a topic, or ContractError."""
    if not text.startswith(PREFIX + "/"):
        raise ContractError(f"not a room topic: {text!r}")
    room, _, rest = text[len(PREFIX) + 1 :].partition("/")
    try:
        return check_room(room), Kind(rest)
    except ValueError as exc:
        raise ContractError(f"unknown topic {text!r}") from exc


@dataclass(frozen=True)
class Message:
    """One decoded message: its room, kind and JSON body (checked for its kind's fields)."""

    room: str
    kind: Kind
    body: dict[str, Any]


def encode(room: str, kind: Kind, body: dict[str, Any]) -> bytes:
    """The payload for ``body``: compact JSON with the schema version and the room."""
    return json.dumps(
        {"v": SCHEMA, "room": room, **body}, separators=(",", ":"), allow_nan=False
    ).encode()


#: Per kind: the fields a message must carry, with their JSON types.
_REQUIRED: dict[Kind, dict[str, tuple[type, ...]]] = {
    Kind.STATUS: {"state": (str,)},
    Kind.NUMERICS: {"t": (int, float), "values": (dict,)},
    Kind.NIBP: {"t": (int, float)},
    Kind.ALARM: {"t": (int, float), "phase": (str,), "alarm": (dict,)},
    Kind.ALARMS: {"t": (int, float), "alarms": (list,)},
    Kind.EVENTS: {"t": (int, float), "kind": (str,)},
    Kind.PLETH: {"t": (int, float), "fs": (int, float), "samples": (list,)},
    Kind.PLETH_WANT: {"for_s": (int, float)},
}
_ALARM_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "condition": (str,),
    "priority": (str,),
    "state": (str,),
}
PRIORITIES = ("low", "medium", "high")
ALARM_STATES = ("active", "latched", "ended")


def _reject_constant(name: str) -> float:
    raise ContractError(f"{name} is not a JSON number")


def decode(topic_text: str, payload: bytes) -> Message:
    """Check one received message against the contract; ContractError says why not."""
    room, kind = parse_topic(topic_text)
    if len(payload) > MAX_PAYLOAD:
        raise ContractError(f"payload of {len(payload)} bytes is too large")
    try:
        body = json.loads(payload, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ContractError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ContractError("payload is not a JSON object")
    if body.get("v") != SCHEMA or isinstance(body.get("v"), bool):
        raise ContractError(f"schema version {body.get('v')!r} is not {SCHEMA}")
    if kind is not Kind.PLETH_WANT and body.get("room") != room:
        raise ContractError("the payload's room is not the topic's")
    _check_fields(body, _REQUIRED[kind], kind.value)
    if kind is Kind.STATUS and body["state"] not in {s.value for s in RoomState}:
        raise ContractError(f"unknown room state {body['state']!r}")
    if kind is Kind.ALARM:
        if body["phase"] not in {p.value for p in Phase}:
            raise ContractError(f"unknown alarm phase {body['phase']!r}")
        _check_alarm(body["alarm"])
    if kind is Kind.ALARMS:
        for alarm in body["alarms"]:
            _check_alarm(alarm)
    if kind is Kind.NUMERICS:
        for code, value in body["values"].items():
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ContractError(f"numeric {code!r} is not a number")
    return Message(room, kind, body)


def _check_fields(body: Any, fields: dict[str, tuple[type, ...]], what: str) -> None:
    if not isinstance(body, dict):
        raise ContractError(f"{what} is not an object")
    for name, types in fields.items():
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            raise ContractError(f"{what} lacks a valid {name!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ContractError(f"{what} {name!r} is not finite")


def _check_alarm(alarm: Any) -> None:
    _check_fields(alarm, _ALARM_FIELDS, "alarm")
    if alarm["priority"] not in PRIORITIES:
        raise ContractError(f"unknown priority {alarm['priority']!r}")
    if alarm["state"] not in ALARM_STATES:
        raise ContractError(f"unknown alarm state {alarm['state']!r}")
