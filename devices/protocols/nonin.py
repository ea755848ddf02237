"""Nonin serial Data Formats 2, 7 and 8 (9560 Onyx II, 3150 WristOx2, OEM III): parsers,
device emulators, drivers, and the set-format command.

The wire (shared/reference/device-protocols.md §1; the vendor's "Nonin 9560 Bluetooth
Specification", pp. 4 and 8-17, in github.com/mattjlewis/NoninPulseOx): 9600 8N1.

* **Format 2**: 75 five-byte frames a second, ``01, STATUS, PLETH, FLOAT, CHK``.
* **Format 7**: the same, with a 16-bit pleth and no start byte:
  ``STATUS, PLETH_MSB, PLETH_LSB, FLOAT, CHK``.

  In both, ``CHK = (byte 1 + byte 2 + byte 3 + byte 4) & 0xFF`` (the spec, p. 15, for Format 7
  too; mdpnp's ``Packet.validChecksum`` sums the same four bytes). STATUS has bit 7 set and bit 0
  (SYNC) on the first of the 25 frames of a packet, so a packet (three a second) carries 25 pleth
  samples and one FLOAT byte per frame: HR, SpO2 and the rest, by frame index.
* **Format 8**: one 4-byte packet a second, no pleth and no checksum; only byte 1 has bit 7 set,
  which is what the parser synchronises on. With nothing else to check, a packet must also hold
  values the device can send (HR 0-321 or 511, SpO2 0-100 or 127; the 9560 measures 18-321 /min
  and 0-100 %), and the stream is trusted only after :data:`LOCK8` consecutive packets whose
  values agree (see :class:`NoninFormat8Parser`).

HR is 9 bits in two 7-bit bytes in every format: ``((MSB & 0x03) << 7) | (LSB & 0x7F)`` (the spec's
"HR Format" tables, pp. 11, 15 and 16). mdpnp's Format 7 reader (``Packet.setvar``) combines
``MSB << 8 | LSB`` instead: that disagrees with the spec, and we follow the spec.

The 25-frame parser decides at packet level, because a packet is what it emits: at a SYNC frame
it waits for the 125 bytes of the packet, accepts it if all 25 frames are valid (start byte in
Format 2, status bit 7, checksum, SYNC on frame 1 only) and otherwise drops it, counts why, and
hunts for the next SYNC frame from the byte after the dropped packet's start. Every decision
depends only on the bytes, never on how they were chunked, so a stream fed one byte at a time
gives the same items and the same counters as the whole stream at once. Large buffers (a file
replay) are validated with numpy many packets at a time; the per-chunk path of a serial read
uses C-speed byte slices.

**Set-format** (host → device ``02 70 02 02 <fmt> 03``): the device answers ACK ``06`` or NAK
``15``, only in the first 5 s after connecting, and keeps the format in non-volatile memory. A
driver sends it only with the ``set-format`` option (``nonin7+set-format@PORT``). The parser then
takes one ACK/NAK byte found where a packet should start (the first byte after connecting, or
right after a valid packet) as the answer: it is counted in ``bytes_discarded`` (it carries no
measurement) but not as a framing error. An answer that lands inside a packet spoils that packet,
which is dropped and counted like any damage; the driver then says it saw no answer.
"""

from __future__ import annotations

import logging
import math
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.serial_driver import SerialDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Flag, Flags, Measurement, Numeric, Stamp, WaveformBlock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from devices.sim.physiology import KapSession

log = logging.getLogger(__name__)

#: 9600 8N1, no flow control, in every format (on the 9560 and 3150, over Bluetooth SPP).
SERIAL = SerialSettings(9600)
FRAME_BYTES = 5
FRAMES_PER_PACKET = 25
PACKET_BYTES = FRAME_BYTES * FRAMES_PER_PACKET
FRAME_RATE = 75.0
BYTE_RATE = FRAME_RATE * FRAME_BYTES
#: Format 8: one 4-byte packet a second.
PACKET8_BYTES = 4
BYTE_RATE8 = float(PACKET8_BYTES)

START = 0x01
# STATUS bits (Formats 2 and 7)
BIT7 = 0x80
SNSD = 0x40  #: sensor disconnect (OEM III)
ARTF = 0x20  #: artifact
OOT = 0x10  #: out of track
SNSA = 0x08  #: sensor alarm (finger out)
RPRF = 0x04  #: red perfusion
GPRF = 0x02  #: green perfusion
SYNC = 0x01  #: first frame of a packet
# Format 8, byte 1 (besides BIT7 and HR bits 8..7) and byte 4.
OOT8 = 0x20
LPRF8 = 0x10  #: low perfusion (red)
MPRF8 = 0x08  #: marginal perfusion (yellow)
ARTF8 = 0x04
SPA8 = 0x20  #: byte 4: SmartPoint measurement
SNSA8 = 0x08  #: byte 4: sensor alarm
LOW_BAT8 = 0x01  #: byte 4: low battery

