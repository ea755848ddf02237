"""What the wire-protocol tests share: the connection's start, hypothesis settings, stamping
chunks, damaging a stream, the parsers' byte accounting, and a pty that keeps what the
device wrote.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from devices.protocols.base import Parser
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.model import DeviceValue, Measurement, NibpReading, Numeric, Stamp

ORIGIN = Stamp(1000.0, 1.7e9)  #: when the connection opened (or the stream's first byte)
PTY = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def hypo(max_examples: int | None = None) -> settings:
    """Hypothesis settings for parser tests: no deadline (a slow CI machine is no failure)."""
    if max_examples is None:
        return settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    return settings(
        deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=max_examples
    )


def at_byte_rate(rate: float) -> Callable[[int], Stamp]:
    """Chunk stamps by the stream's byte count: the bytes before ``end`` arrived at ``rate``
    bytes a second from ``ORIGIN``."""
    return lambda end: ORIGIN.shifted(end / rate)


def every(step: int, stream: bytes) -> list[int]:
    """Cuts every ``step`` bytes."""
    return list(range(step, len(stream), step))


def mutate(segment: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``segment`` with each edit ``(kind, where, value)`` applied: 0 flips bit ``value % 8`` of
    a byte, 1 inserts ``value``, 2 deletes a byte (``where`` wraps around the segment)."""
    out = bytearray(segment)
    for kind, where, value in edits:
        i = where % (len(out) + 1)
        if kind == 0 and i < len(out):
            out[i] ^= 1 << (value % 8)  # flip a bit
        elif kind == 1:
            out.insert(i, value)
        elif i < len(out):
            del out[i]
    return bytes(out)


def comparable(items: list[Measurement]) -> list[tuple[object, ...]]:
    """Items as tuples without their stamps, NaN samples as -1e9, for equality."""
    out: list[tuple[object, ...]] = []
    for it in items:
        if isinstance(it, Numeric):
            out.append(("n", it.code, it.value, it.flags))
        elif isinstance(it, NibpReading):
            out.append(("p", it.systolic, it.diastolic, it.mean, it.flags))
        elif isinstance(it, DeviceValue):
            out.append(("v", it.key, it.value, it.text, it.flags))
        else:
            samples = tuple(np.nan_to_num(it.samples, nan=-1e9).tolist())
            out.append(("w", it.code, it.fs, samples, it.flags))
    return out


#: Per protocol, the bytes of a parser's counters that went into what it decoded: with the bytes
#: it discarded and those it still holds, every byte it was fed.
_DECODED: dict[str | None, Callable[[Parser], int]] = {
    "nonin2": lambda p: 125 * p.stats.packets_ok,
    "nonin7": lambda p: 125 * p.stats.packets_ok,
    "nonin8": lambda p: 4 * p.stats.packets_ok,
    "contec": lambda p: p.stats.bytes_in_packets,
    "ge-s5": lambda p: p.stats.bytes_in_frames,
    "intellivue": lambda p: p.stats.bytes_in_frames,
    "capnostream": lambda p: p.stats.bytes_in_frames,
}


def check_accounting(parser: Parser) -> None:
    """Every byte fed is decoded, discarded or held, and no counter is negative."""
    name = getattr(parser, "protocol", None)
    s = parser.stats
    assert min(s.as_dict().values()) >= 0, s
    assert s.bytes_discarded <= s.bytes_in
    decoded = _DECODED.get(name)
    if decoded is not None:
        held = parser.pending_bytes
        assert s.bytes_in == s.bytes_discarded + decoded(parser) + held, s
    if name == "contec":
        assert s.frames_ok == s.packets_realtime + s.packets_other
    if name == "ge-s5":
        assert s.frames_ok == s.records_phdb + s.records_wave + s.records_other


class TeeEndpoint(PtyEndpoint):
    """A pty that also keeps what the device wrote, to compare with what the host decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data
        super().write(data)
