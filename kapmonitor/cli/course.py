"""``kapmonitor course PATIENT``: a patient's treatment course, on screen, as JSON or as PDF.

The window is handed in by the ui entry point (the command line never imports Qt); JSON and
the PDF report need no display.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option
from kapmonitor.cli.shared import opened_store
from kapmonitor.core.errors import UserError

if TYPE_CHECKING:
    from alarms.profile import CourseRule

#: Opens the course window for (patient, database URL, the clinic's rule); the exit status.
CourseWindow = Callable[[str, str | None, "CourseRule"], int]

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
    course.add_argument(
        "--profile",
        default="kap-default",
        help="the clinic's profile (name or .toml file) whose [course] rule notes a session",
    )
    db_option(course)
    demo_option(course)
    course.set_defaults(func=cmd_course)


def cmd_course(args: argparse.Namespace, out: TextIO) -> int:
    window: CourseWindow | None = getattr(args, "course_window", None)
    if not args.json and not args.output and window is None:
        raise UserError("the course window is not available here: use --json or -o FILE.pdf")
    if args.output and Path(args.output).suffix.lower() != ".pdf":
        raise UserError(f"the course report is a PDF: name it FILE.pdf, not '{args.output}'")
    from alarms.profile import load_profile
    from kapmonitor.review.course import course_rule, open_course

    rule = course_rule(load_profile(args.profile))  # a bad profile: one sentence, here
    with opened_store(args.db) as store:
        course = open_course(store, args.patient, rule)  # an unknown patient: one sentence
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
    return window(args.patient, args.db, rule)
