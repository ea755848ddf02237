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

**Where things live.** This package's modules each do one job, in import order (each imports
only the ones before it):

- :mod:`~devices.protocols.contec.wire`: rates, packet types and their lengths
  (:data:`DATA_LENGTHS`), status bits, the replies of the public capture
  (:data:`CAPTURED_REPLIES`), the packet encoding (:func:`encode_packet`,
  :func:`decode_packet`, :func:`command`) and the real-time fields (:class:`RealtimeFields`);
- :mod:`~devices.protocols.contec.parser`: :class:`ContecParser` (bytes to items);
- :mod:`~devices.protocols.contec.emulator`: :class:`ContecEmulator` (the oximeter's side);
- :mod:`~devices.protocols.contec.driver`: :class:`ContecDriver` (the host's side).

This module re-exports the public names the rest of kapmonitor uses
(``devices.protocols.contec:ContecDriver`` in the registry).

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

from devices.protocols.contec.driver import ContecDriver
from devices.protocols.contec.emulator import ContecEmulator
from devices.protocols.contec.parser import ContecParser
from devices.protocols.contec.wire import (
    KEEP_ALIVE_COMMAND,
    START_COMMAND,
    STOP_COMMAND,
    RealtimeFields,
    command,
    decode_packet,
    decode_realtime,
    encode_packet,
    encode_realtime,
)

__all__ = [
    "KEEP_ALIVE_COMMAND",
    "START_COMMAND",
    "STOP_COMMAND",
    "ContecDriver",
    "ContecEmulator",
    "ContecParser",
    "RealtimeFields",
    "command",
    "decode_packet",
    "decode_realtime",
    "encode_packet",
    "encode_realtime",
]
