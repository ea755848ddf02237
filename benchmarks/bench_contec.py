"""Contec CMS50D+ (protocol V7.0) decoding speed: a 2-hour stream, whole and as 64-byte reads.

Run: ``python benchmarks/bench_contec.py``. The stream comes from the emulator playing the
'typical' KAP session after a start command (synthetic packets if the simulator is unavailable):
2 h x 60 packets/s x 9 bytes = 3.9 MB. Reports the median of several runs and exits 1 if decoding
the 2-hour stream takes 1 s or more in either mode.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.protocols.contec import (
    PACKET_RATE,
    START_COMMAND,
    ContecEmulator,
    ContecParser,
    RealtimeFields,
    encode_realtime,
)
from kapmonitor.model import Stamp

HOURS = 2.0
RUNS = 7
CHUNK = 64  #: a typical serial read: whatever arrived since the last one
LIMIT_S = 1.0  #: the 2-hour stream must decode faster than this


def build_stream(seconds: float) -> tuple[bytes, str]:
    """The bytes of ``seconds`` of real-time packets, and where they came from."""
    try:
        from devices.sim.physiology import KapSession
        from devices.sim.scenario import load_scenario

        session = KapSession(load_scenario("typical"), seed=1)
    except Exception as exc:  # the simulator is optional for a benchmark
        packets = [
            encode_realtime(
                RealtimeFields(
                    signal_strength=5, pleth=(k * 7) % 128, pulse_rate=60 + k % 40, spo2=97, pi=300
                )
            )
            for k in range(600)
        ]
        n = int(seconds * PACKET_RATE)
        data = b"".join(packets) * (n // len(packets))
        return data, f"synthetic packets (simulator unavailable: {exc})"
    emulator = ContecEmulator(session, timeout=math.inf)  # as if kept alive throughout
    emulator.on_host_bytes(START_COMMAND, 0.0)
    return emulator.emit(0.0, seconds), "emulator, KapSession('typical', seed=1)"


def decode(stream: bytes, chunk: int | None) -> tuple[float, int]:
    """Seconds to decode ``stream`` (in ``chunk``-byte reads, or whole) and items produced."""
    parser = ContecParser("bench")
    stamp = Stamp.now()
    feed = parser.feed
    items = 0
    start = time.perf_counter()
    if chunk is None:
        items = len(feed(stream, stamp))
    else:
        for i in range(0, len(stream), chunk):
            items += len(feed(stream[i : i + chunk], stamp))
    items += len(parser.flush())
    elapsed = time.perf_counter() - start
    s = parser.stats
    assert s.framing_errors == s.bytes_discarded == s.packets_unknown == 0, s
    assert s.packets_realtime * 9 == len(stream), s
    return elapsed, items


def main() -> int:
    seconds = HOURS * 3600.0
    t = time.perf_counter()
    stream, origin = build_stream(seconds)
    built = time.perf_counter() - t
    mb = len(stream) / 1e6
    print(f"Contec V7.0 decode, {HOURS:g} h stream = {len(stream):,} bytes ({origin})")
    print(f"  stream built in {built:.1f} s")
    print(
        f"  machine: {describe()}; processor={platform.processor() or '?'}, "
        f"python {platform.python_version()}, cpu_count={os.cpu_count()}"
    )
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
