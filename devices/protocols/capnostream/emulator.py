"""The Capnostream emulator: a Capnostream 20 that talks while the host keeps the link up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.protocols.capnostream.parser import CapnostreamParser
from devices.protocols.capnostream.wire import (
    CMD_DISABLE_COMM,
    CMD_ENABLE_COMM,
    CMD_INQUIRE_NUMERIC,
    CMD_START_RT,
    CMD_STOP_RT,
    CO2_NO_BREATH,
    DEVICE_ID,
    FAST_END_OF_BREATH,
    FAST_LINE_OFF,
    HEADER,
    INVALID,
    ITEM_ETCO2,
    ITEM_FICO2,
    ITEM_PULSE,
    ITEM_RR,
    ITEM_SPO2,
    NUMERICS_PERIOD,
    RSP_DEVICE_ID,
    RSP_NUMERIC_ITEM,
    SPO2_PULSE_NOT_FOUND,
    SPO2_SENSOR_OFF,
    WAVE_RATE,
    NumericsFields,
    checksum,
    encode_message,
    encode_numerics,
    encode_wave,
    unescape_frame,
)
from devices.protocols.emulation import ticks
from kapmonitor.core.model import Flag

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession

#: Seconds without a message from the host after which the emulated device stops talking.
#: Neither public implementation states the device's timeout; OpenICE sends "link is active"
#: every 5 s, so 15 s lets two go missing.
LINK_TIMEOUT = 15.0
#: Seconds of no breath after which the device raises its no-breath alarm (the numerics
#: message's "no breath period"; 20 s is the usual adult default and kap-default's apnoea delay).
NO_BREATH_S = 20


@dataclass
class Run:
    """A stretch of talking: from "enable communication" until "disable" or the link timeout."""

    start: float
    last_host: float  #: the latest message from the host
    stop: float | None = None
    #: (start, stop) of real-time (CO2 wave) streaming inside the run.
    realtime: list[list[float]] | None = None

    def end(self, timeout: float) -> float:
        limit = self.last_host + timeout
        return limit if self.stop is None else min(limit, self.stop)


class CapnostreamEmulator(DeviceEmulator):
    """A Capnostream 20 from a simulated patient.

    Silent until "enable communication" (answered with its id); then a numerics message every
    second and, between "start real-time" and "stop real-time", a CO2 wave message every 50 ms,
    until "disable communication" or :data:`LINK_TIMEOUT` (real seconds, so ``speed`` times
    longer in session time) without a message from the host. "Inquire numeric item" is answered
    with the value. Second ``j``'s numerics show the patient at ``j``; the wave's samples are the
    capnogram at their own times, sent with the end-of-breath bit at the top of each breath, the
    line-off bit (and value 0) while the sampling line is off. Seconds are computed whole and
    cached, so the bytes do not depend on how :meth:`emit`'s windows fall.
    """

    protocol: ClassVar[str] = CapnostreamParser.protocol
    SERIAL: ClassVar[SerialSettings] = CapnostreamParser.SERIAL

    def __init__(
        self, session: KapSession, *, timeout: float = LINK_TIMEOUT, speed: float = 1.0
    ) -> None:
        super().__init__(session, speed=speed)
        self.timeout = timeout * speed
        self.runs: list[Run] = []
        self.commands: list[tuple[float, int]] = []  #: (session time, command) as received
        self._host = b""
        #: CO2 wave messages a second at a time: the bytes and where each message starts.
        self._seconds: dict[int, tuple[bytes, list[int]]] = {}

    # --- the host's side -------------------------------------------------------------------------

    def talking(self, t: float) -> bool:
        run = self.runs[-1] if self.runs else None
        return run is not None and run.start <= t < run.end(self.timeout)

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        buf = self._host + bytes(data)
        reply = bytearray()
        pos = 0
        while True:
            h = buf.find(HEADER, pos)
            if h < 0:
                pos = len(buf)
                break
            status, body, end = unescape_frame(buf, h)
            if status == 0:
                pos = h
                break
            if status < 0 or body[-1] != checksum(body[:-1]):
                pos = h + 1
                continue
            reply += self._command(body[1], body[2:-1], t)
            pos = end
        self._host = buf[pos:]
        return bytes(reply)

    def _command(self, code: int, args: bytes, t: float) -> bytes:
        self.commands.append((t, code))
        talking = self.talking(t)
        if talking:
            self.runs[-1].last_host = t
        if code == CMD_ENABLE_COMM:
            if not talking:
                self.runs.append(Run(t, t, realtime=[]))
            return encode_message(RSP_DEVICE_ID, DEVICE_ID)
        if not talking:
            return b""
        run = self.runs[-1]
        assert run.realtime is not None
        if code == CMD_DISABLE_COMM:
            run.stop = t
        elif code == CMD_START_RT:
            if not run.realtime or run.realtime[-1][1] < math.inf:
                run.realtime.append([t, math.inf])
        elif code == CMD_STOP_RT:
            if run.realtime and run.realtime[-1][1] == math.inf:
                run.realtime[-1][1] = t
        elif code == CMD_INQUIRE_NUMERIC and args:
            return self._numeric_item(args[0], t)
        return b""  # "link is active" (it renewed the run above) and unknown commands

    def _numeric_item(self, item: int, t: float) -> bytes:
        f = self.fields(math.floor(t))
        value = {
            ITEM_ETCO2: f.etco2,
            ITEM_FICO2: f.fico2,
            ITEM_RR: f.rr,
            ITEM_SPO2: f.spo2,
            ITEM_PULSE: f.pulse,
        }.get(item, INVALID)
        return encode_message(RSP_NUMERIC_ITEM, bytes((value,)))

    # --- what it sends ---------------------------------------------------------------------------

    def emit(self, t0: float, t1: float) -> bytes:
        parts: list[tuple[float, bytes]] = []
        for run in self.runs:
            end = run.end(self.timeout)
            lo, hi = max(t0, run.start), min(t1, end)
            if lo >= hi:
                continue
            for j in ticks(lo, hi, 1.0 / NUMERICS_PERIOD):
                parts.append((j * NUMERICS_PERIOD, encode_numerics(self.fields(j))))
            assert run.realtime is not None
            for a, z in run.realtime:
                wlo, whi = max(lo, a), min(hi, z)
                for k in ticks(wlo, whi, WAVE_RATE) if wlo < whi else ():
                    parts.append((k / WAVE_RATE, self.wave(k)))
        parts.sort(key=lambda p: p[0])
        return b"".join(p[1] for p in parts)

    def fields(self, j: int) -> NumericsFields:
        """The numerics message of second ``j``."""
        t = float(j)
        b = self.session.breathing(t)
        v = self.session.vitals(t)
        co2_alarms = 0
        before = self.session.breathing(t - NO_BREATH_S)
        if Flag.NO_BREATH in b.flags and Flag.NO_BREATH in before.flags:
            co2_alarms |= CO2_NO_BREATH  # no breath for the whole no-breath period
        spo2_alarms = 0
        if Flag.SENSOR_OFF in v.flags:
            spo2_alarms |= SPO2_SENSOR_OFF
        elif Flag.SEARCHING in v.flags:
            spo2_alarms |= SPO2_PULSE_NOT_FOUND
        return NumericsFields(
            timestamp=j % 2**32,
            etco2=_byte(b.etco2),
            fico2=_byte(b.fico2),
            rr=_byte(b.resp_rate),
            spo2=_byte(v.spo2, 100),
            pulse=_byte(v.heart_rate),
            co2_alarms=co2_alarms,
            spo2_alarms=spo2_alarms,
            no_breath_period=NO_BREATH_S,
        )

    def wave(self, k: int) -> bytes:
        """CO2 wave message ``k`` (sent at ``k / 20`` s)."""
        per = int(WAVE_RATE)
        j, i = divmod(k, per)
        second = self._seconds.get(j)
        if second is None:
            if len(self._seconds) >= 4:
                self._seconds.clear()
            second = self._seconds[j] = self._wave_second(j)
        data, starts = second
        return data[starts[i] : starts[i + 1]]

    def _wave_second(self, j: int) -> tuple[bytes, list[int]]:
        per = int(WAVE_RATE)
        # One sample either side, to find where each breath's down-stroke begins.
        y = self.session.capnogram((j * per - 1) / WAVE_RATE, per + 2, WAVE_RATE)
        msgs = []
        for i in range(per):
            k = j * per + i
            prev, here, nxt = y[i], y[i + 1], y[i + 2]
            status = 0
            value = float(here)
            if Flag.SENSOR_OFF in self.session.breathing(k / WAVE_RATE).flags:
                status |= FAST_LINE_OFF
                value = 0.0
            elif here > 5.0 and nxt < here - 2.0 and prev >= here - 2.0:
                status |= FAST_END_OF_BREATH  # the down-stroke begins: the breath has ended
            msgs.append(encode_wave(k, value, status))
        starts = np.cumsum([0, *(len(m) for m in msgs)]).tolist()
        return b"".join(msgs), starts


def _byte(value: float | None, high: int = 254) -> int:
    """A value as the device's one byte, or the no-value marker."""
    if value is None or not math.isfinite(value):
        return INVALID
    return min(max(round(value), 0), high)