HR_MISSING = 511
SPO2_MISSING = 127
#: The firmware revision the emulator reports (the golden vectors' value).
REVISION = 48

#: Set-format command (host → device) up to the format byte, and its terminator.
SET_FORMAT_PREFIX = b"\x02\x70\x02\x02"
SET_FORMAT_END = 0x03
ACK = b"\x06"
NAK = b"\x15"
_REPLIES = (ACK[0], NAK[0])
#: The device answers the set-format command only this long after the port opens.
SET_FORMAT_WINDOW = 5.0
#: How long the host waits for that answer: the window plus the line's latency.
REPLY_WAIT = SET_FORMAT_WINDOW + 1.0
#: The driver option that sends the set-format command on connecting.
SET_FORMAT_OPTION = "set-format"

# Frame index (0-based) of each FLOAT field.
F_HR_MSB, F_HR_LSB, F_SPO2, F_SREV = 0, 1, 2, 3
F_TIMER_MSB, F_TIMER_LSB, F_STAT2 = 5, 6, 7
F_SPO2_D, F_SPO2_FAST, F_SPO2_BB = 8, 9, 10
F_EHR_MSB, F_EHR_LSB, F_ESPO2, F_ESPO2_D = 13, 14, 15, 16
F_HRD_MSB, F_HRD_LSB, F_EHRD_MSB, F_EHRD_LSB = 19, 20, 21, 22
FLOAT_AT, CHK_AT = 3, 4  #: FLOAT and CHK bytes within a frame, in Formats 2 and 7

# translate() table: status byte -> 0 (bit 7, no SYNC), 1 (bit 7 and SYNC), 2 (bit 7 clear).
_STATUS_CLASS = bytes(2 if s < BIT7 else s & SYNC for s in range(256))
_GOOD_STATUS = b"\x01" + b"\x00" * (FRAMES_PER_PACKET - 1)
# Checksums of 25 frames at once: spread the bytes into 16-bit lanes of one Python int, where
# the sums (at most 1020) cannot carry into the next lane, and compare the low bytes.
_LANES_ONE = int.from_bytes(b"\x00\x01" * FRAMES_PER_PACKET, "big")
_LANES_LOW = int.from_bytes(b"\x00\xff" * FRAMES_PER_PACKET, "big")

#: Numpy validates at least this many packets at once (and at most _BULK_MAX); fewer, or a
#: stream that was damaged lately, take the scalar path.
_BULK_MIN = 8
_BULK_MAX = 512


def _byte_class(members: Sequence[int]) -> re.Pattern[bytes]:
    """A pattern matching any one of ``members``: the C-speed hunt for where a packet may start."""
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in members) + b"]")


def _flag_table() -> tuple[Flags, ...]:
    """Flags for every key ``(status_or >> 3) & 0xF | red << 4`` of a Format 2/7 packet.

    Bit by bit the key is SNSA, OOT, ARTF, SNSD, red perfusion; Format 8 builds the same key
    from its own bits (see :func:`_flag_key8`).
    """
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


def _flag_key8(b1: int, b4: int) -> int:
    """The :func:`_flag_table` key of a Format 8 packet: SNSA (byte 4 bit 3) to key bit 0, OOT
    (byte 1 bit 5) to bit 1, ARTF (byte 1 bit 2) stays bit 2, LPRF (byte 1 bit 4) stays bit 4."""
    return ((b4 >> 3) & 0x01) | ((b1 >> 4) & 0x02) | (b1 & (ARTF8 | LPRF8))


@dataclass
class NoninStats(ParserStats):
    """The base counters plus packets, which is what a Nonin user sees arrive or go missing."""

    packets_ok: int = 0
    packets_dropped: int = 0  #: packets with a bad, missing or extra frame (or byte, Format 8)
    #: Format 8: well-formed packets not confirmed by their neighbours (noise), discarded
    packets_unconfirmed: int = 0


def decode_hr(msb: int, lsb: int) -> int:
    """The 9-bit HR packing of every Nonin format: two bits of MSB, seven of LSB."""
    return ((msb & 0x03) << 7) | (lsb & 0x7F)


