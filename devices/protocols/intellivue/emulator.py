"""The emulator: :class:`IntellivueEmulator` plays an MP90's side of the session."""

from __future__ import annotations

import bisect
import contextlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.protocols.emulation import quantise, tick_at
from devices.protocols.intellivue.messages import (
    _MDS_OBJ,
    ABORT,
    RELEASE_RESPONSE,
    _attr_dict,
    association_result,
    attribute_list,
    data_export,
    parse_message,
)
from devices.protocols.intellivue.nomenclature import (
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CMD_CONFIRMED_SET,
    INVALID,
    MIN_TIMEOUT_S,
    MSMT_ONGOING,
    MSMT_STATE_IN_ALARM,
    NIBP_PARTS,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_GRP_VMO_DYN,
    NOM_ATTR_ID_MODEL,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_ATTR_POLL_RTSA_PRIO_LIST,
    NOM_ATTR_SA_VAL_OBS,
    NOM_ATTR_SCALE_SPECN_I16,
    NOM_ATTR_SYS_TYPE,
    NOM_ATTR_TIME_ABS,
    NOM_ATTR_TIME_PD_POLL,
    NOM_ATTR_TIME_REL,
    NOM_ATTR_TIME_STAMP_ABS,
    NOM_AWAY_CO2,
    NOM_AWAY_CO2_ET,
    NOM_AWAY_CO2_INSP_MIN,
    NOM_AWAY_RESP_RATE,
    NOM_ECG_CARD_BEAT_RATE,
    NOM_ECG_V_P_C_CNT,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMO_METRIC_SA_RT,
    NOM_NOTI_MDS_CREAT,
    NOM_PART_OBJ,
    NOM_PULS_OXIM_PERF_REL,
    NOM_PULS_OXIM_PLETH,
    NOM_PULS_OXIM_PULS_RATE,
    NOM_PULS_OXIM_SAT_O2,
    NOM_RESP_RATE,
    NUMERIC_PERIOD,
    POLL_DURATION_S,
    QUESTIONABLE,
    ROIV,
    RORS,
    SERIAL,
    TICKS,
    UNAVAILABLE,
    UNIT_MMHG,
    WAVE_PERIOD,
)
from devices.protocols.intellivue.parser import IntellivueParser
from devices.protocols.intellivue.wire import (
    _BOF,
    _EOF,
    HEADER,
    MAX_WIRE,
    encode_abs_time,
    encode_float,
    fcs,
    frame,
    unescape,
)
from kapmonitor.core.model import Flag

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession

#: The emulated monitor's clock: relative time at session time 0 (as in the real 1A session)
#: and its absolute time then.
REL0 = 0x00C0C600
DEVICE_EPOCH = datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC).timestamp()
KEEP_ALIVE_TIMEOUT = MIN_TIMEOUT_S  #: what the emulator's association result negotiates
CREATE_RESEND_S = 5.0  #: the MDS Create Event is repeated this often until confirmed
PLETH_FS = 125.0
PLETH_PER_RESULT = round(PLETH_FS * WAVE_PERIOD)  #: 32
PLETH_FULL_SCALE = 4095  #: the MP90's pleth counts are 12-bit
CO2_FS = 62.5  #: the IntelliVue CO2 wave's rate (16 samples a 256-ms result)
CO2_PER_RESULT = round(CO2_FS * WAVE_PERIOD)
#: The CO2 wave's scale (NOM_ATTR_SCALE_SPECN_I16): counts 0..4000 are 0..100 mmHg.
CO2_SCALE = (0.0, 100.0, 0, 4000)
#: Breathing objects' handles (the emulator's own: the real MP90 sessions had no CO2 module).
H_RR, H_AWRR, H_ETCO2, H_INSP_CO2, H_CO2 = 0x8301, 0x8302, 0x8303, 0x8304, 0x0401
UNIT_RESP_PER_MIN = 0x0AE0

# Object handles of the emulated monitor (those of the real MP90 where it has them).
H_NIBP, H_HR, H_PVC, H_SPO2, H_PR, H_PERF, H_PLETH = (
    0x8268,
    0x82A5,
    0x82B8,
    0x83B5,
    0x83B6,
    0x83C3,
    0x03BA,
)
MDS_ATTRS_FIXED = [
    (NOM_ATTR_SYS_TYPE, bytes.fromhex("00060009")),
    (NOM_ATTR_ID_MODEL, bytes.fromhex("00085068696c6970730000064d3830303000")),  # Philips M8000
]


