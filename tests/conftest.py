"""Shared test set-up: Qt without a screen, a private data folder, the shared reference data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import platformdirs
import pytest

# Before anything can import Qt: no display on CI, and no plugin chatter from QtMultimedia.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia*=false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# --- the user's own data folder is never touched ------------------------------------------------
# For the whole run, in this process and every command it starts, the home and data folders are
# a temporary one: whatever a test or a command writes by default lands there. The user's
# database, password and password file settings are not inherited either.
REAL_DATA_FOLDER = Path(platformdirs.user_data_dir("kapmonitor", appauthor=False))
TEST_HOME = Path(tempfile.mkdtemp(prefix="kapmonitor-test-home-"))
for _var, _sub in (("HOME", ""), ("USERPROFILE", ""), ("XDG_DATA_HOME", ".local/share"),
                   ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                   ("XDG_STATE_HOME", ".local/state"), ("LOCALAPPDATA", "AppData/Local"),
                   ("APPDATA", "AppData/Roaming")):  # fmt: skip
    os.environ[_var] = str(TEST_HOME / _sub)
for _var in ("KAPMONITOR_DB", "KAPMONITOR_DB_PASSWORD", "PGPASSWORD", "PGPASSFILE",
             "KAPMONITOR_MQTT_USER", "KAPMONITOR_MQTT_PASSWORD", "KAPMONITOR_MQTT_CA",
             "KAPMONITOR_MQTT_CERT", "KAPMONITOR_MQTT_KEY"):  # fmt: skip
    os.environ.pop(_var, None)


def data_folder_snapshot(folder: Path = REAL_DATA_FOLDER) -> list[tuple[str, int, int]]:
    """Every file under ``folder`` with its size and modification time (empty: no folder)."""
    if not folder.exists():
        return []
    return sorted(
        (str(p.relative_to(folder)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in [folder, *folder.rglob("*")]
    )


REAL_DATA_AT_START = data_folder_snapshot()


@pytest.fixture(autouse=True, scope="session")
def private_data_folder() -> Path:
    """The data folder every test sees: under the temporary home, never the user's own."""
    folder = Path(platformdirs.user_data_dir("kapmonitor", appauthor=False))
    assert TEST_HOME in folder.parents and folder != REAL_DATA_FOLDER, folder
    return folder


def pytest_sessionfinish(session, exitstatus):
    """The run fails if anything was written under the user's real data folder."""
    shutil.rmtree(TEST_HOME, ignore_errors=True)
    if data_folder_snapshot() != REAL_DATA_AT_START:
        print(f"\nFAILED: the tests wrote into the user's data folder {REAL_DATA_FOLDER}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared reference data is not at {SHARED_DATA}")
    return SHARED_DATA


# --- a real PostgreSQL server on loopback, for the storage tests ------------------------------


class PostgresServer:
    """A throwaway PostgreSQL cluster (see shared/reference/toolchain.md): started once per run."""

    def __init__(self, bindir: Path, base: Path) -> None:
        import socket
        import subprocess

        self._subprocess = subprocess
        self.bindir = bindir
        self.data = base / "data"
        self.sockets = base / "sock"
        self.logfile = base / "server.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.sockets.mkdir()
        # Its tools refuse to run as root: run them as the postgres user then.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            subprocess.run(["chown", "-R", "postgres", str(base)], check=True)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        # One role must give its password (every other connects on trust): the password tests.
        hba = self.data / "pg_hba.conf"
        rule = f"host all {self.PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())
        self.start()
        self._count = 0

    def _run(self, tool: str, *args: str) -> None:
        self._subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets}"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.logfile), "-o", options,
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        from sqlalchemy import create_engine, text

        self._count += 1
        name = f"kap_{os.getpid()}_{self._count}"
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    PASSWORD_ROLE = "kap_pw"
    PASSWORD = "Tr0ub4dor&3-kap"

    def password_database(self) -> str:
        """A fresh database owned by :attr:`PASSWORD_ROLE`, which the server admits only with
        :attr:`PASSWORD`; its URL without the password."""
        from sqlalchemy import create_engine, text

        url = self.new_database()
        name = url.rsplit("/", 1)[1]
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            role = self.PASSWORD_ROLE
            if not conn.execute(text(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")).first():
                conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{self.PASSWORD}'"))
            conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO {role}'))
        admin.dispose()
        return f"postgresql+psycopg://{self.PASSWORD_ROLE}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres():
    import shutil
    import tempfile

    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bindirs:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="kapmonitor-pg-"))
    base.chmod(0o755)
    try:
        server = PostgresServer(bindirs[-1], base)
        yield server
        server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same storage test on both engines: an embedded file and a real server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kapmonitor.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()
