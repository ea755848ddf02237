"""The two halves of a wire protocol: a parser for the host and an emulator for the simulator.

A parser is a pure byte-stream decoder: it accepts chunks of any size (a serial read returns
whatever has arrived), resynchronises after corrupt bytes, counts what it had to throw away and
never raises for any input. It does not read clocks: the caller passes the arrival stamp of each
chunk, so that time is stamped once, by the device layer.

An emulator plays the device: given the simulated patient and the simulated time it produces the
exact bytes the device would send, and answers the host's commands.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from kapmonitor.model import Measurement, Stamp

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


class Parser(ABC):
    """Turns a device's byte stream into measurements."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stats = ParserStats()
        #: A sentence for the user when the stream shows the device is set up wrongly
        #: (e.g. a Masimo sending ASCII 2); None while all is well.
        self.problem: str | None = None

    def feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        """Consume ``data`` (any chunking) that arrived at ``stamp``; return completed items.

        Never raises for any input; bad bytes are counted in :attr:`stats` and skipped.
        """
        if not data:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)  # a bytearray or memoryview from a port
        self.stats.bytes_in += len(data)
        return self._feed(data, stamp)

    @abstractmethod
    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        """The protocol's decoding of ``data`` (non-empty bytes, already in ``bytes_in``)."""

    def flush(self) -> list[Measurement]:
        """Items held back for a block the stream ended inside (the end of a file)."""
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