@dataclass
class _Poll:
    """An extended poll the emulated monitor is serving."""

    invoke_id: int
    poll_number: int
    start: float  #: session time of the request
    until: float  #: it ends here
    sequence: int = 0


class IntellivueEmulator(DeviceEmulator):
    """An IntelliVue MP90 on its MIB port, playing the monitor's side of the session.

    Silent until an Association Request; then it answers with the association result (offering a
    1-s minimum poll period, so a 10-s timeout) and the MDS Create Event, repeated every
    :data:`CREATE_RESEND_S` until the host confirms it with the same invoke id. Only then does it
    serve extended polls: numerics (HR, SpO2, pleth pulse rate, perfusion, PVC count, and the
    NIBP compound) every 1.024 s and the pleth (32 samples at 125 Hz, 12-bit) every 256 ms, on
    its own time grid, from the first grid point after the request until the requested period
    ends; a repeated request replaces the running one. A wave priority list request is answered
    with its set result. It drops the association with an abort when the host is silent for the
    timeout (real seconds, so ``speed`` times longer in session time), or when :meth:`drop` is
    called (a monitor that ends it on its own); a release request is answered with the release
    response. Every message is built as the real MP90 frames in tests/data/intellivue-mp90 are
    laid out (one context, the same object handles).

    NIBP follows the scenario's schedule: before the first reading the compound is NaN and
    unavailable; while the cuff measures (``measure_s`` before a reading) it carries the last
    reading with MSMT_ONGOING; then the new values stamped with the time the cuff finished
    (a failed measurement: NaN, invalid).
    """

    protocol: ClassVar[str] = IntellivueParser.protocol
    SERIAL: ClassVar[SerialSettings] = SERIAL
    tick: ClassVar[float] = 0.05

    def __init__(
        self,
        session: KapSession,
        *,
        speed: float = 1.0,
        timeout: float = KEEP_ALIVE_TIMEOUT,
        min_poll_s: float = 1.0,
    ) -> None:
        super().__init__(session, speed=speed)
        #: The association's timeout in session time (real seconds × speed).
        self.timeout = timeout * speed
        self.min_poll_s = min_poll_s
        self.create_resend = CREATE_RESEND_S * speed
        self.associated = False
        self.confirmed = False
        self.associations = 0  #: association requests accepted
        #: (session time, message kind, detail) of every host message, as received.
        self.received: list[tuple[float, str, int]] = []
        #: (session time, what) of the monitor's own session actions ("abort", "release").
        self.ended: list[tuple[float, str]] = []
        self._hostbuf = b""
        self._polls: dict[int, _Poll] = {}
        self._last_host = 0.0
        self._create_invoke = 0
        self._create_at = 0.0
        self._drop = False
        self._readings = tuple(getattr(session, "nibp_readings", ()))
        self._reading_t = [r.t for r in self._readings]
        nibp_plan = getattr(getattr(session, "scenario", None), "nibp", None)
        self._measure_s = float(getattr(nibp_plan, "measure_s", 30.0))

    # --- clock ---

    @staticmethod
    def rel(t: float) -> int:
        """The monitor's relative time (1/8 ms) at session time ``t``."""
        return (REL0 + round(t * TICKS)) & 0xFFFFFFFF

    @staticmethod
    def abs_time(t: float) -> float:
        return DEVICE_EPOCH + t

    # --- host → monitor ---

    def drop(self) -> None:
        """End the association from the monitor's side at the next emit (sends an abort)."""
        self._drop = True

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        reply = bytearray()
        for content in self._host_frames(data):
            reply += self._host_message(content, t)
        return bytes(reply)

    def _host_frames(self, data: bytes) -> list[bytes]:
        """The user data of the host's complete, good frames (framing shared with the parser)."""
        buf = self._hostbuf + data
        out = []
        pos = 0
        while True:
            s = buf.find(_BOF, pos)
            if s < 0:
                pos = len(buf)
                break
            e = buf.find(_EOF, s + 1)
            if e < 0:
                pos = s
                break
            s2 = buf.find(_BOF, s + 1, e)
            if s2 >= 0:
                pos = s2
                continue
            pos = e + 1
            content = unescape(buf[s + 1 : e])
            if (
                content is not None
                and len(content) >= 6
                and content[:2] == HEADER
                and fcs(content[:-2]) == int.from_bytes(content[-2:], "little")
            ):
                out.append(content[4:-2])
        self._hostbuf = buf[pos:][-MAX_WIRE:]
        return out

    def _host_message(self, u: bytes, t: float) -> bytes:
        try:
            msg = parse_message(u)
        except (ValueError, struct.error, IndexError):
            self.received.append((t, "malformed", 0))
            return b""
        self.received.append((t, msg.kind, msg.obj_code))
        self._last_host = t
        if msg.kind == "associate":
            # A new association replaces any old one (a host that restarted).
            self.associated, self.confirmed = True, False
            self.associations += 1
            self._polls.clear()
            self._create_invoke = (self._create_invoke + 1) & 0xFFFF
            self._create_at = t
            return frame(association_result(self.min_poll_s)) + self._create_event(t)
        if not self.associated:
            return b""
        if msg.kind == "release-request":
            self._end(t, "release")
            return frame(RELEASE_RESPONSE)
        if msg.kind == "abort":
            self._end(t, "host abort")
            return b""
        if msg.kind == "mds-create-result" and msg.invoke_id == self._create_invoke:
            self.confirmed = True
        elif not self.confirmed:
            return b""
        elif msg.kind == "poll-request" and msg.obj_code in (
            NOM_MOC_VMO_METRIC_NU,
            NOM_MOC_VMO_METRIC_SA_RT,
        ):
            duration = POLL_DURATION_S
            with contextlib.suppress(ValueError, struct.error, IndexError):
                attrs, _ = _attr_dict(u, 36)  # after the request's header
                if NOM_ATTR_TIME_PD_POLL in attrs:
                    duration = int.from_bytes(attrs[NOM_ATTR_TIME_PD_POLL][:4], "big") / TICKS
            self._polls[msg.obj_code] = _Poll(msg.invoke_id, msg.poll_number, t, t + duration)
        elif msg.kind == "set":
            ava = u[30:]  # the modification's attribute: id, length, value
            value = ava[4 : 4 + int.from_bytes(ava[2:4], "big")]
            body = _MDS_OBJ + attribute_list([(NOM_ATTR_POLL_RTSA_PRIO_LIST, value)])
            return frame(data_export(RORS, msg.invoke_id, CMD_CONFIRMED_SET, body))
        return b""

    def _end(self, t: float, why: str) -> None:
        self.associated = self.confirmed = False
        self._polls.clear()
        self.ended.append((t, why))

    def _create_event(self, t: float) -> bytes:
        attrs = [
            *MDS_ATTRS_FIXED,
            (NOM_ATTR_TIME_ABS, encode_abs_time(self.abs_time(t))),
            (NOM_ATTR_TIME_REL, struct.pack(">I", self.rel(t))),
        ]
        info = _MDS_OBJ + attribute_list(attrs)
        body = _MDS_OBJ + struct.pack(">IHH", self.rel(t), NOM_NOTI_MDS_CREAT, len(info)) + info
        return frame(data_export(ROIV, self._create_invoke, CMD_CONFIRMED_EVENT_REPORT, body))

    # --- monitor → host ---

    def emit(self, t0: float, t1: float) -> bytes:
        if t1 <= t0:
            return b""
        out: list[tuple[float, int, bytes]] = []
        if self.associated and (self._drop or t0 - self._last_host > self.timeout):
            self._end(t0, "abort" if self._drop else "timeout")
            self._drop = False
            return frame(ABORT)
        self._drop = False
        if not self.associated:
            return b""
        if not self.confirmed:
            c, r = self._create_at, self.create_resend
            ks = range(max(1, tick_at(t0, 1 / r, c)), tick_at(t1, 1 / r, c))
            return b"".join(self._create_event(c + k * r) for k in ks)
        for code, poll in self._polls.items():
            period = NUMERIC_PERIOD if code == NOM_MOC_VMO_METRIC_NU else WAVE_PERIOD
            # Results on the monitor's grid, from the first grid point after the request.
            hi = min(t1, poll.until)
            k = max(math.floor(t0 / period - 1e-9), math.floor(poll.start / period))
            while k * period < hi:
                if k * period >= t0 and k * period > poll.start:
                    out.append((k * period, code, self._result(code, poll, k)))
                k += 1
        out.sort(key=lambda x: (x[0], x[1]))
        return b"".join(f for _, _, f in out)

    def _result(self, code: int, poll: _Poll, k: int) -> bytes:
        if code == NOM_MOC_VMO_METRIC_NU:
            t = k * NUMERIC_PERIOD
            observations = self.numerics(t)
            rel = self.rel(t)
        else:
            t = (k - 1) * WAVE_PERIOD  # the samples of the 256 ms before the result
            co2 = [(NOM_ATTR_SA_VAL_OBS, self.co2_value(t))]
            if poll.sequence == 0:  # the scale with the first result of a poll
                lo, hi, lo_s, hi_s = CO2_SCALE
                scale = struct.pack(">IIHH", encode_float(lo), encode_float(hi), lo_s, hi_s)
                co2.insert(0, (NOM_ATTR_SCALE_SPECN_I16, scale))
            observations = [
                (H_PLETH, [(NOM_ATTR_SA_VAL_OBS, self.pleth_value(t))]),
                (H_CO2, co2),
            ]
            rel = self.rel(t)
        seq = poll.sequence
        poll.sequence = (seq + 1) & 0xFFFF
        obs = b"".join(struct.pack(">H", h) + attribute_list(a) for h, a in observations)
        info = struct.pack(">HHH", 1, len(observations), len(obs)) + obs
        reply = (
            struct.pack(">HHI", poll.poll_number, seq, rel)
            + b"\xff" * 8
            + struct.pack(">HHH", NOM_PART_OBJ, code, NOM_ATTR_GRP_VMO_DYN)
            + struct.pack(">HH", 1, len(info))
            + info
        )
        body = _MDS_OBJ + struct.pack(">HH", NOM_ACT_POLL_MDIB_DATA_EXT, len(reply)) + reply
        return frame(data_export(RORS, poll.invoke_id, CMD_CONFIRMED_ACTION, body))

    def numerics(self, t: float) -> list[tuple[int, list[tuple[int, bytes]]]]:
        """The numerics poll result's observations at session time ``t``."""
        v = self.session.vitals(t)
        off = Flag.SENSOR_OFF in v.flags or Flag.SEARCHING in v.flags
        quest = bool(v.flags & {Flag.ARTIFACT, Flag.LOW_PERFUSION})
        ox_state = (INVALID | UNAVAILABLE) if off else (QUESTIONABLE if quest else 0)

        def nu(physio: int, state: int, unit: int, value: float | None, exp: int) -> bytes:
            raw = encode_float(None if state & UNAVAILABLE else value, exp)
            return struct.pack(">HHHI", physio, state, unit, raw)

        hr = v.heart_rate
        hr_state = UNAVAILABLE if hr is None else 0
        spo2_state = ox_state | (MSMT_STATE_IN_ALARM if v.spo2 is not None and v.spo2 < 90 else 0)
        hr_v = None if hr is None else float(round(hr))
        spo2_v = None if v.spo2 is None else round(v.spo2, 1)
        pi_v = None if v.perfusion_index is None else round(v.perfusion_index, 2)
        return [
            (H_NIBP, self.nibp_attrs(t)),
            (H_HR, [(NOM_ATTR_NU_VAL_OBS, nu(NOM_ECG_CARD_BEAT_RATE, hr_state, 0x0AA0, hr_v, 0))]),
            (H_PVC, [(NOM_ATTR_NU_VAL_OBS, nu(NOM_ECG_V_P_C_CNT, hr_state, 0x0AA0, 0.0, 0))]),
            (
                H_SPO2,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_SAT_O2, spo2_state, 0x0220, spo2_v, -1))],
            ),
            (
                H_PR,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_PULS_RATE, ox_state, 0x0AA0, hr_v, 0))],
            ),
            (
                H_PERF,
                [(NOM_ATTR_NU_VAL_OBS, nu(NOM_PULS_OXIM_PERF_REL, ox_state, 0x0200, pi_v, -2))],
            ),
            *self.breathing(t, nu),
        ]

    def breathing(
        self, t: float, nu: Callable[[int, int, int, float | None, int], bytes]
    ) -> list[tuple[int, list[tuple[int, bytes]]]]:
        """The breathing observations at ``t``: the chest impedance rate (it goes on while the
        CO2 line is off; 0 in apnoea), and the capnograph's rate, EtCO2 and inspired CO2."""
        b = self.session.breathing(t)
        line_off = Flag.SENSOR_OFF in b.flags
        co2_state = (INVALID | UNAVAILABLE) if line_off else 0
        rr = b.resp_rate
        impedance = b.resp_rate if not line_off else self._impedance_rate(t)
        et_state = co2_state | (UNAVAILABLE if b.etco2 is None else 0)

        def whole(x: float | None) -> float | None:
            return None if x is None else float(round(x))

        return [
            (
                H_RR,
                [
                    (
                        NOM_ATTR_NU_VAL_OBS,
                        nu(NOM_RESP_RATE, 0, UNIT_RESP_PER_MIN, whole(impedance), 0),
                    )
                ],
            ),
            (
                H_AWRR,
                [
                    (
                        NOM_ATTR_NU_VAL_OBS,
                        nu(NOM_AWAY_RESP_RATE, co2_state, UNIT_RESP_PER_MIN, whole(rr), 0),
                    )
                ],
            ),
            (
                H_ETCO2,
                [
                    (
                        NOM_ATTR_NU_VAL_OBS,
                        nu(NOM_AWAY_CO2_ET, et_state, UNIT_MMHG, whole(b.etco2), 0),
                    )
                ],
            ),
            (
                H_INSP_CO2,
                [
                    (
                        NOM_ATTR_NU_VAL_OBS,
                        nu(NOM_AWAY_CO2_INSP_MIN, co2_state, UNIT_MMHG, whole(b.fico2), 0),
                    )
                ],
            ),
        ]

    def _impedance_rate(self, t: float) -> float | None:
        """The chest's rate while the CO2 line is off: the patient breathes on, at the rate the
        capnograph last saw (the model has one breathing rate)."""
        for back in range(1, 3600):
            r = self.session.breathing(t - back).resp_rate
            if r is not None:
                return r
        return None

    def nibp_attrs(self, t: float) -> list[tuple[int, bytes]]:
        """The NIBP object's attributes at ``t``: last reading, or measuring, or none yet."""
        i = bisect.bisect_right(self._reading_t, t)
        last = self._readings[i - 1] if i else None
        following = self._readings[i] if i < len(self._readings) else None
        measuring = following is not None and following.t - self._measure_s <= t
        if last is None:
            values: tuple[float | None, float | None, float | None] = (None, None, None)
            state = UNAVAILABLE
            when = None
        else:
            values = (last.systolic, last.diastolic, last.mean)
            state = INVALID if last.systolic is None else 0
            when = self.abs_time(last.t)
        if measuring:
            state = (state & ~INVALID) | MSMT_ONGOING
        parts = b"".join(
            struct.pack(
                ">HHHI", pid, state, UNIT_MMHG, encode_float(None if x is None else float(x))
            )
            for pid, x in zip(NIBP_PARTS, values, strict=True)
        )
        cmpd = struct.pack(">HH", 3, len(parts)) + parts
        return [(NOM_ATTR_TIME_STAMP_ABS, encode_abs_time(when)), (NOM_ATTR_NU_CMPD_VAL_OBS, cmpd)]

    def co2_value(self, t: float) -> bytes:
        """The SaObsValue of the 16 CO2 samples from ``t`` (counts on :data:`CO2_SCALE`)."""
        x = np.asarray(self.session.capnogram(t, CO2_PER_RESULT, CO2_FS), dtype=np.float64)
        lo, hi, lo_s, hi_s = CO2_SCALE
        q = np.rint(lo_s + (np.clip(x, lo, hi) - lo) * (hi_s - lo_s) / (hi - lo)).astype(">u2")
        line_off = Flag.SENSOR_OFF in self.session.breathing(t).flags
        state = INVALID if line_off else 0
        data = q.tobytes()
        return struct.pack(">HHH", NOM_AWAY_CO2, state, len(data)) + data

    def pleth_value(self, t: float) -> bytes:
        """The SaObsValue of the 32 pleth samples from ``t``."""
        x = np.asarray(self.session.pleth(t, PLETH_PER_RESULT, PLETH_FS), dtype=np.float64)
        invalid = bool(np.isnan(x).any())
        q = quantise(x, PLETH_FULL_SCALE)
        data = q.astype(">u2").tobytes()
        state = INVALID if invalid else 0
        return struct.pack(">HHH", NOM_PULS_OXIM_PLETH, state, len(data)) + data
