"""Where the session record lives, and opening it ready for use.

By default one SQLite file in the user's data directory (platformdirs): nothing to install or
start, WAL mode so a reader never blocks the recorder, readable by its owner only. ``--db URL``
or ``KAPMONITOR_DB`` selects another database, such as a clinic's PostgreSQL server
(``postgresql+psycopg://user@host/db``). Either way Alembic brings the schema up to date first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kapmonitor.errors import UserError

ENV_VAR = "KAPMONITOR_DB"
FILE_NAME = "kapmonitor.sqlite3"


class DatabaseError(UserError):
    """The session database cannot be opened or used."""


def default_path() -> Path:
    return Path(platformdirs.user_data_dir("kapmonitor", appauthor=False)) / FILE_NAME


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``KAPMONITOR_DB``, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or f"sqlite:///{default_path()}"


@dataclass
class Database:
    engine: Engine
    url: str  #: for messages, with any password hidden

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None) -> Database:
    """Open (creating if need be) and migrate the session database."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"'{url}' is not a database URL") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _prepare_sqlite_file(Path(parsed.database))
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
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
    return db


def _prepare_sqlite_file(path: Path) -> None:
    # The record holds patient data: the file is created readable by its owner only.
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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


def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (creating it on a new database)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("kapmonitor.record") / "migrations"))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
