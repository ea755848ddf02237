"""``export``: a recorded session as a file in one of the export registry's formats."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option
from kapmonitor.cli.shared import opened_store
from kapmonitor.core.errors import UserError


class _FormatNames:
    """The export formats' names, read from the registry only when asked (a --format given,
    the export command's help): importing the exporters costs ``kapmonitor --help`` numpy and
    more."""

    def _names(self) -> list[str]:
        from kapmonitor.export.formats import FORMATS

        return list(FORMATS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


class _FormatsHelp(str):
    """The --format help, written from the registry only when help is shown (argparse fills
    a help string in with ``%``)."""

    def __mod__(self, params: object) -> str:
        from kapmonitor.export.formats import formats_text

        return f"{', '.join(_FormatNames())}: {formats_text()}"


def add_export(subs: Subcommands) -> None:
    exp = subs.add_parser(
        "export",
        help="export a session (CSV, FHIR, HL7, .vital, PDF: see export --help)",
        description="Export a recorded session.",
    )
    db_option(exp)
    exp.add_argument("id", type=int, metavar="ID")
    exp.add_argument(
        "--format",
        required=True,
        choices=_FormatNames(),  # a lazy container
        metavar="FORMAT",  # argparse would list the choices as it builds the parser
        help=_FormatsHelp("the file format"),  # non-empty, or argparse shows no help
    )
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
    from kapmonitor.export import export_session
    from kapmonitor.export.formats import FORMATS

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
