"""Where the session record lives, and opening it ready for use.

By default one SQLite file in the user's data directory (platformdirs): nothing to install or
start, WAL mode so a reader never blocks the recorder, readable by its owner only. ``--db URL``
or ``KAPMONITOR_DB`` selects another database, such as a clinic's PostgreSQL server
(``postgresql+psycopg://user@host/db``). Either way Alembic brings the schema up to date first.

A SQLite file can be deleted or replaced under a running recorder (a clean-up script, a user in
a file manager); SQLite itself goes on writing into the unlinked file and nobody would know.
:meth:`Database.check_file` compares the file's device and inode with the ones opened, and when
they differ restores the whole database, read through a connection still open on the old file,
with SQLite's backup API: into a new file at the same path when the file is gone, or into a side
file beside it (``<name>-recovered-<time>.sqlite3``) when another file took its place — that one
is not ours to overwrite. Recording then goes on into the restored file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kapmonitor.core.errors import UserError
from kapmonitor.record.db_env import (
    ENV_VAR,
    PASSWORD_ENV,
    URL_PASSWORD,
    default_path,
    mask_password,
)


class DatabaseError(UserError):
    """The session database cannot be opened or used."""


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``KAPMONITOR_DB``, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or f"sqlite:///{default_path()}"


@dataclass
class Database:
    engine: Engine
    url: str  #: for messages, with any password hidden
    path: Path | None = None  #: the SQLite file, if it is one
    #: a connection held open on the file: the copy to restore from if the file is deleted
    _keeper: sqlite3.Connection | None = field(default=None, repr=False)
    _identity: tuple[int, int] | None = field(default=None, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _hold(self) -> None:
        assert self.path is not None
        self._keeper = sqlite3.connect(self.path, check_same_thread=False)
        self._keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def check_file(self) -> str | None:
        """None if the SQLite file is the one opened; else restore it and say what happened.

        Raises :class:`OSError` or :class:`sqlite3.Error` if it cannot be restored (the disk is
        full, say): the caller keeps its batches and asks again.
        """
        if self._keeper is None or self.path is None:
            return None
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                return None
            target = self.path.with_name(
                f"{self.path.stem}-recovered-{time.strftime('%Y%m%d-%H%M%S')}{self.path.suffix}"
            )
            what = "was replaced by another file"
        except FileNotFoundError:
            target, what = self.path, "was deleted"
        self._restore(target)
        where = "at the same path" if target == self.path else f"into {target}"
        return f"the database file {self.path} {what} while recording; it is restored {where}"

    def _restore(self, target: Path) -> None:
        assert self._keeper is not None and self.path is not None
        partial = target.with_name(f".{target.name}.restoring")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        copy = sqlite3.connect(partial)
        try:
            self._keeper.backup(copy)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            copy.close()
        if target == self.path:
            for stale in ("-wal", "-shm"):  # the deleted database's: not the new one's
                Path(f"{self.path}{stale}").unlink(missing_ok=True)
        # The old connections close on the old file: SQLite sees it moved and leaves names alone.
        self.engine.dispose()
        self._keeper.close()
        os.replace(partial, target)
        if target != self.path:
            self.engine = create_engine(
                f"sqlite:///{target}", pool_pre_ping=True, hide_parameters=True
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.url = f"sqlite:///{target}"
            self.path = target
        self._hold()


def has_password(url: str | None) -> bool:
    """Whether ``url`` carries a password itself (visible to other users in ``ps``)."""
    if not url:
        return False
    try:
        return make_url(url).password is not None
    except (ArgumentError, ValueError):
        return URL_PASSWORD.search(url) is not None


def read_password_file(path: Path) -> str:
    """The password on the first line of ``path``, a file only its owner may read."""
    try:
        if os.name == "posix" and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise DatabaseError(
                f"the password file '{path}' can be read by other users: chmod 600 it"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatabaseError(f"cannot read the password file '{path}': {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DatabaseError(f"the password file '{path}' is not UTF-8 text") from None
    if not lines or not lines[0]:
        raise DatabaseError(f"the password file '{path}' is empty: the password goes on line 1")
    return lines[0]


def parse_url(url: str | None = None) -> URL:
    """The database URL to use, checked, with the password from ``KAPMONITOR_DB_PASSWORD``
    when the URL has none (libpq itself reads ``PGPASSWORD``, ``PGPASSFILE`` and ``~/.pgpass``).

    Raises DatabaseError, never naming the password, for a URL that cannot be one.
    """
    url = database_url(url)
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError):
        raise DatabaseError(f"'{mask_password(url)}' is not a database URL") from None
    if port is not None and not 0 < port < 65536:
        raise DatabaseError(
            f"the port {port} in the database URL {parsed.render_as_string(hide_password=True)} "
            "is not a port number (1 to 65535)"
        )
    password = os.environ.get(PASSWORD_ENV)
    if password and parsed.password is None and parsed.get_backend_name() != "sqlite":
        parsed = parsed.set(password=password)
    return parsed


def sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite database URL (None: not SQLite, or in memory)."""
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def local_folder(url: str) -> Path:
    """Where this machine keeps files that go with a database (its spools): beside a SQLite
    file, so a command given ``--db`` writes nothing into the data folder; else the data folder."""
    path = sqlite_file(parse_url(url))
    return path.resolve().parent if path is not None else default_path().parent


