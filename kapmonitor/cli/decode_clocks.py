"""Where ``decode`` places a plain byte file's bytes in time: on the device's own clock.

A capture carries the real arrival time of every read; a plain byte file carries none, so
``decode`` gives each piece of it the time the device's own clock says it was sent, and the
parser stamps the items in it exactly as it stamps a live read (the arrival of the piece's last
byte, earlier items counted back at the device's rate). Time never runs backwards.

* Fixed-rate protocols stream a fixed number of bytes per tick of the device's clock, so the
  byte position *is* that clock: Nonin format 2 and 7 (75 frames/s of 5 bytes: a packet every
  1/3 s), Nonin format 8 (one 4-byte packet a second), Contec (60 real-time packets/s of 9
  bytes). A stretch of bytes the parser skips counts as the time the device took to send it.
* Masimo sends one line a second that begins with its own date and time: each line is placed at
  that time (:class:`LineClock`); a line without a readable clock stays at the previous line's.
* Told the arrivals are guesses (``Parser.guessed_arrivals``), a parser that reads the
  device's own clock anchors it once, where the bytes put the first message, and places every
  later one on that clock alone (live, arrivals stay the reference):
  - the IntelliVue, every poll result on the monitor's relative time (1/8 ms ticks);
  - the S/5, every record on its record time (whole seconds), fed frame by frame
    (:class:`FrameByteClock`, so the anchoring frame ends a piece whatever the read size);
    wave blocks follow on by their sample rate and jump to the record time after a gap;
  - the Capnostream, every numerics message on the device's time (whole seconds), fed at the
    byte rate (:class:`ByteClock`); its CO2 wave stays on the byte rate (the one-byte message
    number wraps every 12.8 s and says nothing of the device's clock).
  A device time equal to or set back from the last one holds at the last stamp.

Pieces are large (the read size, :data:`READ_SIZE`) except where the clock needs a cut (one
line); memory stays bounded by the read size whatever the file's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

READ_SIZE = 1 << 18  #: 256 KiB a read: few parser calls, bounded memory

#: What the decode documentation says of each protocol's clock.
CLOCKS: dict[str, str] = {
    "nonin2": "the frame clock: 75 frames/s of 5 bytes, 3 packets a second",
    "nonin7": "the frame clock: 75 frames/s of 5 bytes, 3 packets a second",
    "nonin8": "the packet clock: one 4-byte packet a second",
    "contec": "the packet clock: 60 real-time packets/s of 9 bytes",
    "masimo": "each line's own date and time (one line a second)",
    "intellivue": "the monitor's relative time (1/8 ms ticks), from its first poll",
    "ge-s5": "each record's own time (whole seconds), from the first record; waves by fs",
    "capnostream": "the numerics' device time (whole seconds); the CO2 wave on the byte rate",
}


class Clock(Protocol):
    """Cuts a plain file's bytes into pieces, each with the device time of its last byte."""

    def pieces(self, block: bytes) -> Iterator[tuple[float, bytes]]:
        """``(seconds from the start, piece)`` for the next ``block`` of the file."""
        ...  # pragma: no cover - a Protocol

    def end(self) -> Iterator[tuple[float, bytes]]:
        """What the clock held back, at the end of the file."""
        ...  # pragma: no cover - a Protocol


class ByteClock:
    """The byte position at the device's byte rate: a block at the time its last byte was sent."""

    def __init__(self, byte_rate: float) -> None:
        self._rate = byte_rate
        self._done = 0

    def pieces(self, block: bytes) -> Iterator[tuple[float, bytes]]:
        self._done += len(block)
        yield self._done / self._rate, block

    def end(self) -> Iterator[tuple[float, bytes]]:
        return iter(())


_LINE_ENDS = re.compile(rb"[\r\n]")  # one character: a line ends where the parser says
_LINE_CLOCK = re.compile(rb"[\r\n]*(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)")
MAX_HELD = 1 << 16  #: a "line" longer than this is no line: passed on at the current time


def _line_clock(line: bytes) -> datetime | None:
    """The date and time a Masimo ASCII 1 line begins with (``MM/DD/YY HH:MM:SS``), or None."""
    m = _LINE_CLOCK.match(line)
    if m is None:
        return None
    mo, dd, yy, hh, mi, ss = (int(g) for g in m.groups())
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError:  # 02/30, 25:61: a damaged clock is no clock
        return None


class LineClock:
    """Each line at its own clock: the first line where the byte rate puts its end, each later
    one that many seconds on as its clock says. A line whose clock is unreadable or set back
    (the device's clock was reset, or another device's lines follow) moves on by its own length
    at the byte rate: time never runs backwards and two lines never share an instant. A clock
    set back becomes the new reference for the lines after it."""

    def __init__(self, byte_rate: float) -> None:
        self._rate = byte_rate
        self._held = b""
        self._done = 0  #: bytes before ``_held``
        self._t: float | None = None
        self._last: datetime | None = None  #: the last readable clock, and its line's time
        self._last_t = 0.0

    def _at(self, line: bytes, end: int) -> float:
        clock = _line_clock(line)
        if self._t is None:  # the first line: where the byte rate puts it
            self._t = end / self._rate
        elif clock is not None and self._last is not None and clock > self._last:
            on_clock = self._last_t + (clock - self._last).total_seconds()
            self._t = max(self._t, on_clock)
        elif line.strip():  # no readable clock, or one set back: its length at the byte rate
            self._t += len(line) / self._rate
        if clock is not None:
            self._last, self._last_t = clock, self._t
        return self._t

    def pieces(self, block: bytes) -> Iterator[tuple[float, bytes]]:
        data = self._held + block if self._held else block
        pos = 0
        for m in _LINE_ENDS.finditer(data):
            end = m.end()
            yield self._at(data[pos:end], self._done + end), data[pos:end]
            pos = end
        self._done += pos
        self._held = data[pos:]
        if len(self._held) > MAX_HELD:
            yield from self.end()

    def end(self) -> Iterator[tuple[float, bytes]]:
        if self._held:
            held, self._held = self._held, b""
            self._done += len(held)
            yield (self._t if self._t is not None else self._done / self._rate), held


class FrameByteClock:
    """The byte rate, cut after every frame flag: for a protocol whose parser counts back inside
    a read at the line's speed (the S/5: 19,200 baud), not at the device's average rate, each
    frame gets the time of its own last byte at the average rate."""

    def __init__(self, byte_rate: float, flag: bytes) -> None:
        self._rate = byte_rate
        self._flag = flag
        self._done = 0

    def pieces(self, block: bytes) -> Iterator[tuple[float, bytes]]:
        pos, find, flag = 0, block.find, self._flag
        while pos < len(block):
            end = find(flag, pos)
            end = len(block) if end < 0 else end + 1
            self._done += end - pos
            yield self._done / self._rate, block[pos:end]
            pos = end

    def end(self) -> Iterator[tuple[float, bytes]]:
        return iter(())


_S5_FLAG = b"\x7e"  #: the S/5's frame flag (devices.protocols.ge_s5.wire.FLAG)


def clock_for(protocol: str, byte_rate: float) -> Clock:
    """The clock a plain file of ``protocol`` is decoded on (see the module notes)."""
    if protocol == "masimo":
        return LineClock(byte_rate)
    if protocol == "ge-s5":
        return FrameByteClock(byte_rate, _S5_FLAG)
    return ByteClock(byte_rate)


def clocks_text() -> str:
    """The per-protocol list for ``decode --help``."""
    return "\n".join(f"  {name:12} {what}" for name, what in CLOCKS.items())
