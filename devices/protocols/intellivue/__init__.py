"""Philips IntelliVue Data Export over MIB/RS232 (MP20-MP90, MX series): parser, emulator, driver.

**Where things live.** This package's modules each do one job, in import order (each imports
only the ones before it):

- :mod:`~devices.protocols.intellivue.nomenclature`: the codes and constants: serial settings,
  timing, session SPDU and ROSE types, object classes, attribute and physio ids, the maps to
  kapmonitor codes (:data:`PHYSIO_CODES`, :data:`PHYSIO_NAMES`, :data:`UNITS`), MeasurementState
  bits and FLOAT specials;
- :mod:`~devices.protocols.intellivue.wire`: framing (:func:`fcs`, :func:`escape`,
  :func:`unescape`, :func:`frame`) and the FLOAT and AbsoluteTime encodings;
- :mod:`~devices.protocols.intellivue.messages`: building the messages (association, release,
  abort, polls, the MDS create confirmation, the wave priority list) and decoding one frame's user
  data (:class:`Obs`, :class:`PollReply`, :class:`Message`, :func:`parse_message`);
- :mod:`~devices.protocols.intellivue.parser`: :class:`IntellivueParser` (frames to items and
  session events);
- :mod:`~devices.protocols.intellivue.emulator`: :class:`IntellivueEmulator` (the monitor's side);
- :mod:`~devices.protocols.intellivue.driver`: :class:`IntellivueDriver` (the host's side).

This module re-exports the public names the rest of kapmonitor uses
(``devices.protocols.intellivue:IntellivueDriver`` in the registry).

The wire (shared/reference/device-protocols.md §4; Philips "Data Export Interface Programming
Guide" 4535 642 59271): 115200 or 19200 8N1 on the monitor's MIB port set to *Data Export*.
Every message, both ways, is one frame ``C0 | 11 01 LEN(u16 BE) | user data | FCS | C1``; inside
the frame ``C0``, ``C1`` and ``7D`` go out as ``7D, b ^ 0x20`` and ``7D C1`` aborts a frame. The
FCS is CRC-16/X.25 (PPP's: init FFFF, reflected poly 0x8408, complemented, LSB first) over header
and user data; the spec's vectors (``3A 71`` -> ``9B 26``, ``3A 91`` -> ``95 C1``) are tests. It
is computed with :func:`binascii.crc_hqx` on bit-reversed bytes (the same CRC, reflected), so a
frame's check runs at C speed.

**Session.** The host sends an Association Request (a session SPDU, first byte ``0D``); the
monitor answers with an Association Result (``0E``; ``0C`` refuses) and an MDS Create Event
Report (a ROSE ``ROIV`` confirmed event report, ``NOM_NOTI_MDS_CREAT``), which it repeats until
the host confirms it with an event report result carrying the **same invoke id**. Then the host
sends Extended Poll requests (``NOM_ACT_POLL_MDIB_DATA_EXT``) for numerics
(``NOM_MOC_VMO_METRIC_NU``) and real-time waves (``NOM_MOC_VMO_METRIC_SA_RT``) with a poll
period attribute (``NOM_ATTR_TIME_PD_POLL``); for that period the monitor sends a poll result
every 1.024 s (numerics) or 256 ms (waves) with a growing sequence number. The association
times out when the host is silent for 3 x the negotiated minimum poll period, clamped to
10-130 s, so the host must keep talking; it ends with a Release Request (``09``) answered by a
Release Response (``0A``); either side may abort (``19``).

**Keep-alive and renewal.** :class:`IntellivueDriver` re-sends both extended polls every
:data:`KEEP_ALIVE_S` (3 s, inside the smallest possible timeout of 10 s): the polls are the
keep-alive. In the two real MP90 sessions (tests/data/intellivue-mp90) the numerics poll's
sequence number restarts at 0 when the host repeats its request, with no gap and no duplicate on
the monitor's 1.024-s grid, so a repeated request replaces the running one; the emulator does
exactly that.

**What the parser emits.** Per numerics poll result, each ``NOM_ATTR_NU_VAL_OBS`` becomes a
:class:`Numeric` when its physio id maps to a code in :data:`PHYSIO_CODES` (HR, SpO2, pleth
pulse rate, perfusion; and breathing: ``NOM_RESP_RATE`` 0x500A, the chest impedance rate,
``NOM_AWAY_RESP_RATE`` 0x5012, ``NOM_AWAY_CO2_ET`` 0x50B0 and ``NOM_AWAY_CO2_INSP_MIN`` 0x50BA,
CO2 in kPa converted to mmHg, in any other unit None and QUESTIONABLE) and a :class:`DeviceValue`
under ``INTELLIVUE_<name>`` otherwise (logged
once per id, never dropped). NIBP is the compound ``NOM_ATTR_NU_CMPD_VAL_OBS`` (sys/dia/mean,
``4A05``/``4A06``/``4A07``) with the measurement's own time ``NOM_ATTR_TIME_STAMP_ABS``; the monitor
repeats it in every poll, so a :class:`NibpReading` is emitted once per cuff measurement: when
that time stamp differs from the last one seen for the object and no value carries
``MSMT_ONGOING`` (the cuff is measuring). The reading present when the parser starts is emitted
too if it has values (stamped at its own, older time); an all-NaN one is the monitor's "no
reading yet". A new time stamp with no valid value is a failed measurement (``None`` values,
:attr:`Flag.MEASUREMENT_FAILED`). A ``4BB4`` wave (pleth) in ``NOM_ATTR_SA_VAL_OBS`` becomes a
:class:`WaveformBlock` per result (32 samples at 125 Hz on an MP90); its rate is
``NOM_ATTR_TIME_PD_SAMP`` when the monitor sent it, else samples / 256 ms (the MP90 sends only
the dynamic attributes, as in the real sessions); ``NOM_ATTR_SA_SPECN`` (significant bits) and
``NOM_ATTR_SCALE_SPECN_I16`` (counts to physical units) are applied when present, else the
samples are the monitor's counts. The CO2 wave (``NOM_AWAY_CO2`` 0x50AC; the driver's priority
list asks for it beside the pleth) is kept the same way as :data:`Code.CO2`, flagged QUESTIONABLE
until a scale has been seen (its counts are not mmHg; the emulator sends the scale with the
first result of each poll). Other waves (ECG, respiration) are counted, logged once and not kept:
:class:`DeviceValue` holds numbers, not waves. Alarm polls are decoded as frames only.

**Values.** FLOAT is an 8-bit signed exponent and a 24-bit signed mantissa, value = mantissa x
10^exponent; NaN (``7FFFFF``) is ``None``; NRes (``800000``) and +-INF (``7FFFFE``/``800002``) are
``None`` with :attr:`Flag.OUT_OF_RANGE`. Measurement state: INVALID -> ``None`` with
MEASUREMENT_FAILED; UNAVAILABLE -> ``None``; QUESTIONABLE and CALIBRATION_ONGOING ->
QUESTIONABLE; DEMO and TEST data -> :attr:`Flag.DEMO` (not the patient's values). NIBP in kPa
is converted to mmHg.

**Time.** The parser reads no clock: a frame ends ``bytes after it in the chunk / BYTE_RATE``
before the chunk's stamp. Items carry the monitor's own time: a poll result's relative time
(1/8 ms ticks) is placed on the host clock through the earliest-arriving frame (a frame can only
be late, never early); NIBP's absolute time is placed through the (absolute, relative) pair of
the MDS create event. So pleth blocks are gapless at the monitor's rate and a cuff reading is
stamped when the cuff measured. A wave result's relative time is taken as its first sample's.

**Both directions.** A capture of the shared line holds the host's frames too (association
request, polls, results for the create event); they are good frames that give no items, so
``decode`` reads such a file as well. The public MP90 sessions hold the monitor's side only.

**Robustness.** Frames are found with ``bytes.find`` on the delimiters; a ``C0`` inside a frame
means the frame was cut (it is dropped and the new one starts there), so a damaged region never
costs a frame outside it. Any chunking gives the same items and counters. A frame that passes the
FCS but does not parse is counted in ``messages_malformed``; nothing raises for any input.
"""

from __future__ import annotations

from devices.protocols.intellivue.driver import IntellivueDriver
from devices.protocols.intellivue.emulator import IntellivueEmulator
from devices.protocols.intellivue.messages import (
    ABORT,
    ASSOCIATION_REQUEST,
    RELEASE_REQUEST,
    RELEASE_RESPONSE,
    parse_message,
)
from devices.protocols.intellivue.parser import IntellivueParser
from devices.protocols.intellivue.wire import decode_float, encode_float, fcs, fcs_bytes, frame

__all__ = [
    "ABORT",
    "ASSOCIATION_REQUEST",
    "RELEASE_REQUEST",
    "RELEASE_RESPONSE",
    "IntellivueDriver",
    "IntellivueEmulator",
    "IntellivueParser",
    "decode_float",
    "encode_float",
    "fcs",
    "fcs_bytes",
    "frame",
    "parse_message",
]
