"""Nonin decoding speed, Formats 2, 7 and 8: a 2-hour capture, whole and as 64-byte serial reads.

Run: ``python benchmarks/bench_nonin.py``. Each stream comes from the format's emulator playing
the 'typical' KAP session (synthetic packets if the simulator is unavailable). Reports the median
of several runs, as seconds for the 2-hour capture and MB/s, and exits 1 if decoding a 2-hour
capture takes 1 s or more in any format and mode, so a slow parser cannot hide behind a fast
machine's other figures.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.protocols import nonin
from kapmonitor.model import Stamp

HOURS = 2.0
RUNS = 7
CHUNK = 64  #: a typical serial read: whatever arrived since the last one
LIMIT_S = 1.0  #: a 2-hour capture must decode faster than this


@dataclass(frozen=True)
class Format:
    name: str
    parser: type
    emulator: type
    packets_per_s: float
    synthetic: Callable[[int], bytes]  #: packet ``p`` when there is no simulator


def framed_packet(layout: nonin.FrameLayout) -> Callable[[int], bytes]:
    """Synthetic packets of a 25-frame format: varying values, a pleth ramp of its width."""
    top = 1 << layout.bits

    def packet(p: int) -> bytes:
        pleth = [(p * 7 + i * 9 * top // 256) % top for i in range(25)]
        return nonin.encode_packet(60 + p % 40, 90 + p % 10, pleth, layout=layout)

    return packet


FORMATS = (
    Format(
        "Format 2",
        nonin.NoninFormat2Parser,
        nonin.NoninFormat2Emulator,
        nonin.FRAME_RATE / 25,
        framed_packet(nonin.FORMAT2),
    ),
    Format(
        "Format 7",
        nonin.NoninFormat7Parser,
        nonin.NoninFormat7Emulator,
        nonin.FRAME_RATE / 25,
        framed_packet(nonin.FORMAT7),
    ),
    Format(
        "Format 8",
        nonin.NoninFormat8Parser,
        nonin.NoninFormat8Emulator,
        1.0,
        lambda p: nonin.encode_packet8(60 + p % 40, 90 + p % 10),
    ),
)


def build_stream(fmt: Format, seconds: float) -> tuple[bytes, str]:
    """The bytes of ``seconds`` of ``fmt``, and where they came from."""
    try:
        from devices.sim.physiology import KapSession
        from devices.sim.scenario import load_scenario

        session = KapSession(load_scenario("typical"), seed=1)
    except Exception as exc:  # the simulator is optional for a benchmark
        data = b"".join(fmt.synthetic(p) for p in range(int(seconds * fmt.packets_per_s)))
        return data, f"synthetic packets (simulator unavailable: {exc})"
    return fmt.emulator(session).emit(0.0, seconds), "emulator, KapSession('typical', seed=1)"


def decode(parser_class: type, stream: bytes, chunk: int | None) -> tuple[float, int]:
    """Seconds to decode ``stream`` (in ``chunk``-byte reads, or whole) and items produced."""
    parser = parser_class("bench")
    stamp = Stamp.now()
    feed = parser.feed
    items = 0
    start = time.perf_counter()
    if chunk is None:
        items = len(feed(stream, stamp))
    else:
        for i in range(0, len(stream), chunk):
            items += len(feed(stream[i : i + chunk], stamp))
    elapsed = time.perf_counter() - start
    s = parser.stats
    assert s.checksum_errors == s.framing_errors == s.packets_dropped == 0, s
    return elapsed, items


def bench(fmt: Format) -> bool:
    """Print the figures of one format; whether both modes stayed under the limit."""
    t = time.perf_counter()
    stream, origin = build_stream(fmt, HOURS * 3600.0)
    built = time.perf_counter() - t
    mb = len(stream) / 1e6
    print(f"Nonin {fmt.name} decode, {HOURS:g} h capture = {len(stream):,} bytes ({origin})")
    print(f"  stream built in {built:.1f} s")
    ok = True
    for label, chunk in (("whole", None), (f"{CHUNK}-byte reads", CHUNK)):
        runs = [decode(fmt.parser, stream, chunk) for _ in range(RUNS)]
        median = statistics.median(r[0] for r in runs)
        fast = median < LIMIT_S
        ok &= fast
        print(
            f"  {label:>15}: median {median:.3f} s for {HOURS:g} h "
            f"({mb / median:.1f} MB/s, {runs[0][1]:,} items, {RUNS} runs, "
            f"min {min(r[0] for r in runs):.3f} s) {'OK' if fast else 'TOO SLOW'}"
        )
    return ok


def main() -> int:
    print(
        f"machine: {describe()}; processor={platform.processor() or '?'}, "
        f"python {platform.python_version()}, cpu_count={os.cpu_count()}"
    )
    slow = [fmt.name for fmt in FORMATS if not bench(fmt)]
    if slow:
        print(f"FAIL: decoding a {HOURS:g}-hour capture must take under {LIMIT_S:g} s ({slow})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
