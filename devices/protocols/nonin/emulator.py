"""The Nonin encoders and emulators: the bytes a Nonin oximeter sends for a simulated patient."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, SerialSettings
from devices.protocols.emulation import Blocks, quantise, ticks
from devices.protocols.nonin.parser import (
    NoninFormat2Parser,
    NoninFormat7Parser,
    NoninFormat8Parser,
)
from devices.protocols.nonin.wire import (
    ACK,
    ARTF,
    ARTF8,
    BIT7,
    CHK_AT,
    F_EHR_LSB,
    F_EHR_MSB,
    F_EHRD_LSB,
    F_EHRD_MSB,
    F_ESPO2,
    F_ESPO2_D,
    F_HR_LSB,
    F_HR_MSB,
    F_HRD_LSB,
    F_HRD_MSB,
    F_SPO2,
    F_SPO2_BB,
    F_SPO2_D,
    F_SPO2_FAST,
    F_SREV,
    F_TIMER_LSB,
    F_TIMER_MSB,
    FLOAT_AT,
    FORMAT2,
    FORMAT7,
    FRAME_BYTES,
    FRAME_RATE,
    FRAMES_PER_PACKET,
    GPRF,
    HR_MISSING,
    LOW_BAT8,
    LPRF8,
    MPRF8,
    NAK,
    OOT,
    OOT8,
    REVISION,
    RPRF,
    SERIAL,
    SET_FORMAT_END,
    SET_FORMAT_PREFIX,
    SET_FORMAT_WINDOW,
    SNSA,
    SNSA8,
    SPA8,
    SPO2_MISSING,
    SYNC,
    FrameLayout,
)
from kapmonitor.core.model import Flag, Flags

if TYPE_CHECKING:
    from collections.abc import Sequence

    from devices.sim.physiology import KapSession


def _wire_values(hr: int | None, spo2: int | None) -> tuple[int, int]:
    """HR and SpO2 as sent: clamped to the wire's range, ``None`` as the missing markers."""
    hr_v = HR_MISSING if hr is None else min(max(int(hr), 0), HR_MISSING - 1)
    spo2_v = SPO2_MISSING if spo2 is None else min(max(int(spo2), 0), 100)
    return hr_v, spo2_v


def _hr_bytes(hr: int) -> tuple[int, int]:
    return (hr >> 7) & 0x03, hr & 0x7F


def encode_packet(
    hr: int | None,
    spo2: int | None,
    pleth: Sequence[int] | np.ndarray,
    *,
    status: int = GPRF,
    no_signal: Sequence[bool] | np.ndarray | None = None,
    timer: int = 0,
    revision: int = REVISION,
    layout: FrameLayout = FORMAT2,
) -> bytes:
    """The 125 bytes of one Format 2 (or, with ``layout=FORMAT7``, Format 7) packet.

    ``status`` holds the bits every frame carries (BIT7 and SYNC are added); frames marked in
    ``no_signal`` also get SNSA. ``hr``/``spo2`` of ``None`` are sent as the missing markers; the
    display (-D) and extended (E-) values repeat the plain ones, as a steady reading would.
    ``pleth`` holds wire values (8 or 16 bits, see :func:`~devices.protocols.emulation.quantise`).
    """
    hr_v, spo2_v = _wire_values(hr, spo2)
    msb, lsb = _hr_bytes(hr_v)
    fl = np.zeros(FRAMES_PER_PACKET, dtype=np.int64)
    fl[[F_HR_MSB, F_EHR_MSB, F_HRD_MSB, F_EHRD_MSB]] = msb
    fl[[F_HR_LSB, F_EHR_LSB, F_HRD_LSB, F_EHRD_LSB]] = lsb
    fl[[F_SPO2, F_SPO2_D, F_SPO2_FAST, F_SPO2_BB, F_ESPO2, F_ESPO2_D]] = spo2_v
    fl[F_SREV] = revision & 0xFF
    timer &= 0x3FFF
    fl[F_TIMER_MSB], fl[F_TIMER_LSB] = timer >> 7, timer & 0x7F
    st = np.full(FRAMES_PER_PACKET, BIT7 | (status & 0x7E), dtype=np.int64)
    st[0] |= SYNC
    if no_signal is not None:
        st[np.asarray(no_signal, dtype=bool)] |= SNSA
    frames = np.zeros((FRAMES_PER_PACKET, FRAME_BYTES), dtype=np.int64)
    if layout.start is not None:
        frames[:, 0] = layout.start
    frames[:, layout.status] = st
    layout.put_pleth(frames, np.asarray(pleth, dtype=np.int64))
    frames[:, FLOAT_AT] = fl
    frames[:, CHK_AT] = frames[:, :CHK_AT].sum(axis=1) & 0xFF
    return frames.astype(np.uint8).tobytes()


def encode_packet8(
    hr: int | None,
    spo2: int | None,
    flags: Flags = frozenset(),
    *,
    marginal: bool = False,
    smartpoint: bool = False,
    low_battery: bool = False,
) -> bytes:
    """The 4 bytes of one Format 8 packet (``marginal`` sets MPRF, yellow perfusion)."""
    hr_v, spo2_v = _wire_values(hr, spo2)
    msb, lsb = _hr_bytes(hr_v)
    b1 = BIT7 | msb
    b1 |= OOT8 if Flag.SEARCHING in flags else 0
    b1 |= ARTF8 if Flag.ARTIFACT in flags else 0
    b1 |= LPRF8 if Flag.LOW_PERFUSION in flags else 0
    b1 |= MPRF8 if marginal else 0
    b4 = SNSA8 if Flag.SENSOR_OFF in flags else 0
    b4 |= SPA8 if smartpoint else 0
    b4 |= LOW_BAT8 if low_battery else 0
    return bytes([b1, lsb, spo2_v, b4])


