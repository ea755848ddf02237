"""Simulated sessions are kept out of the clinic's record: they go to a demo database.

A session whose every device is simulated (``sim:SCENARIO``) or a replay of a recorded session
(``replay:SESSION``) is no patient's session. Unless a database is named (``--db``), it is
recorded into ``demo.sqlite3`` beside the clinic's default database in the data folder, not into
the clinic's database (the default file, ``KAPMONITOR_DB`` or a server): a separate file can
never leak into a clinic's lists, reports or exports, where a mark on the session would have to
be filtered in every one of them. ``kapmonitor sessions list --demo`` (and ``show``, ``export``,
``review``) read it. A replay still reads the session it plays from the clinic's database.

Time in a simulated session: the session's start and end are real wall-clock times (when it was
played); its measurements carry the simulated device's own clock, which starts at the session's
start and runs ``--speed`` times faster, so at ``--speed 30`` two hours of session are stored in
four minutes of real time and the data reach two hours past the start. The time monitored is the
span of the data (:func:`kapmonitor.review.summary.monitoring_span`), not the real duration.
"""

from __future__ import annotations

from collections.abc import Iterable

from kapmonitor.core.device_spec import REPLAY, SIM
from kapmonitor.record.db_env import default_path

DEMO_FILE = "demo.sqlite3"


def is_simulated(devices: Iterable[str]) -> bool:
    """Whether every device named is simulated or replayed (no patient is connected)."""
    names = [d.strip() for d in devices]
    return bool(names) and all(n.startswith((SIM + ":", REPLAY + ":")) for n in names)


def demo_url() -> str:
    """The demo database: a SQLite file in the data folder, beside the clinic's default one."""
    return f"sqlite:///{default_path().with_name(DEMO_FILE)}"


def record_url(db_url: str | None, devices: Iterable[str]) -> str | None:
    """Where a session on ``devices`` is recorded: the database named, else the demo database for
    a simulated session, else (None) the clinic's."""
    if db_url:
        return db_url
    return demo_url() if is_simulated(devices) else None
