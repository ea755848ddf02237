"""Oridion (Medtronic) Capnostream 20: the capnograph/pulse oximeter of many sedation rooms, over
its serial host protocol.

**Sources.** No vendor document was in reach; the layout is taken from two public
implementations, read side by side (their code is not copied):

- OpenICE (mdpnp/mdpnp): ``org.mdpnp.devices.oridion.capnostream.Capnostream`` (framing,
  codes, numerics offsets, status bits), ``DemoCapnostream20`` (the session: enable, link is
  active every 5 s, start real-time; 115200 8N1) and ``org.mdpnp.devices.io.
  MergeBytesInputStream`` (the escapes). It ran against a real device.
- capnoReader (Caleb Burton, 2017, GPL): a Kaitai Struct description of a Capnostream's binary
  output (``meta: id: capno``), a byte cleaner that folds each 0x80 into the byte after it, and
  a CSV writer of the wave messages.

**The wire.** 115200 8N1 (OpenICE's default). Every message, both ways, is ``85, length, code,
payload, checksum``; ``length`` counts the code and the payload; the checksum is the XOR of
length, code and payload. After the header, a byte 0x80 or 0x85 goes out as ``80 00`` or
``80 05`` (the escape byte plus the difference), so 0x85 marks the start of a message and
nothing else. Host commands: enable communication 1, disable 2, inquire numeric item 3 (EtCO2
1, FiCO2 2, RR 3, SpO2 4, pulse 5), start real-time 4, stop real-time 5, link is active 6.
Device messages: CO2 wave 0 (message number, CO2 as an integer and a 1/256 byte, fast
status), numerics 1 (27 bytes: device time u32 big-endian, EtCO2, FiCO2, RR, SpO2, pulse, slow
status, 3 bytes of event index, CO2 alarms, SpO2 alarms, no-breath period, ten alarm limits,
CO2 units, extended CO2 status; 0xFF is "no value"), numeric item 3, device id 4 (30 ASCII).
Fast status: invalid 0x01, initialisation 0x02, occlusion 0x04, end of breath 0x08, SFM 0x10,
purging 0x20, FilterLine not connected 0x40, malfunction 0x80. CO2 alarms: no breath 0x01,
EtCO2 high 0x02 / low 0x04, RR high 0x08 / low 0x10, FiCO2 high 0x20. SpO2 alarms: pulse not
found 0x01, SpO2 high 0x02 / low 0x04, pulse high 0x08 / low 0x10, sensor off 0x20, sensor
disconnected 0x40. Units: mmHg 1, kPa 2, % 3.

**Where the two disagree, and what we do.**

- *The checksum.* OpenICE checks it, XOR-ing each escaped byte's two wire bytes; capnoReader
  reads it and does not check it. The two pairs XOR to the byte they stand for (0x80 ^ 0x00,
  0x80 ^ 0x05 = 0x85), so OpenICE's sum is the XOR of the unescaped bytes: we check that.
- *The CO2 sample.* OpenICE reads ``byte1 + byte2 / 256`` mmHg; capnoReader a raw big-endian
  u16 with no scale. The same bits; we take OpenICE's scale (it ran against a device, and its
  values are then mmHg like the numerics).
- *Slow status bit 7.* OpenICE: the SpO2 board's maker; capnoReader: reserved. Not used here.
- *Extended CO2 status.* OpenICE: check calibration 0x01, check flow 0x02, pump off 0x04,
  battery low 0x80; capnoReader declares 4 reserved bits then pump off, check flow, check
  calibration, seven bits in all, which puts them one bit higher (0x08, 0x04, 0x02). We follow
  OpenICE (capnoReader's type does not fill its byte) and use only "check flow" and "pump off"
  (no gas reaches the sensor: LINE_BLOCKED).
- *A shifted numerics payload.* OpenICE drops a numerics message whose SpO2 equals the previous
  message's RR, having seen "offset" payloads from a real device; capnoReader does not. We drop
  nothing on that guess: the checksum and the length decide, and a value then passes the
  shared range and jump checks.
- *The line speed.* OpenICE opens the port at 115200; a Swift host app's preview lists a
  Capnostream 20p at 9600. We use 115200 (the implementation that talked to a device);
  ``capnostream+9600@PORT`` is not offered until a real device says otherwise.
- *The link timeout.* Neither states it. OpenICE sends "link is active" every 5 s; so does the
  driver, and the emulator drops the link after :data:`~.emulator.LINK_TIMEOUT` (15 s) without a
  message from the host.

**What the parser emits.** ``Numeric`` EtCO2 (``MDC_AWAY_CO2_ET``), FiCO2 (the inspired CO2,
``MDC_AWAY_CO2_INSP_MIN``), RR (``MDC_RESP_RATE``, as OpenICE maps it: the Capnostream counts
breaths in the CO2), SpO2 and pulse rate from each numerics message (once a second), stamped at
the message's end; 0xFF is None. ``WaveformBlock(MDC_AWAY_CO2, fs=20)`` of 10 consecutive wave
messages (0.5 s), cut short when a message number is skipped or bytes are lost. CO2 values in
kPa or % are left out (None, NaN samples) with a :attr:`~.parser.CapnostreamParser.problem`
asking for mmHg: their scale is in neither source.

**Flags.** Wave: FilterLine not connected -> SENSOR_OFF (the sampling line is off); occlusion
-> LINE_BLOCKED; initialisation, SFM or purging -> SEARCHING; malfunction ->
MEASUREMENT_FAILED (and a NaN sample, as for the invalid bit). The CO2 numerics carry the latest
wave message's line flags, NO_BREATH when the device's no-breath alarm is on, and LINE_BLOCKED
for "check flow" or "pump off". SpO2 and pulse: sensor off or disconnected -> SENSOR_OFF, pulse
not found -> SEARCHING. A no-breath alarm is the patient (apnoea); a line that is off or
blocked is technical: the flags keep them apart.

**Lock.** The XOR checksum passes one random message in 256. Messages are trusted from a run
of :data:`~.parser.LOCK_FRAMES` (3) in a row with nothing discarded between them (the device
sends 21 a second); a shorter run between discarded bytes is counted in
``frames_unconfirmed`` and dropped.

**Modules**, in import order: :mod:`.wire` (codes, bits, framing, encoders),
:mod:`.parser` (:class:`CapnostreamParser`), :mod:`.emulator` (:class:`CapnostreamEmulator`),
:mod:`.driver` (:class:`CapnostreamDriver`, ``devices.protocols.capnostream:CapnostreamDriver``
in the registry).
"""

from __future__ import annotations

from devices.protocols.capnostream.driver import CapnostreamDriver
from devices.protocols.capnostream.emulator import CapnostreamEmulator
from devices.protocols.capnostream.parser import CapnostreamParser
from devices.protocols.capnostream.wire import (
    DISABLE_COMM,
    ENABLE_COMM,
    LINK_IS_ACTIVE,
    START_RT,
    STOP_RT,
    NumericsFields,
    command,
    decode_numerics,
    encode_message,
    encode_numerics,
    encode_wave,
)

__all__ = [
    "DISABLE_COMM",
    "ENABLE_COMM",
    "LINK_IS_ACTIVE",
    "START_RT",
    "STOP_RT",
    "CapnostreamDriver",
    "CapnostreamEmulator",
    "CapnostreamParser",
    "NumericsFields",
    "command",
    "decode_numerics",
    "encode_message",
    "encode_numerics",
    "encode_wave",
]
