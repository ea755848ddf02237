"""Messages: building the session and data export messages, and decoding one frame's user data
(:func:`parse_message`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from devices.protocols.intellivue.nomenclature import (
    AB_SPDU,
    AC_SPDU,
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CMD_CONFIRMED_SET,
    CMD_EVENT_REPORT,
    CMD_SET,
    CN_SPDU,
    DATA_SPDU,
    DN_SPDU,
    FN_SPDU,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_POLL_PROFILE_EXT,
    NOM_ATTR_POLL_RTSA_PRIO_LIST,
    NOM_ATTR_TIME_PD_POLL,
    NOM_MOC_VMS_MDS,
    NOM_NOTI_MDS_CREAT,
    NOM_PART_OBJ,
    NOM_POLL_PROFILE_SUPPORT,
    P_CONTEXT_ID,
    PLETH_LABEL,
    POLL_DURATION_S,
    RF_SPDU,
    ROER,
    ROIV,
    ROLRS,
    RORS,
    SESSION_ID,
    TICKS,
)

_MDS_OBJ = struct.pack(">HHH", NOM_MOC_VMS_MDS, 0, 0)


def _li(n: int) -> bytes:
    """A session-layer length indicator: one byte below 255, else FF and a u16."""
    return bytes((n,)) if n < 255 else b"\xff" + n.to_bytes(2, "big")


def attribute_list(attrs: list[tuple[int, bytes]]) -> bytes:
    """An AttributeList: count, length, then (id, length, value) for each attribute."""
    body = b"".join(struct.pack(">HH", a, len(v)) + v for a, v in attrs)
    return struct.pack(">HH", len(attrs), len(body)) + body


def data_export(ro_type: int, invoke_id: int, command: int, body: bytes) -> bytes:
    """SPpdu + ROapdus + ROIV/RORS apdu around a command's argument or result."""
    apdu = struct.pack(">HHH", invoke_id, command, len(body)) + body
    return struct.pack(">HHHH", SESSION_ID, P_CONTEXT_ID, ro_type, len(apdu)) + apdu


_SESSION_DATA = bytes.fromhex("05081301001601028000140200 02".replace(" ", ""))
#: The association request's presentation header up to the user data's length (the spec's
#: template, as VSCaptureMP and PERSEUS send it).
_AARQ_PRESENTATION = bytes.fromhex(
    "3180a08080010100 00a280a003000001a4803080020101060452010001308006025101000000003080020102"
    "060c2a8648ce1402010000000101 3080060c2a8648ce14020100000002010000000000 00618030800201"
    "01a0806080a180060c2a8648ce140201000000030100 00be802880060c2a8648ce1402010000000101020102"
    "81".replace(" ", "")
)
#: The association result's presentation header up to the user data's length, reconstructed
#: from the spec's layout (accepted, with the MDSE user information after ``BE 80 28 80 02 01
#: 02 81``, which is all a host reads; PERSEUS finds the user data by that marker too).
_AARE_PRESENTATION = bytes.fromhex(
    "3180a080800101 0000a280a003000001a5803080800100810251010000 3080800100810c2a8648ce1402"
    "0100000002010000 0000618030800201 01a0806180a180060c2a8648ce14020100000003010000a203"
    "020100a305a103020100be80288002010281".replace(" ", "")
)
_USER_INFO_MARKER = bytes.fromhex("be80288002010281")
_PRESENTATION_TRAILER = bytes(16)


def _user_info(system_type: int, min_poll_s: float) -> bytes:
    """MDSEUserInfoStd: versions, system type, hot start, and the poll profile."""
    ext = struct.pack(">I", 0x8C000000) + attribute_list([])
    profile = struct.pack(
        ">IIIIII", 0x80000000, round(min_poll_s * TICKS), 1000, 1000, 0xFFFFFFFF, 0x60000000
    ) + attribute_list([(NOM_ATTR_POLL_PROFILE_EXT, ext)])
    return (
        struct.pack(">IIIII", 0x80000000, 0x40000000, 0, system_type, 0x20000000)
        + attribute_list([])
        + attribute_list([(NOM_POLL_PROFILE_SUPPORT, profile)])
    )


def _session_message(spdu: int, presentation: bytes, user_info: bytes) -> bytes:
    pres = presentation + _li(len(user_info)) + user_info + _PRESENTATION_TRAILER
    body = _SESSION_DATA + b"\xc1" + _li(len(pres)) + pres
    return bytes((spdu,)) + _li(len(body)) + body


