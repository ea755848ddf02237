"""Hub throughput: items per second from reader threads to three consumers (alarms, recorder, view).

Run: ``python benchmarks/bench_hub.py``. Reports the median of several runs. Each consumer drains
its own queue on its own thread, as in the app; a run counts the items every consumer received.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from kapmonitor.core.codes import Code
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item, Numeric, Stamp

ITEMS_PER_PUBLISHER = 100_000
RUNS = 5
CONSUMERS = ("alarms", "recorder", "live-view")
#: What the app needs with margin: a few devices send a few hundred items per second.
REQUIRED = 10_000


def one_run(publishers: int) -> tuple[float, int]:
    hub = Hub[Item]()
    subs = [hub.subscribe(name, maxsize=ITEMS_PER_PUBLISHER * publishers) for name in CONSUMERS]
    item = Numeric("bench", Code.SPO2, 97.0, Stamp.now())
    total = ITEMS_PER_PUBLISHER * publishers
    received = [0] * len(subs)

    def consume(k: int) -> None:
        sub = subs[k]
        while received[k] < total:
            if sub.get(timeout=1.0) is None:
                return
            received[k] += 1 + len(sub.drain())

    def publish() -> None:
        for _ in range(ITEMS_PER_PUBLISHER):
            hub.publish(item)

    consumers = [threading.Thread(target=consume, args=(k,)) for k in range(len(subs))]
    producers = [threading.Thread(target=publish) for _ in range(publishers)]
    start = time.perf_counter()
    for t in consumers + producers:
        t.start()
    for t in producers + consumers:
        t.join()
    elapsed = time.perf_counter() - start
    dropped = sum(s.dropped for s in subs)
    assert all(r == total for r in received), (received, dropped)
    return total / elapsed, dropped


def main() -> int:
    print(f"hub throughput on {describe()}")
    ok = True
    for publishers in (1, 2, 4):
        rates = [one_run(publishers)[0] for _ in range(RUNS)]
        median = statistics.median(rates)
        ok &= median >= REQUIRED
        print(
            f"  {publishers} publisher thread(s) -> {len(CONSUMERS)} consumers: "
            f"median {median:,.0f} items/s (min {min(rates):,.0f}, max {max(rates):,.0f}, "
            f"{RUNS} runs of {ITEMS_PER_PUBLISHER * publishers:,} items)"
        )
    if not ok:
        print(f"FAIL: below {REQUIRED:,} items/s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
