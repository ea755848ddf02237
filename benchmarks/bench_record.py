"""The session record: write throughput, bytes per hour, and loading a session for review.

Run: ``python benchmarks/bench_record.py [--db URL]`` (default: a SQLite file in a temporary
folder). A 2-hour simulated session with pleth and capnography (SpO2, pulse rate, PI,
respiratory rate, EtCO2 and inspired CO2 every second, pleth at 100 Hz and the capnogram at
20 Hz in 0.25-s blocks, NIBP on the KAP schedule) is written through the store as the recorder
writes it: named half-second batches, moved into compact blocks every minute, the session
ended. Then it is loaded back whole (waveforms included: what export, replay and the pleth view
read). The reference, in the same run: the same record exported by kapmonitor's .vital writer
(every item above) and read by ``vitaldb`` into arrays.

Targets: the SQLite file at most the .vital file's size, and the load at most vitaldb's time
(ratios <= 1.0; the load a median of 5 runs, alternating with the reference's).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Item
from kapmonitor.record.db import open_database
from kapmonitor.record.recorder import COMPACT_INTERVAL, FLUSH_INTERVAL
from kapmonitor.record.session import SessionRecord, SessionSetup, SessionStatus
from kapmonitor.record.store import Store

HOURS = 2.0
LOAD_RUNS = 5
SIZE_TARGET = 1.0  #: the record's bytes / the .vital file's
LOAD_TARGET = 1.0  #: Store.load_session's time / vitaldb's


def simulated_items() -> list[Item]:
    items: list[Item] = []
    playback = PlaybackSettings(speed=1e9, seed=1, until=HOURS * 3600)
    driver = SimDriver(DeviceSpec.parse("sim:typical"), items.append, playback=playback)
    driver.open()
    driver.start()
    driver.join()
    return items


def batches(items: list[Item], period: float = 1.0) -> list[list[Item]]:
    """Items grouped by the ``period`` (seconds) they were stamped in: the recorder's commits."""
    out: dict[int, list[Item]] = {}
    t0 = items[0].stamp.mono
    for item in items:
        out.setdefault(int((item.stamp.mono - t0) / period), []).append(item)
    return list(out.values())


def write_session(store: Store, session_id: int, items: list[Item]) -> int:
    """Write ``items`` as the recorder does at real time: named batches, compacted every
    :data:`COMPACT_INTERVAL` of session time, then the session ended; the batches written."""
    groups = batches(items, FLUSH_INTERVAL)
    per_compaction = round(COMPACT_INTERVAL / FLUSH_INTERVAL)
    for seq, group in enumerate(groups):
        store.write(session_id, group, batch=("bench-recorder", seq))
        if seq % per_compaction == per_compaction - 1:
            store.compact(session_id)
    store.end_session(session_id, SessionStatus.COMPLETED)
    return len(groups)


def vital_reference(record: SessionRecord, path: Path) -> tuple[int, Callable[[], object]]:
    """The record as a .vital file at ``path``: its size, and vitaldb's load of it."""
    import vitaldb

    from kapmonitor.export import export_session

    export_session(record, "vital", path)

    def load() -> object:
        vf = vitaldb.VitalFile(str(path))
        return vf.to_numpy(vf.get_track_names(), 1 / 100)

    return path.stat().st_size, load


def alternating_medians(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b`` over :data:`LOAD_RUNS` runs each, taking turns."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(LOAD_RUNS):
        for fn, out in ((a, times[0]), (b, times[1])):
            gc.collect()  # the last run's garbage is not charged to this one
            start = time.perf_counter()
            loaded = fn()
            out.append(time.perf_counter() - start)
            del loaded  # freed outside the timing: the load is timed, not the release of it
    return statistics.median(times[0]), statistics.median(times[1])


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
    start = time.perf_counter()
    commits = write_session(store, session_id, items)
    write_s = time.perf_counter() - start
    store.db.close()  # the last connection to close checkpoints the WAL into the file
    size = db_bytes(store, tmp)
    store = Store(open_database(url))
    record = store.load_session(session_id)
    samples = sum(len(w.samples) for w in record.waves)

    print(f"session record on {describe()}; database {store.db.url.split('://')[0]}")
    print(
        f"  write: {len(items):,} items ({HOURS:g} h with pleth and capnogram) in {commits:,} "
        f"named commits, compacted every {COMPACT_INTERVAL:g} s: {write_s:.2f} s (one run), "
        f"{len(items) / write_s:,.0f} items/s ({HOURS * 3600 / write_s:,.0f}x real time)"
    )
    if size is not None:
        print(f"  stored: {size / 1e6:.2f} MB for {HOURS:g} h = {size / HOURS / 1e6:.2f} MB/hour")
    try:
        vital_size, vital_load = vital_reference(record, tmp / "bench.vital")
    except ImportError as exc:
        print(f"  .vital comparison skipped: {exc}")
        return 0
    load_s, vital_s = alternating_medians(lambda: store.load_session(session_id), vital_load)
    print(
        f"  load the whole record: median {load_s:.3f} s over {LOAD_RUNS} runs "
        f"({len(record.numerics):,} numerics, {len(record.waves):,} waveform blocks, "
        f"{samples:,} samples)"
    )
    print(
        f"  the same session as .vital ({vital_size / 1e6:.2f} MB) read by vitaldb into arrays: "
        f"median {vital_s:.3f} s"
    )
    if size is not None:
        print(
            f"  size ratio (kapmonitor / .vital): {size / vital_size:.2f}x "
            f"(target <= {SIZE_TARGET:g})"
        )
    print(
        f"  load ratio (kapmonitor / vitaldb): {load_s / vital_s:.2f}x (target <= {LOAD_TARGET:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
