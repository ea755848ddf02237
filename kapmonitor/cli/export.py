"""``export``: a recorded session as a file in one of the export registry's formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option
from kapmonitor.cli.shared import opened_store
from kapmonitor.core.errors import UserError
from kapmonitor.export import export_session
from kapmonitor.export.formats import FORMATS, formats_text


def add_export(subs: Subcommands) -> None:
    exp = subs.add_parser(
        "export",
        help=f"export a session as {formats_text()}",
        description="Export a recorded session.",
    )
    db_option(exp)
    exp.add_argument("id", type=int, metavar="ID")
    exp.add_argument("--format", required=True, choices=list(FORMATS))
    exp.add_argument("-o", "--output", required=True, metavar="PATH", help="file to write")
    exp.add_argument(
        "--deidentify",
        action="store_true",
        help="a pseudonym for the patient, no names, dates shifted, no free text (see README)",
    )
    exp.add_argument(
        "--keep-notes", action="store_true", help="with --deidentify: keep the notes' free text"
    )
    demo_option(exp)
    exp.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    with opened_store(args.db) as store:
        record = store.load_session(args.id, waves=FORMATS[args.format].waves)
        if args.keep_notes and not args.deidentify:
            raise UserError("--keep-notes goes with --deidentify (an export keeps notes otherwise)")
        export_session(
            record,
            args.format,
            Path(args.output),
            deidentify=args.deidentify,
            keep_notes=args.keep_notes,
        )
        print(
            f"kapmonitor: session {args.id} exported as {args.format} to {args.output}",
            file=sys.stderr,
        )
        return 0
