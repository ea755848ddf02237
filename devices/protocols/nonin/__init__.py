"""Nonin serial Data Formats 2, 7 and 8 (9560 Onyx II, 3150 WristOx2, OEM III): parsers,
device emulators, drivers, and the set-format command.

**Where things live.** This package's modules each do one job, in import order (each imports
only the ones before it):

- :mod:`~devices.protocols.nonin.wire`: serial settings, frame and packet sizes, STATUS bits,
  the FLOAT frame indices, the set-format command and its answers, :class:`FrameLayout`
  (:data:`FORMAT2`, :data:`FORMAT7`), the flag tables and the checksums;
- :mod:`~devices.protocols.nonin.parser`: :class:`NoninFormat2Parser`,
  :class:`NoninFormat7Parser` and :class:`NoninFormat8Parser` (bytes to items);
- :mod:`~devices.protocols.nonin.emulator`: the encoders (:func:`encode_packet`,
  :func:`encode_packet8`) and the emulators (the oximeter's side);
- :mod:`~devices.protocols.nonin.driver`: :class:`Nonin2Driver`, :class:`Nonin7Driver` and
  :class:`Nonin8Driver` (the host's side).

This module re-exports the public names the rest of kapmonitor uses
(``devices.protocols.nonin:Nonin2Driver`` in the registry).

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

from devices.protocols.nonin.driver import Nonin2Driver, Nonin7Driver, Nonin8Driver
from devices.protocols.nonin.emulator import (
    NoninFormat2Emulator,
    NoninFormat7Emulator,
    NoninFormat8Emulator,
    encode_packet,
    encode_packet8,
)
from devices.protocols.nonin.parser import (
    NoninFormat2Parser,
    NoninFormat7Parser,
    NoninFormat8Parser,
)
from devices.protocols.nonin.wire import (
    FORMAT2,
    FORMAT7,
    PACKET_BYTES,
    decode_hr,
    set_format_command,
)

__all__ = [
    "FORMAT2",
    "FORMAT7",
    "PACKET_BYTES",
    "Nonin2Driver",
    "Nonin7Driver",
    "Nonin8Driver",
    "NoninFormat2Emulator",
    "NoninFormat2Parser",
    "NoninFormat7Emulator",
    "NoninFormat7Parser",
    "NoninFormat8Emulator",
    "NoninFormat8Parser",
    "decode_hr",
    "encode_packet",
    "encode_packet8",
    "set_format_command",
]
