"""The two halves of a wire protocol: a parser for the host and an emulator for the simulator.

A parser is a pure byte-stream decoder: it accepts chunks of any size (a serial read returns
whatever has arrived), resynchronises after corrupt bytes, counts what it had to throw away and
never raises for any input. It does not read clocks: the caller passes the arrival stamp of each
chunk, so that time is stamped once, by the device layer.

Every item a parser emits passes :class:`OutputChecks` in :meth:`Parser.feed`, the one place
where the rules every protocol shares are kept:

* **Physical range.** A numeric or NIBP value outside its code's
  :attr:`~kapmonitor.core.codes.CodeInfo.physical_range` keeps its number and is flagged
  ``out-of-range`` (the alarm engine never judges it against a limit); a value that is not a
  finite number is None, flagged the same.
* **Jumps.** A value that moves further than its code's
  :attr:`~kapmonitor.core.codes.CodeInfo.max_jump` from the device's last unflagged value, sooner
  than the jump's window, is flagged ``questionable``; so is an NIBP reading whose mean is not
  between its diastolic and systolic.
* **Time never runs backwards.** Stamps of one stream (a code's numerics, the NIBP readings,
  a waveform, a vendor value) never decrease: an item stamped before the previous item of its
  stream is moved up to it.

Back-dating: a chunk's stamp is the arrival of its last byte, and parsers place the items that
ended earlier in the chunk by counting back at the device's byte rate. A packet emitted for a
chunk ended inside it, so after the previous chunk arrived (or after :meth:`Parser.begin`, the
connection's start): :meth:`Parser.back` never counts back further than that. When a chunk holds
more bytes than the device sends in the time since the previous one (a backlog, a flood, a
simulator playing faster than real time), its items are spread over that time instead of
reaching back before it.

An emulator plays the device: given the simulated patient and the simulated time it produces the
exact bytes the device would send, and answers the host's commands.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    DeviceValue,
    Flag,
    Measurement,
    NibpReading,
    Numeric,
    Stamp,
    WaveformBlock,
)

if TYPE_CHECKING:
    from devices.sim.physiology import KapSession


@dataclass
class ParserStats:
    """Counters a device status line shows; they only ever grow."""

    bytes_in: int = 0
    frames_ok: int = 0
    checksum_errors: int = 0
    framing_errors: int = 0  #: bytes or frames that did not fit the protocol's structure
    bytes_discarded: int = 0
    resyncs: int = 0  #: times the parser lost and found the frame boundary again

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SerialSettings:
    """The line settings a protocol needs, in pyserial's terms."""

    baudrate: int
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rtscts: bool = False


_NIBP = "nibp"
_VALUE = "value"
_INF = math.inf
_OUT_OF_RANGE = frozenset((Flag.OUT_OF_RANGE,))
_QUESTIONABLE = frozenset((Flag.QUESTIONABLE,))


class _Stream:
    """What the checks remember of one stream: its last stamp and, for a code, its limits and
    the last value that passed them."""

    __slots__ = ("high", "jump", "last", "low", "ref", "ref_mono", "window")

    def __init__(self, code: Code | None = None) -> None:
        self.last = -_INF  #: the latest stamp (mono) emitted
        info = code.info if code is not None else None
        self.low, self.high = info.physical_range if info else (-_INF, _INF)
        self.jump, self.window = (info.max_jump if info else None) or (_INF, 0.0)
        self.ref: float | None = None  #: the last value that passed the checks…
        self.ref_mono = -_INF  #: …and its stamp


class OutputChecks:
    """The checks every item of one parser passes (see the module notes); state per stream."""

    def __init__(self) -> None:
        #: Per stream: a code's numerics, NIBP, a vendor key; and each waveform's.
        self._streams: dict[object, _Stream] = {}
        self._waves: dict[Code, _Stream] = {}

    def _stream(self, key: object, code: Code | None) -> _Stream:
        stream = self._streams[key] = _Stream(code)
        return stream

    def _wave_stream(self, code: Code) -> _Stream:
        stream = self._waves[code] = _Stream()
        return stream

    def __call__(self, items: list[Measurement]) -> list[Measurement]:
        """``items`` with flags added and stamps moved up where the rules say (in place)."""
        streams = self._streams
        waves = self._waves
        for i, item in enumerate(items):
            stamp = item.stamp
            mono = stamp.mono
            if isinstance(item, Numeric):  # the common case, inline: every parser emits numerics
                code = item.code
                st = streams.get(code) or self._stream(code, code)
                value = item.value
                if mono < st.last:
                    items[i] = self._numeric(item, _moved_up(stamp, st.last), st)
                elif value is None:
                    st.last = mono
                elif st.low <= value <= st.high and (
                    st.ref is None
                    or mono - st.ref_mono >= st.window
                    or abs(value - st.ref) <= st.jump
                ):
                    st.last = st.ref_mono = mono
                    st.ref = value
                else:
                    items[i] = self._numeric(item, stamp, st)
                continue
            if isinstance(item, WaveformBlock):
                st = waves.get(item.code) or self._wave_stream(item.code)
            else:
                key = _NIBP if isinstance(item, NibpReading) else (_VALUE, item.key)
                st = streams.get(key) or self._stream(key, None)
            if mono < st.last:
                stamp = _moved_up(stamp, st.last)
            else:
                st.last = mono
            if isinstance(item, NibpReading):
                items[i] = self._nibp(item, stamp)
            elif stamp is not item.stamp:
                items[i] = _restamped(item, stamp)
        return items

    @staticmethod
    def _numeric(item: Numeric, stamp: Stamp, st: _Stream) -> Numeric:
        """``item`` at ``stamp`` (moved up or not), judged by its code's range and jump."""
        mono = st.last = stamp.mono
        value = item.value
        flags = item.flags
        if value is not None:
            if not st.low <= value <= st.high:
                if not math.isfinite(value):
                    value = None
                flags = flags | _OUT_OF_RANGE
            elif (
                st.ref is not None
                and mono - st.ref_mono < st.window
                and abs(value - st.ref) > st.jump
            ):
                flags = flags | _QUESTIONABLE
            else:
                st.ref, st.ref_mono = value, mono
        if flags is item.flags and stamp is item.stamp:
            return item
        return Numeric(item.source, item.code, value, stamp, flags)

    def _nibp(self, item: NibpReading, stamp: Stamp) -> NibpReading:
        flags = item.flags
        parts = []
        for code, value in item.parts():
            low, high = code.info.physical_range
            if value is not None and not low <= value <= high:
                flags = flags | _OUT_OF_RANGE
                value = value if math.isfinite(value) else None
            parts.append(value)
        sys_, dia, mean = parts
        if (
            sys_ is not None
            and dia is not None
            and (sys_ < dia or (mean is not None and not dia <= mean <= sys_))
        ):
            flags = flags | _QUESTIONABLE  # a cuff cannot measure that
        if flags is item.flags and stamp is item.stamp:
            return item
        return NibpReading(item.source, sys_, dia, mean, stamp, flags)


