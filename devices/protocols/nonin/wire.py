"""Nonin's wire: serial settings, frame and packet sizes, status bits, the set-format command,
the two 25-frame layouts, flag tables and checksums.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from devices.protocols.base import SerialSettings
from kapmonitor.core.model import Flag, Flags

if TYPE_CHECKING:
    from collections.abc import Sequence


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
