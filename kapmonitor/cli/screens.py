"""The screens: the dosing-room screen (no command, or ``demo``) and the clinician's ``review``.

The core cannot import Qt: the entry point in ui/ hands the functions that open the screens in
(:data:`Screen`, :data:`Review`), and without them (``python -m kapmonitor``) these commands
say so in one sentence.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option, positive_float
from kapmonitor.cli.shared import opened_store
from kapmonitor.cli.station import broker_credentials, room_options
from kapmonitor.core.errors import UserError

if TYPE_CHECKING:
    from kapmonitor.runner import SessionConfig

#: Shows the dosing-room screen for a config (None: ask in the start dialog) and returns the
#: exit status.
Screen = Callable[["SessionConfig | None", str | None], int]

#: Opens the review (the browser, or session ID) on a database URL, for a reviewer.
Review = Callable[[int | None, str | None, str | None], int]


def add_demo(subs: Subcommands) -> None:
    demo = subs.add_parser(
        "demo",
        help="the dosing-room screen on the built-in simulator",
        description="Open the dosing-room screen on a simulated KAP session.",
    )
    demo.add_argument("--scenario", default="typical", help="scenario name or .toml file")
    demo.add_argument("--speed", type=positive_float, default=1.0, help="time factor (60: 1 h/min)")
    demo.add_argument("--seed", type=int, default=0, help="the same seed gives the same session")
    demo.add_argument("--profile", default="kap-default", help="alarm profile: name or .toml file")
    db_option(demo)
    room_options(demo)
    demo.set_defaults(func=cmd_demo)


def add_review(subs: Subcommands) -> None:
    rev = subs.add_parser(
        "review",
        help="review recorded sessions: the session browser, or one session",
        description="Open the clinician's review: the session browser, or session ID directly.",
    )
    rev.add_argument("id", type=int, nargs="?", help="the session to open (default: browse)")
    rev.add_argument("--reviewer", help="who reviews, for notes and amendments (default: login)")
    db_option(rev)
    demo_option(rev)
    rev.set_defaults(func=cmd_review)


def cmd_screen(args: argparse.Namespace, out: TextIO) -> int:
    if args.screen is None:
        raise UserError("the screen is not available here: run the 'kapmonitor' command")
    return args.screen(None, args.db)


def cmd_review(args: argparse.Namespace, out: TextIO) -> int:
    if args.review is None:
        raise UserError("the review is not available here: run the 'kapmonitor' command")
    if args.id is None:
        from kapmonitor.record.db import require_existing

        require_existing(args.db)  # the browser only reads: a mistyped path is not created
    else:
        with opened_store(args.db) as store:
            store.session_info(args.id)  # a wrong id: one sentence, before any window opens
    return args.review(args.id, args.db, args.reviewer)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.screen is None:
        raise UserError("the screen is not available here: run the 'kapmonitor' command")
    from kapmonitor.record.session import SessionSetup
    from kapmonitor.runner import SessionConfig

    config = SessionConfig(
        SessionSetup(
            patient="DEMO",
            operator="demo",
            devices=(f"sim:{args.scenario}",),
            profile=args.profile,
            room=args.room or "",
            broker=args.broker or "",
            label=args.label,
        ),
        broker_credentials=broker_credentials(args),
        db_url=args.db,
        speed=args.speed,
        seed=args.seed,
        scenario_dose=True,  # the scenario's dose is T0 unless the nurse presses D first
    )
    return args.screen(config, args.db)
