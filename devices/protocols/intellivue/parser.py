"""The parser: :class:`IntellivueParser` turns the monitor's frames into kapmonitor items and
session events for the driver."""

from __future__ import annotations

import logging
import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from devices.protocols.base import Parser, ParserStats, SerialSettings
from devices.protocols.intellivue.messages import Message, Obs, PollReply, parse_message
from devices.protocols.intellivue.nomenclature import (
    BYTE_RATE,
    CALIBRATION_ONGOING,
    DEMO_DATA,
    FLOAT_NAN,
    INVALID,
    KPA_TO_MMHG,
    MSMT_ONGOING,
    NIBP_PARTS,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_ATTR_SA_CMPD_VAL_OBS,
    NOM_ATTR_SA_SPECN,
    NOM_ATTR_SA_VAL_OBS,
    NOM_ATTR_SCALE_SPECN_I16,
    NOM_ATTR_TIME_ABS,
    NOM_ATTR_TIME_PD_SAMP,
    NOM_ATTR_TIME_REL,
    NOM_ATTR_TIME_STAMP_ABS,
    NOM_ATTR_TIME_STAMP_REL,
    NOM_MOC_VMO_METRIC_SA_RT,
    PHYSIO_CODES,
    PHYSIO_NAMES,
    QUESTIONABLE,
    SERIAL,
    TEST_DATA,
    TICKS,
    UNAVAILABLE,
    UNIT_KPA,
    UNIT_MMHG,
    UNITS,
    WAVE_CODES,
    WAVE_PERIOD,
)
from devices.protocols.intellivue.wire import (
    _BOF,
    _EOF,
    HEADER,
    MAX_WIRE,
    decode_abs_time,
    decode_float,
    fcs,
    float_value,
    unescape,
)
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    NO_FLAGS,
    DeviceValue,
    Flag,
    Flags,
    Measurement,
    NibpReading,
    Numeric,
    Stamp,
    WaveformBlock,
)

log = logging.getLogger(__name__)

_NU = struct.Struct(">HHHI")  #: NuObsValue: physio id, state, unit, FLOAT


@dataclass
class IntellivueStats(ParserStats):
    """The base counters plus what the frames held."""

    bytes_in_frames: int = 0  #: wire bytes of frames with a good FCS
    frames_aborted: int = 0  #: frames the sender aborted (7D C1)
    messages_malformed: int = 0  #: good frames whose content did not parse
    poll_results: int = 0
    host_messages: int = 0  #: the host's own frames, when both directions were logged
    waves_ignored: int = 0  #: wave blocks of waves other than pleth and CO2


class SessionEvent(NamedTuple):
    """Something the driver must act on: the association changed or the monitor asks."""

    kind: str  #: "accept", "refuse", "abort", "release-request", "release-response",
    #: "mds-create"
    invoke_id: int = 0
    event_time: int = 0
    min_poll_s: float | None = None


def _state_flags(state: int) -> Flags:
    flags = set()
    if state & INVALID:
        flags.add(Flag.MEASUREMENT_FAILED)
    if state & (QUESTIONABLE | CALIBRATION_ONGOING):
        flags.add(Flag.QUESTIONABLE)
    if state & (DEMO_DATA | TEST_DATA):
        flags.add(Flag.DEMO)
    return frozenset(flags) if flags else NO_FLAGS


_STATE_FLAGS: dict[int, Flags] = {}


def state_flags(state: int) -> Flags:
    """The kapmonitor flags of a MeasurementState (cached: few states occur)."""
    flags = _STATE_FLAGS.get(state)
    if flags is None:
        flags = _STATE_FLAGS[state] = _state_flags(state)
    return flags


def numeric_value(state: int, raw: int) -> tuple[float | None, Flags]:
    """Value and flags of one NuObsValue: None when the monitor has no valid value."""
    value, extra = float_value(raw)
    flags = state_flags(state)
    if state & (INVALID | UNAVAILABLE):
        value = None
    if extra is not None:
        flags = flags | {extra}
    return value, flags


