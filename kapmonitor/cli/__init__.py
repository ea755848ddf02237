"""The ``kapmonitor`` command: one entry point, a subcommand per job.

A user mistake (unknown protocol, missing port, broken scenario file) ends with one line on
stderr naming the problem and exit status 2, never a traceback.

Each command group is a module of this package that adds its subcommands to the parser and
imports what only its commands need (the database, the runner, the exporters) when they run:
``kapmonitor --help`` and ``kapmonitor decode`` never load SQLAlchemy, Alembic, Qt or reportlab.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kapmonitor.cli import (
    alarms,
    course,
    decode,
    devices,
    export,
    record,
    screens,
    sessions,
    station,
)
from kapmonitor.cli.options import EXIT_USER_ERROR, Parser, db_option
from kapmonitor.cli.screens import Review, Screen
from kapmonitor.core import log_lines
from kapmonitor.core.errors import UserError
from kapmonitor.record.db_env import PASSWORD_ENV, mask_password

log = logging.getLogger("kapmonitor")

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kapmonitor",
        description="Vital-signs monitor for ketamine-assisted psychotherapy sessions.",
    )
    db_option(parser)
    parser.set_defaults(func=screens.cmd_screen)  # no command: the dosing-room screen
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    screens.add_demo(subs)
    devices.add_simulate(subs)
    record.add_record(subs)
    devices.add_capture(subs)
    decode.add_decode(subs)
    sessions.add_sessions(subs)
    screens.add_review(subs)
    export.add_export(subs)
    sessions.add_import(subs)
    alarms.add_alarms(subs)
    course.add_course(subs)
    station.add_station(subs)
    return parser


def _use_db_password(args: argparse.Namespace) -> None:
    """Warn of a password written into --db (``ps`` shows it to every user); take one from a
    file into the environment, where the database layer and libpq read it."""
    if not args.db and not args.db_password_file:
        return  # nothing to check: the database layer is not even loaded
    from kapmonitor.record.db import has_password, parse_url, read_password_file

    if has_password(args.db):
        parse_url(args.db)  # a URL that cannot be used is refused first, in its one sentence
        print(
            f"kapmonitor: warning: the password in --db can be seen by other users (ps): give it "
            f"in ${PASSWORD_ENV}, PGPASSWORD, --db-password-file or ~/.pgpass instead",
            file=sys.stderr,
        )
    if args.db_password_file:
        os.environ[PASSWORD_ENV] = read_password_file(Path(args.db_password_file))


class _MaskPasswords(logging.Filter):
    """No log line shows a database password, whatever the message quotes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_password(record.getMessage()), None
        return True


def _is_database_error(exc: Exception) -> bool:
    """Whether ``exc`` is the database's: SQLAlchemy's (only loaded once a command opened the
    database, so without it loaded no error can be its) or SQLite's own."""
    sqlite3 = sys.modules.get("sqlite3")  # likewise: without it loaded, no error is SQLite's
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    return (sqlite3 is not None and isinstance(exc, sqlite3.Error)) or (
        sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.SQLAlchemyError)
    )


def _database_failure(args: argparse.Namespace, exc: Exception) -> str:
    """One sentence for a database error nobody caught."""
    from kapmonitor.cli.shared import first_line
    from kapmonitor.record.db import database_url

    reason = first_line(exc)
    if "malformed" in reason or "not a database" in reason:
        reason += ": the file is damaged (restore it from a backup)"
    return f"the database {database_url(getattr(args, 'db', None))} cannot be used: {reason}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    *,
    screen: Screen | None = None,
    review: Review | None = None,
    course_window: course.CourseWindow | None = None,
    station_window: station.StationWindow | None = None,
) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named against the subcommand they were given to, not the top level
        command = [args.command, *(getattr(args, f"{args.command}_command", None),)]
        prog = " ".join(["kapmonitor", *filter(None, command)])
        parser.exit(
            EXIT_USER_ERROR,
            f"kapmonitor: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)\n",
        )
    args.db = getattr(args, "db", None)
    args.db_password_file = getattr(args, "db_password_file", None)
    args.screen = screen
    args.review = review
    args.station_window = station_window
    args.course_window = course_window
    args.verbose = getattr(args, "verbose", False)
    log_lines.configure(args.verbose)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_MaskPasswords())
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)  # stop cleanly, flushing what was recorded
    try:
        if getattr(args, "demo", False):
            if args.db:
                raise UserError("--demo and --db name two databases: give one of them")
            from kapmonitor.record.simulated import demo_url

            args.db = demo_url()
        _use_db_password(args)
        status: int = args.func(args, out or sys.stdout)
        return status
    except UserError as exc:
        print(f"kapmonitor: {mask_password(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`| head`): not an error of ours to report.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # A file or folder the system refuses (permissions, a full disk): named, no traceback.
        where = f" '{exc.filename}'" if exc.filename else ""
        reason = (exc.strerror or str(exc)).lower()
        print(f"kapmonitor: cannot use{where}: {mask_password(reason)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        print(f"kapmonitor: {mask_password(_database_failure(args, exc))}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
