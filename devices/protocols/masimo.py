"""Masimo "ASCII 1" serial output (Rad-8, Radical-7, Rad-87, Rad-97): parser and device emulator.

The wire (shared/reference/device-protocols.md §2): 9600 8N1, no handshake, one CR/LF line about
every second, ``MM/DD/YY HH:MM:SS`` then space-separated ``KEY=value`` tokens whose set varies by
model and firmware::

    03/17/16 19:19:36 SN=---------- SPO2=098% BPM=123 PI=00.55 SPCO=--% SPMET=--.-% SPHB=--.-
    SPOC=-- RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM=000000 EXC=0000C00 EXC1=00000000

(one line on the wire). A value made of dashes is missing. ``EXC`` is a hex bitmask of exception
states (bits below); ``ALARM`` is hex too, but its bits are proprietary and only deduced by third
parties, so it is kept raw and no alarm is derived from it.

The parser works line by line: a line ends at CR or LF (either, so CR/LF, LF/CR and bare LF all
work), and every decision depends only on the line's bytes, never on how the stream was chunked.
A line is accepted only if all of it is well formed: printable ASCII, a plausible date and time,
then ``KEY=value`` tokens whose known keys have values of the right shape and range. Anything else
is counted as a framing error and skipped whole, so a damaged line never yields a wrong value and
never affects its neighbours. A line longer than :data:`MAX_LINE` bytes is dropped as it arrives,
so a stream without line ends cannot grow memory.

**ASCII 2.** Rad-8s leave the factory sending ASCII 2, the trend/printer format: dated lines like
``09/21/08 09:56:12 SpO2=097 PR=069 PI=04.69 EXC=800:SET`` every 2 s (Rad-8 Operator's Manual,
"Trend data format"; the Rad-87 manual says its trend packets are in ASCII 2 format). They show 0
for a missing value, so they are not decoded: the parser recognises them (mixed-case keys such as
``SpO2``, ``PR`` for the rate, or an ``EXC`` value with ``:names``), counts them, and sets
:attr:`MasimoParser.problem` to a sentence telling the user how to switch to ASCII 1, logged once.
Printable lines of another kind, or bytes that are not text at all (wrong baud rate), set a
problem of their own after a few lines.

**Unmapped keys.** SpO2, BPM and PI become :class:`~kapmonitor.core.model.Numeric` items under their
IEEE 11073 codes. The other keys (SPCO, SPMET, SPHB, SPOC, PVI, DESAT, PIDELTA, ALARM, EXC, ...)
have no code in :mod:`kapmonitor.core.codes`; they become :class:`DeviceValue` items under a
vendor key such as ``MASIMO_SPCO`` when the parser is made with ``vendor_values=True``. That is
off by default until the record and JSON output know the type; every line's raw fields stay
available in :attr:`MasimoParser.last_fields` (with the device's own clock in
:attr:`MasimoParser.device_clock`) either way.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import TYPE_CHECKING, ClassVar, Final, Literal

from devices.protocols.base import DeviceEmulator, Parser, ParserStats, SerialSettings
from devices.protocols.emulation import ticks
from devices.serial_driver import SerialDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.model import NO_FLAGS, DeviceValue, Flag, Flags, Measurement, Numeric, Stamp

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession

log = logging.getLogger(__name__)

SERIAL = SerialSettings(9600)
LINE_PERIOD = 1.0  #: seconds between lines

#: Longest line accepted (a Radical-7 line is about 165 bytes; room for firmware with more keys).
MAX_LINE = 512

# EXC bits: Rad-8 Operator's Manual (001-800); 100 and above 800 from the Radical-5/7 list in
# MD PnP's poxrad_discrete.h (github.com/mdpnp, LGPL).
EXC_NO_SENSOR = 0x001
EXC_DEFECTIVE_SENSOR = 0x002
EXC_LOW_PERFUSION = 0x004
EXC_PULSE_SEARCH = 0x008
EXC_INTERFERENCE = 0x010
EXC_SENSOR_OFF = 0x020
EXC_AMBIENT_LIGHT = 0x040
EXC_UNRECOGNIZED_SENSOR = 0x080
EXC_INCOMPATIBLE_SENSOR = 0x100
EXC_LOW_SIGNAL_IQ = 0x400
EXC_SET = 0x800  #: Masimo SET algorithm running in full: not a fault
EXC_NO_CABLE = 0x1000
EXC_INCOMPATIBLE_CABLE = 0x4000
EXC_UNRECOGNIZED_CABLE = 0x8000
EXC_DEFECTIVE_CABLE = 0x10000

_EXC_FLAGS: tuple[tuple[int, Flag], ...] = (
    (
        EXC_NO_SENSOR
        | EXC_DEFECTIVE_SENSOR
        | EXC_SENSOR_OFF
        | EXC_UNRECOGNIZED_SENSOR
        | EXC_INCOMPATIBLE_SENSOR
        | EXC_NO_CABLE
        | EXC_INCOMPATIBLE_CABLE
        | EXC_UNRECOGNIZED_CABLE
        | EXC_DEFECTIVE_CABLE,
        Flag.SENSOR_OFF,
    ),
    (EXC_PULSE_SEARCH, Flag.SEARCHING),
    (EXC_INTERFERENCE | EXC_AMBIENT_LIGHT, Flag.ARTIFACT),
    (EXC_LOW_PERFUSION, Flag.LOW_PERFUSION),
    (EXC_LOW_SIGNAL_IQ, Flag.QUESTIONABLE),
)
_EXC_MASK = 0
for _bits, _flag in _EXC_FLAGS:
    _EXC_MASK |= _bits


def exc_flags(exc: int) -> Flags:
    """The flags an EXC bitmask means for the values on its line."""
    if not exc & _EXC_MASK:
        return NO_FLAGS
    return frozenset(flag for bits, flag in _EXC_FLAGS if exc & bits)


def exc_bits(flags: Flags) -> int:
    """The EXC bits a Masimo sets for a patient in this state (SET always on)."""
    exc = EXC_SET
    if Flag.SENSOR_OFF in flags:
        exc |= EXC_SENSOR_OFF
    if Flag.SEARCHING in flags:
        exc |= EXC_PULSE_SEARCH
    if Flag.ARTIFACT in flags:
        exc |= EXC_INTERFERENCE
    if Flag.LOW_PERFUSION in flags:
        exc |= EXC_LOW_PERFUSION
    if Flag.QUESTIONABLE in flags:
        exc |= EXC_LOW_SIGNAL_IQ
    return exc


VENDOR_PREFIX = "MASIMO_"

#: Wire keys with a kapmonitor code.
CODED_KEYS: dict[str, Code] = {"SPO2": Code.SPO2, "BPM": Code.PULSE_RATE, "PI": Code.PERFUSION}
#: UCUM units of the keys that have none in kapmonitor.core.codes ("1": a count or index).
VENDOR_UNITS: dict[str, str] = {
    "SPCO": "%",  # carboxyhaemoglobin saturation
    "SPMET": "%",  # methaemoglobin saturation
    "SPHB": "g/dL",  # total haemoglobin
    "SPOC": "mL/dL",  # oxygen content
    "PVI": "%",  # pleth variability index
    "DESAT": "1",  # desaturation index
    "PIDELTA": "%",  # PI change
    "ALARM": "1",
    "EXC": "1",
    "EXC1": "1",
}
HEX_KEYS = frozenset({"ALARM", "EXC", "EXC1"})
#: Keys whose value is free text (not a measurement): kept in last_fields only.
TEXT_KEYS = frozenset({"SN"})
#: Highest value of a coded key: its code's physical range (SpO2 100 %, pulse 350 /min, PI 20 %,
#: Masimo's own PI range). The line has no checksum, so a value above it cannot have been
#: measured: the line is taken as damaged.
LIMITS: dict[str, float] = {key: code.physical_range[1] for key, code in CODED_KEYS.items()}

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?\Z")
_DASHES = re.compile(r"[+-]?[-.]*-[-.]*\Z")
_HEX = re.compile(r"[0-9A-Fa-f]+\Z")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_CLOCK = re.compile(rb"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)(?: |\Z)")
_LINE_END = re.compile(rb"[\r\n]")
# bytes.translate() deletes these; anything left means the line is not printable ASCII.
_PRINTABLE = bytes(range(0x20, 0x7F))

#: ASCII 2 lines (or other non-ASCII 1 lines) in a row before the parser says so.
ASCII2_LINES_TO_WARN = 2
FOREIGN_LINES_TO_WARN = 5

ASCII2_PROBLEM = (
    "the oximeter is sending ASCII 2 (trend/printer) output, which kapmonitor does not read: "
    "set its serial output to ASCII 1 (on a Rad-8: setup menu level 3, reached by holding "
    "Enter and Down together for 5 s; on a Rad-87 or Radical-7: the output mode in the "
    "Output/Serial menu)"
)
TEXT_PROBLEM = (
    "the device is sending text that is not Masimo ASCII 1 (for example {sample!r}): "
    "set its serial output to ASCII 1 at 9600 baud"
)
BINARY_PROBLEM = (
    "the bytes from the device are not text lines: check that it is a Masimo oximeter with "
    "serial output ASCII 1 at 9600 baud, 8N1"
)


@dataclass
class MasimoStats(ParserStats):
    """The base counters (``frames_ok`` counts good lines) plus what a Masimo user needs."""

    ascii2_lines: int = 0  #: lines in ASCII 2 (trend) format, also counted as framing errors
    long_lines: int = 0  #: lines dropped for exceeding MAX_LINE bytes


def _number(text: str) -> float | None:
    """``098`` → 98.0, dashes → None; raises ValueError for anything else."""
    if _NUMBER.match(text):
        return float(text)
    if _DASHES.match(text):
        return None
    raise ValueError(text)


class MasimoParser(Parser):
    """Decodes Masimo ASCII 1 lines into SpO2, pulse rate and PI numerics (and vendor values).

    Each good line gives ``Numeric`` items for SPO2, BPM and PI (those the line has), with the
    flags of its EXC; dashes give ``None``. With ``vendor_values`` the other numeric keys follow
    as :class:`DeviceValue` items, in line order.

    Stamps: the ``stamp`` given to :meth:`feed` is the arrival of the chunk's last byte; a line
    is put ``bytes after its end / byte rate`` earlier (one line a second), so lines read from a
    backlog keep their spacing. The device's own clock is not used for stamping: it is kept as
    text in :attr:`device_clock`.
    """

    protocol: ClassVar[str] = "masimo"
    SERIAL: ClassVar[SerialSettings] = SERIAL

    def __init__(self, source: str, *, vendor_values: bool = True) -> None:
        super().__init__(source)
        self.stats: MasimoStats = MasimoStats()
        self.vendor_values = vendor_values
        #: The device's date and time on the last good line, as sent ("03/17/16 19:19:36").
        self.device_clock: str | None = None
        #: The last good line's fields as sent (``%`` stripped), in line order.
        self.last_fields: dict[str, str] = {}
        #: A sentence for the user when the stream is not usable ASCII 1; None when it is.
        self.problem: str | None = None
        self._buf = b""
        self._skipping = False  #: inside an over-long line: drop bytes up to the next line end
        self._acquired = False
        self._lost = False
        self._ascii2_run = 0
        self._foreign_run = 0
        self._binary_run = 0
        self._logged: set[str] = set()

    @property
    def serial_number(self) -> str | None:
        return self.last_fields.get("SN")

    @property
    def pending_bytes(self) -> int:
        """Bytes of a line still arriving."""
        return len(self._buf)

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        stats = self.stats
        out: list[Measurement] = []
        b = self._buf + data if self._buf else data
        n = len(b)
        pos = 0
        if self._skipping:
            m = _LINE_END.search(b)
            if m is None:
                stats.bytes_discarded += n
                self._buf = b""
                return out
            stats.bytes_discarded += m.start()
            pos = m.start()
            self._skipping = False
        find = _LINE_END.search
        while True:
            m = find(b, pos)
            if m is None:
                break
            end = m.start()
            if end > pos:
                self._line(b[pos:end], stamp, n - end - 1, out)
            pos = end + 1
        rest = b[pos:]
        if len(rest) > MAX_LINE:
            self._too_long(len(rest))
            self._skipping = True
            rest = b""
        self._buf = rest
        return out

    # --- one line ---------------------------------------------------------------------------

    def _too_long(self, length: int) -> None:
        self.stats.long_lines += 1
        self._reject(length)
        self._binary_run += 1
        self._check_runs(None)

    def _reject(self, length: int) -> None:
        stats = self.stats
        stats.framing_errors += 1
        stats.bytes_discarded += length
        self._lost = self._acquired

    def _line(self, line: bytes, stamp: Stamp, bytes_after: int, out: list[Measurement]) -> None:
        if len(line) > MAX_LINE:
            self._too_long(len(line))
            return
        if line.translate(None, _PRINTABLE):
            self._reject(len(line))
            self._binary_run += 1
            self._check_runs(None)
            return
        parsed = self._parse(line)
        if parsed is None or parsed is _FOREIGN:
            self._reject(len(line))
            if line.strip():
                self._foreign_run += 1
                self._check_runs(line)
            return
        if parsed is _ASCII2:
            self._reject(len(line))
            self.stats.ascii2_lines += 1
            self._ascii2_run += 1
            self._check_runs(line)
            return
        clock, fields, values = parsed
        self._good(clock, fields)
        self._emit(values, fields.get("EXC"), stamp, bytes_after, out)

    @staticmethod
    def _parse(line: bytes) -> _Line | Literal[_Kind.ASCII2, _Kind.FOREIGN] | None:
        """``(clock, fields, values)`` of an ASCII 1 line; ``_ASCII2`` for an ASCII 2 line;
        ``_FOREIGN`` (or None) for anything else.

        ``fields`` maps each key to its wire text (``%`` stripped), ``values`` lists each
        numeric key with its number (None for dashes), both in line order.
        """
        m = _CLOCK.match(line)
        if m is None:
            return None
        mo, dd, _, hh, mi, ss = (int(g) for g in m.groups())
        if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
            return None
        text = line.decode("ascii")
        tokens = text[17:].split()
        if not tokens:
            return None
        fields: dict[str, str] = {}
        values: list[tuple[str, float | None]] = []
        ascii2 = malformed = False
        cache = _TOKENS
        for token in tokens:
            t = cache.get(token)
            if t is None:
                t = _token(token)
                if len(cache) >= _TOKEN_CACHE_SIZE:
                    cache.clear()
                cache[token] = t
            kind, key, wire, value = t
            if kind is _FOREIGN or key in fields:
                return _FOREIGN
            if kind is _ASCII2:
                ascii2 = True
            elif kind is _BAD:
                malformed = True
            fields[key] = wire
            if kind is _NUMERIC:
                values.append((key, value))
        if ascii2:
            return _ASCII2
        if malformed:
            return _FOREIGN
        return text[:17], fields, values

    def _good(self, clock: str, fields: dict[str, str]) -> None:
        stats = self.stats
        stats.frames_ok += 1
        if self._lost:
            stats.resyncs += 1
            self._lost = False
        self._acquired = True
        self._ascii2_run = self._foreign_run = self._binary_run = 0
        if self.problem is not None:
            log.info("%s: receiving Masimo ASCII 1 lines again", self.source)
            self.problem = None
        self.device_clock = clock
        self.last_fields = fields

    def _check_runs(self, sample: bytes | None) -> None:
        """Say what is wrong once enough lines in a row were unusable; log each kind once."""
        if self._ascii2_run >= ASCII2_LINES_TO_WARN:
            kind, problem = "ascii2", ASCII2_PROBLEM
        elif self._foreign_run >= FOREIGN_LINES_TO_WARN and sample is not None:
            kind = "text"
            problem = TEXT_PROBLEM.format(sample=sample[:40].decode("ascii", "replace"))
        elif self._binary_run + self._foreign_run >= FOREIGN_LINES_TO_WARN:
            kind, problem = "binary", BINARY_PROBLEM
        else:
            return
        self.problem = problem
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("%s: %s", self.source, problem)

    def _emit(
        self,
        values: list[tuple[str, float | None]],
        exc_text: str | None,
        stamp: Stamp,
        bytes_after: int,
        out: list[Measurement],
    ) -> None:
        flags = NO_FLAGS
        if exc_text is not None and _HEX.match(exc_text):
            flags = exc_flags(int(exc_text, 16))
        at = stamp.shifted(-self.back(bytes_after, BYTE_RATE)) if bytes_after else stamp
        source = self.source
        for key, value in values:
            code = CODED_KEYS.get(key)
            if code is not None:
                out.append(Numeric(source, code, value, at, flags))
        if self.vendor_values:
            fields = self.last_fields
            for key, value in values:
                if key not in CODED_KEYS:
                    out.append(
                        DeviceValue(
                            source,
                            VENDOR_PREFIX + key,
                            value,
                            VENDOR_UNITS.get(key, ""),
                            at,
                            flags,
                            fields[key],
                        )
                    )


class _Kind(Enum):
    """What a token is: a numeric field, a text field (SN), malformed, ASCII 2, or not a field at
    all; a line that is not ASCII 1 is ASCII 2 or foreign."""

    NUMERIC = auto()
    TEXT = auto()
    BAD = auto()
    ASCII2 = auto()
    FOREIGN = auto()


_NUMERIC: Final = _Kind.NUMERIC
_TEXT: Final = _Kind.TEXT
_BAD: Final = _Kind.BAD
_ASCII2: Final = _Kind.ASCII2
_FOREIGN: Final = _Kind.FOREIGN
#: An ASCII 1 line, parsed: its clock text, each key's wire text, each numeric key's number.
_Line = tuple[str, dict[str, str], list[tuple[str, float | None]]]
#: Tokens already seen, parsed (most repeat line after line: "SPCO=--%", "SN=0000093112").
_TOKENS: dict[str, tuple[_Kind, str, str, float | None]] = {}
_TOKEN_CACHE_SIZE = 4096


def _token(token: str) -> tuple[_Kind, str, str, float | None]:
    """``(kind, key, wire text without %, number or None)`` for one ``KEY=value`` token."""
    key, eq, text = token.partition("=")
    if not eq or not text or not _KEY.match(key):
        return _FOREIGN, key, text, None
    if text[-1] == "%":
        text = text[:-1]
    if not key.isupper() or key == "PR" or (key == "EXC" and ":" in text):
        return _ASCII2, key, text, None
    if key in TEXT_KEYS:
        return _TEXT, key, text, None
    if key in HEX_KEYS:
        if _HEX.match(text):
            return _NUMERIC, key, text, float(int(text, 16))
        if _DASHES.match(text):
            return _NUMERIC, key, text, None
        return _BAD, key, text, None
    try:
        value = _number(text)
    except ValueError:
        if key in CODED_KEYS or key in VENDOR_UNITS:
            return _BAD, key, text, None
        return _NUMERIC, key, text, None  # an unknown key with a value of its own kind
    if value is not None and key in LIMITS and not 0.0 <= value <= LIMITS[key]:
        return _BAD, key, text, None
    return _NUMERIC, key, text, value


# --- the device ---------------------------------------------------------------------------------

#: The emulator's clock at session time 0 and its serial number (fixed, so output is reproducible).
EMULATOR_START = datetime(2024, 1, 15, 9, 0, 0)
EMULATOR_SN = "0000071234"


def format_line(
    when: datetime,
    *,
    spo2: float | None,
    bpm: float | None,
    pi: float | None,
    exc: int = EXC_SET,
    alarm: int = 0,
    serial_number: str = EMULATOR_SN,
) -> bytes:
    """One Radical-7 ASCII 1 line (with CR/LF) for these values; ``None`` is sent as dashes.

    SpO2 and BPM are rounded to whole numbers and PI to two decimals, as the device shows them.
    """
    spo2_s = "---" if spo2 is None or math.isnan(spo2) else f"{min(max(round(spo2), 0), 100):03d}"
    bpm_s = "---" if bpm is None or math.isnan(bpm) else f"{min(max(round(bpm), 0), 999):03d}"
    pi_s = "--.--" if pi is None or math.isnan(pi) else f"{min(max(pi, 0.0), 99.99):05.2f}"
    return (
        f"{when:%m/%d/%y %H:%M:%S} SN={serial_number} SPO2={spo2_s}% BPM={bpm_s} "
        f"PI={pi_s} SPCO=--% SPMET=--.-% SPHB=--.- SPOC=-- "
        f"RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM={alarm:06X} EXC={exc:07X} "
        f"EXC1=00000000\r\n"
    ).encode("ascii")


#: Bytes of one emulated line; at one line a second, also the device's average byte rate.
LINE_BYTES = len(format_line(EMULATOR_START, spo2=None, bpm=None, pi=None))
BYTE_RATE = LINE_BYTES / LINE_PERIOD


class MasimoEmulator(DeviceEmulator):
    """A Radical-7 sending ASCII 1 from a simulated patient: line k at session time k s.

    The line shows the vitals at its own time, rounded as the device shows them, with EXC from
    the flags; SpCO, SpMet, SpHb and the rest are dashes (the simulated patient has none). Its
    clock reads ``start`` plus the session time. A line is emitted whole by the call whose
    ``[t0, t1)`` contains its time, so the bytes do not depend on how the interval is cut.
    """

    protocol: ClassVar[str] = MasimoParser.protocol
    SERIAL: ClassVar[SerialSettings] = SERIAL

    def __init__(
        self,
        session: KapSession,
        *,
        start: datetime = EMULATOR_START,
        serial_number: str = EMULATOR_SN,
        speed: float = 1.0,
    ) -> None:
        super().__init__(session, speed=speed)
        self.start = start
        self.serial_number = serial_number

    def line(self, k: int) -> bytes:
        t = k * LINE_PERIOD
        v = self.session.vitals(t)
        return format_line(
            self.start + timedelta(seconds=t),
            spo2=v.spo2,
            bpm=v.heart_rate,
            pi=v.perfusion_index,
            exc=exc_bits(v.flags),
            serial_number=self.serial_number,
        )

    def emit(self, t0: float, t1: float) -> bytes:
        return b"".join(self.line(k) for k in ticks(t0, t1, 1 / LINE_PERIOD))


class MasimoDriver(SerialDriver[MasimoParser]):
    """A Masimo oximeter sending ASCII 1 on a serial port (``masimo@PORT``)."""

    name = "masimo"
    parser_class = MasimoParser
    emulator_class = MasimoEmulator
    serial_settings = SERIAL
    byte_rate = BYTE_RATE