@dataclass
class _WaveSpec:
    """What the monitor said once about a wave object (static attributes)."""

    fs: float | None = None
    bits: int | None = None
    scale: tuple[float, float, int, int] | None = None


#: A NuObsValue as it is on the wire: (physio id, state, unit code, FLOAT).
_NuValue = tuple[int, int, int, int]
#: What a NuObsValue becomes: (code, vendor key, value, unit, flags, text) (:meth:`_describe`).
_Described = tuple[Code | None, str, float | None, str, Flags, str]
#: Where the samples sit in a plain wave result (:meth:`IntellivueParser._learn_wave_layout`):
#: its length; (start, end, bytes) of each stretch that must repeat; and each SaObsValue's
#: (physio, state offset, data offset, sample count, wave spec).
_WaveLayout = tuple[int, list[tuple[int, int, bytes]], list[tuple[int, int, int, int, _WaveSpec]]]


class IntellivueParser(Parser):
    """Decodes the monitor's frames into numerics, NIBP readings, pleth blocks and vendor values;
    session messages become :attr:`events` for the driver (see the package notes)."""

    protocol: ClassVar[str] = "intellivue"
    SERIAL: ClassVar[SerialSettings] = SERIAL

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: IntellivueStats = IntellivueStats()
        self._buf = b""
        self._in_step = False
        self._lost = False
        #: Session messages for the driver, oldest first (bounded: a decode keeps none).
        self.events: deque[SessionEvent] = deque(maxlen=64)
        self._anchor: tuple[float, float] | None = None  #: host (mono, wall) at relative time 0
        self._rel_last: int | None = None
        self._rel_wraps = 0
        #: (absolute seconds, relative ticks) at the MDS create event: places absolute times.
        self._mds_clock: tuple[float, int] | None = None
        self._nibp_seen: dict[tuple[int, int], bytes] = {}
        self._waves: dict[tuple[int, int], _WaveSpec] = {}
        self._logged: set[int] = set()
        #: (length, fixed slices, sample blocks) of the last plain wave result (the fast path).
        self._wave_layout: _WaveLayout | None = None
        self._values: dict[_NuValue, _Described] = {}

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a frame not complete yet; ``bytes_in`` is always ``bytes_discarded +
        bytes_in_frames + pending_bytes``."""
        return len(self._buf)

    def take_events(self) -> list[SessionEvent]:
        """The session events since the last call (for the driver)."""
        out = list(self.events)
        self.events.clear()
        return out

    # --- framing ---

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        buf = self._buf
        if buf and _EOF not in data and _BOF not in data and len(buf) + len(data) <= MAX_WIRE:
            self._buf = buf + data  # the middle of a frame: nothing to decide yet
            return []
        b = buf + data if buf else data
        n = len(b)
        out: list[Measurement] = []
        pos = 0
        find = b.find
        while pos < n:
            s = find(_BOF, pos)
            if s < 0:
                self._discard(n - pos)
                pos = n
                break
            if s > pos:
                self._discard(s - pos)
            e = find(_EOF, s + 1)
            s2 = find(_BOF, s + 1, e if e >= 0 else n)
            if s2 >= 0:  # a new frame began before this one ended: this one was cut
                self._discard(s2 - s)
                pos = s2
                continue
            if e < 0:
                if n - s > MAX_WIRE:
                    self._discard(n - s)
                    pos = n
                else:
                    pos = s
                break
            pos = e + 1
            if e + 1 - s > MAX_WIRE:
                self._discard(e + 1 - s)
                continue
            self._frame(b, s, e, n, stamp, out)
        self._buf = b[pos:] if pos < n else b""
        return out

    def _discard(self, count: int, *, error: bool = True) -> None:
        stats = self.stats
        stats.bytes_discarded += count
        if error and self._in_step:
            stats.framing_errors += 1
        self._in_step = False
        self._lost = True

    def _frame(
        self, b: bytes, s: int, e: int, n: int, stamp: Stamp, out: list[Measurement]
    ) -> None:
        stats = self.stats
        content = unescape(b[s + 1 : e])
        if content is None:
            stats.frames_aborted += 1
            self._discard(e + 1 - s)
            return
        if len(content) < 6 or content[:2] != HEADER:
            self._discard(e + 1 - s)
            return
        if fcs(content[:-2]) != int.from_bytes(content[-2:], "little"):
            stats.checksum_errors += 1
            was = self._in_step
            self._discard(e + 1 - s, error=False)
            self._in_step = was  # a bad FCS is counted as such, not also as a framing error
            return
        if int.from_bytes(content[2:4], "big") != len(content) - 6:
            self._discard(e + 1 - s)
            return
        stats.frames_ok += 1
        stats.bytes_in_frames += e + 1 - s
        if self._lost and not self._in_step:
            stats.resyncs += 1
        self._in_step = True
        self._lost = False
        at = stamp if e + 1 == n else stamp.shifted(-self.back(n - e - 1, BYTE_RATE))
        try:
            u = content[4:-2]
            if self._fast_wave(u, at, out):
                return
            msg = parse_message(u)
            self._message(msg, at, out)
            if msg.poll is not None and msg.poll.obj_code == NOM_MOC_VMO_METRIC_SA_RT:
                self._learn_wave_layout(u, msg.poll)
        except (ValueError, struct.error, IndexError, OverflowError):
            stats.messages_malformed += 1

    # --- messages ---

    def _message(self, msg: Message, at: Stamp, out: list[Measurement]) -> None:
        kind = msg.kind
        if kind == "poll-result":
            assert msg.poll is not None
            self.stats.poll_results += 1
            self._poll(msg.poll, at, out)
        elif kind == "mds-create":
            abs_raw = msg.attrs.get(NOM_ATTR_TIME_ABS)
            rel_raw = msg.attrs.get(NOM_ATTR_TIME_REL)
            abs_s = decode_abs_time(abs_raw) if abs_raw and len(abs_raw) == 8 else None
            if abs_s is not None and rel_raw is not None and len(rel_raw) == 4:
                self._mds_clock = (abs_s, int.from_bytes(rel_raw, "big"))
            self._rel_last = None  # a new association: the relative clock may have restarted
            self.events.append(SessionEvent(kind, msg.invoke_id, msg.event_time))
        elif kind == "accept":
            self.problem = None
            self.events.append(SessionEvent(kind, min_poll_s=msg.min_poll_s))
        elif kind == "refuse":
            self.problem = (
                "the monitor refused the association: set its MIB/RS232 port to Data Export "
                "(Config mode) and check the baud rate"
            )
            self.events.append(SessionEvent(kind))
        elif kind in ("abort", "release-request", "release-response"):
            self.events.append(SessionEvent(kind))
        elif kind in ("associate", "poll-request", "mds-create-result", "set"):
            self.stats.host_messages += 1
        elif kind == "error":
            self._log_once(-1, "the monitor answered a request with an error (ROER)")

    def _log_once(self, key: int, text: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.info("%s: " + text, self.source, *args)

    def _device_stamp(self, rel: int, at: Stamp) -> Stamp:
        """The host stamp of monitor relative time ``rel`` seen in a frame that ended at ``at``."""
        last = self._rel_last
        fresh = last is None  # the first poll of an association
        if last is None:
            u = rel
            self._rel_wraps = 0
        else:
            d = (rel - last) & 0xFFFFFFFF
            if d >= 0x80000000:
                d -= 0x100000000
            u = last + self._rel_wraps * 0x100000000 + d
            self._rel_wraps = (u - rel) // 0x100000000
        self._rel_last = rel
        secs = u / TICKS
        anchor = self._anchor
        mono0 = at.mono - secs
        # A frame is never early: the earliest arrival fixes the clock; a later one by more than
        # a second means the monitor's clock jumped or drifted, so it re-anchors. Guessed
        # arrivals (a plain file) anchor the monitor's clock once per association and follow it.
        if anchor is None or (
            fresh if self.guessed_arrivals else mono0 < anchor[0] or mono0 > anchor[0] + 1.0
        ):
            anchor = self._anchor = (mono0, at.wall - secs)
        return Stamp(anchor[0] + secs, anchor[1] + secs)

    def _poll(self, poll: PollReply, at: Stamp, out: list[Measurement]) -> None:
        stamp = self._device_stamp(poll.rel_time, at)
        src = self.source
        values_of = self._values
        for obs in poll.observations:
            attrs = obs.attrs
            if not attrs:
                continue
            values: list[_NuValue] = []
            nu = attrs.get(NOM_ATTR_NU_VAL_OBS)
            if nu is not None:
                values.append(_NU.unpack_from(nu))
            cmpd = attrs.get(NOM_ATTR_NU_CMPD_VAL_OBS)
            if cmpd is not None:
                count = cmpd[0] << 8 | cmpd[1]
                values += [_NU.unpack_from(cmpd, 4 + 10 * i) for i in range(count)]
                if count and values[-1][0] in NIBP_PARTS:
                    self._nibp(obs, values, poll, stamp, out)
                    values = [v for v in values if v[0] not in NIBP_PARTS]
            for physio, state, unit, raw in values:
                key = (physio, state, unit, raw)
                made = values_of.get(key)
                if made is None:
                    if len(values_of) > 4096:
                        values_of.clear()
                    made = values_of[key] = self._describe(physio, state, unit, raw)
                code, vkey, value, ucum, flags, text = made
                if code is not None:
                    out.append(Numeric(src, code, value, stamp, flags))
                else:
                    out.append(DeviceValue(src, vkey, value, ucum, stamp, flags, text))
            if NOM_ATTR_SA_VAL_OBS in attrs or NOM_ATTR_SA_CMPD_VAL_OBS in attrs:
                self._waves_of(obs, stamp, out)

    def _describe(self, physio: int, state: int, unit: int, raw: int) -> _Described:
        """What one NuObsValue becomes: (code, vendor key, value, unit, flags, text); cached by
        the caller, since a monitor repeats the same few values poll after poll."""
        value, flags = numeric_value(state, raw)
        code = PHYSIO_CODES.get(physio)
        if code is not None:
            if code.unit == "mm[Hg]" and unit != UNIT_MMHG and value is not None:
                # CO2 set to kPa on the monitor is converted; in % it would need the ambient
                # pressure, which the export does not send: no value, and said once.
                if unit == UNIT_KPA:
                    value = round(value * KPA_TO_MMHG, 1)
                else:
                    self._log_once(
                        0x20000 | physio, "physio 0x%04X in unit 0x%04X: no mmHg", physio, unit
                    )
                    value, flags = None, flags | {Flag.QUESTIONABLE}
            return code, "", value, code.unit, flags, ""
        name = PHYSIO_NAMES.get(physio, f"{physio:04X}")
        self._log_once(
            physio, "no IEEE code for physio id 0x%04X: kept as INTELLIVUE_%s", physio, name
        )
        text = "" if value is None else f"{value:g}"
        return None, f"INTELLIVUE_{name}", value, UNITS.get(unit, ""), flags, text

    def _nibp(
        self,
        obs: Obs,
        values: list[_NuValue],
        poll: PollReply,
        stamp: Stamp,
        out: list[Measurement],
    ) -> None:
        parts: dict[int, tuple[int, int, int]] = {v[0]: (v[1], v[2], v[3]) for v in values}
        if any(st & MSMT_ONGOING for st, _, _ in parts.values()):
            return  # the cuff is measuring: the reading is not there yet
        key = (obs.context, obs.handle)
        abs_raw = obs.attrs.get(NOM_ATTR_TIME_STAMP_ABS)
        rel_raw = obs.attrs.get(NOM_ATTR_TIME_STAMP_REL)
        marker = (abs_raw or b"") + (rel_raw or b"")
        if not marker:  # no time stamp: a change of values is a new reading
            marker = b"".join(struct.pack(">HI", st, raw) for st, _, raw in parts.values())
        first = key not in self._nibp_seen
        if not first and self._nibp_seen[key] == marker:
            return
        self._nibp_seen[key] = marker
        readings: list[float | None] = []
        flags: set[Flag] = set()
        for pid in NIBP_PARTS:
            st, unit, raw = parts.get(pid, (UNAVAILABLE, UNIT_MMHG, FLOAT_NAN))
            value, f = numeric_value(st, raw)
            if value is not None and unit == UNIT_KPA:
                value = round(value * KPA_TO_MMHG, 1)
            readings.append(value)
            flags |= f
        if all(v is None for v in readings):
            if first:
                return  # the monitor's "no reading yet"
            flags.add(Flag.MEASUREMENT_FAILED)
        sys_, dia, mean = readings
        at = self._nibp_stamp(abs_raw, rel_raw, poll, stamp)
        out.append(NibpReading(self.source, sys_, dia, mean, at, frozenset(flags)))

    def _nibp_stamp(
        self, abs_raw: bytes | None, rel_raw: bytes | None, poll: PollReply, stamp: Stamp
    ) -> Stamp:
        """When the cuff measured, on the host clock (never after the poll that told us)."""
        back: float | None = None
        if rel_raw is not None and len(rel_raw) == 4:
            back = ((poll.rel_time - int.from_bytes(rel_raw, "big")) & 0xFFFFFFFF) / TICKS
        elif abs_raw is not None and self._mds_clock is not None:
            abs_s = decode_abs_time(abs_raw)
            if abs_s is not None:
                mds_abs, mds_rel = self._mds_clock
                poll_abs = mds_abs + ((poll.rel_time - mds_rel) & 0xFFFFFFFF) / TICKS
                back = poll_abs - abs_s
        if back is None or back < 0 or back > 0x80000000 / TICKS:
            return stamp
        return stamp.shifted(-back)

    def _waves_of(self, obs: Obs, stamp: Stamp, out: list[Measurement]) -> None:
        attrs = obs.attrs
        key = (obs.context, obs.handle)
        spec = self._waves.get(key)
        if spec is None:
            spec = self._waves[key] = _WaveSpec()
        if NOM_ATTR_TIME_PD_SAMP in attrs:
            period = int.from_bytes(attrs[NOM_ATTR_TIME_PD_SAMP][:4], "big")
            spec.fs = TICKS / period if period else None
        if NOM_ATTR_SA_SPECN in attrs and len(attrs[NOM_ATTR_SA_SPECN]) >= 4:
            spec.bits = attrs[NOM_ATTR_SA_SPECN][3] or None
        scale = attrs.get(NOM_ATTR_SCALE_SPECN_I16)
        if scale is not None and len(scale) >= 12:
            lo_abs, hi_abs, lo_s, hi_s = struct.unpack_from(">IIHH", scale)
            lo_v, hi_v = decode_float(lo_abs), decode_float(hi_abs)
            if hi_s != lo_s and math.isfinite(lo_v) and math.isfinite(hi_v):
                spec.scale = (lo_v, hi_v, lo_s, hi_s)
        blocks: list[tuple[int, int, bytes]] = []
        sa = attrs.get(NOM_ATTR_SA_VAL_OBS)
        if sa is not None:
            physio, state, length = struct.unpack_from(">HHH", sa)
            blocks.append((physio, state, sa[6 : 6 + length]))
        cmpd = attrs.get(NOM_ATTR_SA_CMPD_VAL_OBS)
        if cmpd is not None:
            count, _ = struct.unpack_from(">HH", cmpd)
            off = 4
            for _ in range(count):
                physio, state, length = struct.unpack_from(">HHH", cmpd, off)
                blocks.append((physio, state, cmpd[off + 6 : off + 6 + length]))
                off += 6 + length
        for physio, state, data in blocks:
            self._wave_block(physio, state, data, 0, len(data) // 2, spec, stamp, out)

    def _wave_block(
        self,
        physio: int,
        state: int,
        data: bytes,
        offset: int,
        n: int,
        spec: _WaveSpec,
        stamp: Stamp,
        out: list[Measurement],
    ) -> None:
        """One SaObsValue's samples (``n`` u16 from ``offset`` in ``data``) as a pleth or CO2
        block."""
        code = WAVE_CODES.get(physio)
        if code is None:
            self.stats.waves_ignored += 1
            self._log_once(0x10000 | physio, "wave 0x%04X is not kept", physio)
            return
        if not n:
            return
        counts = np.frombuffer(data, dtype=">u2", count=n, offset=offset)
        if spec.bits is not None and spec.bits < 16:
            counts = counts & ((1 << spec.bits) - 1)
        samples: np.ndarray = counts
        if spec.scale is not None:
            lo_v, hi_v, lo_s, hi_s = spec.scale
            samples = lo_v + (counts.astype(np.float64) - lo_s) * ((hi_v - lo_v) / (hi_s - lo_s))
        flags = state_flags(state)
        if code is Code.CO2 and spec.scale is None:
            flags = flags | {Flag.QUESTIONABLE}  # counts, not mmHg: no scale seen yet
        if state & (INVALID | UNAVAILABLE):
            samples = np.full(n, np.nan)
        fs = spec.fs or n / WAVE_PERIOD
        out.append(WaveformBlock(self.source, code, stamp, fs, samples, flags))

    # --- the fast path for wave results -------------------------------------------------------

    def _learn_wave_layout(self, u: bytes, poll: PollReply) -> None:
        """Remember where the samples sit in a wave result whose objects carry nothing but one
        SaObsValue each: the next results of the same poll differ only there (and in their
        sequence number and times), so :meth:`_fast_wave` reads them without parsing."""
        self._wave_layout = None
        if (
            u[4:6] != b"\x00\x02"
            or not poll.observations
            or any(
                len(o.attrs) != 1 or NOM_ATTR_SA_VAL_OBS not in o.attrs for o in poll.observations
            )
        ):
            return
        # Walk the structure again, recording offsets (the slow path has checked it).
        off = 24 + 8 + 8 + 6  # to the PollInfoList, after the reply's header
        n_ctx = int.from_bytes(u[off : off + 2], "big")
        off += 4
        blocks: list[tuple[int, int, int, int, _WaveSpec]] = []
        for _ in range(n_ctx):
            context, n_obs = struct.unpack_from(">HH", u, off)
            off += 6
            for _ in range(n_obs):
                handle = int.from_bytes(u[off : off + 2], "big")
                off += 2 + 4 + 4  # handle, list header, attribute header
                physio, _, length = struct.unpack_from(">HHH", u, off)
                spec = self._waves.setdefault((context, handle), _WaveSpec())
                blocks.append((physio, off + 2, off + 6, length // 2, spec))
                off += 6 + length
        if off != len(u):
            return
        fixed: list[tuple[int, int, bytes]] = [(0, 26, u[:26])]  # to the sequence number
        start = 40  # after the relative and absolute time
        for _, state_off, data_off, n, _ in blocks:
            fixed.append((start, state_off, u[start:state_off]))
            fixed.append((state_off + 2, data_off, u[state_off + 2 : data_off]))
            start = data_off + 2 * n
        fixed.append((start, len(u), u[start:]))
        self._wave_layout = (len(u), fixed, blocks)

    def _fast_wave(self, u: bytes, at: Stamp, out: list[Measurement]) -> bool:
        """Decode a wave result laid out as the last one; False if it is not."""
        layout = self._wave_layout
        if layout is None or len(u) != layout[0]:
            return False
        for a, b, ref in layout[1]:
            if u[a:b] != ref:
                return False
        self.stats.poll_results += 1
        stamp = self._device_stamp(int.from_bytes(u[28:32], "big"), at)
        for physio, state_off, data_off, n, spec in layout[2]:
            state = u[state_off] << 8 | u[state_off + 1]
            self._wave_block(physio, state, u, data_off, n, spec, stamp, out)
        return True
