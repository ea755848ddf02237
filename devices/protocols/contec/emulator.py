"""The Contec emulator: a CMS50D+ streaming while the host keeps it going."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.protocols.contec.parser import ContecParser
from devices.protocols.contec.wire import (
    CAPTURED_REPLIES,
    CMD_KEEP_ALIVE,
    CMD_START,
    CMD_STOP,
    CMD_TYPE,
    KEEP_ALIVE_TIMEOUT,
    PACKET_RATE,
    PI_INVALID,
    PI_VALID,
    PR_INVALID,
    PROBE_ERROR,
    RT_BYTES,
    SEARCHING_PULSE,
    SPO2_INVALID,
    decode_packet,
    encode_realtime_array,
)
from devices.protocols.emulation import Blocks, quantise, tick_at, ticks
from kapmonitor.core.model import Flag

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession


@dataclass
class StreamRun:
    """One stretch of streaming: from a start command until a stop or the keep-alive timeout."""

    start: float  #: session time of the start command
    last_command: float  #: the latest A1/AF that kept it going
    stop: float | None = None  #: session time of a stop command

    def alive(self, t: float, timeout: float) -> bool:
        return (
            self.start <= t
            and t - self.last_command <= timeout
            and (self.stop is None or t < self.stop)
        )

    def packets(self, timeout: float) -> tuple[int, int]:
        """The packet indices ``[first, end)`` this run sends."""
        first = tick_at(self.start, PACKET_RATE)
        limit = (self.last_command + timeout) * PACKET_RATE
        end = sys.maxsize if math.isinf(limit) else math.floor(limit + 1e-9) + 1
        if self.stop is not None:
            end = min(end, tick_at(self.stop, PACKET_RATE))
        return first, max(first, end)


class ContecEmulator(DeviceEmulator):
    """A CMS50D+ that streams real-time packets from a simulated patient while the host wants them.

    Silent until the host sends the start command (A1); then packet ``k`` is sent at ``k / 60`` s
    of session time until a stop command (A2) or until ``timeout`` seconds pass without an A1 or AF
    (an AF after that does not restart the stream; an A1 does). Host bytes are parsed in any
    chunking; commands count from the time they arrive. Other commands get the reply the real
    device gave in the public capture (:data:`CAPTURED_REPLIES`), or none.

    Packets of second ``j`` (60j..60j+59) show the vitals at ``j`` s, as the device's display
    updates once a second, and the pleth from there at 60 Hz; a pleth sample that is NaN (probe
    off) goes out as 0 with the probe-error bit. Signal strength is ``1 + PI`` (at most 8) and 0
    for low perfusion or no signal; the bar graph follows the pleth (0-8); PI is sent with its
    valid bit; the beep and low-SpO2 bits stay clear. Seconds are computed whole and cached, so
    the bytes do not depend on how :meth:`emit`'s boundaries fall.
    """

    protocol: ClassVar[str] = ContecParser.protocol
    SERIAL: ClassVar[SerialSettings] = ContecParser.SERIAL

    def __init__(
        self,
        session: KapSession,
        *,
        timeout: float = KEEP_ALIVE_TIMEOUT,
        replies: dict[int, bytes] | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__(session, speed=speed)
        #: The device's keep-alive timeout in session time (real seconds × speed).
        self.timeout = timeout * speed
        self.replies = CAPTURED_REPLIES if replies is None else replies
        self.runs: list[StreamRun] = []
        self.commands: list[tuple[float, int]] = []  #: (session time, command) as received
        self._host = b""
        #: Real-time packets, computed a second at a time.
        self._packets = Blocks(self.second, int(PACKET_RATE), b"".join, width=RT_BYTES)

    def streaming(self, t: float) -> bool:
        """Whether the device sends at session time ``t`` (as far as commands so far say)."""
        return bool(self.runs) and self.runs[-1].alive(t, self.timeout)

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        buf = self._host + bytes(data)
        reply = bytearray()
        while True:
            i = buf.find(CMD_TYPE)
            if i < 0:
                buf = b""
                break
            if len(buf) - i < RT_BYTES:
                buf = buf[i:]
                break
            pkt = buf[i : i + RT_BYTES]
            if min(pkt[1:]) < 0x80:
                buf = buf[i + 1 :]
                continue
            buf = buf[i + RT_BYTES :]
            reply += self._command(decode_packet(pkt)[1][0], t)
        self._host = buf
        return bytes(reply)

    def _command(self, code: int, t: float) -> bytes:
        self.commands.append((t, code))
        alive = self.streaming(t)
        if code == CMD_START:
            if alive:
                self.runs[-1].last_command = t
            else:
                self.runs.append(StreamRun(t, t))
        elif code == CMD_KEEP_ALIVE:
            if alive:
                self.runs[-1].last_command = t
        elif code == CMD_STOP and alive:
            self.runs[-1].stop = t
        return self.replies.get(code, b"")

    def emit(self, t0: float, t1: float) -> bytes:
        window = ticks(t0, t1, PACKET_RATE)
        if not window:
            return b""
        k0, k1 = window.start, window.stop
        parts = []
        for run in self.runs:
            a, z = run.packets(self.timeout)
            lo, hi = max(a, k0), min(z, k1)
            if lo < hi:
                parts.append(self.packets(lo, hi))
        return b"".join(parts)

    def packets(self, k0: int, k1: int) -> bytes:
        """The bytes of real-time packets ``k0 .. k1 - 1``, whether or not the host asked."""
        return self._packets.units(k0, k1) if k0 < k1 else b""

    def second(self, j: int) -> bytes:
        """The 60 packets of second ``j``."""
        per = int(PACKET_RATE)
        t = float(j)
        v = self.session.vitals(t)
        pleth = np.asarray(self.session.pleth(t, per, PACKET_RATE), dtype=np.float64)
        no_signal = np.isnan(pleth) | (Flag.SENSOR_OFF in v.flags)
        q = quantise(pleth, 127.0)  # the 7-bit pleth
        pr = PR_INVALID if v.heart_rate is None else min(max(round(v.heart_rate), 1), 254)
        spo2 = SPO2_INVALID if v.spo2 is None else min(max(round(v.spo2), 1), 100)
        pi = PI_INVALID
        strength = 0
        if v.perfusion_index is not None:
            pi = min(max(round(v.perfusion_index * 100), 1), PI_INVALID - 1)
            if Flag.LOW_PERFUSION not in v.flags:
                strength = min(8, 1 + int(v.perfusion_index))
        d = np.zeros((per, 7), dtype=np.uint16)
        d[:, 0] = np.where(no_signal, PROBE_ERROR, strength)
        d[:, 1] = q | (SEARCHING_PULSE if Flag.SEARCHING in v.flags else 0)
        d[:, 2] = np.rint(q * (8 / 127)).astype(np.uint16) | (PI_VALID if pi != PI_INVALID else 0)
        d[:, 3] = pr
        d[:, 4] = spo2
        d[:, 5] = pi & 0xFF
        d[:, 6] = pi >> 8
        return encode_realtime_array(d)