SYST_CLIENT, SYST_SERVER = 0x80000000, 0x00800000
#: The host's Association Request (minimum poll period proposed: 1 s).
ASSOCIATION_REQUEST = _session_message(CN_SPDU, _AARQ_PRESENTATION, _user_info(SYST_CLIENT, 1.0))
#: Release request and response, and the abort, as the spec gives them.
RELEASE_REQUEST = bytes.fromhex("0918c11661803080020101a08062808001000000000000000000")
RELEASE_RESPONSE = bytes.fromhex("0a18c11661803080020101a08063808001000000000000000000")
ABORT = bytes.fromhex(
    "192e110103c129a080a080308002010106025101000000006180308002010"
    "1a080648080010100000000000000000000"
)


def association_result(min_poll_s: float = 1.0) -> bytes:
    """The monitor's Association Result (accepted) offering ``min_poll_s`` as its poll period."""
    return _session_message(AC_SPDU, _AARE_PRESENTATION, _user_info(SYST_SERVER, min_poll_s))


def min_poll_period(user_data: bytes) -> float | None:
    """The minimum poll period (s) an association result offers, or None if it cannot be read."""
    i = user_data.find(_USER_INFO_MARKER)
    if i < 0:
        return None
    j = i + len(_USER_INFO_MARKER)
    j += 3 if user_data[j : j + 1] == b"\xff" else 1
    try:
        # protocol, nomenclature, functional units, system type, startup mode; option list
        k = j + 20
        (n_opt,) = struct.unpack_from(">H", user_data, k + 2)
        k += 4 + n_opt
        count, _ = struct.unpack_from(">HH", user_data, k)
        k += 4
        for _ in range(count):
            aid, alen = struct.unpack_from(">HH", user_data, k)
            if aid == NOM_POLL_PROFILE_SUPPORT and alen >= 8:
                ticks: int = struct.unpack_from(">I", user_data, k + 8)[0]
                return ticks / TICKS
            k += 4 + alen
    except struct.error:
        return None
    return None


def negotiated_timeout(min_poll_s: float | None) -> float:
    """The monitor drops a silent host after 3 x the minimum poll period, within 10-130 s."""
    if min_poll_s is None:
        return MIN_TIMEOUT_S
    return min(max(3.0 * min_poll_s, MIN_TIMEOUT_S), MAX_TIMEOUT_S)


def mds_create_result(invoke_id: int, event_time: int) -> bytes:
    """The host's confirmation of the MDS Create Event (same invoke id, the event's time)."""
    body = _MDS_OBJ + struct.pack(">IHH", event_time, NOM_NOTI_MDS_CREAT, 0)
    return data_export(RORS, invoke_id, CMD_CONFIRMED_EVENT_REPORT, body)


def ext_poll_request(
    invoke_id: int, poll_number: int, obj_code: int, duration_s: float = POLL_DURATION_S
) -> bytes:
    """An Extended Poll Data Request for all objects of one class, for ``duration_s``."""
    attrs = attribute_list([(NOM_ATTR_TIME_PD_POLL, struct.pack(">I", round(duration_s * TICKS)))])
    req = struct.pack(">HHHH", poll_number, NOM_PART_OBJ, obj_code, 0) + attrs
    body = _MDS_OBJ + struct.pack(">IHH", 0, NOM_ACT_POLL_MDIB_DATA_EXT, len(req)) + req
    return data_export(ROIV, invoke_id, CMD_CONFIRMED_ACTION, body)


def wave_priority_request(invoke_id: int, labels: tuple[int, ...] = (PLETH_LABEL,)) -> bytes:
    """Set the monitor's real-time wave priority list (which waves a wave poll returns)."""
    ids = struct.pack(">HH", len(labels), 4 * len(labels)) + b"".join(
        struct.pack(">I", x) for x in labels
    )
    mod = (
        struct.pack(">HH", 1, 6 + len(ids))
        + struct.pack(">HHH", 0, NOM_ATTR_POLL_RTSA_PRIO_LIST, len(ids))
        + ids
    )
    return data_export(ROIV, invoke_id, CMD_CONFIRMED_SET, _MDS_OBJ + struct.pack(">I", 0) + mod)


# --- message decoding -----------------------------------------------------------------------------


class Obs(NamedTuple):
    """One observed object of a poll result: its context, handle and attributes by id."""

    context: int
    handle: int
    attrs: dict[int, bytes]


@dataclass
class PollReply:
    """A (extended) poll result: its header and observations, in wire order."""

    invoke_id: int
    poll_number: int
    sequence: int
    rel_time: int
    abs_time: bytes
    obj_code: int
    observations: list[Obs]


