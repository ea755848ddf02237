"""Nonin serial Data Format 2 (OEM III, 9560, 3150): parser and device emulator.

The wire (shared/reference/device-protocols.md §1): 9600 8N1, 75 five-byte frames a second,
``01, STATUS, PLETH, FLOAT, CHK`` with ``CHK = (b1 + b2 + b3 + b4) & 0xFF``; STATUS has bit 7 set
and bit 0 (SYNC) on the first of the 25 frames of a packet, so a packet (three a second) carries
25 pleth samples and one FLOAT byte per frame: HR, SpO2 and the rest, by frame index.

The parser decides at packet level, because a packet is what it emits: at a SYNC frame it waits
for the 125 bytes of the packet, accepts it if all 25 frames are valid (start byte, status bit 7,
checksum, SYNC on frame 1 only) and otherwise drops it, counts why, and hunts for the next SYNC
frame from the byte after the dropped packet's start. Every decision depends only on the bytes,
never on how they were chunked, so a stream fed one byte at a time gives the same items and the
same counters as the whole stream at once. Large buffers (a file replay) are validated with
numpy many packets at a time; the per-chunk path of a serial read uses C-speed byte slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.serial_driver import SerialDriver
from kapmonitor.codes import Code
from kapmonitor.model import Flag, Flags, Measurement, Numeric, Stamp, WaveformBlock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from devices.sim.physiology import KapSession

FRAME_BYTES = 5
FRAMES_PER_PACKET = 25
PACKET_BYTES = FRAME_BYTES * FRAMES_PER_PACKET
FRAME_RATE = 75.0
BYTE_RATE = FRAME_RATE * FRAME_BYTES

START = 0x01
# STATUS bits
BIT7 = 0x80
SNSD = 0x40  #: sensor disconnect (OEM III)
ARTF = 0x20  #: artifact
OOT = 0x10  #: out of track
SNSA = 0x08  #: sensor alarm (finger out)
RPRF = 0x04  #: red perfusion
GPRF = 0x02  #: green perfusion
SYNC = 0x01  #: first frame of a packet

HR_MISSING = 511
SPO2_MISSING = 127
#: The firmware revision the emulator reports (the golden vectors' value).
REVISION = 48

#: Set-format command (host → device) up to the format byte, and its terminator.
SET_FORMAT_PREFIX = b"\x02\x70\x02\x02"
SET_FORMAT_END = 0x03
ACK = b"\x06"
NAK = b"\x15"
#: The device answers the set-format command only this long after the port opens.
SET_FORMAT_WINDOW = 5.0

# Frame index (0-based) of each FLOAT field.
F_HR_MSB, F_HR_LSB, F_SPO2, F_SREV = 0, 1, 2, 3
F_TIMER_MSB, F_TIMER_LSB, F_STAT2 = 5, 6, 7
F_SPO2_D, F_SPO2_FAST, F_SPO2_BB = 8, 9, 10
F_EHR_MSB, F_EHR_LSB, F_ESPO2, F_ESPO2_D = 13, 14, 15, 16
F_HRD_MSB, F_HRD_LSB, F_EHRD_MSB, F_EHRD_LSB = 19, 20, 21, 22

# translate() table: status byte -> 0 (bit 7, no SYNC), 1 (bit 7 and SYNC), 2 (bit 7 clear).
_STATUS_CLASS = bytes(2 if s < BIT7 else s & SYNC for s in range(256))
_GOOD_STATUS = b"\x01" + b"\x00" * (FRAMES_PER_PACKET - 1)
_GOOD_STARTS = bytes([START]) * FRAMES_PER_PACKET
# Checksums of 25 frames at once: spread the bytes into 16-bit lanes of one Python int, where
# the sums (at most 766) cannot carry into the next lane, and compare the low bytes.
_LANES_ONE = int.from_bytes(b"\x00\x01" * FRAMES_PER_PACKET, "big")
_LANES_LOW = int.from_bytes(b"\x00\xff" * FRAMES_PER_PACKET, "big")

#: Numpy validates at least this many packets at once (and at most _BULK_MAX); fewer, or a
#: stream that was damaged lately, take the scalar path.
_BULK_MIN = 8
_BULK_MAX = 512


def _flag_table() -> tuple[Flags, ...]:
    """Flags for every key ``(status_or >> 3) & 0xF | red << 4`` (see :func:`_flag_key`)."""
    table = []
    for key in range(32):
        bits = (key & 0xF) << 3
        flags = set()
        if bits & (SNSA | SNSD):
            flags.add(Flag.SENSOR_OFF)
        if bits & OOT:
            flags.add(Flag.SEARCHING)
        if bits & ARTF:
            flags.add(Flag.ARTIFACT)
        if key & 0x10:
            flags.add(Flag.LOW_PERFUSION)
        table.append(frozenset(flags))
    return tuple(table)


_FLAGS = _flag_table()


@dataclass
class NoninStats(ParserStats):
    """The base counters plus packets, which is what a Format 2 user sees arrive or go missing."""

    packets_ok: int = 0
    packets_dropped: int = 0  #: packets with a bad, missing or extra frame


def decode_hr(msb: int, lsb: int) -> int:
    """The 9-bit HR packing of Format 2: two bits of MSB, seven of LSB."""
    return ((msb & 0x03) << 7) | (lsb & 0x7F)


def _packet_ok(p: bytes) -> bool:
    """Whether 125 bytes are one valid packet: start bytes, status bits, SYNC once, checksums."""
    if p[0::5] != _GOOD_STARTS or p[1::5].translate(_STATUS_CLASS) != _GOOD_STATUS:
        return False
    lanes = bytearray(2 * FRAMES_PER_PACKET)
    lanes[1::2] = p[1::5]
    total = int.from_bytes(lanes, "big")
    lanes[1::2] = p[2::5]
    total += int.from_bytes(lanes, "big")
    lanes[1::2] = p[3::5]
    total += int.from_bytes(lanes, "big")
    lanes[1::2] = p[4::5]
    return ((total + _LANES_ONE) & _LANES_LOW) == int.from_bytes(lanes, "big")


class NoninFormat2Parser(Parser):
    """Decodes Nonin Data Format 2 into pulse rate, SpO2 and 75 Hz pleth blocks, per packet.

    Each valid packet gives ``Numeric(PULSE_RATE)`` (4-beat average HR), ``Numeric(SPO2)`` and a
    ``WaveformBlock(PLETH)`` of 25 samples, all with the packet's flags (status bits ORed over
    its frames). Missing markers (HR 511, SpO2 127) become ``None``. A pleth sample whose frame
    has SNSA or SNSD set is NaN: the device says there is no signal.

    Stamps: the ``stamp`` given to :meth:`feed` is the arrival of the chunk's last byte. The
    packet's end is put ``bytes after the packet / 375`` s before it (the device's average byte
    rate); the numerics carry that time and the pleth block starts 24 frames earlier. For a chunk
    read at once this counts the device's clock back from the read.

    A damaged packet is noticed once its 125 bytes have arrived; until then nothing is counted.
    """

    protocol: ClassVar[str] = "nonin2"
    SERIAL: ClassVar[SerialSettings] = SerialSettings(9600)
    FRAME_RATE: ClassVar[float] = FRAME_RATE

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: NoninStats = NoninStats()
        self._buf = b""
        self._in_step = False  #: a packet just ended, so the next byte must start one
        self._lost = False  #: bytes were thrown away since the last SYNC frame
        self._acquired = False  #: a SYNC frame has been seen (the first is not a resync)
        #: Valid packets in a row lately: sizes the numpy window (see _take_packets).
        self._clean_run = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a decision (a packet still arriving); ``bytes_in`` is always
        ``bytes_discarded + 125 * packets_ok + pending_bytes``."""
        return len(self._buf)

    def feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        if not data:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)
        stats = self.stats
        stats.bytes_in += len(data)
        b = self._buf + data if self._buf else data
        n = len(b)
        pos = 0
        out: list[Measurement] = []
        while pos < n:
            if b[pos] != START:
                # Hunt: nothing can start before the next 01 byte.
                if self._in_step:
                    stats.framing_errors += 1
                    self._in_step = False
                self._lost = self._acquired
                q = b.find(b"\x01", pos + 1)
                q = n if q < 0 else q
                stats.bytes_discarded += q - pos
                pos = q
                continue
            if n - pos < FRAME_BYTES:
                break
            st = b[pos + 1]
            if (st & 0x81) == 0x81 and ((1 + st + b[pos + 2] + b[pos + 3]) & 0xFF) == b[pos + 4]:
                # A SYNC frame: a packet may start here.
                if self._lost:
                    stats.resyncs += 1
                    self._lost = False
                self._acquired = True
                if n - pos < PACKET_BYTES:
                    break  # wait for the whole packet
                count = self._take_packets(b, pos, n, stamp, out)
                if count:
                    pos += count * PACKET_BYTES
                    self._in_step = True
                    continue
                self._drop(b, pos)
            elif self._in_step:
                # The byte after a packet must start the next one; say why it does not.
                if st & BIT7 and ((1 + st + b[pos + 2] + b[pos + 3]) & 0xFF) != b[pos + 4]:
                    stats.checksum_errors += 1
                else:
                    stats.framing_errors += 1
            self._in_step = False
            self._lost = self._acquired
            stats.bytes_discarded += 1
            pos += 1
        self._buf = b[pos:]
        return out

    def _drop(self, b: bytes, pos: int) -> None:
        """Count a damaged packet at ``pos`` by its first bad frame (the caller skips one byte)."""
        stats = self.stats
        stats.packets_dropped += 1
        for i in range(1, FRAMES_PER_PACKET):
            f = pos + i * FRAME_BYTES
            st = b[f + 1]
            if b[f] != START or not st & BIT7:
                stats.framing_errors += 1
            elif ((1 + st + b[f + 2] + b[f + 3]) & 0xFF) != b[f + 4]:
                stats.checksum_errors += 1
            elif st & SYNC:
                stats.framing_errors += 1  # a new packet began: frames were missed
            else:
                continue
            stats.frames_ok += i
            return
        stats.framing_errors += 1  # not reached for a packet that failed _packet_ok

    def _take_packets(
        self, b: bytes, pos: int, n: int, stamp: Stamp, out: list[Measurement]
    ) -> int:
        """Emit the valid packets that follow one another from ``pos``; return how many."""
        p = b[pos : pos + PACKET_BYTES]
        if not _packet_ok(p):
            self._clean_run = 0
            return 0  # checked first, so damage never costs a numpy pass
        # Numpy pays off for many packets at once, and only while the stream is clean.
        avail = (n - pos) // PACKET_BYTES
        if avail >= _BULK_MIN and self._clean_run >= _BULK_MIN:
            return self._take_bulk(b, pos, n, min(avail, self._clean_run), stamp, out)
        self._clean_run += 1
        fl = p[3::5]
        st = p[1::5]
        acc = red = 0
        for s in set(st):
            acc |= s
            red |= (s & (RPRF | GPRF)) == RPRF
        samples = np.frombuffer(p[2::5], dtype=np.uint8)
        if acc & (SNSA | SNSD):
            samples = samples.astype(np.float64)
            samples[(np.frombuffer(st, dtype=np.uint8) & (SNSA | SNSD)) != 0] = np.nan
        self._emit(
            out,
            stamp,
            n - pos - PACKET_BYTES,
            decode_hr(fl[F_HR_MSB], fl[F_HR_LSB]),
            fl[F_SPO2] & 0x7F,
            _FLAGS[((acc >> 3) & 0xF) | (red << 4)],
            samples,
        )
        return 1

    def _take_bulk(
        self, b: bytes, pos: int, n: int, count: int, stamp: Stamp, out: list[Measurement]
    ) -> int:
        """The same as the scalar path for up to ``count`` packets, checked with numpy at once."""
        a = np.frombuffer(b, dtype=np.uint8, count=count * PACKET_BYTES, offset=pos)
        a = a.reshape(count, FRAMES_PER_PACKET, FRAME_BYTES)
        st = a[:, :, 1]
        chk = (a[:, :, 0].astype(np.uint16) + st + a[:, :, 2] + a[:, :, 3]) & 0xFF
        sync = (st & SYNC) != 0
        good = (
            (a[:, :, 0] == START).all(axis=1)
            & (st >= BIT7).all(axis=1)
            & (chk == a[:, :, 4]).all(axis=1)
            & sync[:, 0]
            & ~sync[:, 1:].any(axis=1)
        )
        ok = count if good.all() else int(np.argmin(good))
        self._clean_run = min(self._clean_run * 2, _BULK_MAX) if ok == count else ok
        if not ok:
            return 0
        a, st = a[:ok], st[:ok]
        fl = a[:, :, 3].astype(np.int64)
        hr = ((fl[:, F_HR_MSB] & 0x03) << 7 | (fl[:, F_HR_LSB] & 0x7F)).tolist()
        spo2 = (fl[:, F_SPO2] & 0x7F).tolist()
        acc = np.bitwise_or.reduce(st, axis=1)
        red = ((st & (RPRF | GPRF)) == RPRF).any(axis=1)
        keys = (((acc >> 3) & 0xF) | (red.astype(np.uint8) << 4)).tolist()
        pleth = a[:, :, 2].astype(np.float64)
        if (acc & (SNSA | SNSD)).any():
            pleth[(st & (SNSA | SNSD)) != 0] = np.nan
        after = n - pos - PACKET_BYTES
        for i in range(ok):
            self._emit(
                out, stamp, after - i * PACKET_BYTES, hr[i], spo2[i], _FLAGS[keys[i]], pleth[i]
            )
        return ok

    def _emit(
        self,
        out: list[Measurement],
        stamp: Stamp,
        bytes_after: int,
        hr: int,
        spo2: int,
        flags: Flags,
        samples: np.ndarray,
    ) -> None:
        """Append one packet's three items; ``bytes_after`` follow the packet in the chunk."""
        stats = self.stats
        stats.packets_ok += 1
        stats.frames_ok += FRAMES_PER_PACKET
        # Bytes after the packet arrived after it, at the device's average byte rate.
        end = stamp.shifted(-bytes_after / BYTE_RATE) if bytes_after else stamp
        source = self.source
        out.append(Numeric(source, Code.PULSE_RATE, None if hr == HR_MISSING else hr, end, flags))
        out.append(Numeric(source, Code.SPO2, None if spo2 == SPO2_MISSING else spo2, end, flags))
        out.append(
            WaveformBlock(
                source,
                Code.PLETH,
                end.shifted(-(FRAMES_PER_PACKET - 1) / FRAME_RATE),
                FRAME_RATE,
                samples,
                flags,
            )
        )


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
) -> bytes:
    """The 125 bytes of one packet.

    ``status`` holds the bits every frame carries (BIT7 and SYNC are added); frames marked in
    ``no_signal`` also get SNSA. ``hr``/``spo2`` of ``None`` are sent as the missing markers; the
    display (-D) and extended (E-) values repeat the plain ones, as a steady reading would.
    """
    hr_v = HR_MISSING if hr is None else min(max(int(hr), 0), HR_MISSING - 1)
    spo2_v = SPO2_MISSING if spo2 is None else min(max(int(spo2), 0), 100)
    msb, lsb = _hr_bytes(hr_v)
    fl = np.zeros(FRAMES_PER_PACKET, dtype=np.uint16)
    fl[[F_HR_MSB, F_EHR_MSB, F_HRD_MSB, F_EHRD_MSB]] = msb
    fl[[F_HR_LSB, F_EHR_LSB, F_HRD_LSB, F_EHRD_LSB]] = lsb
    fl[[F_SPO2, F_SPO2_D, F_SPO2_FAST, F_SPO2_BB, F_ESPO2, F_ESPO2_D]] = spo2_v
    fl[F_SREV] = revision & 0xFF
    timer &= 0x3FFF
    fl[F_TIMER_MSB], fl[F_TIMER_LSB] = timer >> 7, timer & 0x7F
    st = np.full(FRAMES_PER_PACKET, BIT7 | (status & 0x7E), dtype=np.uint16)
    st[0] |= SYNC
    if no_signal is not None:
        st[np.asarray(no_signal, dtype=bool)] |= SNSA
    frames = np.empty((FRAMES_PER_PACKET, FRAME_BYTES), dtype=np.uint16)
    frames[:, 0] = START
    frames[:, 1] = st
    frames[:, 2] = np.asarray(pleth, dtype=np.uint16) & 0xFF
    frames[:, 3] = fl
    frames[:, 4] = frames[:, :4].sum(axis=1) & 0xFF
    return frames.astype(np.uint8).tobytes()


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