def private_folder(folder: Path) -> Path:
    """Create ``folder``, and each missing folder above it, readable by its owner only (0700):
    they hold patient data. An existing folder is left as it is, except kapmonitor's data folder
    and the folders in it, which an older version made readable by all: they are closed (0700)."""
    for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    data = default_path().parent
    for mine in (p for p in (folder, *folder.parents) if p == data or data in p.parents):
        with contextlib.suppress(OSError):  # not ours to change: it stays as it is
            if os.name == "posix" and mine.stat().st_mode & 0o077:
                mine.chmod(0o700)
    return folder


def require_existing(url: str | None = None) -> None:
    """Refuse, before anything is created, a SQLite database that does not exist: for commands
    that only read, where a mistyped path would otherwise become a new, empty database."""
    path = sqlite_file(parse_url(url))
    if path is None or path.is_file():
        return
    if url or os.environ.get(ENV_VAR):
        raise DatabaseError(f"the database '{path}' does not exist (check the path)")
    raise DatabaseError(f"no session has been recorded here yet (there is no database '{path}')")


def open_database(url: str | None = None) -> Database:
    """Open (creating if need be) and migrate the session database."""
    parsed = parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _prepare_sqlite_file(Path(parsed.database))
    try:
        # hide_parameters: no error message or log line carries the values (a patient id).
        engine = create_engine(
            parsed, pool_pre_ping=True, hide_parameters=True, connect_args=_line_limits(parsed)
        )
    except (ImportError, ArgumentError) as exc:
        raise DatabaseError(f"cannot use the database {shown}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    db = Database(engine, shown)
    try:
        migrate(db)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open the database {shown}: {_reason(exc)}") from None
    except DatabaseError:
        engine.dispose()
        raise
    if db.is_sqlite and parsed.database not in (None, "", ":memory:"):
        db.path = Path(parsed.database)
        try:
            db._hold()
        except (OSError, sqlite3.Error) as exc:
            db.close()
            raise DatabaseError(f"cannot open the database {shown}: {exc}") from None
    return db


#: A server that stops answering (a network cut that sends nothing back) is an error within
#: seconds, not a connect or a query that waits for TCP's 15-minute give-up: the recorder must
#: raise the "recording failing" alarm and spool, not hang silently.
LIBPQ_LINE_LIMITS = {
    "connect_timeout": 10,  # seconds
    "tcp_user_timeout": 10_000,  # milliseconds a sent byte may stay unacknowledged
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def _line_limits(parsed: URL) -> dict:
    libpq = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
        "psycopg",
        "psycopg2",
    )
    # A limit given in the URL (``?connect_timeout=30``) is the user's choice and stays.
    return {k: v for k, v in LIBPQ_LINE_LIMITS.items() if k not in parsed.query} if libpq else {}


def _prepare_sqlite_file(path: Path) -> None:
    # The record holds patient data: the file is created readable by its owner only.
    try:
        private_folder(path.parent)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    except OSError as exc:
        raise DatabaseError(f"cannot create the database file '{path}': {exc.strerror}") from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the recorder
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process, and fast
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


#: The newest migration's revision (``migrations/versions``). A database already at it opens
#: without loading Alembic and reading its scripts, which was half a second of every command
#: that opens the record (``sessions list``, ``course``, review) on this machine. A test checks
#: that it is Alembic's head.
HEAD_REVISION = "0004"


def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (creating it on a new database)."""
    if _at_head(db):
        return
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("kapmonitor.record") / "migrations"))
    try:
        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except CommandError as exc:  # a revision this version does not know: a newer kapmonitor's
        raise DatabaseError(
            f"cannot open the database {db.url}: its schema is not one this version of"
            f" kapmonitor knows ({exc}); was it made by a newer version?"
        ) from None


def _at_head(db: Database) -> bool:
    """Whether the database's schema is the newest: False for a new database (no version table
    yet) and for any doubt, which the migrations then settle (or report)."""
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False
    return [row[0] for row in rows] == [HEAD_REVISION]


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