def set_format_command(data_format: int) -> bytes:
    """The 6-byte command that asks the device for ``data_format`` (2, 7, 8 or 13)."""
    return SET_FORMAT_PREFIX + bytes([data_format, SET_FORMAT_END])


@dataclass(frozen=True)
class FrameLayout:
    """Where a 25-frame format keeps STATUS and PLETH in its 5-byte frames.

    Both formats end a frame with FLOAT (byte 4) and CHK (byte 5), the sum of bytes 1-4.
    """

    data_format: int
    start: int | None  #: the constant first byte of a frame (Format 2's 01), or None
    status: int  #: index of STATUS within the frame
    pleth: tuple[int, ...]  #: indices of the pleth bytes, most significant first
    #: Finds the next byte at which a SYNC frame may begin.
    hunt: re.Pattern[bytes] = field(init=False, repr=False, compare=False)
    #: Whether a SYNC frame may begin at a byte, by value.
    may_begin: bytes = field(init=False, repr=False, compare=False)
    #: The first bytes of a packet's 25 frames, where they are constant.
    starts: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.start is not None:
            members = [self.start]
        else:  # STATUS comes first: bit 7 and SYNC set
            members = [c for c in range(256) if c & (BIT7 | SYNC) == BIT7 | SYNC]
        object.__setattr__(self, "hunt", _byte_class(members))
        object.__setattr__(self, "may_begin", bytes(c in members for c in range(256)))
        object.__setattr__(self, "starts", bytes([self.start or 0]) * FRAMES_PER_PACKET)

    @property
    def bits(self) -> int:
        return 8 * len(self.pleth)

    def pleth_of(self, frames: np.ndarray) -> np.ndarray:
        """The pleth values of frames shaped ``(..., 5)``."""
        value = frames[..., self.pleth[0]]
        for i in self.pleth[1:]:
            value = (value.astype(np.int64) << 8) | frames[..., i]
        return value

    def put_pleth(self, frames: np.ndarray, values: np.ndarray) -> None:
        for shift, i in enumerate(reversed(self.pleth)):
            frames[..., i] = (values >> (8 * shift)) & 0xFF


FORMAT2 = FrameLayout(2, START, 1, (2,))
FORMAT7 = FrameLayout(7, None, 0, (1, 2))


def _frame_sum_ok(b: bytes, f: int) -> bool:
    """Whether the frame at ``f`` carries the right checksum."""
    return ((b[f] + b[f + 1] + b[f + 2] + b[f + 3]) & 0xFF) == b[f + CHK_AT]


def _checksums_ok(p: bytes, start: int | None) -> bool:
    """Whether all 25 frames of the packet ``p`` carry the right checksum, in a few int ops.

    A constant ``start`` byte (already checked) enters the sums as a constant.
    """
    lanes = bytearray(2 * FRAMES_PER_PACKET)
    total = 0 if start is None else start * _LANES_ONE
    for k in range(0 if start is None else 1, CHK_AT):
        lanes[1::2] = p[k::FRAME_BYTES]
        total += int.from_bytes(lanes, "big")
    lanes[1::2] = p[CHK_AT::FRAME_BYTES]
    return (total & _LANES_LOW) == int.from_bytes(lanes, "big")


# --- parsers ------------------------------------------------------------------------------------

#: What a driver learns from the set-format answer: ACK, NAK, or None for no answer in time.
OnReply = Callable[[bytes | None], None]


