"""The Nonin parsers: Format 2 and 7 (25-frame packets) and Format 8 (4-byte packets)."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.protocols.base import Parser, ParserStats, SerialSettings
from devices.protocols.nonin.wire import (
    _FLAGS,
    _GOOD_STATUS,
    _REPLIES,
    _STATUS_CLASS,
    BIT7,
    BYTE_RATE,
    BYTE_RATE8,
    CHK_AT,
    F_HR_LSB,
    F_HR_MSB,
    F_SPO2,
    FLOAT_AT,
    FORMAT2,
    FORMAT7,
    FRAME_BYTES,
    FRAME_RATE,
    FRAMES_PER_PACKET,
    GPRF,
    HR_MISSING,
    PACKET8_BYTES,
    PACKET_BYTES,
    RPRF,
    SERIAL,
    SNSA,
    SNSD,
    SPO2_MISSING,
    SYNC,
    FrameLayout,
    _byte_class,
    _checksums_ok,
    _flag_key8,
    _frame_sum_ok,
    decode_hr,
)
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flags, Measurement, Numeric, Stamp, WaveformBlock

#: Numpy validates at least this many packets at once (and at most _BULK_MAX); fewer, or a
#: stream that was damaged lately, take the scalar path.
_BULK_MIN = 8
_BULK_MAX = 512


@dataclass
class NoninStats(ParserStats):
    """The base counters plus packets, which is what a Nonin user sees arrive or go missing."""

    packets_ok: int = 0
    packets_dropped: int = 0  #: packets with a bad, missing or extra frame (or byte, Format 8)
    #: Format 8: well-formed packets not confirmed by their neighbours (noise), discarded
    packets_unconfirmed: int = 0


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

    def __init_subclass__(cls, **kwargs: object) -> None:
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
                status = _STATUS8.search(b, pos + 1, pos + PACKET8_BYTES)
                assert status is not None  # it is what made the run fail
                cut = status.start()
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
