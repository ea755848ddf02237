"""Clinician review: listing 10,000 sessions, and opening a 2-hour session with pleth.

Run: ``python benchmarks/bench_review.py [--db URL]`` (default: a SQLite file in a temporary
folder; Qt runs offscreen). Targets on the CI machine: the list under 0.5 s, the session under
1 s, and loading the session for review at most vitaldb's time to load the same session as a
.vital file (ratio <= 1.0, medians of 5 runs taken in turns).

- *List*: 10,000 sessions (each with the real alarm profile text stored, as the recorder does)
  read by :meth:`Store.list_sessions` and shown in the review browser's table, sorted newest
  first, until the table has painted once.
- *Open*: a 2-hour simulated session with pleth (written through the store as the recorder
  does) opened in the review window, from the database query to the first paint: trends, NIBP
  table, events, alarms and summary. The pleth is loaded when it is asked for; opening it on the
  first 30 s is timed separately.
- *Load against .vital*: the same session loaded for review (:meth:`ReviewModel.open`: the
  record, its timeline and summary) and loaded whole (:meth:`Store.load_session`, waveforms
  included, as export and replay read it), each against ``vitaldb`` reading the session's .vital
  file (kapmonitor's own export of the same record) into arrays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from sqlalchemy import insert

from alarms.profile import load_profile
from benchmarks.bench_record import (
    LOAD_TARGET,
    alternating_medians,
    simulated_items,
    vital_reference,
    write_session,
)
from benchmarks.machine import describe
from kapmonitor.record.db import open_database
from kapmonitor.record.schema import SessionRow
from kapmonitor.record.session import SessionSetup
from kapmonitor.record.store import Store
from kapmonitor.review.model import ReviewModel

SESSIONS = 10_000
RUNS = 5


def fill_sessions(store: Store, n: int) -> None:
    """n finished sessions over about three years, inserted in one transaction."""
    profile = load_profile("kap-default").text
    start = 1_700_000_000.0
    rows = [
        {
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "patient": f"KAP-{i % 1500:05d}",
            "clinician": ("Dr Whitfield", "Dr Osei", "Dr Lindqvist", "Dr Tanaka")[i % 4],
            "operator": "Nurse Brennan",
            "drug": "esketamine" if i % 3 else "ketamine",
            "route": "intranasal" if i % 3 else "im",
            "dose": 56.0 if i % 3 else 50.0,
            "dose_unit": "mg",
            "started": start + i * 9000.0,
            "ended": start + i * 9000.0 + 7800.0,
            "status": "interrupted" if i % 97 == 0 else "completed",
            "alarm_profile": "kap-default",
            "alarm_profile_text": profile,
            "owner": "bench",
            "heartbeat": None,
        }
        for i in range(n)
    ]
    with store.db.engine.begin() as conn:
        conn.execute(insert(SessionRow), rows)


def median_time(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kap-bench-review-"))
    url = args.db or f"sqlite:///{tmp / 'review.sqlite3'}"
    store = Store(open_database(url))
    fill_sessions(store, SESSIONS)

    items = simulated_items()
    session_id = store.create_session(SessionSetup("bench-2h", clinician="Dr Osei"))
    write_session(store, session_id, items)
    store.db.close()
    store = Store(open_database(url))
    reviews = ReviewModel(store)

    from PySide6.QtWidgets import QApplication

    from ui.review.browser import SessionBrowser
    from ui.review.window import ReviewWindow

    app = QApplication.instance() or QApplication([])

    def list_only() -> None:
        reviews.sessions()

    def list_and_show() -> None:
        browser = SessionBrowser(reviews)
        browser.resize(1200, 800)
        browser.show()
        browser.grab()  # the first paint
        browser.close()
        browser.deleteLater()
        app.processEvents()

    def open_session() -> None:
        window = ReviewWindow(reviews.open(session_id))
        window.resize(1600, 1000)
        window.show()
        window.grab()
        window.close()
        window.deleteLater()
        app.processEvents()

    window = ReviewWindow(reviews.open(session_id))

    def open_pleth() -> None:
        window._pleth_cache = None  # from the database each time, not from the last run
        window.show_pleth_at(window.timeline.x_min + 30.0)

    try:
        _, vital_load = vital_reference(store.load_session(session_id), tmp / "review.vital")
    except ImportError as exc:
        vital_load = None
        print(f"  .vital comparison skipped: {exc}")
    list_s = median_time(list_only)
    browser_s = median_time(list_and_show)
    open_s = median_time(open_session)
    pleth_s = median_time(open_pleth)
    window.close()
    print(f"clinician review on {describe()}; database {store.db.url.split('://')[0]}")
    print(
        f"  list {SESSIONS:,} sessions: query median {list_s:.3f} s; "
        f"browser filled and painted median {browser_s:.3f} s (target < 0.5 s)"
    )
    print(
        f"  open a 2-hour session with pleth ({len(items):,} items): median {open_s:.3f} s "
        f"to the first paint (target < 1 s); pleth for the view on demand {pleth_s:.3f} s"
    )
    if vital_load is not None:
        for what, load in (
            ("open for review (record, timeline, summary)", lambda: reviews.open(session_id)),
            ("whole record with waveforms", lambda: store.load_session(session_id)),
        ):
            load_s, vital_s = alternating_medians(load, vital_load)
            print(
                f"  load {what}: median {load_s:.3f} s; vitaldb reads the .vital "
                f"{vital_s:.3f} s; ratio {load_s / vital_s:.2f}x (target <= {LOAD_TARGET:g})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