class _NoninParser(Parser):
    """What the Nonin parsers share: packet counters, hunting, the set-format answer, items."""

    protocol: ClassVar[str]
    data_format: ClassVar[int]
    SERIAL: ClassVar[SerialSettings] = SERIAL
    #: The device's average byte rate, which places packets of one chunk in time.
    BYTE_RATE: ClassVar[float]
    #: Finds the next byte at which a packet may start.
    _hunt_re: ClassVar[re.Pattern[bytes]]

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: NoninStats = NoninStats()
        self._buf = b""
        self._in_step = False  #: a packet just ended, so the next byte must start one
        self._lost = False  #: bytes were thrown away since the last packet start
        self._acquired = False  #: a packet start has been seen (the first is not a resync)
        self._locked = False  #: Format 8: the stream is trusted (see NoninFormat8Parser)
        self._on_reply: OnReply | None = None
        self._reply_deadline = 0.0
        self._fresh = False  #: nothing has arrived since the connection began

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a decision (a packet still arriving); ``bytes_in`` is always
        ``bytes_discarded + packet size * packets_ok + pending_bytes``."""
        return len(self._buf)

    def expect_reply(self, deadline: float, on_reply: OnReply) -> None:
        """A connection begins and the host sent set-format: watch for the device's answer.

        ``on_reply`` gets ACK or NAK when one is seen, or None from the first chunk stamped
        after ``deadline`` (a ``Stamp.mono``) without one. Bytes held from an earlier
        connection are discarded: they cannot complete a packet with the new ones.
        """
        self.stats.bytes_discarded += len(self._buf)
        self._buf = b""
        self._in_step = False
        self._unlock()
        self._on_reply = on_reply
        self._reply_deadline = deadline
        self._fresh = True

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        if self._fresh:
            self._fresh = False
            if self._take_reply(data[0]):
                data = data[1:]
        out: list[Measurement] = []
        b = self._buf + data if self._buf else data
        self._buf = b[self._parse(b, stamp, out) :]
        if self._on_reply is not None and stamp.mono > self._reply_deadline:
            self._reply(None)
        return out

    @abstractmethod
    def _parse(self, b: bytes, stamp: Stamp, out: list[Measurement]) -> int:
        """Decode what ``b`` holds into ``out``; return where the undecided bytes begin."""

    def _reply(self, reply: bytes | None) -> None:
        on_reply, self._on_reply = self._on_reply, None
        if on_reply is not None:
            on_reply(reply)

    def _take_reply(self, byte: int) -> bool:
        """Whether ``byte``, where a packet should start, is the awaited ACK/NAK (then taken)."""
        if self._on_reply is None or byte not in _REPLIES:
            return False
        self.stats.bytes_discarded += 1
        self._reply(bytes([byte]))
        return True

    def _hunt(self, b: bytes, pos: int) -> int:
        """Skip bytes from ``pos``, where no packet starts, to the next possible start."""
        if self._in_step:
            if self._take_reply(b[pos]):
                return pos + 1  # still in step: the next byte must start a packet
            self.stats.framing_errors += 1
            self._in_step = False
        self._lost = self._acquired
        self._unlock()
        m = self._hunt_re.search(b, pos + 1)
        q = len(b) if m is None else m.start()
        self.stats.bytes_discarded += q - pos
        return q

    def _lose_step(self, discarded: int) -> None:
        """``discarded`` bytes at a would-be packet start were no packet."""
        self._in_step = False
        self._lost = self._acquired
        self._unlock()
        self.stats.bytes_discarded += discarded

    def _unlock(self) -> None:
        """Bytes were lost: the stream is no longer known to be in step."""
        self._locked = False

    def _found_start(self) -> None:
        if self._lost:
            self.stats.resyncs += 1
            self._lost = False
        self._acquired = True

    def _end_stamp(self, stamp: Stamp, bytes_after: int) -> Stamp:
        """When a packet ended that ``bytes_after`` bytes of the chunk stamped ``stamp`` follow:
        they arrived after it, at the device's average byte rate (never before the previous
        chunk: :meth:`Parser.back`)."""
        if not bytes_after:
            return stamp
        return stamp.shifted(-self.back(bytes_after, self.BYTE_RATE))

    def _emit_numerics(
        self, out: list[Measurement], end: Stamp, hr: int, spo2: int, flags: Flags
    ) -> None:
        """Pulse rate and SpO2 of one packet; the missing markers become ``None``."""
        source = self.source
        out.append(Numeric(source, Code.PULSE_RATE, None if hr == HR_MISSING else hr, end, flags))
        out.append(Numeric(source, Code.SPO2, None if spo2 == SPO2_MISSING else spo2, end, flags))


class _FramedParser(_NoninParser):
    """Decodes a 25-frame format (2 or 7) into pulse rate, SpO2 and 75 Hz pleth, per packet.

    Each valid packet gives ``Numeric(PULSE_RATE)`` (4-beat average HR), ``Numeric(SPO2)`` and a
    ``WaveformBlock(PLETH)`` of 25 samples, all with the packet's flags (status bits ORed over
    its frames). Missing markers (HR 511, SpO2 127) become ``None``. A pleth sample whose frame
    has SNSA or SNSD set is NaN: the device says there is no signal.

    Stamps: the ``stamp`` given to :meth:`feed` is the arrival of the chunk's last byte. The
    packet's end is put ``bytes after the packet / 375`` s before it (the device's average byte
    rate, but never before the previous read: :meth:`Parser.back`); the numerics carry that time
    and the pleth block starts 24 frames earlier. For a chunk read at once this counts the
    device's clock back from the read.

    A damaged packet is noticed once its 125 bytes have arrived; until then nothing is counted.
    """

    layout: ClassVar[FrameLayout]
    FRAME_RATE: ClassVar[float] = FRAME_RATE
    BYTE_RATE: ClassVar[float] = BYTE_RATE

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.data_format = cls.layout.data_format
        cls._hunt_re = cls.layout.hunt

    def __init__(self, source: str) -> None:
        super().__init__(source)
        #: Valid packets in a row lately: sizes the numpy window (see _take_packets).
        self._clean_run = 0

    def _parse(self, b: bytes, stamp: Stamp, out: list[Measurement]) -> int:
        stats = self.stats
        may_begin = self.layout.may_begin
        status_at = self.layout.status
        n = len(b)
        pos = 0
        while pos < n:
            if not may_begin[b[pos]]:
                pos = self._hunt(b, pos)
                continue
            if n - pos < FRAME_BYTES:
                break
            st = b[pos + status_at]
            # _frame_sum_ok(b, pos), inlined: this runs for every chunk of a serial read.
            if (st & (BIT7 | SYNC)) == BIT7 | SYNC and (
                (b[pos] + b[pos + 1] + b[pos + 2] + b[pos + 3]) & 0xFF
            ) == b[pos + CHK_AT]:
                # A SYNC frame: a packet may start here.
                self._found_start()
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
                if st & BIT7 and not _frame_sum_ok(b, pos):
                    stats.checksum_errors += 1
                else:
                    stats.framing_errors += 1
            self._lose_step(1)
            pos += 1
        return pos

    def _packet_ok(self, p: bytes) -> bool:
        """Whether 125 bytes are one valid packet: start bytes, status bits, SYNC once, sums."""
        layout = self.layout
        if layout.start is not None and p[0::FRAME_BYTES] != layout.starts:
            return False
        if p[layout.status :: FRAME_BYTES].translate(_STATUS_CLASS) != _GOOD_STATUS:
            return False
        return _checksums_ok(p, layout.start)

    def _drop(self, b: bytes, pos: int) -> None:
        """Count a damaged packet at ``pos`` by its first bad frame (the caller skips one byte)."""
        stats = self.stats
        stats.packets_dropped += 1
        start, status_at = self.layout.start, self.layout.status
        for i in range(1, FRAMES_PER_PACKET):
            f = pos + i * FRAME_BYTES
            st = b[f + status_at]
            if (start is not None and b[f] != start) or not st & BIT7:
                stats.framing_errors += 1
            elif not _frame_sum_ok(b, f):
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
        if not self._packet_ok(p):
            self._clean_run = 0
            return 0  # checked first, so damage never costs a numpy pass
        # Numpy pays off for many packets at once, and only while the stream is clean.
        avail = (n - pos) // PACKET_BYTES
        if avail >= _BULK_MIN and self._clean_run >= _BULK_MIN:
            return self._take_bulk(b, pos, n, min(avail, self._clean_run), stamp, out)
        self._clean_run += 1
        fl = p[FLOAT_AT::FRAME_BYTES]
        st = p[self.layout.status :: FRAME_BYTES]
        acc = red = 0
        for s in set(st):
            acc |= s
            red |= (s & (RPRF | GPRF)) == RPRF
        frames = np.frombuffer(p, dtype=np.uint8).reshape(FRAMES_PER_PACKET, FRAME_BYTES)
        samples = self.layout.pleth_of(frames)
        if acc & (SNSA | SNSD):
            samples = samples.astype(np.float64)
            samples[(np.frombuffer(st, dtype=np.uint8) & (SNSA | SNSD)) != 0] = np.nan
        self._emit(
            out,
            self._end_stamp(stamp, n - pos - PACKET_BYTES),
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
        layout = self.layout
        a = np.frombuffer(b, dtype=np.uint8, count=count * PACKET_BYTES, offset=pos)
        a = a.reshape(count, FRAMES_PER_PACKET, FRAME_BYTES)
        st = a[:, :, layout.status]
        chk = (a[:, :, 0].astype(np.uint16) + a[:, :, 1] + a[:, :, 2] + a[:, :, 3]) & 0xFF
        sync = (st & SYNC) != 0
        good = (
            (st >= BIT7).all(axis=1)
            & (chk == a[:, :, CHK_AT]).all(axis=1)
            & sync[:, 0]
            & ~sync[:, 1:].any(axis=1)
        )
        if layout.start is not None:
            good &= (a[:, :, 0] == layout.start).all(axis=1)
        ok = count if good.all() else int(np.argmin(good))
        self._clean_run = min(self._clean_run * 2, _BULK_MAX) if ok == count else ok
        if not ok:
            return 0
        a, st = a[:ok], st[:ok]
        fl = a[:, :, FLOAT_AT].astype(np.int64)
        hr = ((fl[:, F_HR_MSB] & 0x03) << 7 | (fl[:, F_HR_LSB] & 0x7F)).tolist()
        spo2 = (fl[:, F_SPO2] & 0x7F).tolist()
        acc = np.bitwise_or.reduce(st, axis=1)
        red = ((st & (RPRF | GPRF)) == RPRF).any(axis=1)
        keys = (((acc >> 3) & 0xF) | (red.astype(np.uint8) << 4)).tolist()
        pleth = layout.pleth_of(a).astype(np.float64)
        if (acc & (SNSA | SNSD)).any():
            pleth[(st & (SNSA | SNSD)) != 0] = np.nan
        after = n - pos - PACKET_BYTES
        for i in range(ok):
            end = self._end_stamp(stamp, after - i * PACKET_BYTES)
            self._emit(out, end, hr[i], spo2[i], _FLAGS[keys[i]], pleth[i])
        return ok

    def _emit(
        self,
        out: list[Measurement],
        end: Stamp,
        hr: int,
        spo2: int,
        flags: Flags,
        samples: np.ndarray,
    ) -> None:
        """Append one packet's three items; ``end`` is when its last byte arrived."""
        stats = self.stats
        stats.packets_ok += 1
        stats.frames_ok += FRAMES_PER_PACKET
        self._emit_numerics(out, end, hr, spo2, flags)
        out.append(
            WaveformBlock(
                self.source,
                Code.PLETH,
                end.shifted(-(FRAMES_PER_PACKET - 1) / FRAME_RATE),
                FRAME_RATE,
                samples,
                flags,
            )
        )


