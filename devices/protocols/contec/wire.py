"""Contec's wire: rates, packet types and lengths, status bits, the captured replies, and
the packet and real-time encodings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
