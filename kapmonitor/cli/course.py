"""``kapmonitor course PATIENT``: a patient's treatment course, on screen, as JSON or as PDF.

The window is handed in by the ui entry point (the command line never imports Qt); JSON and
the PDF report need no display.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option
from kapmonitor.cli.shared import opened_store
from kapmonitor.core.errors import UserError

#: Opens the course window for (patient, database URL) and returns the exit status.
CourseWindow = Callable[[str, str | None], int]

PAPERS = ("a4", "letter")


def add_course(subs: Subcommands) -> None:
    course = subs.add_parser(
        "course",
        help="a patient's treatment course: sessions side by side",
        description="Show a patient's sessions oldest first, with the BP response to each dose.",
    )
    course.add_argument("patient", help="the patient identifier as the clinic uses it")
    how = course.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the course as one JSON object")
    how.add_argument("-o", "--output", metavar="FILE.pdf", help="write the course report (PDF)")
    course.add_argument("--paper", choices=PAPERS, default="a4", help="the report's paper size")
    db_option(course)
    demo_option(course)
    course.set_defaults(func=cmd_course)


def cmd_course(args: argparse.Namespace, out: TextIO) -> int:
    window: CourseWindow | None = getattr(args, "course_window", None)
    if not args.json and not args.output and window is None:
        raise UserError("the course window is not available here: use --json or -o FILE.pdf")
    if args.output and Path(args.output).suffix.lower() != ".pdf":
        raise UserError(f"the course report is a PDF: name it FILE.pdf, not '{args.output}'")
    from kapmonitor.review.course import open_course

    with opened_store(args.db) as store:
        course = open_course(store, args.patient)  # an unknown patient: one sentence, here
    if args.json:
        json.dump(course.as_json(), out, indent=1, allow_nan=False)
        out.write("\n")
        return 0
    if args.output:
        from kapmonitor.export.course_pdf import write

        with open(args.output, "wb") as f:
            write(course, f, paper=args.paper)
        return 0
    assert window is not None
    return window(args.patient, args.db)
