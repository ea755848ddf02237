"""Contec CMS50D+ (firmware 4.6+) and CMS50E/F "Communication protocol V7.0" over serial.

The wire (shared/reference/device-protocols.md §5): 115200 8N1 through the CP210x bridge in the
USB cable. Every packet, both ways, is ``[type] [high-bit byte] [data bytes]``: the type byte is
the only byte with bit 7 clear; the high-bit byte is ``0x80`` plus bit ``i`` = bit 7 of data byte
``i + 1``; each data byte goes out with bit 7 set. The host starts the stream with command
``A1`` (``7D 81 A1 80 80 80 80 80 80``), keeps it going with ``AF`` and stops it with ``A2``. The
device then sends a real-time packet (type ``01``, 7 data bytes, 9 on the wire) about 60 times a
second: data 1 = signal strength (b0-3), searching too long (b4), low SpO2 (b5), pulse beep
(b6), probe error / finger out (b7); data 2 = pleth (b0-6), searching pulse (b7); data 3 = bar
graph (b0-3), "PI valid" (b4); data 4 = pulse rate (``FF`` invalid); data 5 = SpO2 (``7F``
invalid); data 6-7 = PI little-endian in 0.01 % (``FFFF`` invalid).

**What the parser emits.** A ``WaveformBlock(PLETH, fs=60)`` per :data:`BLOCK_PACKETS` (15)
consecutive real-time packets, i.e. four blocks a second, stamped with the first sample's time
counted back at the device rate from the last packet's arrival; a block is cut short (flushed)
when bytes are lost or other packets come between, and when the packets' arrival times jump by
more than :data:`GAP_S` (the stream was stopped and restarted), because a block's samples must be
consecutive. ``Numeric`` PULSE_RATE, SPO2 and PERFUSION once per :data:`NUMERIC_EVERY` (60)
real-time packets - once a second, the rate at which the device's own display changes - from the
first packet of a stream (so values show at once) and then from every 60th; they carry the values
and status of that one packet, so a value and its flags always describe the same instant, with
at most one second's delay for a state change (the pleth blocks show it within 0.25 s).

**Flags.** Probe error → SENSOR_OFF (and NaN pleth samples: there is no signal). Searching pulse or
searching too long → SEARCHING. A missing pulse rate or SpO2 without a probe error → SEARCHING
too (the device has no reading yet: what it shows for seconds after a finger goes in). Signal
strength 0 with neither of those → QUESTIONABLE: the device still shows a number but measures no
pulse amplitude, so the number is held or extrapolated (the emulator sends strength 0 for a
low-perfusion patient). SpO2 above 100 → ``None`` with OUT_OF_RANGE. The "PI valid" bit is not
used: the public capture has it set together with PI ``FFFF``; PI is ``None`` when ``FFFF`` (or 0).
Invalid markers (PR ``FF``/0, SpO2 ``7F``/0, PI ``FFFF``/0) become ``None``, never 0.

**Lock.** The only check the wire offers is its bit-7 structure, which random bytes meet once in
65,536 positions: line noise at 115200 baud would give a lone "real-time packet" every few
seconds, with a pulse rate, an SpO2 and a PI of whatever the noise holds (a PI of 342 %). A real
device sends them back to back, 60 a second. So real-time packets are trusted only from a run of
:data:`LOCK_PACKETS` in a row (random bytes at the line rate make one about once in 800 years)
until bytes are lost again; a shorter run between other bytes is counted in
``packets_unconfirmed`` and discarded. The first packets of a run are held until the run is long
enough, then emitted with their own stamps: a stream's first values come 50 ms late, and nothing
of a real stream is lost. Values outside their physical range (PI above 20 %) are flagged by the
shared output checks.

**Framing.** Real-time packets are recognised many at a time (a regular expression over a class
string of the buffer: C speed), so a 2-hour file decodes in a fraction of a second and per-read
overhead stays small. Other packets the device sends in reply to commands are skipped by their
length (types and lengths from bmartin427/CMS50 and the headrotor/art-sensors capture); an unknown
type is skipped up to the next type byte that is followed by a valid high-bit byte. Bytes that fit
no packet are discarded and counted; ``framing_errors`` counts each time the parser lost step after
a good packet (joining a stream mid-packet is not an error). Every decision depends only on the
bytes, so any chunking gives the same items and counters; a damaged region never costs a packet
outside it, because no packet can run over the next packet's type byte.

**Keep-alive timeout (emulator).** Public sources: the spec (per AndreasZachariae/cms50dplus-driver
and albertcbraun/CMS50FW) has the host send ``AF`` every 5 s; timegrid/CMS50Dplus7 does that,
headrotor/art-sensors sends it every ~100 packets (1.7 s) and doubts it is needed; MarkMLl/
Contec_cms50dplus, which never sends it, sees the stream stop about 30 s after the start command.
So the real timeout is somewhere between 5 and ~30 s. The emulator stops :data:`KEEP_ALIVE_TIMEOUT`
(5 s) after the last ``A1``/``AF``, the strict end of that range, so a host that keeps the emulator
streaming keeps the device streaming; the driver sends ``AF`` every second (``A1`` while the device
is silent, see :class:`ContecDriver`). The timeout is real time: played ``speed`` times faster,
it lasts ``speed`` times longer in session time, so the driver's keep-alive still arrives in time.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.serial_driver import SerialDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.model import ConnectionState, Flag, Measurement, Numeric, Stamp, WaveformBlock

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession

PACKET_RATE = 60.0  #: real-time packets a second
RT_TYPE = 0x01
RT_BYTES = 9
BYTE_RATE = PACKET_RATE * RT_BYTES  #: 540 B/s while streaming
BLOCK_PACKETS = 15  #: pleth samples per WaveformBlock (0.25 s)
NUMERIC_EVERY = 60  #: real-time packets per set of numerics (1 s)
GAP_S = 0.5  #: a longer pause between two packets' arrival starts a new pleth block
#: Real-time packets in a row that make a stream trusted (see "Lock" above).
LOCK_PACKETS = 3
KEEP_ALIVE_TIMEOUT = 5.0  #: the emulator stops this long after the last A1/AF (see above)

CMD_TYPE = 0x7D
CMD_START = 0xA1
CMD_STOP = 0xA2
CMD_KEEP_ALIVE = 0xAF

PR_INVALID = 0xFF
SPO2_INVALID = 0x7F
PI_INVALID = 0xFFFF

# data 1 bits
PROBE_ERROR = 0x80
PULSE_BEEP = 0x40
LOW_SPO2 = 0x20
SEARCHING_TOO_LONG = 0x10
STRENGTH_MASK = 0x0F
# data 2 / data 3 bits
SEARCHING_PULSE = 0x80
PI_VALID = 0x10

#: Data bytes per packet type. Device → host types from bmartin427/CMS50 (cms50.py, after the
#: V7.0 spec); 02, 03, 06, 13 and 14 from the replies in the headrotor/art-sensors capture;
#: 7D is the host's command packet (seen when both directions are logged into one file).
DATA_LENGTHS: dict[int, int] = {
    0x01: 7,  # real-time data
    0x02: 7,  # reply to A8 (model?)
    0x03: 7,  # reply to A9 (vendor?)
    0x04: 7,  # device identifier
    0x05: 7,  # user information
    0x06: 2,  # reply to A0
    0x07: 6,  # storage start date
    0x08: 6,  # storage data length
    0x09: 4,  # storage data with PI
    0x0A: 2,  # storage segment amount
    0x0B: 2,  # command feedback
    0x0C: 0,  # free feedback
    0x0D: 1,  # disconnect notice
    0x0E: 1,  # PI identifiers
    0x0F: 6,  # storage data
    0x10: 1,  # user amount
    0x11: 7,  # device notice
    0x12: 6,  # storage start time
    0x13: 7,  # reply to B3
    0x14: 7,  # reply to B3
    0x15: 7,  # storage data identifiers
    CMD_TYPE: 7,  # host command
}
_LENGTH = tuple(DATA_LENGTHS.get(t, -1) for t in range(0x80))

#: The device's replies to commands, byte for byte, from the headrotor/art-sensors capture (MIT,
#: © 2018 J Foote; tests/data/contec/). A1 answers with the stream, AF with nothing.
CAPTURED_REPLIES: dict[int, bytes] = {
    0xA7: bytes.fromhex("0C80"),
    0xA2: bytes.fromhex("0C80"),
    0xA0: bytes.fromhex("06808087"),
    0xB0: bytes.fromhex("118081818080808080"),
    0xAC: bytes.fromhex("0E8081"),
    0xB3: bytes.fromhex("1380A0A0A0A0A0A0A01480A0A0A0A0A08080"),
    0xA8: bytes.fromhex("028080A0A0A0A0A0A00281FFA0A0A0A0A0A0"),
    0xAA: bytes.fromhex("0480F5F3E5F2A0A0A0"),
    0xA9: bytes.fromhex("0380A0A0A0A0A0A0A0"),
}

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


def encode_packet(ptype: int, data: bytes | list[int] | tuple[int, ...]) -> bytes:
    """One packet on the wire: type, high-bit byte, data bytes with bit 7 set (at most 7)."""
    if not 0 <= ptype < 0x80 or len(data) > 7:
        raise ValueError("a packet has a 7-bit type and at most 7 data bytes")
    hb = 0x80
    for i, d in enumerate(data):
        hb |= ((d >> 7) & 1) << i
    return bytes((ptype, hb, *((d & 0xFF) | 0x80 for d in data)))


def decode_packet(packet: bytes) -> tuple[int, bytes]:
    """The type and the data bytes of one well-formed packet (the inverse of encode_packet)."""
    hb = packet[1]
    return packet[0], bytes((d & 0x7F) | (((hb >> i) & 1) << 7) for i, d in enumerate(packet[2:]))


def command(code: int, *args: int) -> bytes:
    """A host command packet: type 7D, the command, its arguments, padded to 7 data bytes."""
    return encode_packet(CMD_TYPE, [code, *args, *[0] * (6 - len(args))])


START_COMMAND = command(CMD_START)  #: 7D 81 A1 80 80 80 80 80 80
STOP_COMMAND = command(CMD_STOP)
KEEP_ALIVE_COMMAND = command(CMD_KEEP_ALIVE)  #: 7D 81 AF 80 80 80 80 80 80


@dataclass(frozen=True)
class RealtimeFields:
    """Every field of one real-time packet, as the device means it (raw markers kept)."""

    signal_strength: int = 0
    searching_too_long: bool = False
    low_spo2: bool = False
    pulse_beep: bool = False
    probe_error: bool = False
    pleth: int = 0
    searching_pulse: bool = False
    bar_graph: int = 0
    pi_valid: bool = False
    pulse_rate: int = PR_INVALID
    spo2: int = SPO2_INVALID
    pi: int = PI_INVALID


def decode_realtime(packet: bytes) -> RealtimeFields:
    """The fields of one 9-byte real-time packet (type and framing not checked)."""
    d = decode_packet(packet)[1]
    return RealtimeFields(
        signal_strength=d[0] & STRENGTH_MASK,
        searching_too_long=bool(d[0] & SEARCHING_TOO_LONG),
        low_spo2=bool(d[0] & LOW_SPO2),
        pulse_beep=bool(d[0] & PULSE_BEEP),
        probe_error=bool(d[0] & PROBE_ERROR),
        pleth=d[1] & 0x7F,
        searching_pulse=bool(d[1] & SEARCHING_PULSE),
        bar_graph=d[2] & 0x0F,
        pi_valid=bool(d[2] & PI_VALID),
        pulse_rate=d[3],
        spo2=d[4],
        pi=d[5] | d[6] << 8,
    )


def encode_realtime(f: RealtimeFields) -> bytes:
    """The 9 bytes of a real-time packet."""
    d1 = (
        (f.signal_strength & STRENGTH_MASK)
        | SEARCHING_TOO_LONG * f.searching_too_long
        | LOW_SPO2 * f.low_spo2
        | PULSE_BEEP * f.pulse_beep
        | PROBE_ERROR * f.probe_error
    )
    d2 = (f.pleth & 0x7F) | SEARCHING_PULSE * f.searching_pulse
    d3 = (f.bar_graph & 0x0F) | PI_VALID * f.pi_valid
    return encode_packet(
        RT_TYPE, [d1, d2, d3, f.pulse_rate & 0xFF, f.spo2 & 0xFF, f.pi & 0xFF, (f.pi >> 8) & 0xFF]
    )


def encode_realtime_array(data: np.ndarray) -> bytes:
    """Real-time packets from an ``(n, 7)`` array of data bytes, all at once (for the emulator)."""
    d = np.asarray(data, dtype=np.uint16).astype(np.uint8)
    wire = np.empty((len(d), RT_BYTES), dtype=np.uint8)
    wire[:, 0] = RT_TYPE
    hb = np.full(len(d), 0x80, dtype=np.uint8)
    for i in range(7):
        hb |= (d[:, i] >> 7) << i
    wire[:, 1] = hb
    wire[:, 2:] = d | 0x80
    return wire.tobytes()


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


# --- emulator -------------------------------------------------------------------------------


def packet_index(t: float) -> int:
    """The first real-time packet at or after session time ``t`` (packet k is sent at k/60 s)."""
    return max(0, math.ceil(t * PACKET_RATE - 1e-9))


def quantise_pleth(x: np.ndarray) -> np.ndarray:
    """Pleth 0..1 to the 7-bit wire value; NaN (no signal) is sent as 0."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.rint(np.clip(x, 0.0, 1.0) * 127.0).astype(np.uint8)


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
        first = packet_index(self.start)
        limit = (self.last_command + timeout) * PACKET_RATE
        end = sys.maxsize if math.isinf(limit) else math.floor(limit + 1e-9) + 1
        if self.stop is not None:
            end = min(end, packet_index(self.stop))
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
        self._cache: dict[int, bytes] = {}

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
        k0, k1 = packet_index(t0), packet_index(t1)
        if k1 <= k0:
            return b""
        parts = []
        for run in self.runs:
            a, z = run.packets(self.timeout)
            lo, hi = max(a, k0), min(z, k1)
            if lo < hi:
                parts.append(self.packets(lo, hi))
        return b"".join(parts)

    def packets(self, k0: int, k1: int) -> bytes:
        """The bytes of real-time packets ``k0 .. k1 - 1``, whether or not the host asked."""
        if k1 <= k0:
            return b""
        per = int(PACKET_RATE)
        j0, j1 = k0 // per, (k1 - 1) // per
        data = b"".join(self.second(j) for j in range(j0, j1 + 1))
        base = j0 * per
        return data[(k0 - base) * RT_BYTES : (k1 - base) * RT_BYTES]

    def second(self, j: int) -> bytes:
        """The 60 packets of second ``j`` (cached: emit() asks for the same one repeatedly)."""
        cached = self._cache.get(j)
        if cached is not None:
            return cached
        per = int(PACKET_RATE)
        t = float(j)
        v = self.session.vitals(t)
        pleth = np.asarray(self.session.pleth(t, per, PACKET_RATE), dtype=np.float64)
        no_signal = np.isnan(pleth) | (Flag.SENSOR_OFF in v.flags)
        q = quantise_pleth(pleth)
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
        data = encode_realtime_array(d)
        if len(self._cache) >= 4:
            self._cache.clear()
        self._cache[j] = data
        return data


# --- driver ---------------------------------------------------------------------------------


class ContecDriver(SerialDriver):
    """A Contec CMS50D+/E (protocol V7.0) on its USB cable (``contec@/dev/ttyUSB0``).

    Sends the start command on connect and the keep-alive every second, without which the device
    stops streaming. While the device is silent (NO_DATA), the periodic message is the start
    command instead: the USB bridge is in the cable, so the port stays open when the oximeter is
    switched off and on or has stopped for a missed keep-alive, and only a new start command gets
    it streaming again (AndreasZachariae/cms50dplus-driver re-sends A1 as its keep-alive, so a
    repeated start does no harm).
    """

    name = "contec"
    parser_class = ContecParser
    emulator_class = ContecEmulator
    serial_settings = ContecParser.SERIAL
    byte_rate = BYTE_RATE
    keep_alive_interval = 1.0

    def greeting(self) -> bytes:
        return START_COMMAND

    def keep_alive(self) -> bytes:
        if self.state is ConnectionState.NO_DATA:
            return START_COMMAND
        return KEEP_ALIVE_COMMAND