class NoninFormat2Parser(_FramedParser):
    """Nonin Data Format 2: 8-bit pleth, frames ``01, STATUS, PLETH, FLOAT, CHK``."""

    protocol: ClassVar[str] = "nonin2"
    layout: ClassVar[FrameLayout] = FORMAT2


class NoninFormat7Parser(_FramedParser):
    """Nonin Data Format 7: 16-bit pleth, frames ``STATUS, PLETH_MSB, PLETH_LSB, FLOAT, CHK``."""

    protocol: ClassVar[str] = "nonin7"
    layout: ClassVar[FrameLayout] = FORMAT7


# A run of valid Format 8 packets: a byte with bit 7 set, then three without.
_RUN8 = re.compile(rb"(?:[\x80-\xff][\x00-\x7f]{3})+")
_STATUS8 = _byte_class(range(BIT7, 256))
#: Highest pulse rate the device sends (the 9560 measures 18-321 /min; 511 is "missing").
HR_MAX8 = 321
#: Consecutive agreeing packets before a Format 8 stream is trusted.
LOCK8 = 3
#: How far two consecutive Format 8 packets may differ while the stream is being trusted: the
#: display values of a second apart (4-beat averages, updated every 1.5 s) move by a few units.
LOCK8_SPO2_STEP = 5
LOCK8_HR_STEP = 15


