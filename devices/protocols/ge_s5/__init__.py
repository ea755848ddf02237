"""GE/Datex-Ohmeda S/5 Computer Interface (AS/3, CS/3, S/5, CARESCAPE B450/B650/B850) over serial.

**Sources.** GE's own documents, public in github.com/KaiWU17TUM/icu_devices
(``docs/manufacturers/GE_Monitor_B650/``): "S/5 Computer Interface Specification" M1017617
12th ed. (line settings, framing, checksum, request examples with their bytes) and "S/5 System
Interface, Datex-Ohmeda Record Specification" 8005313 12th ed. (record, subrecord and group
layouts, special values, NIBP label bits, waveform header and rates). Checked against the
receivers in xeonfusion/VSCapture (``Class1.cs``, ``Class2.cs``) and icu_devices
(``code/ge_monitor.cpp``), which decode real monitors. Nothing here is copied from either.

**Where things live.** This package's modules each do one job, in import order (each imports
only the ones before it):

- :mod:`~devices.protocols.ge_s5.wire`: line rate, record layout, special values, status and
  label bits, the framing (:func:`checksum`, :func:`escape`, :func:`unescape`, :func:`frame`)
  and the record header (:class:`RecordHeader`, :func:`make_record`);
- :mod:`~devices.protocols.ge_s5.records`: the host's requests (:data:`PHDB_REQUEST`,
  :data:`WAVE_REQUEST` and their stops), the basic class (:class:`BasicClass`) and the
  displayed-value and wave records;
- :mod:`~devices.protocols.ge_s5.parser`: :class:`GeS5Parser` (bytes to items);
- :mod:`~devices.protocols.ge_s5.emulator`: :class:`GeS5Emulator` (the monitor's side);
- :mod:`~devices.protocols.ge_s5.driver`: :class:`GeS5Driver` (the host's side).

This module re-exports the public names the rest of kapmonitor uses
(``devices.protocols.ge_s5:GeS5Driver`` in the registry).

**Wire.** 19200 baud, 8 data bits, even parity, 1 stop bit, RTS/CTS. Every record, both ways, is
``7E | escaped(record + CHK) | 7E``; inside, ``7E`` goes as ``7D 5E`` and ``7D`` as ``7D 5D``
(bit 5 cleared), the checksum byte included (M1017617 p. 4; its 60-s trend example ends in
``7d 5d 7e``: a checksum of ``7D``, escaped).

**Checksum: the sum of the unescaped record.** M1017617 says so ("summing all bytes in the
Datex-Ohmeda Record"), and both public receivers validate real monitor frames that way (they
unescape first, then sum all but the last byte). Both public *transmitters* instead add the two
escaped bytes ``7D 5E`` / ``7D 5D`` to the sum (icu_devices ``tx_buffer``; VSCapture even keeps
a running total across escapes). That is a bug that never shows for their requests, which
contain no ``7E``/``7D``; a request with such a byte (a ``tx_ival`` of 125 s is ``7D 00``) would
be refused by the monitor. :func:`frame` sums the unescaped bytes; tests/test_ge_s5.py checks this
against the spec's examples and shows the escaped sum being rejected.

**Record** (8005313 §2.2, little-endian, packed): a 40-byte header ``r_len i16`` (whole record
with header, without checksum), ``r_nbr u8``, ``dri_level u8``, ``plug_id u16``, ``r_time u32``
(Unix seconds), 4 reserved bytes, ``r_maintype i16`` (0 PHDB, 1 WAVE, 4 ALARM), then 8 ×
{``sr_offset i16``, ``sr_type u8``} ended by type ``FF``; then at most 1450 data bytes, into which
the offsets point.

**Displayed values** (PHDB). The host requests them once (``phdb_rcrd_type`` 1, ``tx_ival`` ≥ 5 s,
0 stops); the monitor then sends a PHDB record every interval. Its subrecord (type 1, 278 bytes):
``time u32``, a 270-byte class block, ``marker u8``, a reserved byte, ``cl_drilvl_subt u16`` whose
bits 8-11 give the class (0 = basic). The driver asks for the basic class only, so each record has
one subrecord. Basic-class offsets (groups start with ``status u32, label u16``): ECG@0 (hr@6),
NIBP@72 (sys@78, dia@80, mean@82, hr@84), SpO2@118 (SpO2@124, pr@126, ir_amp@128), CO2@132
(et@138, fi@140, rr@142, amb_press@144). Pressures and SpO2 are in 1/100 mmHg and 1/100 %, rates
in 1/min; ``ir_amp`` (the pleth modulation, 1/100 %) is kept as the vendor value
``GE_S5_SPO2_IR_AMP``. EtCO2 and FiCO2 are 1/100 % of the gas: mmHg = % x the ambient pressure
(1/10 mmHg), so 5.00 % is 38.0 mmHg at sea level and 31.5 at 630 mmHg; without a plausible
ambient pressure (400-900 mmHg) they are None and QUESTIONABLE. They are emitted only when the
CO2 group's "module exists" bit is set (a monitor without a CO2 module has no breathing values,
not missing ones), with the rate as ``MDC_AWAY_RESP_RATE``; a rate of 0 while active flags the
CO2 values NO_BREATH. The CO2 wave (type 9, 25 Hz, 1/100 %) comes with option ``co2``.

**Special values.** 8005313 §3.4: values from −32001 down are control codes, so −32000 is the
smallest valid value (VSCapture treats −32001 as valid; the spec does not). They become ``None``
with a flag that says why: −32767 "invalid" is SENSOR_OFF when the group's status says the
measurement is not active (bit 1; bit 0 = module exists) and SEARCHING when it is; −32764 / −32763
(under / over range) are OUT_OF_RANGE; −32766 "not updated", −32765 "discontinuity", −32762 "not
calibrated" and any other code are QUESTIONABLE. ECG status bits 7 (noise) and 8 (artifact) flag
the heart rate ARTIFACT, bit 9 (learning) QUESTIONABLE. The SpO2 group has no status bits of its
own.

**NIBP: one reading per cuff measurement.** The NIBP group repeats the last reading in every
record (the public B650 data shows 115/55/79 in three records 10 s apart), and its label says
what the cuff is doing: bit 5 measuring, bit 7 calibrating, bit 8 "data older than 60 s" (bits 3/4
AUTO/STAT). A :class:`~kapmonitor.core.model.NibpReading` is emitted when

1. the measuring bit was seen set and now is clear: a measurement ended (the normal case: a cuff
   measurement takes 20-40 s, longer than the 5-s interval the driver asks for). If the values are
   then invalid, the measurement failed: a reading of three ``None`` with MEASUREMENT_FAILED;
2. the values differ from the last record's without a measuring phase seen (a phase that fell
   between two records, with a long interval or after lost frames);
3. the "older than 60 s" bit went from set to clear: a new measurement that gave the same numbers;
4. the first record the parser sees shows valid values: the reading on the monitor when the host
   joined; if its "older than 60 s" bit is set, its time is unknown and it is flagged
   QUESTIONABLE.

Records while calibrating are skipped. The reading is stamped at the arrival of the record that
first shows it: the cuff finished at most one interval (5 s) before that.

**Pleth** (WAVE). The host requests it with a 72-byte record (``req_type`` 0 start / 1 stop, then
wave types ended by ``FF``; PLETH is 8). Each returned subrecord is ``act_len i16`` (samples),
``status u16`` (bit 0: gap before this subrecord), ``label u16``, then ``act_len`` i16 samples at
100 Hz in 1/100 % modulation; samples of −32000 and below are control codes (NaN, and the block is
flagged SENSOR_OFF). Each subrecord becomes a ``WaveformBlock(PLETH, fs=100)`` in % whose last
sample is stamped one sample before the record's arrival. The spec says the monitor sends a wave
record "every 1000, 500, 250, 200, 167 or 125 ms" depending on the requested sample rate, without
saying which for which; the emulator sends one every :data:`WAVE_PERIOD` (250 ms, 25 samples),
an assumption the parser does not depend on.

**Framing and damage.** ``7E`` never occurs inside an escaped frame, so the parser cuts the stream
at every ``7E`` and judges each piece alone: a piece that is not a valid escape sequence, is too
short or long, has a wrong checksum (``checksum_errors``) or an ``r_len`` that is not its length
(``framing_errors``) is discarded and costs only itself; the frames around it survive. Bytes before
the first ``7E`` are the end of a frame the host joined late: discarded, not an error. Every
decision depends only on the bytes, so any chunking gives the same items and counters. Items are
stamped by counting back from the chunk's arrival at the line's byte time (19200 baud, 11 bits).
"""

from __future__ import annotations

from devices.protocols.ge_s5.driver import GeS5Driver
from devices.protocols.ge_s5.emulator import GeS5Emulator
from devices.protocols.ge_s5.parser import GeS5Parser
from devices.protocols.ge_s5.records import (
    PHDB_REQUEST,
    PHDB_STOP,
    WAVE_REQUEST,
    WAVE_STOP,
    BasicClass,
    phdb_record,
    wave_record,
)
from devices.protocols.ge_s5.wire import checksum, escape, frame, unescape

__all__ = [
    "PHDB_REQUEST",
    "PHDB_STOP",
    "WAVE_REQUEST",
    "WAVE_STOP",
    "BasicClass",
    "GeS5Driver",
    "GeS5Emulator",
    "GeS5Parser",
    "checksum",
    "escape",
    "frame",
    "phdb_record",
    "unescape",
    "wave_record",
]
