"""``alarms replay`` and ``alarms profiles``: the alarm engine offline; the profiles that ship."""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO, TextIO

from kapmonitor.cli.options import Subcommands
from kapmonitor.core import jsonl
from kapmonitor.core.errors import UserError


def add_alarms(subs: Subcommands) -> None:
    alarms = subs.add_parser(
        "alarms",
        help="alarm profiles and offline alarm replay",
        description="Alarm profiles and offline alarm replay.",
    )
    alarm_subs = alarms.add_subparsers(dest="alarms_command", required=True, metavar="ACTION")
    rep = alarm_subs.add_parser(
        "replay",
        help="run the alarm engine over recorded measurements",
        description="Read measurement JSON lines (as decode and record write them, plus "
        '{"t": T, "event": "dose"} and bare {"t": T} lines) and write the alarm timeline '
        "as JSON lines. Time comes from the input alone.",
    )
    rep.add_argument("--in", dest="input", required=True, metavar="FILE", help="JSON lines, or -")
    rep.add_argument("--profile", default="kap-default", help="profile name or .toml file")
    rep.set_defaults(func=cmd_alarms_replay)
    prof = alarm_subs.add_parser("profiles", help="list the alarm profiles that ship")
    prof.set_defaults(func=cmd_alarms_profiles)


def cmd_alarms_replay(args: argparse.Namespace, out: TextIO) -> int:
    from alarms.engine import AlarmEngine
    from alarms.profile import load_profile
    from alarms.replay import read_items, timeline

    engine = AlarmEngine(load_profile(args.profile))
    name = "standard input" if args.input == "-" else args.input
    lines: BinaryIO
    if args.input == "-":
        lines = sys.stdin.buffer  # bytes: read_items decodes each line and names a bad one
    else:
        try:
            lines = open(args.input, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise UserError(f"cannot read '{args.input}': {exc.strerror}") from None
    try:
        for record in timeline(engine, read_items(lines, name)):
            out.write(jsonl.dumps(record) + "\n")
    finally:
        if lines is not sys.stdin.buffer:
            lines.close()
    return 0


def cmd_alarms_profiles(args: argparse.Namespace, out: TextIO) -> int:
    from alarms.profile import load_profile, profile_names

    for name in profile_names():
        out.write(f"{name}\t{load_profile(name).description}\n")
    return 0
