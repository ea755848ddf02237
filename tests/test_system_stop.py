"""SIGTERM and SIGINT (shutdown, logout, Ctrl+C) stop the screen and the headless recording.

Each command runs as its own process, on a temporary database and data folder, as an operating
system would run it; the signal must end it within 2 s, with what was measured in the database and
the session marked as stopped by the system: not completed (the discharge check was not made) and
not interrupted (nothing crashed).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kapmonitor.record.session import SessionStatus

ROOT = Path(__file__).resolve().parents[1]
#: The whole stop: flush the record, close the session, leave the event loop, exit.
STOP_WITHIN_S = 2.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("KAPMONITOR_DB", None)
    return env


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql).fetchall()


#: Numerics in the record: rows not yet compacted and those in blocks (record.compaction).
NUMERICS_STORED = (
    "SELECT (SELECT count(*) FROM numerics) + (SELECT coalesce(sum(n), 0) FROM numeric_blocks)"
)


def _wait_recording(proc: subprocess.Popen, db: Path, timeout: float = 60.0) -> None:
    """Until the session has numerics in the database: the pipeline runs end to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if _query(db, NUMERICS_STORED)[0][0] > 0:
                return
        except sqlite3.OperationalError:  # not created or not migrated yet
            pass
        time.sleep(0.1)
    raise AssertionError("the session never started recording")


def _stop(proc: subprocess.Popen, sig: int) -> tuple[float, int, str]:
    """Send ``sig``; how long the process took to exit, its status and its stderr."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - t0, proc.returncode, err


COMMANDS = {
    "demo": ["demo", "--scenario", "typical", "--speed", "10"],
    "record": ["record", "--device", "sim:typical", "--speed", "10", "--no-waves"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_signal_stops_the_session_as_stopped_by_the_system(tmp_path, command, sig):
    db = tmp_path / "k.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", *COMMANDS[command], "--db", f"sqlite:///{db}"],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_recording(proc, db)
        time.sleep(0.5)  # the screen's event loop is running by now
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    elapsed, code, err = _stop(proc, sig)
    assert elapsed < STOP_WITHIN_S, f"{command} took {elapsed:.2f} s to stop on {sig.name}"
    assert "Traceback" not in err, err
    assert code == (128 + sig if command == "demo" else 130), err
    [(status, ended)] = _query(db, "SELECT status, ended FROM sessions")
    assert status == SessionStatus.STOPPED_BY_SYSTEM.value
    assert ended is not None
    assert _query(db, NUMERICS_STORED)[0][0] > 0  # what was measured is kept


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_burst_of_signals_stops_the_session_once_and_cleanly(tmp_path, command):
    """Ctrl+C held down, or a shutdown's SIGTERM on top of it: forty signals 2 ms apart, some
    of them arriving while the session is being closed. The stop happens once, within the
    same time, and nothing is left half done (no lock held, no traceback, the session closed)."""
    db = tmp_path / "k.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", *COMMANDS[command], "--db", f"sqlite:///{db}"],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_recording(proc, db)
        time.sleep(0.5)
        t0 = time.monotonic()
        for k in range(40):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT if k % 3 else signal.SIGTERM)
            time.sleep(0.002)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    elapsed = time.monotonic() - t0
    assert elapsed < STOP_WITHIN_S, f"{command} took {elapsed:.2f} s to stop"
    assert "Traceback" not in err, err
    assert proc.returncode in (130, 128 + signal.SIGTERM), err
    [(status, ended)] = _query(db, "SELECT status, ended FROM sessions")
    assert status == SessionStatus.STOPPED_BY_SYSTEM.value and ended is not None


def test_the_screen_writes_a_crash_log_in_the_data_folder(tmp_path):
    """The demo turns faulthandler on into crash.log in its data folder (header first)."""
    db = tmp_path / "k.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", *COMMANDS["demo"], "--db", f"sqlite:///{db}"],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_recording(proc, db)
    finally:
        _stop(proc, signal.SIGTERM)
    log = tmp_path / "data" / "kapmonitor" / "crash.log"
    first = log.read_text().splitlines()[0]
    assert first.startswith("=== ") and f"pid {proc.pid}" in first and "demo" in first


@pytest.mark.timeout(120)
def test_a_signal_closes_the_start_dialog(tmp_path):
    """Before any session: SIGTERM ends the start dialog's own event loop too."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", "--db", f"sqlite:///{tmp_path / 'k.sqlite3'}"],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    log = tmp_path / "data" / "kapmonitor" / "crash.log"  # written just before Qt starts
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(3)  # the dialog is up
    elapsed, code, err = _stop(proc, signal.SIGTERM)
    assert elapsed < STOP_WITHIN_S and code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_a_signal_while_the_database_is_down_is_one_sentence(tmp_path, postgres):
    """The screen recording into PostgreSQL, the server stopped, then SIGTERM: the process still
    ends promptly, with one sentence and exit status 2, never a traceback."""
    url = postgres.new_database()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", *COMMANDS["demo"], "--db", url],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(8)  # recording
        assert proc.poll() is None
        postgres.stop("fast")
        try:
            time.sleep(2)
            elapsed, code, err = _stop(proc, signal.SIGTERM)
        finally:
            postgres.start()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert code == 2, err
    assert elapsed < STOP_WITHIN_S, f"{elapsed:.2f} s"
    last = err.strip().splitlines()[-1]  # after the recorder's own warning, if it gave one
    assert last.startswith("kapmonitor: the database ") and "cannot be used" in last, err
