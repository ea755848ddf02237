"""The user's data folder: never touched by the tests, not needed with --db, owner-only.

The data folder holds the default database and the spools, i.e. patient data: it is created
0700, and its files 0600, whichever command creates it first (a PostgreSQL recording makes it
for its spool). A command given ``--db`` with a SQLite file keeps its spool beside that file
and writes nothing into the data folder, so an unwritable data folder does not stop it.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kapmonitor.record.db_env import default_path
from tests.cli_process import kapmonitor, unprivileged
from tests.conftest import REAL_DATA_AT_START, REAL_DATA_FOLDER, ROOT, TEST_HOME
from tests.conftest import data_folder_snapshot as snapshot

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX homes and permissions")

RECORD = ("record", "--device", "sim:typical", "--speed", "20000", "--duration", "5m",
          "--no-waves", "--patient", "P-folder-1")  # fmt: skip


def home(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A home of its own for the commands of one test, and the data folder it implies."""
    root = tmp_path / "home"
    root.mkdir()
    env = {"HOME": str(root), "XDG_DATA_HOME": str(root / ".local" / "share")}
    return env, root / ".local" / "share" / "kapmonitor"


def test_the_suite_runs_in_a_temporary_data_folder(private_data_folder: Path):
    assert default_path().parent == private_data_folder
    assert TEST_HOME in private_data_folder.parents
    assert REAL_DATA_FOLDER not in (private_data_folder, *private_data_folder.parents)
    assert snapshot() == REAL_DATA_AT_START  # nothing written to the real one so far


def test_commands_given_db_write_nothing_into_the_data_folder(tmp_path: Path):
    env, data = home(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    for argv in (
        RECORD,
        ("sessions", "list"),
        ("sessions", "show", "1"),
        ("export", "1", "--format", "vital", "-o", str(tmp_path / "s.vital")),
        ("import", str(tmp_path / "s.vital")),
        ("export", "2", "--format", "csv", "-o", str(tmp_path / "s.csv"), "--deidentify"),
    ):
        result = kapmonitor(*argv, "--db", url, env=env)
        assert result.returncode == 0, result.stderr
    assert not data.exists(), sorted(p.name for p in data.rglob("*"))


def test_an_unwritable_data_folder_does_not_stop_a_database_elsewhere(tmp_path: Path):
    env, data = home(tmp_path)
    data.mkdir(parents=True)
    data.chmod(0o500)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    result = kapmonitor(*RECORD, "--db", url, env=env, as_user=True)
    assert result.returncode == 0, result.stderr
    assert "recorded" in result.stderr and "Traceback" not in result.stderr


def test_a_server_database_with_an_unwritable_data_folder_is_one_sentence(tmp_path: Path, postgres):
    env, data = home(tmp_path)
    data.mkdir(parents=True)
    data.chmod(0o500)
    result = kapmonitor(*RECORD, "--db", postgres.new_database(), env=env, as_user=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kapmonitor: cannot use '{data / 'spool'}': permission denied"
    ]


def test_a_server_recording_makes_the_data_folder_and_its_spool_owner_only(
    tmp_path: Path, postgres
):
    """The data folder made by a PostgreSQL run (for its spool) is 0700, the spool 0600: read
    where a killed recorder left it."""
    env, data = home(tmp_path)
    old = os.umask(0o022)
    try:
        proc = subprocess.Popen(
            [*unprivileged(), sys.executable, "-m", "kapmonitor", "record", "--device",
             "sim:typical", "--db", postgres.new_database()],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        os.umask(old)
    try:
        assert proc.stderr is not None
        assert "recording session" in proc.stderr.readline()
        deadline = time.monotonic() + 30
        while not list((data / "spool").glob("*.kspool")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    spools = list((data / "spool").glob("*.kspool"))
    assert spools
    for folder in (data, data / "spool"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for spool in spools:
        assert stat.S_IMODE(spool.stat().st_mode) == 0o600, spool


def test_db_before_the_command_is_the_database_used(tmp_path: Path):
    """`kapmonitor --db URL record`: the subcommand's own, unused --db once replaced it with the
    default database, so the session went into the data folder."""
    env, data = home(tmp_path)
    db = tmp_path / "before.sqlite3"
    result = kapmonitor("--db", f"sqlite:///{db}", *RECORD, env=env)
    assert result.returncode == 0, result.stderr
    assert f"to sqlite:///{db}" in result.stderr
    listed = kapmonitor("--db", f"sqlite:///{db}", "sessions", "list", env=env)
    assert "P-folder-1" in listed.stdout
    assert not data.exists()


def test_a_data_folder_an_older_version_left_open_is_closed(tmp_path: Path):
    env, data = home(tmp_path)
    (data / "spool").mkdir(parents=True)
    for folder in (data, data / "spool"):
        folder.chmod(0o755)
    result = kapmonitor(*RECORD, env=env)  # the default (demo) database, in the data folder
    assert result.returncode == 0, result.stderr
    for folder in (data, data / "spool"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((data / "demo.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.parent.stat().st_mode) != 0o700  # not ours: left as it was


def test_reading_before_anything_was_recorded_creates_nothing(tmp_path: Path):
    env, data = home(tmp_path)
    result = kapmonitor("sessions", "list", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("kapmonitor: no session has been recorded here yet")
    assert not data.exists()


@pytest.mark.parametrize("writes", [False, True])
def test_a_run_that_writes_into_the_real_data_folder_fails(tmp_path: Path, writes: bool):
    """The check in tests/conftest.py, on a pretend user whose real data folder a test writes
    into (and, to show it can pass, one that does not)."""
    user = tmp_path / "user"
    user.mkdir()
    body = "REAL_DATA_FOLDER.mkdir(parents=True)\n    (REAL_DATA_FOLDER / 'x').write_text('x')"
    test = tmp_path / "test_pretend.py"
    test.write_text(
        "from tests.conftest import REAL_DATA_FOLDER\n\n\n"
        f"def test_pretend():\n    {body if writes else 'assert REAL_DATA_FOLDER'}\n"
    )
    env = {**os.environ, "HOME": str(user), "XDG_DATA_HOME": str(user / ".local" / "share")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(test)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    assert result.returncode == (1 if writes else 0), result.stdout
    assert ("wrote into the user's data folder" in result.stdout) == writes