def quantise_pleth(x: np.ndarray) -> np.ndarray:
    """Pleth 0..1 to the 8-bit wire value; NaN (no signal) is sent as 0."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def frame_index(t: float) -> int:
    """The first frame at or after session time ``t`` (frame k is sent at k/75 s)."""
    return max(0, math.ceil(t * FRAME_RATE - 1e-9))


class NoninFormat2Emulator(DeviceEmulator):
    """A Nonin oximeter streaming Format 2 from a simulated patient.

    Packet ``p`` (frames 25p..25p+24) shows the vitals at ``p/3`` s and the pleth from there at
    75 Hz. Packets are computed whole and cached, so the bytes do not depend on how
    :meth:`emit`'s time boundaries fall.
    """

    protocol: ClassVar[str] = NoninFormat2Parser.protocol
    SERIAL: ClassVar[SerialSettings] = NoninFormat2Parser.SERIAL

    def __init__(self, session: KapSession, *, revision: int = REVISION) -> None:
        super().__init__(session)
        self.revision = revision
        #: Session time at which the host opened the port; the set-format window starts here.
        self.opened_at = 0.0
        self._host = b""
        self._cache: dict[int, bytes] = {}

    def emit(self, t0: float, t1: float) -> bytes:
        k0, k1 = frame_index(t0), frame_index(t1)
        if k1 <= k0:
            return b""
        p0, p1 = k0 // FRAMES_PER_PACKET, (k1 - 1) // FRAMES_PER_PACKET
        data = b"".join(self.packet(p) for p in range(p0, p1 + 1))
        base = p0 * FRAMES_PER_PACKET
        return data[(k0 - base) * FRAME_BYTES : (k1 - base) * FRAME_BYTES]

    def packet(self, index: int) -> bytes:
        """The 125 bytes of packet ``index`` (cached: emit() asks for the same one repeatedly)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        t = index * FRAMES_PER_PACKET / FRAME_RATE
        v = self.session.vitals(t)
        pleth = np.asarray(self.session.pleth(t, FRAMES_PER_PACKET, FRAME_RATE), dtype=float)
        data = encode_packet(
            None if v.heart_rate is None else round(v.heart_rate),
            None if v.spo2 is None else round(v.spo2),
            quantise_pleth(pleth),
            status=status_bits(v.flags),
            no_signal=np.isnan(pleth),
            timer=index,
            revision=self.revision,
        )
        if len(self._cache) >= 4:
            self._cache.clear()
        self._cache[index] = data
        return data

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        """ACK a set-format-2 command, NAK other formats; silent after the first 5 s."""
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
                reply += ACK if buf[i + 4] == 2 else NAK
            buf = buf[i + 6 :]
        self._host = buf
        return bytes(reply)


class Nonin2Driver(SerialDriver):
    """A Nonin oximeter in Data Format 2 on a serial port (``nonin2@PORT``)."""

    name = "nonin2"
    parser_class = NoninFormat2Parser
    emulator_class = NoninFormat2Emulator
    serial_settings = NoninFormat2Parser.SERIAL
    byte_rate = BYTE_RATE
