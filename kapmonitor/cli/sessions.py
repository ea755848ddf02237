"""``sessions list``, ``sessions show`` and ``import``: the session record on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from kapmonitor.cli.options import Subcommands, db_option, demo_option, identifier
from kapmonitor.cli.shared import opened_store, when
from kapmonitor.core.errors import UserError
from kapmonitor.core.identifiers import matches, one_line
from kapmonitor.record.session import SessionStatus

if TYPE_CHECKING:
    from kapmonitor.record.session import SessionRecord


def add_sessions(subs: Subcommands) -> None:
    sessions = subs.add_parser(
        "sessions", help="list and show recorded sessions", description="Recorded sessions."
    )
    session_subs = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    lst = session_subs.add_parser("list", help="list sessions, newest first")
    db_option(lst)
    lst.add_argument(
        "--json", action="store_true", help="as JSON (id, patient, start, end, status)"
    )
    lst.add_argument(
        "--patient", help="only sessions whose patient identifier contains this (any case)"
    )
    lst.add_argument("--status", choices=[s.value for s in SessionStatus], help="only these")
    lst.add_argument("--limit", type=int, help="at most this many")
    demo_option(lst)
    lst.set_defaults(func=cmd_sessions_list)
    show = session_subs.add_parser("show", help="one session: header, devices, NIBP readings")
    db_option(show)
    show.add_argument("id", type=int, metavar="ID")
    demo_option(show)
    show.set_defaults(func=cmd_sessions_show)


def add_import(subs: Subcommands) -> None:
    imp = subs.add_parser(
        "import",
        help="bring a VitalDB .vital file or a PhysioNet WFDB record in as a session",
        description="Import a recording as a new, completed session and print its id. Needs "
        "the optional readers: pip install 'kapmonitor[import]'.",
    )
    db_option(imp)
    imp.add_argument(
        "file", metavar="FILE", help="a .vital file, or a WFDB record (.hea, or the path without)"
    )
    imp.add_argument(
        "--patient",
        default="unspecified",
        type=identifier("patient identifier"),
        help="patient identifier",
    )
    imp.set_defaults(func=cmd_import)


def cmd_sessions_list(args: argparse.Namespace, out: TextIO) -> int:
    with opened_store(args.db) as store:
        sessions = store.list_sessions(
            status=SessionStatus(args.status) if args.status else None,
            limit=None if args.patient else args.limit,
        )
        if args.patient:  # matched as the review browser does: any part, any case
            sessions = [s for s in sessions if matches(args.patient, s.patient)]
            sessions = sessions[: args.limit] if args.limit else sessions
        if args.json:
            json.dump(
                [
                    {"id": s.id, "uid": s.uid, "patient": s.patient, "clinician": s.clinician,
                     "start": when(s.started), "end": when(s.ended) or None,
                     "status": s.status.value, "drug": s.drug.value if s.drug else None}
                    for s in sessions
                ],
                out,
                indent=1,
            )  # fmt: skip
            out.write("\n")
        else:
            for s in sessions:
                out.write(
                    f"{s.id:>6}  {when(s.started):25}  {s.status.value:17}  {one_line(s.patient)}"
                    f"{'  (' + one_line(s.clinician) + ')' if s.clinician else ''}\n"
                )
        return 0


def cmd_sessions_show(args: argparse.Namespace, out: TextIO) -> int:
    with opened_store(args.db) as store:
        record = store.load_session(args.id, waves=False)
        info = record.info
        dose = record.dose_stamp
        lines = [
            f"session {info.id} ({info.uid}): {info.status.value}",
            f"patient {one_line(info.patient)}; clinician {one_line(info.clinician) or '-'}; "
            f"operator {one_line(info.operator) or '-'}",
            " ".join(
                str(x)
                for x in ("drug", info.drug or "-", info.route, info.dose, info.dose_unit)
                if x not in (None, "")
            ),
            f"from {when(info.started)} to {when(info.ended) or '(still recording)'}",
            _monitored(record),
            f"dose given (T0) at {when(dose.wall) if dose else '(no dose recorded)'}",
            f"alarm profile {info.alarm_profile or '-'}",
            "devices: " + (", ".join(d.source for d in record.devices) or "none"),
            f"{len(record.numerics)} numerics, {len(record.nibp)} NIBP readings, "
            f"{len(record.events)} events, {len(record.alarms)} alarm log entries",
        ]
        for r in record.nibp:
            minutes = record.minutes_from_dose(r.stamp)
            at = f"{minutes:+.0f} min" if minutes is not None else when(r.stamp.wall)
            value = f"{r.systolic:.0f}/{r.diastolic:.0f} ({r.mean:.0f})" if r.systolic else "failed"
            lines.append(f"  NIBP {at:>9}: {value}")
        out.write("\n".join(lines) + "\n")
        return 0


def _monitored(record: SessionRecord) -> str:
    """The time monitored, from the data; for a simulated session, how its clock ran."""
    from kapmonitor.record.simulated import is_simulated
    from kapmonitor.review.summary import monitoring_span

    start, end = monitoring_span(record)
    if start is None or end is None:
        return "monitored: no device data"
    line = f"monitored {(end - start) / 60:.0f} min (data {when(start)} to {when(end)})"
    if is_simulated(d.source for d in record.devices):
        real = (record.info.ended or end) - record.info.started
        speed = f", about {(end - start) / real:.0f} times the real one" if real > 0 else ""
        line += f"; simulated: the data carry the simulated device's clock{speed}"
    return line


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    from kapmonitor.record.importers import read_recording, store_recording

    recording = read_recording(args.file)  # a bad file is refused before the database opens
    with opened_store(args.db, reading=False) as store:
        session_id = store_recording(store, recording, patient=args.patient)
    out.write(f"{session_id}\n")  # the id alone on stdout, for scripts
    flagged = (
        f"; {recording.out_of_range} values outside their physical range are flagged out-of-range"
        if recording.out_of_range
        else ""
    )
    if recording.truncated:
        # Kept, not refused: what the file holds up to the cut is data; the session says so.
        raise UserError(
            f"'{args.file}' is truncated: the {len(recording.items)} items before the cut are "
            f"imported as session {session_id}, marked interrupted{flagged}"
        )
    print(
        f"kapmonitor: {args.file} imported as session {session_id} "
        f"({len(recording.items)} items from {', '.join(recording.sources)}){flagged}",
        file=sys.stderr,
    )
    return 0
