"""Where the database is by default, the variables that name another, and password masking,
without SQLAlchemy.

The command line needs these before it knows whether a command opens a database at all (its
help text names the variables; every message it prints is masked), and the crash log goes into
the data folder: they live apart from :mod:`kapmonitor.record.db`, whose SQLAlchemy and Alembic
would slow every command's start.
"""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs

FILE_NAME = "kapmonitor.sqlite3"
ENV_VAR = "KAPMONITOR_DB"
#: A database server's password, kept out of the URL (and so out of ``ps`` and of messages).
PASSWORD_ENV = "KAPMONITOR_DB_PASSWORD"

# [scheme://]user:PASSWORD@ — the password runs to the last "@" of the word (a user may not have
# percent-encoded an "@" in it), and the scheme may be mistyped.
URL_PASSWORD = re.compile(
    r"(?P<head>(?:[A-Za-z][\w+.-]*://)?[^\s:/@'\"]*:)(?P<password>(?!//)\S*)@"
)


def default_path() -> Path:
    """The default SQLite file, in the user's data folder."""
    return Path(platformdirs.user_data_dir("kapmonitor", appauthor=False)) / FILE_NAME


def mask_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``: for every message."""
    return URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)
