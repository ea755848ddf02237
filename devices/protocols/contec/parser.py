"""The Contec parser: real-time packets to pleth blocks and once-a-second numerics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.protocols.base import Parser, ParserStats, SerialSettings
from devices.protocols.contec.wire import (
    _LENGTH,
    BLOCK_PACKETS,
    BYTE_RATE,
    GAP_S,
    LOCK_PACKETS,
    NUMERIC_EVERY,
    PACKET_RATE,
    PI_INVALID,
    PR_INVALID,
    RT_BYTES,
    RT_TYPE,
    SEARCHING_TOO_LONG,
    SPO2_INVALID,
    STRENGTH_MASK,
)
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Measurement, Numeric, Stamp, WaveformBlock

# The buffer as classes, one byte each: S = real-time type byte, T = other type byte, d = data.
_CLASS = bytes(ord("S") if v == RT_TYPE else ord("T") if v < 0x80 else ord("d") for v in range(256))
#: Whole, well-formed real-time packets back to back (group 1), then perhaps the start of one
#: more that is well-formed so far and ends the buffer (group 2).
_RUN_TAIL = re.compile(rb"((?:Sd{8})*)(Sd{0,7}\Z)?")
_TYPE_BYTE = re.compile(rb"[ST]")
_LOW7 = bytes(v & 0x7F for v in range(256))
_HB3 = bytes(v & 3 for v in range(256))  # the high-bit byte's status part
_D1KEY = bytes(v & 0x1F for v in range(256))  # data 1's status part
#: A long run decodes its complete pleth blocks with numpy from this many blocks on.
_BULK_BLOCKS = 16

# Status flags from (high-bit byte & 3) << 5 | (data 1 & 0x1F) as a bit set, and bit sets as Flags.
_F_OFF, _F_SEARCH, _F_QUEST = 1, 2, 4


def _status_bits(key: int) -> int:
    hb, d1 = key >> 5, key & 0x1F
    bits = 0
    if hb & 1:
        bits |= _F_OFF
    if hb & 2 or d1 & SEARCHING_TOO_LONG:
        bits |= _F_SEARCH
    if not bits and not d1 & STRENGTH_MASK:
        bits |= _F_QUEST
    return bits


_STATUS = tuple(_status_bits(k) for k in range(128))
_STATUS_NP = np.array(_STATUS, dtype=np.uint8)
_FLAGSETS = tuple(
    frozenset(
        f
        for bit, f in (
            (_F_OFF, Flag.SENSOR_OFF),
            (_F_SEARCH, Flag.SEARCHING),
            (_F_QUEST, Flag.QUESTIONABLE),
        )
        if bits & bit
    )
    for bits in range(8)
)


@dataclass
class ContecStats(ParserStats):
    """The base counters plus packets by kind."""

    packets_realtime: int = 0
    packets_other: int = 0  #: replies to commands (device info, ...), skipped by their length
    packets_unknown: int = 0  #: types of unknown length, skipped up to the next packet
    #: real-time packets in a run too short to trust (noise), discarded
    packets_unconfirmed: int = 0
    bytes_in_packets: int = 0  #: bytes of well-formed packets of known type, of any kind


class ContecParser(Parser):
    """Decodes Contec V7.0 real-time packets into pleth blocks and once-a-second numerics.

    Stamps: the ``stamp`` given to :meth:`feed` is the arrival of the chunk's last byte; a packet
    ends ``bytes after it in the buffer / 540`` s before that (the device's byte rate while
    streaming; never before the previous chunk, see :meth:`Parser.back`). Numerics carry their
    packet's end; a pleth block starts ``n - 1`` packets before the end of its last packet.

    The pleth samples of a block that is not complete yet are held; :meth:`flush` hands them out
    (at the end of a file, or when the caller knows the stream stopped). Packets of a run not
    yet long enough to trust stay pending, and a stream that ends inside one drops them.
    """

    protocol: ClassVar[str] = "contec"
    SERIAL: ClassVar[SerialSettings] = SerialSettings(115200)

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: ContecStats = ContecStats()
        self._buf = b""
        self._block = b""  #: raw real-time packets of the pleth block being filled
        #: The end of the last real-time packet is ``_last_stamp`` minus ``_last_back`` seconds
        #: (kept apart so that a serial read does not pay for a Stamp it rarely needs).
        self._last_stamp: Stamp | None = None
        self._last_back = 0.0
        self._count = 0  #: real-time packets since the numerics phase began, modulo 60
        self._in_step = False  #: the last decision was a good packet
        self._acquired = False  #: a good packet has been seen (losing step after it is an error)
        self._lost = False  #: bytes were thrown away since the last good packet
        self._locked = False  #: real-time packets are trusted (no byte lost since a long run)

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a decision; ``bytes_in`` is always ``bytes_discarded +
        bytes_in_packets + pending_bytes`` (an unknown packet's bytes count as discarded)."""
        return len(self._buf)

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        stats = self.stats
        b = self._buf + data if self._buf else data
        n = len(b)
        cls = b.translate(_CLASS)
        out: list[Measurement] = []
        pos = 0
        while pos < n:
            c = b[pos]
            if c >= 0x80:
                m = _TYPE_BYTE.search(cls, pos)
                q = m.start() if m else n
                self._discard(q - pos, out)
                pos = q
                continue
            if c == RT_TYPE:
                m = _RUN_TAIL.match(cls, pos)
                assert m is not None  # the pattern matches the empty string
                run_end = m.end(1)
                if not self._locked and run_end > pos:
                    count = (run_end - pos) // RT_BYTES
                    if count < LOCK_PACKETS:
                        if run_end == n or m.lastindex == 2:
                            break  # the run may yet grow long enough
                        stats.packets_unconfirmed += count  # a short run among other bytes
                        self._discard(run_end - pos, out)
                        pos = run_end
                        continue
                    self._locked = True
                if run_end > pos:
                    self._take_run(b, pos, run_end, n, stamp, out)
                    pos = run_end
                    if m.lastindex != 2:
                        continue
                if m.lastindex == 2:
                    break  # a real-time packet still arriving, well-formed so far
                # A real-time type byte that starts no well-formed packet: see below.
            # Any other type byte, or a real-time packet that is broken.
            if pos + 1 >= n:
                break  # a type byte: its high-bit byte decides
            hb = b[pos + 1]
            if hb < 0x80:  # a type byte followed by another: this one starts nothing
                self._discard(1, out)
                pos += 1
                continue
            length = _LENGTH[c]
            if length < 0:
                stats.packets_unknown += 1
                self._discard(2, out, error=False)  # the rest goes as data bytes without a type
                pos += 2
                continue
            if (hb & 0x7F) >> length:  # flags for data bytes the packet does not have
                self._discard(1, out)
                pos += 1
                continue
            end = pos + 2 + length
            m = _TYPE_BYTE.search(cls, pos + 2, min(end, n))
            if m is not None:  # cut short by the next packet's type byte
                self._discard(m.start() - pos, out)
                pos = m.start()
                continue
            if end > n:
                break  # wait for the rest of the packet
            # A well-formed packet of another type (a real-time one would have matched above).
            stats.packets_other += 1
            stats.frames_ok += 1
            stats.bytes_in_packets += end - pos
            self._flush(out)
            self._good()
            pos = end
        self._buf = b[pos:]
        return out

    def _flush_held(self) -> list[Measurement]:
        """The pleth samples held for an incomplete block, as a (shorter) block."""
        out: list[Measurement] = []
        self._flush(out)
        return out

    # --- internals --------------------------------------------------------------------------

    def _good(self) -> None:
        if self._lost:
            self.stats.resyncs += 1
            self._lost = False
        self._acquired = True
        self._in_step = True

    def _discard(self, count: int, out: list[Measurement], *, error: bool = True) -> None:
        stats = self.stats
        stats.bytes_discarded += count
        if error and self._in_step:
            stats.framing_errors += 1
        self._in_step = False
        self._locked = False
        self._lost = self._acquired
        self._flush(out)  # a real-time packet may be among the lost bytes: keep blocks gapless

    def _flush(self, out: list[Measurement]) -> None:
        if self._block:
            assert self._last_stamp is not None
            last = self._last_stamp
            if self._last_back:
                last = last.shifted(-self._last_back)
            self._emit_block(self._block, last, out)
            self._block = b""

    def _take_run(
        self, b: bytes, pos: int, end: int, n: int, stamp: Stamp, out: list[Measurement]
    ) -> None:
        """Emit what the consecutive real-time packets ``b[pos:end]`` complete, in packet order:
        at a packet, its numerics (if due) before the block it completes (if any)."""
        count = (end - pos) // RT_BYTES
        stats = self.stats
        stats.packets_realtime += count
        stats.frames_ok += count
        stats.bytes_in_packets += end - pos
        if not self._in_step:
            self._good()
        prev = self._last_stamp
        if prev is not None and (
            (stamp.mono - self.back(n - pos - RT_BYTES, BYTE_RATE)) - (prev.mono - self._last_back)
            > GAP_S
        ):
            self._flush(out)  # the stream paused: the next samples do not follow these
            self._count = 0  # and a restarted stream shows its numbers at once
        next_num = (-self._count) % NUMERIC_EVERY
        next_blk = BLOCK_PACKETS - len(self._block) // RT_BYTES - 1
        seg = pos  # where the part of the current block inside b starts
        bulk_from = pos + (next_blk + 1) * RT_BYTES  # the first block wholly inside the run
        bulk = None
        if end - bulk_from >= _BULK_BLOCKS * BLOCK_PACKETS * RT_BYTES:
            bulk = self._bulk_blocks(b, bulk_from, end)
        while True:
            i = min(next_num, next_blk)
            if i >= count:
                break
            p_end = pos + (i + 1) * RT_BYTES
            at = stamp.shifted(-self.back(n - p_end, BYTE_RATE)) if p_end != n else stamp
            if i == next_num:
                self._emit_numerics(b[p_end - RT_BYTES : p_end], at, out)
                next_num += NUMERIC_EVERY
            if i == next_blk:
                j = (seg - bulk_from) // (BLOCK_PACKETS * RT_BYTES)
                if bulk is not None and seg >= bulk_from and j < len(bulk[1]):
                    samples, bits = bulk
                    out.append(
                        WaveformBlock(
                            self.source,
                            Code.PLETH,
                            at.shifted(-(BLOCK_PACKETS - 1) / PACKET_RATE),
                            PACKET_RATE,
                            samples[j * BLOCK_PACKETS : (j + 1) * BLOCK_PACKETS],
                            _FLAGSETS[bits[j]],
                        )
                    )
                else:
                    raw = b[seg:p_end]
                    if self._block:
                        raw = self._block + raw
                        self._block = b""
                    self._emit_block(raw, at, out)
                seg = p_end
                next_blk += BLOCK_PACKETS
        if seg < end:
            self._block += b[seg:end]
        self._count = (self._count + count) % NUMERIC_EVERY
        self._last_stamp = stamp
        self._last_back = self.back(n - end, BYTE_RATE)

    def _bulk_blocks(self, b: bytes, start: int, end: int) -> tuple[np.ndarray, list[int]]:
        """Pleth samples and status bits of the complete blocks from ``start``, with numpy;
        the same values :meth:`_emit_block` computes one block at a time."""
        size = BLOCK_PACKETS * RT_BYTES
        nb = (end - start) // size
        a = np.frombuffer(b, dtype=np.uint8, count=nb * size, offset=start)
        a = a.reshape(nb * BLOCK_PACKETS, RT_BYTES)
        samples = a[:, 3] & 0x7F
        st = _STATUS_NP[((a[:, 1] & 3) << 5) | (a[:, 2] & 0x1F)]
        off = (a[:, 1] & 1) != 0
        if off.any():
            samples = samples.astype(np.float64)
            samples[off] = np.nan
        bits = np.bitwise_or.reduce(st.reshape(nb, BLOCK_PACKETS), axis=1)
        return samples, bits.tolist()

    def _emit_block(self, raw: bytes, last: Stamp, out: list[Measurement]) -> None:
        """A pleth block from raw real-time packets; ``last`` is the end of the last one."""
        k = len(raw) // RT_BYTES
        hbs = raw[1::RT_BYTES]
        # Counts as uint8: WaveformBlock makes its own float copy, so none is made here.
        samples = np.frombuffer(raw[3::RT_BYTES].translate(_LOW7), dtype=np.uint8)
        hs = set(hbs.translate(_HB3))
        bits = 0
        if len(hs) == 1:
            h = hs.pop() << 5
            for key in set(raw[2::RT_BYTES].translate(_D1KEY)):
                bits |= _STATUS[h | key]
        else:
            for key in {
                (h & 3) << 5 | (d & 0x1F) for h, d in zip(hbs, raw[2::RT_BYTES], strict=True)
            }:
                bits |= _STATUS[key]
        if bits & _F_OFF:  # probe error: there is no signal to show
            samples = samples.astype(np.float64)
            samples[(np.frombuffer(hbs, dtype=np.uint8) & 1) != 0] = np.nan
        out.append(
            WaveformBlock(
                self.source,
                Code.PLETH,
                last.shifted(-(k - 1) / PACKET_RATE) if k > 1 else last,
                PACKET_RATE,
                samples,
                _FLAGSETS[bits],
            )
        )

    def _emit_numerics(self, p: bytes, at: Stamp, out: list[Measurement]) -> None:
        hb = p[1]
        d = [(w & 0x7F) | (((hb >> i) & 1) << 7) for i, w in enumerate(p[2:9])]
        bits = _STATUS[(hb & 3) << 5 | (d[0] & 0x1F)]
        pr, spo2, pi = d[3], d[4], d[5] | d[6] << 8
        pr_v = None if pr in (0, PR_INVALID) else pr
        spo2_v = None if spo2 in (0, SPO2_INVALID) or spo2 > 100 else spo2
        pi_v = None if pi in (0, PI_INVALID) else pi / 100.0
        if (pr_v is None or spo2_v is None) and not bits & _F_OFF:
            bits = (bits | _F_SEARCH) & ~_F_QUEST  # no reading yet: the device is searching
        flags = _FLAGSETS[bits]
        spo2_flags = flags
        if spo2 > 100 and spo2 != SPO2_INVALID:
            spo2_flags = flags | {Flag.OUT_OF_RANGE}
        src = self.source
        out.append(Numeric(src, Code.PULSE_RATE, pr_v, at, flags))
        out.append(Numeric(src, Code.SPO2, spo2_v, at, spo2_flags))
        out.append(Numeric(src, Code.PERFUSION, pi_v, at, flags))
