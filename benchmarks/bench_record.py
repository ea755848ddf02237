"""The session record: write throughput, bytes per hour, and loading a session for review.

Run: ``python benchmarks/bench_record.py [--db URL]`` (default: a SQLite file in a temporary
folder). A 2-hour simulated session with pleth (SpO2, pulse rate, PI every second, pleth at
100 Hz in 0.25-s blocks, NIBP on the KAP schedule) is written through the store in one-second
batches, as the recorder commits them, then loaded back whole as review does. With the
``vitaldb`` package installed, the same session exported as a .vital file is read by vitaldb
for comparison (size and load time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Item
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionSetup
from kapmonitor.record.store import Store

HOURS = 2.0
LOAD_RUNS = 5


def simulated_items() -> list[Item]:
    items: list[Item] = []
    playback = PlaybackSettings(speed=1e9, seed=1, until=HOURS * 3600)
    driver = SimDriver(DeviceSpec.parse("sim:typical"), items.append, playback=playback)
    driver.open()
    driver.start()
    driver.join()
    return items


def batches(items: list[Item]) -> list[list[Item]]:
    """Items grouped by the second they were stamped in: the recorder's commits."""
    out: dict[int, list[Item]] = {}
    t0 = items[0].stamp.mono
    for item in items:
        out.setdefault(int(item.stamp.mono - t0), []).append(item)
    return list(out.values())


def db_bytes(store: Store, tmp: Path) -> int | None:
    if store.db.is_sqlite:
        return sum(p.stat().st_size for p in tmp.glob("bench.sqlite3*"))
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kap-bench-"))
    url = args.db or f"sqlite:///{tmp / 'bench.sqlite3'}"
    items = simulated_items()
    store = Store(open_database(url))
    session_id = store.create_session(SessionSetup("bench"))
    groups = batches(items)
    start = time.perf_counter()
    for group in groups:
        store.write(session_id, group)
    write_s = time.perf_counter() - start
    store.db.close()  # the last connection to close checkpoints the WAL into the file
    size = db_bytes(store, tmp)
    store = Store(open_database(url))

    loads = []
    for _ in range(LOAD_RUNS):
        start = time.perf_counter()
        record = store.load_session(session_id)
        loads.append(time.perf_counter() - start)
    load_s = statistics.median(loads)
    samples = sum(len(w.samples) for w in record.waves)

    print(f"session record on {describe()}; database {store.db.url.split('://')[0]}")
    print(
        f"  write: {len(items):,} items ({HOURS:g} h with pleth) in {len(groups):,} one-second "
        f"commits: {write_s:.2f} s, {len(items) / write_s:,.0f} items/s "
        f"({HOURS * 3600 / write_s:,.0f}x real time)"
    )
    if size is not None:
        print(f"  stored: {size / 1e6:.1f} MB for {HOURS:g} h = {size / HOURS / 1e6:.1f} MB/hour")
    print(
        f"  load for review: median {load_s:.2f} s over {LOAD_RUNS} runs "
        f"({len(record.numerics):,} numerics, {samples:,} pleth samples)"
    )
    try:
        import vitaldb

        from kapmonitor.export import export_session
    except ImportError as exc:
        print(f"  .vital comparison skipped: {exc}")
        return 0
    vital = tmp / "bench.vital"
    export_session(record, "vital", vital)
    vital_loads = []
    for _ in range(LOAD_RUNS):
        start = time.perf_counter()
        vf = vitaldb.VitalFile(str(vital))
        vf.to_numpy(vf.get_track_names(), 1 / 100)
        vital_loads.append(time.perf_counter() - start)
    vital_s = statistics.median(vital_loads)
    vital_size = vital.stat().st_size
    print(
        f"  the same session as .vital read by vitaldb: {vital_size / 1e6:.1f} MB, "
        f"load median {vital_s:.2f} s"
    )
    if size is not None:
        print(
            f"  ratios (kapmonitor / .vital): size {size / vital_size:.1f}x, "
            f"load time {load_s / vital_s:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