@dataclass
class Message:
    """What one frame's user data says, as far as a host or the emulator needs to know."""

    kind: str  #: "associate", "accept", "refuse", "release-request", "release-response",
    #: "abort", "mds-create", "mds-create-result", "poll-request", "poll-result", "set",
    #: "set-result", "error", "other"
    invoke_id: int = 0
    ro_type: int = 0
    command: int = 0
    poll: PollReply | None = None
    obj_code: int = 0  #: the polled object class of a poll request
    poll_number: int = 0
    attrs: dict[int, bytes] = field(default_factory=dict)  #: MDS create: its attributes
    event_time: int = 0
    min_poll_s: float | None = None


def _attr_dict(b: bytes, off: int) -> tuple[dict[int, bytes], int]:
    count, length = struct.unpack_from(">HH", b, off)
    off += 4
    end = off + length
    if end > len(b):
        raise ValueError("attribute list runs past the message")
    out: dict[int, bytes] = {}
    for _ in range(count):
        aid, alen = struct.unpack_from(">HH", b, off)
        off += 4
        if off + alen > end:
            raise ValueError("attribute runs past its list")
        out[aid] = b[off : off + alen]
        off += alen
    return out, end


def _poll_reply(u: bytes, off: int, invoke_id: int, ext: bool) -> PollReply:
    if ext:
        poll_number, seq, rel = struct.unpack_from(">HHI", u, off)
        off += 8
    else:
        poll_number, rel = struct.unpack_from(">HI", u, off)
        seq = 0
        off += 6
    abs_time = u[off : off + 8]
    _, code, _ = struct.unpack_from(">HHH", u, off + 8)
    off += 14
    n_ctx, _ = struct.unpack_from(">HH", u, off)
    off += 4
    observations: list[Obs] = []
    for _ in range(n_ctx):
        context, n_obs, _ = struct.unpack_from(">HHH", u, off)
        off += 6
        for _ in range(n_obs):
            (handle,) = struct.unpack_from(">H", u, off)
            attrs, off = _attr_dict(u, off + 2)
            observations.append(Obs(context, handle, attrs))
    return PollReply(invoke_id, poll_number, seq, rel, abs_time, code, observations)


def parse_message(u: bytes) -> Message:
    """Decode one frame's user data (either direction); raises ValueError/struct.error if it is
    malformed."""
    if not u:
        raise ValueError("empty message")
    first = u[0]
    if first != DATA_SPDU:
        kind = {
            CN_SPDU: "associate",
            AC_SPDU: "accept",
            RF_SPDU: "refuse",
            FN_SPDU: "release-request",
            DN_SPDU: "release-response",
            AB_SPDU: "abort",
        }.get(first, "other")
        return Message(kind, min_poll_s=min_poll_period(u) if kind == "accept" else None)
    session, _, ro_type, _ = struct.unpack_from(">HHHH", u, 0)
    if session != SESSION_ID:
        return Message("other")
    off = 8
    if ro_type == ROLRS:
        off += 2  # linked id: state, count
    if ro_type == ROER:
        (invoke_id,) = struct.unpack_from(">H", u, off)
        return Message("error", invoke_id, ro_type)
    invoke_id, command, _ = struct.unpack_from(">HHH", u, off)
    off += 6
    msg = Message("other", invoke_id, ro_type, command)
    if command in (CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT):
        event_time, event_type, _ = struct.unpack_from(">IHH", u, off + 6)
        if event_type == NOM_NOTI_MDS_CREAT:
            msg.event_time = event_time
            if ro_type == ROIV:
                msg.kind = "mds-create"
                msg.attrs, _ = _attr_dict(u, off + 14 + 6)  # after the MDS's own object id
            elif ro_type == RORS:
                msg.kind = "mds-create-result"
    elif command == CMD_CONFIRMED_ACTION:
        if ro_type == ROIV:
            (action,) = struct.unpack_from(">H", u, off + 10)
            if action in (NOM_ACT_POLL_MDIB_DATA_EXT, NOM_ACT_POLL_MDIB_DATA):
                msg.kind = "poll-request"
                msg.poll_number, _, msg.obj_code = struct.unpack_from(">HHH", u, off + 14)
        else:
            (action,) = struct.unpack_from(">H", u, off + 6)
            if action in (NOM_ACT_POLL_MDIB_DATA_EXT, NOM_ACT_POLL_MDIB_DATA):
                msg.kind = "poll-result"
                msg.poll = _poll_reply(u, off + 10, invoke_id, action == NOM_ACT_POLL_MDIB_DATA_EXT)
    elif command in (CMD_SET, CMD_CONFIRMED_SET):
        msg.kind = "set" if ro_type == ROIV else "set-result"
    return msg