def _agree8(held: tuple[int, int, Flags, Stamp], hr: int, spo2: int) -> bool:
    """Whether a Format 8 packet and the held one before it could be one patient a second apart:
    each value close to the other, or missing in either (a finger going in or out)."""
    for x, y, missing, step in (
        (held[0], hr, HR_MISSING, LOCK8_HR_STEP),
        (held[1], spo2, SPO2_MISSING, LOCK8_SPO2_STEP),
    ):
        if abs(x - y) > step and missing not in (x, y):
            return False
    return True


class NoninFormat8Parser(_NoninParser):
    """Decodes Nonin Data Format 8: pulse rate and SpO2 once a second, no pleth.

    A packet is ``STATUS (bit 7 set), HR-D, SpO2-D, STATUS2`` (bit 7 clear in the last three):
    the display values, which hold the last reading for 10 s after the finger is removed (with
    SNSA set) before the missing markers. Each packet gives ``Numeric(PULSE_RATE)`` and
    ``Numeric(SPO2)`` with flags SNSA → SENSOR_OFF, OOT → SEARCHING, ARTF → ARTIFACT,
    LPRF → LOW_PERFUSION (MPRF, marginal perfusion, is yellow: no flag, as in Format 2).

    **No checksum.** A packet is valid when its structure is: a byte with bit 7 among the three
    data bytes is a framing error that drops the packet (it was cut short), and so is a data
    byte where the byte after a packet should start the next one; either way the parser
    resynchronises on the next byte with bit 7. The reserved bits are "0 or 1" in the spec, so
    they prove nothing; but a packet whose HR or SpO2 the device cannot send (HR 322-510, SpO2
    101-126) is damaged: a framing error, dropped.

    **Lock.** Random bytes have that structure once in 16 positions and plausible values once in
    32: line noise at 960 bytes a second would give some 30 "packets" a second. So packets are
    trusted only from a run of :data:`LOCK8` back-to-back packets in which each agrees with the
    one before (HR within :data:`LOCK8_HR_STEP`, SpO2 within :data:`LOCK8_SPO2_STEP`, unless
    missing in either): noise makes one about once in three days. Then every
    following back-to-back packet is trusted, whatever its values (the output checks flag a
    jump), until a byte is lost. The packets of a run that is not long enough yet are held, and
    emitted with their stamps of arrival once it is (the first values come 2 s late: nothing of
    a real stream is lost); a lost byte, or a packet that disagrees with the one before,
    discards what is held (``packets_unconfirmed``). The set-format answer between two packets
    is no lost byte: it is taken, and the run goes on.

    Every decision depends on the bytes only, so any chunking gives the same items and counters.
    Stamps as in Format 2, at 4 bytes a second.
    """

    protocol: ClassVar[str] = "nonin8"
    data_format: ClassVar[int] = 8
    BYTE_RATE: ClassVar[float] = BYTE_RATE8
    _hunt_re: ClassVar[re.Pattern[bytes]] = _STATUS8

    def __init__(self, source: str) -> None:
        super().__init__(source)
        #: Packets of a run not yet long enough to trust: (HR, SpO2, flags, end stamp).
        self._held: list[tuple[int, int, Flags, Stamp]] = []

    @property
    def pending_bytes(self) -> int:
        return len(self._buf) + PACKET8_BYTES * len(self._held)

    def _unlock(self) -> None:
        super()._unlock()
        self._drop_held()

    def _drop_held(self) -> None:
        held = len(self._held)
        if held:
            self.stats.packets_unconfirmed += held
            self.stats.bytes_discarded += PACKET8_BYTES * held
            self._held.clear()

    def _parse(self, b: bytes, stamp: Stamp, out: list[Measurement]) -> int:
        n = len(b)
        pos = 0
        while pos < n:
            if b[pos] < BIT7:
                pos = self._hunt(b, pos)
                continue
            if n - pos < PACKET8_BYTES:
                break
            run = _RUN8.match(b, pos)
            if run is None:
                # Another status byte among the data bytes: this packet was cut short.
                self.stats.framing_errors += 1
                self.stats.packets_dropped += 1
                cut = _STATUS8.search(b, pos + 1, pos + PACKET8_BYTES).start()
                self._lose_step(cut - pos)
                pos = cut
                continue
            end = run.end()
            pos = self._take_run(b, pos, end, stamp, out)
            if pos == end:
                self._in_step = True
        return pos

    def _take_run(self, b: bytes, pos: int, end: int, stamp: Stamp, out: list[Measurement]) -> int:
        """Take the well-formed packets in ``b[pos:end]``; return where parsing goes on."""
        n = len(b)
        stats = self.stats
        for i in range(pos, end, PACKET8_BYTES):
            b1, hr_lsb, spo2, b4 = b[i : i + PACKET8_BYTES]
            hr = decode_hr(b1, hr_lsb)
            if (hr > HR_MAX8 and hr != HR_MISSING) or (spo2 > 100 and spo2 != SPO2_MISSING):
                # A value the device cannot send: this packet is damaged.
                stats.framing_errors += 1
                stats.packets_dropped += 1
                self._lose_step(PACKET8_BYTES)
                return i + PACKET8_BYTES
            end_at = self._end_stamp(stamp, n - i - PACKET8_BYTES)
            flags = _FLAGS[_flag_key8(b1, b4)]
            if self._locked:
                stats.packets_ok += 1
                stats.frames_ok += 1
                self._emit_numerics(out, end_at, hr, spo2, flags)
                continue
            held = self._held
            if held and not _agree8(held[-1], hr, spo2):
                self._drop_held()  # this one may begin a run of its own
            held.append((hr, spo2, flags, end_at))
            if len(held) >= LOCK8:
                self._locked = True
                self._found_start()
                stats.packets_ok += len(held)
                stats.frames_ok += len(held)
                for p in held:
                    self._emit_numerics(out, p[3], p[0], p[1], p[2])
                held.clear()
        return end


