"""Argument types and options shared by several commands.

An argument type raises :class:`argparse.ArgumentTypeError`, which the parser turns into one
sentence and exit status 2. Nothing here imports the database: building the parser for
``--help`` or ``decode`` must stay fast.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeAlias

from kapmonitor.core.errors import UserError
from kapmonitor.core.identifiers import check_identifier
from kapmonitor.record.db_env import ENV_VAR as DB_ENV_VAR
from kapmonitor.record.db_env import PASSWORD_ENV

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An argument error in one sentence and a pointer to the subcommand's help, not its usage;
    ``-v`` before or after the subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,  # one given before the subcommand is kept
            help="log connection details, with the module that logs and any traceback",
        )

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"kapmonitor: {message} (see {self.prog} --help)\n")


#: Where a command group adds its subcommands (each one a :class:`Parser` too).
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """``90m``, ``2h``, ``1h30m``, ``45s`` → seconds."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a duration: write it with a unit, like 90m, 2h, 1h30m or 45s"
        )
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number")
    return value


def identifier(what: str, *, optional: bool = False) -> Callable[[str], str]:
    """An argument type for a patient or clinician identifier (see :mod:`.core.identifiers`)."""

    def parse(text: str) -> str:
        try:
            return check_identifier(text, what, optional=optional)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def db_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's unused option must not overwrite one given before the subcommand
    # (`kapmonitor --db URL record`), or the recording would go to the default database.
    parser.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"database URL (default: ${DB_ENV_VAR}, else a SQLite file in the user's data "
        "folder); put no password in it: see --db-password-file",
    )
    parser.add_argument(
        "--db-password-file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"the database server's password on the first line of FILE (or: ${PASSWORD_ENV}, "
        "PGPASSWORD, PGPASSFILE, ~/.pgpass)",
    )


def demo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo database, where simulated and replayed sessions are recorded",
    )
