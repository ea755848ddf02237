"""The treatment course: opening a patient's 50 sessions, from SQLite and from PostgreSQL.

Run: ``python benchmarks/bench_course.py [--db URL] [--no-postgres]`` (default: a SQLite file
in a temporary folder, then a throwaway PostgreSQL cluster on loopback when PostgreSQL is
installed). Target on the CI machine: the course opens in under 1 s, whole process
(``kapmonitor course P --json``, start-up included) and in-process.

50 sessions of one patient, each a 2-hour simulated ``typical`` session (numerics, NIBP,
events, alarm log; written through the store in one-minute batches, then compacted as a session's
end does: the same rows as the recorder's half-second batches give, in a sixth of the writing
time; without the pleth, which the course never reads), at doses from 20 to 69 mg. The first open
computes and keeps each session's figures (timed once, as the reference: it is what every open
would cost if the figures were re-derived from the samples); every later open reads the kept
figures. The plain reference in the same run is ``kapmonitor sessions list --patient P --json``
(one query of the same database, start-up included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from alarms.engine import AlarmEngine
from alarms.profile import load_profile
from benchmarks.bench_record import batches, simulated_items
from benchmarks.machine import describe
from benchmarks.proc import KAPMONITOR, run
from kapmonitor.core.model import Item, WaveformBlock
from kapmonitor.record.db import open_database
from kapmonitor.record.session import Drug, Route, SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review.course import open_course

SESSIONS = 50
RUNS = 5
TARGET_S = 1.0
PATIENT = "KAP-BENCH-0001"
#: Seconds of session per write: what is timed is opening the course, not writing it.
WRITE_BATCH_S = 60.0


def fill(url: str, items: list[Item]) -> None:
    """SESSIONS finished sessions of one patient, two days apart, at rising doses."""
    profile = load_profile("kap-default")
    engine = AlarmEngine(profile)
    log = [e for item in items if not isinstance(item, WaveformBlock) for e in engine.process(item)]
    groups = batches([i for i in items if not isinstance(i, WaveformBlock)], WRITE_BATCH_S)
    store = Store(open_database(url))
    try:
        start = 1_760_000_000.0
        for k in range(SESSIONS):
            setup = SessionSetup(PATIENT, "Dr Osei", "Nurse Brennan", Drug.KETAMINE, Route.IM,
                                 20.0 + k, "mg", weight_kg=70.0)  # fmt: skip
            started = start + k * 2 * 86400.0
            sid = store.create_session(setup, profile, started=started)
            for n, batch in enumerate(groups):
                store.write(sid, batch, log if n == len(groups) - 1 else [])
            store.end_session(sid, SessionStatus.COMPLETED, started + 7200.0, who="bench")
    finally:
        store.db.close()


def in_process(url: str) -> tuple[float, list[float]]:
    """The first open (computing and keeping), then RUNS opens of the kept figures."""
    store = Store(open_database(url))
    try:
        t = time.perf_counter()
        course = open_course(store, PATIENT)
        first = time.perf_counter() - t
        assert len(course.sessions) == SESSIONS
        kept = []
        for _ in range(RUNS):
            t = time.perf_counter()
            open_course(store, PATIENT)
            kept.append(time.perf_counter() - t)
        return first, kept
    finally:
        store.db.close()


def whole(url: str) -> tuple[list[float], list[float]]:
    course = [KAPMONITOR, "course", PATIENT, "--json", "--db", url]
    listing = [KAPMONITOR, "sessions", "list", "--patient", PATIENT, "--json", "--db", url]
    ours = [run(course).seconds for _ in range(RUNS)]
    reference = [run(listing).seconds for _ in range(RUNS)]
    return ours, reference


def report(name: str, url: str, items: list[Item]) -> None:
    t = time.perf_counter()
    fill(url, items)
    print(f"{name}: {SESSIONS} sessions written in {time.perf_counter() - t:.0f} s")
    first, kept = in_process(url)
    ours, reference = whole(url)
    med_kept, med_ours, med_ref = (statistics.median(v) for v in (kept, ours, reference))
    print(f"  first open (computes and keeps 50 summaries, the reference): {first:.2f} s")
    print(f"  in-process open, kept: median {med_kept * 1000:.0f} ms of {RUNS} "
          f"(x{med_kept / first:.3f} of the first open; target < {TARGET_S:.0f} s)")  # fmt: skip
    print(f"  whole process 'kapmonitor course --json': median {med_ours:.2f} s of {RUNS} "
          f"(target < {TARGET_S:.0f} s); 'sessions list --json' {med_ref:.2f} s, "
          f"ratio {med_ours / med_ref:.2f}")  # fmt: skip


class Postgres:
    """A throwaway cluster on loopback (the server's tools run as the postgres user)."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise FileNotFoundError("PostgreSQL is not installed")
        self.bin = bins[-1]
        self.base = Path(tempfile.mkdtemp(prefix="kapmonitor-bench-pg-"))
        self.base.chmod(0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        (self.base / "sock").mkdir()
        if self.user:
            subprocess.run(["chown", "-R", "postgres", str(self.base)], check=True)
        self._tool("initdb", "-D", str(self.base / "data"), "-U", "postgres", "--auth=trust")
        # No fsync: what is timed is reading the course, and writing 50 two-hour sessions in
        # one-second commits with a flush each took over 5 minutes on this machine.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base / 'sock'}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._tool("pg_ctl", "-D", str(self.base / "data"), "-w", "-l",
                   str(self.base / "log"), "-o", options, "start")  # fmt: skip
        self._tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bench")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/bench"

    def _tool(self, tool: str, *args: str) -> None:
        subprocess.run([*self.user, str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def close(self) -> None:
        self._tool("pg_ctl", "-D", str(self.base / "data"), "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(describe())
    items = simulated_items()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            report("given database", args.db, items)
            return 0
        report("SQLite", f"sqlite:///{Path(tmp) / 'course.sqlite3'}", items)
    if not args.no_postgres:
        try:
            pg = Postgres()
        except (FileNotFoundError, subprocess.CalledProcessError) as exc:
            print(f"PostgreSQL: not measured ({exc})")
            return 0
        try:
            report("PostgreSQL", pg.url, items)
        finally:
            pg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
