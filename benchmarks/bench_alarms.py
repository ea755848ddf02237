"""Alarm system speed: evaluation cost per measurement, and latency from the wire to the alarm.

Run: ``python benchmarks/bench_alarms.py``.

1. Cost: the engine (kap-default profile) evaluates a stream of pulse-oximeter numerics and NIBP
   readings; median microseconds per item over several runs. This stream is the one the earlier
   versions were measured with, so the figure compares across versions. A supplement runs the
   engine over a whole simulated 2-hour ``typical`` session as the live pipeline gives it
   (pleth and capnogram blocks, breathing numerics, NIBP, the dose): the breathing rules' cost.
2. Latency: a Nonin format-2 packet with SpO2 80 % is written to a pty; the real driver reads it,
   the hub passes it on, the alarm service decides. Measured from the moment the packet's last
   byte was written to the moment the "SpO2 low" condition is active, with the condition delay
   set to 0 so that what is measured is the system's own delay ("beyond the configured delay").
   Target: p99 under 100 ms.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alarms.engine import AlarmEngine
from alarms.model import LogEvent
from alarms.profile import load_profile
from alarms.service import AlarmService
from benchmarks.bench_record import simulated_items
from benchmarks.machine import describe
from devices.protocols.nonin import Nonin2Driver, encode_packet
from devices.sim.serve import PtyEndpoint
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item, NibpReading, Numeric, Stamp

LATENCY_SAMPLES = 200
TARGET_P99_MS = 100.0


def evaluation_cost(runs: int = 5, n: int = 60_000) -> tuple[list[float], int]:
    items: list[Item] = []
    for i in range(n):
        t = i / 3
        stamp = Stamp(t, t)
        spo2 = 97 - (i // 600) % 12  # slow dips through both SpO2 levels
        items.append(Numeric("ox", Code.SPO2, spo2, stamp))
        items.append(Numeric("ox", Code.PULSE_RATE, 70 + (i // 900) % 90, stamp))
        if i % 900 == 0:
            items.append(NibpReading("cuff", 120 + i % 70, 80, 93, stamp))
    return per_item(items, runs), len(items)


def session_cost(runs: int = 5) -> tuple[list[float], int]:
    """Microseconds per item over a simulated 2-hour session, every kind of item included."""
    items = simulated_items()
    return per_item(items, runs), len(items)


def per_item(items: list[Item], runs: int) -> list[float]:
    """Microseconds per item of a fresh engine taking ``items``, once per run."""
    costs = []
    for _ in range(runs):
        engine = AlarmEngine(load_profile())
        start = time.perf_counter()
        for item in items:
            engine.process(item)
        costs.append((time.perf_counter() - start) / len(items) * 1e6)
    return costs


def latency() -> list[float]:
    base = load_profile()
    spo2 = dataclasses.replace(base.limit_rule("spo2-low"), delay_s=0.0)
    profile = dataclasses.replace(
        base, limits=tuple(spo2 if r.id == "spo2-low" else r for r in base.limits)
    )
    low = encode_packet(72, 80, [128] * 25)
    normal = encode_packet(72, 97, [128] * 25)
    hub = Hub[Item]()
    service = AlarmService(hub, profile)
    alarms = service.out.subscribe("bench")
    endpoint = PtyEndpoint()
    driver = Nonin2Driver(DeviceSpec.parse(f"nonin2@{endpoint.path}"), hub.publish)
    driver.open()
    service.start()
    driver.start()
    samples = []
    try:
        for _ in range(LATENCY_SAMPLES + 10):
            endpoint.write(low)
            written = time.perf_counter()
            while True:
                entry = alarms.get(timeout=2.0)
                if entry is None:
                    raise RuntimeError("no alarm within 2 s")
                if entry.event is LogEvent.ACTIVE and entry.condition == "spo2-low":
                    samples.append((time.perf_counter() - written) * 1000)
                    break
            endpoint.write(normal)
            ended = 0
            while ended < 2:  # the medium and the high level both end
                entry = alarms.get(timeout=2.0)
                if entry is None:
                    raise RuntimeError("the alarm did not end within 2 s")
                ended += entry.event is LogEvent.INACTIVE
            alarms.drain()
    finally:
        driver.stop()
        service.stop()
        endpoint.close()
    return samples[10:]  # the first few include the pipeline's warm-up


def main() -> int:
    print(f"alarm system on {describe()}")
    costs, n = evaluation_cost()
    print(
        f"  evaluation: median {statistics.median(costs):.1f} µs per measurement "
        f"(min {min(costs):.1f}, max {max(costs):.1f}; {len(costs)} runs of {n:,} items)"
    )
    costs, n = session_cost()
    print(
        f"  evaluation over a simulated 2-hour session with pleth and capnography: median "
        f"{statistics.median(costs):.1f} µs per item ({len(costs)} runs of {n:,} items)"
    )
    ms = sorted(latency())
    p50 = statistics.median(ms)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    print(
        f"  wire-to-alarm latency (pty, Nonin format 2, delay 0): median {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} alarms"
    )
    if p99 >= TARGET_P99_MS:
        print(f"FAIL: p99 latency {p99:.1f} ms is not under {TARGET_P99_MS:g} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
