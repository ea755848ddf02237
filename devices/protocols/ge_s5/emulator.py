"""The S/5 emulator: a CARESCAPE B650 answering the host's requests."""

from __future__ import annotations

import bisect
import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.protocols.emulation import Blocks, tick_at
from devices.protocols.ge_s5.parser import GeS5Parser
from devices.protocols.ge_s5.records import BasicClass, phdb_record, wave_record, wave_subrecord
from devices.protocols.ge_s5.wire import (
    _I16,
    CLASS_DENY_BASIC,
    CO2_DIVISOR,
    CO2_FS,
    DATA_INVALID,
    DEFAULT_INTERVAL,
    EOL,
    FLAG,
    HEADER_LEN,
    MAX_BODY,
    MT_PHDB,
    MT_WAVE,
    NIBP_AUTO,
    NIBP_MEASURING,
    NIBP_OLD,
    NIBP_STAT,
    PH_DISPL,
    PLETH_DIVISOR,
    PLETH_FS,
    STATUS_ACTIVE,
    STATUS_EXISTS,
    WAVE_PERIOD,
    WAVE_SAMPLES,
    WF_CO2,
    WF_PLETH,
    WF_REQ_START,
    WF_REQ_STOP,
    WF_STATUS_GAP,
    checksum,
    decode_header,
    frame,
    unescape,
)
from kapmonitor.core.model import (
    Flag,
)

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession


SIM_EPOCH = 1_623_330_374  #: the monitor clock at session time 0 (the public B650 data's day)
AMB_PRESS = 7600  #: 760.0 mmHg, as the public B650 data shows
PLETH_OFFSET = 0.5  #: the simulated pleth (0..1) around this …
PLETH_GAIN = 10.0  #: … times this is % modulation: ±5 %, the range of the public B650 pleth


@dataclass
class _Run:
    """One stretch of a requested transmission: from a start request to a stop or a new start."""

    start: float
    stop: float | None = None
    interval: float = 0.0  #: PHDB: seconds between records; −1: a single record
    co2: bool = False  #: waves: the CO2 wave was asked for too


@dataclass
class _Requests:
    phdb: list[_Run] = field(default_factory=list)
    wave: list[_Run] = field(default_factory=list)


