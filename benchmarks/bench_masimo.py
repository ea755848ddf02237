"""Masimo ASCII 1 decoding speed: a 2-hour stream, whole and as 64-byte serial reads.

Run: ``python benchmarks/bench_masimo.py``. The stream comes from the emulator playing the
'typical' KAP session (synthetic lines if the simulator is unavailable): 7,200 Radical-7 lines.
Reports the median of several runs and exits 1 if decoding the 2-hour stream takes 1 s or more
in either mode.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.protocols.masimo import (
    EMULATOR_START,
    LINE_PERIOD,
    MasimoEmulator,
    MasimoParser,
    format_line,
)
from kapmonitor.model import Stamp

HOURS = 2.0
RUNS = 7
CHUNK = 64  #: a typical serial read: whatever arrived since the last one
LIMIT_S = 1.0  #: the 2-hour stream must decode faster than this


def build_stream(seconds: float) -> tuple[bytes, str]:
    """The bytes of ``seconds`` of ASCII 1, and where they came from."""
    try:
        from devices.sim.physiology import KapSession
        from devices.sim.scenario import load_scenario

        session = KapSession(load_scenario("typical"), seed=1)
    except Exception as exc:  # the simulator is optional for a benchmark
        from datetime import timedelta

        lines = int(seconds / LINE_PERIOD)
        data = b"".join(
            format_line(
                EMULATOR_START + timedelta(seconds=k),
                spo2=90 + k % 10,
                bpm=60 + k % 40,
                pi=0.5 + (k % 50) / 10,
            )
            for k in range(lines)
        )
        return data, f"synthetic lines (simulator unavailable: {exc})"
    return MasimoEmulator(session).emit(0.0, seconds), "emulator, KapSession('typical', seed=1)"


def decode(stream: bytes, chunk: int | None) -> tuple[float, int]:
    """Seconds to decode ``stream`` (in ``chunk``-byte reads, or whole) and items produced."""
    parser = MasimoParser("bench")
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
    assert s.framing_errors == s.bytes_discarded == 0 and parser.problem is None, s
    return elapsed, items


def main() -> int:
    seconds = HOURS * 3600.0
    t = time.perf_counter()
    stream, origin = build_stream(seconds)
    built = time.perf_counter() - t
    mb = len(stream) / 1e6
    print(f"Masimo ASCII 1 decode, {HOURS:g} h stream = {len(stream):,} bytes ({origin})")
    print(f"  stream built in {built:.1f} s")
    print(f"  machine: {describe()}")
    failed = False
    for label, chunk in (("whole", None), (f"{CHUNK}-byte reads", CHUNK)):
        runs = [decode(stream, chunk) for _ in range(RUNS)]
        median = statistics.median(r[0] for r in runs)
        items = runs[0][1]
        ok = median < LIMIT_S
        failed |= not ok
        print(
            f"  {label:>15}: median {median:.3f} s for {HOURS:g} h "
            f"({mb / median:.1f} MB/s, {items:,} items, {RUNS} runs, "
            f"min {min(r[0] for r in runs):.3f} s) {'OK' if ok else 'TOO SLOW'}"
        )
    if failed:
        print(f"FAIL: decoding the {HOURS:g}-hour stream must take under {LIMIT_S:g} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