def _moved_up(stamp: Stamp, mono: float) -> Stamp:
    """``stamp`` moved up to ``mono`` exactly (``shifted`` would round)."""
    return Stamp(mono, stamp.wall + (mono - stamp.mono))


def _restamped(item: Measurement, stamp: Stamp) -> Measurement:
    if isinstance(item, WaveformBlock):
        return WaveformBlock(item.source, item.code, stamp, item.fs, item.samples, item.flags)
    assert isinstance(item, DeviceValue)
    return DeviceValue(item.source, item.key, item.value, item.unit, stamp, item.flags, item.text)


class Parser(ABC):
    """Turns a device's byte stream into measurements."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stats = ParserStats()
        #: A sentence for the user when the stream shows the device is set up wrongly
        #: (e.g. a Masimo sending ASCII 2); None while all is well.
        self.problem: str | None = None
        self._checks = OutputChecks()
        #: ``mono`` of the previous chunk's stamp (or of :meth:`begin`): nothing in a later
        #: chunk arrived before it.
        self._floor: float | None = None
        #: Seconds a byte of the current chunk may be counted back at most (see :meth:`back`).
        self._max_back_per_byte = _INF
        #: Whether the stamps given to :meth:`feed` are guesses, not arrivals (``decode`` of a
        #: plain file places bytes by the byte rate): a parser that reads the device's own clock
        #: then places items by that clock alone. Live, arrivals are real and stay the reference.
        self.guessed_arrivals = False

    def begin(self, stamp: Stamp) -> None:
        """A connection opened at ``stamp``: no byte that follows arrived before it."""
        if self._floor is None or stamp.mono > self._floor:
            self._floor = stamp.mono

    def feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        """Consume ``data`` (any chunking) that arrived at ``stamp``; return completed items.

        Never raises for any input; bad bytes are counted in :attr:`stats` and skipped.
        """
        if not data:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)  # a bytearray or memoryview from a port
        self.stats.bytes_in += len(data)
        floor = self._floor
        mono = stamp.mono
        if floor is None:
            self._max_back_per_byte = _INF
            self._floor = mono
        elif mono > floor:
            self._max_back_per_byte = (mono - floor) / len(data)
            self._floor = mono
        else:
            self._max_back_per_byte = 0.0
        items = self._feed(data, stamp)
        return self._checks(items) if items else items

    def back(self, bytes_after: int, byte_rate: float) -> float:
        """Seconds before the chunk's stamp at which the byte ``bytes_after`` bytes before the
        chunk's last one arrived: at the device's ``byte_rate``, but never before the previous
        chunk (or the connection's start); ``bytes_after`` counts bytes of the current chunk."""
        back = bytes_after / byte_rate
        cap = bytes_after * self._max_back_per_byte
        return cap if cap < back else back

    @abstractmethod
    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        """The protocol's decoding of ``data`` (non-empty bytes, already in ``bytes_in``)."""

    def flush(self) -> list[Measurement]:
        """Items held back for a block the stream ended inside (the end of a file)."""
        items = self._flush_held()
        return self._checks(items) if items else items

    def _flush_held(self) -> list[Measurement]:
        """The protocol's held-back items, for :meth:`flush`; most hold none."""
        return []


class DeviceEmulator(ABC):
    """Produces what a device sends, byte for byte, from a simulated patient."""

    #: Seconds of simulated time that one call to :meth:`emit` should cover at most.
    tick: ClassVar[float] = 0.1

    def __init__(self, session: KapSession, *, speed: float = 1.0) -> None:
        self.session = session
        #: How much faster than real time the session plays: a device's timeout for the host
        #: (a keep-alive it expects) is real time, so it lasts ``speed`` times longer in session
        #: time.
        self.speed = speed

    @abstractmethod
    def emit(self, t0: float, t1: float) -> bytes:
        """The bytes the device sends between session times ``t0`` and ``t1`` (seconds)."""

    def on_host_bytes(self, data: bytes, t: float) -> bytes:
        """The device's reply to bytes the host sent at session time ``t``; most send none."""
        return b""