def status_bits(flags: Flags) -> int:
    """STATUS bits (besides BIT7/SYNC) a Nonin sets for a patient in this state."""
    bits = 0
    if Flag.SENSOR_OFF in flags:
        bits |= SNSA  # no pulse, so no perfusion colour either
    else:
        bits |= RPRF if Flag.LOW_PERFUSION in flags else GPRF
    if Flag.SEARCHING in flags:
        bits |= OOT
    if Flag.ARTIFACT in flags:
        bits |= ARTF
    return bits


def wire_flags8(flags: Flags) -> Flags:
    """The flags a Format 8 packet can carry for a patient in this state."""
    wire = flags & {Flag.SENSOR_OFF, Flag.SEARCHING, Flag.ARTIFACT, Flag.LOW_PERFUSION}
    if Flag.SENSOR_OFF in wire:
        wire -= {Flag.LOW_PERFUSION}  # no pulse, so no perfusion either
    return wire


class _NoninEmulator(DeviceEmulator):
    """What every Nonin emulator shares: the answer to the set-format command."""

    data_format: ClassVar[int]
    SERIAL: ClassVar[SerialSettings] = SERIAL

    def __init__(self, session: KapSession, *, speed: float = 1.0) -> None:
        super().__init__(session, speed=speed)
        #: Session time at which the host opened the port; the set-format window starts here.
        self.opened_at = 0.0
        self._host = b""

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        """ACK a set-format command for this format, NAK others; silent after the first 5 s."""
        buf = self._host + bytes(data)
        reply = bytearray()
        while True:
            i = buf.find(SET_FORMAT_PREFIX)
            if i < 0:
                buf = buf[-(len(SET_FORMAT_PREFIX) - 1) :]
                break
            if len(buf) < i + 6:
                buf = buf[i:]
                break
            if buf[i + 5] != SET_FORMAT_END:
                buf = buf[i + 1 :]
                continue
            if 0.0 <= t - self.opened_at < SET_FORMAT_WINDOW:
                reply += ACK if buf[i + 4] == self.data_format else NAK
            buf = buf[i + 6 :]
        self._host = buf
        return bytes(reply)


class _FramedEmulator(_NoninEmulator):
    """A Nonin oximeter streaming a 25-frame format from a simulated patient.

    Packet ``p`` (frames 25p..25p+24) shows the vitals at ``p/3`` s and the pleth from there at
    75 Hz; frame ``k`` is sent at ``k/75`` s. Packets are computed whole and cached, so the bytes
    do not depend on how :meth:`emit`'s time boundaries fall.
    """

    layout: ClassVar[FrameLayout]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.data_format = cls.layout.data_format

    def __init__(
        self, session: KapSession, *, revision: int = REVISION, speed: float = 1.0
    ) -> None:
        super().__init__(session, speed=speed)
        self.revision = revision
        #: Frames, computed a packet at a time.
        self._frames = Blocks(self.packet, FRAMES_PER_PACKET, b"".join, width=FRAME_BYTES)

    def emit(self, t0: float, t1: float) -> bytes:
        frames = ticks(t0, t1, FRAME_RATE)
        return self._frames.units(frames.start, frames.stop) if frames else b""

    def packet(self, index: int) -> bytes:
        """The 125 bytes of packet ``index``."""
        t = index * FRAMES_PER_PACKET / FRAME_RATE
        v = self.session.vitals(t)
        pleth = np.asarray(self.session.pleth(t, FRAMES_PER_PACKET, FRAME_RATE), dtype=float)
        return encode_packet(
            None if v.heart_rate is None else round(v.heart_rate),
            None if v.spo2 is None else round(v.spo2),
            quantise(pleth, float((1 << self.layout.bits) - 1)),
            status=status_bits(v.flags),
            no_signal=np.isnan(pleth),
            timer=index,
            revision=self.revision,
            layout=self.layout,
        )


class NoninFormat2Emulator(_FramedEmulator):
    """A Nonin oximeter streaming Format 2 (8-bit pleth)."""

    protocol: ClassVar[str] = NoninFormat2Parser.protocol
    layout: ClassVar[FrameLayout] = FORMAT2


class NoninFormat7Emulator(_FramedEmulator):
    """A Nonin oximeter streaming Format 7 (16-bit pleth)."""

    protocol: ClassVar[str] = NoninFormat7Parser.protocol
    layout: ClassVar[FrameLayout] = FORMAT7


class NoninFormat8Emulator(_NoninEmulator):
    """A Nonin oximeter streaming Format 8: packet ``k`` is sent at ``k`` s with the vitals then."""

    protocol: ClassVar[str] = NoninFormat8Parser.protocol
    data_format: ClassVar[int] = 8

    def emit(self, t0: float, t1: float) -> bytes:
        return b"".join(self.packet(k) for k in ticks(t0, t1, 1.0))

    def packet(self, index: int) -> bytes:
        v = self.session.vitals(float(index))
        return encode_packet8(
            None if v.heart_rate is None else round(v.heart_rate),
            None if v.spo2 is None else round(v.spo2),
            wire_flags8(v.flags),
        )