# --- encoders and emulators ---------------------------------------------------------------------


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
    ``pleth`` holds wire values (8 or 16 bits, see :func:`quantise_pleth`).
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


def quantise_pleth(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """Pleth 0..1 to the ``bits``-bit wire value; NaN (no signal) is sent as 0."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.rint(np.clip(x, 0.0, 1.0) * float((1 << bits) - 1)).astype(np.int64)


def frame_index(t: float, rate: float = FRAME_RATE) -> int:
    """The first frame at or after session time ``t`` (frame k is sent at k/``rate`` s)."""
    return max(0, math.ceil(t * rate - 1e-9))


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
    75 Hz. Packets are computed whole and cached, so the bytes do not depend on how
    :meth:`emit`'s time boundaries fall.
    """

    layout: ClassVar[FrameLayout]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.data_format = cls.layout.data_format

    def __init__(
        self, session: KapSession, *, revision: int = REVISION, speed: float = 1.0
    ) -> None:
        super().__init__(session, speed=speed)
        self.revision = revision
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
            quantise_pleth(pleth, self.layout.bits),
            status=status_bits(v.flags),
            no_signal=np.isnan(pleth),
            timer=index,
            revision=self.revision,
            layout=self.layout,
        )
        if len(self._cache) >= 4:
            self._cache.clear()
        self._cache[index] = data
        return data


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
        k0, k1 = frame_index(t0, 1.0), frame_index(t1, 1.0)
        return b"".join(self.packet(k) for k in range(k0, k1))

    def packet(self, index: int) -> bytes:
        v = self.session.vitals(float(index))
        return encode_packet8(
            None if v.heart_rate is None else round(v.heart_rate),
            None if v.spo2 is None else round(v.spo2),
            wire_flags8(v.flags),
        )