class GeS5Emulator(DeviceEmulator):
    """A CARESCAPE B650 on its computer interface, answering the host's requests.

    Silent until the host asks. A displayed-values request (type 1, basic class) with an interval
    of 5 s or more starts a PHDB record every interval, the first at the next whole second; an
    interval of 1-4 s is taken as 5 (the spec allows only ≥ 5; what a monitor does with less is
    not documented); −1 sends one record; 0 stops. A request that denies the basic class, trend
    requests (types 2, 3) and the ext classes are not emulated: the monitor's records for them
    carry groups kapmonitor does not read. A wave request that lists PLETH starts a pleth record
    every :data:`WAVE_PERIOD`; a stop request or a start without PLETH stops it; other waves are
    not simulated. The first pleth subrecord of a stream has the gap bit set, as the spec says.
    Host frames with a wrong checksum are ignored, as the monitor's receiver would; there is no
    reply to a request other than the data.

    Values are what the monitor shows at the record's time: heart rate (ECG and pulse rate are
    both the scenario's one heart rate) and SpO2 as whole numbers, NIBP from the scenario's cuff
    schedule with the "measuring" bit during each measurement (``measure_s`` before its end), the
    AUTO/STAT bit by the reading's mode, the "older than 60 s" bit after a minute, and invalid
    markers after a failed measurement. A probe that is off makes the SpO2 group inactive with
    DATA_INVALID values (and ECG HR invalid: the scenario has no separate ECG); searching keeps it
    active. Records are built from session time alone (``r_time`` = :data:`SIM_EPOCH` + t), so
    the bytes do not depend on how :meth:`emit`'s boundaries fall. ``r_nbr`` and ``plug_id`` are 0
    (their values on a real monitor are not known).
    """

    protocol: ClassVar[str] = GeS5Parser.protocol
    SERIAL: ClassVar[SerialSettings] = GeS5Parser.SERIAL
    tick: ClassVar[float] = 0.05

    def __init__(self, session: KapSession, *, speed: float = 1.0, epoch: int = SIM_EPOCH) -> None:
        super().__init__(session, speed=speed)
        self.epoch = epoch
        self.requests = _Requests()
        self.received: list[tuple[float, bytes]] = []  #: (session time, record) of valid frames
        self._host = b""
        #: Pleth samples, computed a second at a time.
        self._pleth = Blocks(self._pleth_second, 100, np.concatenate)
        readings = getattr(session, "nibp_readings", ())
        self._nibp = tuple(readings)
        self._nibp_t = [r.t for r in self._nibp]
        scenario = getattr(session, "scenario", None)
        self._measure_s = float(scenario.nibp.measure_s) if scenario is not None else 30.0

    # --- host side ------------------------------------------------------------------------------

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        buf = self._host + bytes(data)
        while True:
            i = buf.find(FLAG)
            if i < 0:
                buf = b""
                break
            j = buf.find(FLAG, i + 1)
            if j < 0:
                buf = buf[i:] if len(buf) - i <= MAX_BODY else b""
                break
            record = unescape(buf[i + 1 : j])
            buf = buf[j:]
            if record is None or len(record) < HEADER_LEN + 1:
                continue
            if checksum(record[:-1]) != record[-1]:
                continue
            self._request(record[:-1], t)
        self._host = buf
        return b""

    def _request(self, record: bytes, t: float) -> None:
        self.received.append((t, record))
        h = decode_header(record)
        if not h.subrecords or h.subrecords[0][1] != 0:
            return
        off = HEADER_LEN + h.subrecords[0][0]
        if h.maintype == MT_PHDB and len(record) >= off + 9:
            rtype, ival, class_bf, _ = struct.unpack_from("<BhIh", record, off)
            if rtype != PH_DISPL:
                return
            self._end(self.requests.phdb, t)
            if ival == 0 or class_bf & CLASS_DENY_BASIC:
                return
            interval = -1.0 if ival < 0 else float(max(ival, DEFAULT_INTERVAL))
            self.requests.phdb.append(_Run(t, None, interval))
        elif h.maintype == MT_WAVE and len(record) >= off + 12:
            (req,) = _I16.unpack_from(record, off)
            types = record[off + 4 : off + 12].split(bytes((EOL,)))[0]
            streaming = bool(self.requests.wave) and self.requests.wave[-1].stop is None
            co2 = WF_CO2 in types
            if req == WF_REQ_START and WF_PLETH in types:
                if streaming and self.requests.wave[-1].co2 != co2:
                    self._end(self.requests.wave, t)  # the CO2 wave added or left out
                    streaming = False
                if not streaming:  # the same wave list again does not interrupt the pleth
                    self.requests.wave.append(_Run(t, co2=co2))
            elif req in (WF_REQ_START, WF_REQ_STOP):
                self._end(self.requests.wave, t)

    @staticmethod
    def _end(runs: list[_Run], t: float) -> None:
        if runs and runs[-1].stop is None:
            runs[-1].stop = t

    def streaming(self, t: float) -> tuple[bool, bool]:
        """Whether displayed values and the pleth are being sent at session time ``t``."""

        def on(runs: list[_Run]) -> bool:
            return (
                bool(runs) and runs[-1].start <= t and (runs[-1].stop is None or t < runs[-1].stop)
            )

        return on(self.requests.phdb), on(self.requests.wave)

    # --- device side ----------------------------------------------------------------------------

    def emit(self, t0: float, t1: float) -> bytes:
        events: list[tuple[float, int, int]] = []  # (time, kind, index)
        for run in self.requests.phdb:
            first = tick_at(run.start, 1.0)
            end = t1 if run.stop is None else min(t1, run.stop)
            if run.interval < 0:
                if t0 <= first < end:
                    events.append((float(first), 0, first))
                continue
            k = max(0, math.ceil((t0 - first) / run.interval - 1e-9))
            while (tr := first + k * run.interval) < end:
                if tr >= t0:
                    events.append((tr, 0, round(tr)))
                k += 1
        for run in self.requests.wave:
            k0 = tick_at(run.start, 1 / WAVE_PERIOD)  # packets whose samples follow it
            end = t1 if run.stop is None else min(t1, run.stop)
            k = max(k0, tick_at(t0, 1 / WAVE_PERIOD) - 1)
            while (ts := (k + 1) * WAVE_PERIOD) < end:
                if ts >= t0:
                    events.append((ts, 2 if run.co2 else 1, k if k != k0 else -k - 1))
                k += 1
        events.sort()
        return b"".join(
            frame(self.phdb_at(i) if kind == 0 else self.wave_packet(i, co2=kind == 2))
            for _, kind, i in events
        )

    def phdb_at(self, second: int) -> bytes:
        """The displayed-values record the monitor sends at session second ``second``."""
        t = float(second)
        v = self.session.vitals(t)
        off = Flag.SENSOR_OFF in v.flags
        hr = DATA_INVALID if v.heart_rate is None else round(v.heart_rate)
        spo2 = DATA_INVALID if v.spo2 is None else 100 * min(round(v.spo2), 100)
        amp = DATA_INVALID if v.perfusion_index is None else round(v.perfusion_index * 100)
        on = STATUS_EXISTS | STATUS_ACTIVE
        basic = BasicClass(
            ecg_status=on,
            ecg_label=0x0200,  # channel 1: lead II
            hr=hr,
            spo2_status=STATUS_EXISTS if off else on,
            spo2=spo2,
            spo2_pr=hr,
            spo2_ir_amp=amp,
            co2_amb_press=AMB_PRESS,
            **self._co2_fields(t),
            **self._nibp_fields(t),
        )
        return phdb_record(basic, self.epoch + second)

    def _co2_fields(self, t: float) -> dict[str, int]:
        """The CO2 group: active with EtCO2 and FiCO2 in 1/100 % of the ambient pressure and
        the rate; the sampling line off makes it inactive with invalid values."""
        b = self.session.breathing(t)
        if Flag.SENSOR_OFF in b.flags:
            return {"co2_status": STATUS_EXISTS}

        def pct(mmhg: float | None) -> int:
            return DATA_INVALID if mmhg is None else round(mmhg / (AMB_PRESS / 10) * 100 * 100)

        return {
            "co2_status": STATUS_EXISTS | STATUS_ACTIVE,
            "co2_et": pct(b.etco2),
            "co2_fi": pct(b.fico2),
            "co2_rr": DATA_INVALID if b.resp_rate is None else round(b.resp_rate),
        }

    def _nibp_fields(self, t: float) -> dict[str, int]:
        i = bisect.bisect_right(self._nibp_t, t)
        last = self._nibp[i - 1] if i else None
        nxt = self._nibp[i] if i < len(self._nibp) else None
        label = 0
        sys_ = dia = mean = DATA_INVALID
        if nxt is not None and nxt.t - self._measure_s <= t:
            label |= NIBP_MEASURING | _MODE_BITS.get(nxt.mode, 0)
        elif last is not None:
            label |= _MODE_BITS.get(last.mode, 0)
            if t - last.t > 60.0:
                label |= NIBP_OLD
        if last is not None and last.systolic is not None:
            sys_, dia, mean = (round(x * 100) for x in (last.systolic, last.diastolic, last.mean))
        return {
            "nibp_status": STATUS_EXISTS | STATUS_ACTIVE,
            "nibp_label": label,
            "nibp_sys": sys_,
            "nibp_dia": dia,
            "nibp_mean": mean,
        }

    def wave_packet(self, index: int, *, co2: bool = False) -> bytes:
        """Pleth record ``k`` (samples from ``k × WAVE_PERIOD``); ``-k - 1`` marks the first of
        a stream, which has the gap bit set. With ``co2``, the CO2 samples whose times fall in
        the same 250 ms follow (6 or 7 at 25 Hz), in 1/100 % of the ambient pressure."""
        k, status = (index, 0) if index >= 0 else (-index - 1, WF_STATUS_GAP)
        n = WAVE_SAMPLES
        x = self._pleth.units(k * n, k * n + n)
        raw = np.where(
            np.isnan(x),
            DATA_INVALID,
            np.rint((np.nan_to_num(x) - PLETH_OFFSET) * PLETH_GAIN * PLETH_DIVISOR),
        ).astype("<i2")
        r_time = self.epoch + math.floor((k + 1) * WAVE_PERIOD)
        subrecords = [(WF_PLETH, wave_subrecord(raw, status))]
        if co2:
            first = tick_at(k * WAVE_PERIOD, CO2_FS)
            m = tick_at((k + 1) * WAVE_PERIOD, CO2_FS) - first
            mmhg = self.session.capnogram(first / CO2_FS, m, CO2_FS)
            pct = np.rint(mmhg / (AMB_PRESS / 10) * 100 * CO2_DIVISOR)
            off = [
                Flag.SENSOR_OFF in self.session.breathing((first + i) / CO2_FS).flags
                for i in range(m)
            ]
            co2_raw = np.where(off, DATA_INVALID, pct).astype("<i2")
            subrecords.append((WF_CO2, wave_subrecord(co2_raw, status)))
        return wave_record(subrecords, r_time)

    def _pleth_second(self, j: int) -> npt.NDArray[np.float64]:
        return np.asarray(self.session.pleth(float(j), 100, PLETH_FS), dtype=np.float64)


_MODE_BITS = {"auto": NIBP_AUTO, "stat": NIBP_STAT}