# --- drivers ------------------------------------------------------------------------------------


class _NoninDriver(SerialDriver):
    """A Nonin oximeter on a serial port; option ``set-format`` asks it for this driver's format.

    Without the option the host sends nothing, and the device must already be set to the format
    (it keeps it in non-volatile memory).
    """

    parser_class: ClassVar[type[_NoninParser]]
    serial_settings = SERIAL
    options: ClassVar[frozenset[str]] = frozenset({SET_FORMAT_OPTION})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        unknown = sorted(self.spec.options - self.options)
        if unknown:
            raise UserError(
                f"device '{self.spec.text}': unknown option '{unknown[0]}' "
                f"({self.name} knows: {', '.join(sorted(self.options))})"
            )
        #: The answer to the last set-format command: "accepted", "refused" or "no answer".
        self.format_answer: str | None = None
        self._packets_at_greeting = 0

    @property
    def data_format(self) -> int:
        return self.parser_class.data_format

    def greeting(self) -> bytes:
        if SET_FORMAT_OPTION not in self.spec.options:
            return b""
        self.format_answer = None
        self._packets_at_greeting = self.parser.stats.packets_ok
        self.parser.expect_reply(Stamp.now().mono + REPLY_WAIT, self._on_reply)
        return set_format_command(self.data_format)

    def _on_reply(self, reply: bytes | None) -> None:
        fmt = self.data_format
        if reply == ACK:
            self.format_answer = "accepted"
            log.info("%s: the oximeter accepted data format %d", self.source, fmt)
        elif reply == NAK:
            self.format_answer = "refused"
            log.warning(
                "%s: the oximeter refused data format %d: set it on the device", self.source, fmt
            )
        else:
            self.format_answer = "no answer"
            if self.parser.stats.packets_ok > self._packets_at_greeting:
                log.info(
                    "%s: no answer to the request for data format %d, but its data arrive",
                    self.source,
                    fmt,
                )
            else:
                log.warning(
                    "%s: the oximeter did not answer the request for data format %d; "
                    "if no data arrive, set it on the device",
                    self.source,
                    fmt,
                )


class Nonin2Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 2 (``nonin2@PORT``, ``nonin2+set-format@PORT``)."""

    name = "nonin2"
    parser_class = NoninFormat2Parser
    emulator_class = NoninFormat2Emulator
    byte_rate = BYTE_RATE


class Nonin7Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 7 (``nonin7@PORT``, ``nonin7+set-format@PORT``)."""

    name = "nonin7"
    parser_class = NoninFormat7Parser
    emulator_class = NoninFormat7Emulator
    byte_rate = BYTE_RATE


class Nonin8Driver(_NoninDriver):
    """A Nonin oximeter in Data Format 8 (``nonin8@PORT``, ``nonin8+set-format@PORT``)."""

    name = "nonin8"
    parser_class = NoninFormat8Parser
    emulator_class = NoninFormat8Emulator
    byte_rate = BYTE_RATE8
