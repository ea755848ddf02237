"""``record``: one or more devices recorded headless into one patient stream (JSON lines)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from devices.base import DEFAULT_NO_DATA_TIMEOUT
from kapmonitor.cli.options import (
    Subcommands,
    db_option,
    identifier,
    parse_duration,
    positive_float,
)
from kapmonitor.cli.shared import StopRequest, first_line, say_interrupted, stop_on_signal
from kapmonitor.cli.station import broker_credentials, room_options
from kapmonitor.core import jsonl
from kapmonitor.core.device_spec import REPLAY, SIM
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Item, WaveformBlock
from kapmonitor.record.session import Drug, Route, SessionSetup


def add_record(subs: Subcommands) -> None:
    rec = subs.add_parser(
        "record",
        help="record devices headless, as JSON lines on stdout",
        description="Record one or more devices into one patient stream (JSON lines).",
    )
    rec.add_argument(
        "--device",
        action="append",
        required=True,
        metavar="D",
        help="PROTOCOL@PORT (nonin2@/dev/ttyUSB0, nonin2@socket://host:7000), sim:SCENARIO or "
        "replay:SESSION (a recorded session, from --db); repeat for several devices",
    )
    rec.add_argument("--duration", type=parse_duration, help="stop after this long (90m, 2h)")
    rec.add_argument(
        "--speed", type=positive_float, default=1.0, help="time factor for sim: and replay:"
    )
    rec.add_argument("--seed", type=int, default=0, help="seed of simulated devices")
    rec.add_argument("--no-waves", action="store_true", help="leave out waveform blocks")
    rec.add_argument(
        "--profile", default="kap-default", help="alarm profile: a name or a .toml file"
    )
    db_option(rec)
    rec.add_argument(
        "--patient",
        default="unspecified",
        type=identifier("patient identifier"),
        help="patient identifier",
    )
    rec.add_argument(
        "--clinician",
        default="",
        type=identifier("clinician", optional=True),
        help="responsible clinician",
    )
    rec.add_argument(
        "--operator",
        default="",
        type=identifier("operator", optional=True),
        help="who runs the recording",
    )
    rec.add_argument("--drug", choices=[d.value for d in Drug], help="ketamine or esketamine")
    rec.add_argument("--route", choices=[r.value for r in Route], help="route of administration")
    rec.add_argument("--dose", type=positive_float, help="dose given")
    rec.add_argument("--dose-unit", default="mg", help="unit of the dose (default mg)")
    rec.add_argument("--weight", type=positive_float, metavar="KG", help="patient weight (mg/kg)")
    rec.add_argument("--indication", default="", help="the reason for treatment")
    rec.add_argument(
        "--no-data-timeout",
        type=positive_float,
        default=DEFAULT_NO_DATA_TIMEOUT,
        metavar="S",
        help="seconds of silence before a device is in 'no data' (default 10)",
    )
    room_options(rec)
    rec.set_defaults(func=cmd_record)


def cmd_record(args: argparse.Namespace, out: TextIO) -> int:
    with stop_on_signal() as stop:
        return _record(args, out, stop)


def _record(args: argparse.Namespace, out: TextIO, stop: StopRequest) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from alarms.model import LogEvent
    from alarms.replay import timeline_record
    from devices.serial_driver import SerialDriver
    from kapmonitor.record.session import SessionStatus
    from kapmonitor.record.simulated import is_simulated
    from kapmonitor.runner import SessionConfig, SessionRunner

    setup = SessionSetup(
        patient=args.patient,
        clinician=args.clinician,
        operator=args.operator,
        drug=Drug(args.drug) if args.drug else None,
        route=Route(args.route) if args.route else None,
        dose=args.dose,
        dose_unit=args.dose_unit,
        weight_kg=args.weight,
        indication=args.indication.strip(),
        devices=tuple(args.device),
        profile=args.profile,
        room=args.room or "",
        broker=args.broker or "",
        label=args.label,
    )
    config = SessionConfig(
        setup,
        db_url=args.db,
        speed=args.speed,
        seed=args.seed,
        scenario_dose=True,
        until=args.duration,
        no_data_timeout=args.no_data_timeout,
        broker_credentials=broker_credentials(args),
    )
    runner = SessionRunner(config)
    sub = runner.hub.subscribe("jsonl", maxsize=1_000_000)
    alarm_sub = runner.alarms.out.subscribe("jsonl", maxsize=1_000_000)
    all_simulated = all(spec.kind in (SIM, REPLAY) for spec in runner.specs)  # they end
    with_source = len(runner.specs) > 1
    origin: float | None = None  # t = 0 is the first item: the first device starting to connect

    def write(item: Item) -> None:
        nonlocal origin
        if origin is None:
            origin = item.stamp.mono
        if args.no_waves and isinstance(item, WaveformBlock):
            return
        for record in jsonl.records(item, origin, with_source=with_source):
            out.write(jsonl.dumps(record) + "\n")

    def write_alarms() -> None:
        for entry in alarm_sub.drain():
            if entry.event in (LogEvent.ACTIVE, LogEvent.INACTIVE) and origin is not None:
                out.write(jsonl.dumps(timeline_record(entry, origin)) + "\n")

    try:
        runner.start()  # a wrong or busy port is refused here, before anything runs
    except UserError:
        if runner.store is not None:
            runner.store.db.close()
        raise
    store, recorder = runner.store, runner.recorder
    assert store is not None and recorder is not None  # start() opened them or raised
    for session_id in runner.interrupted:
        say_interrupted(session_id)
    where = store.db.url
    if args.db is None and is_simulated(setup.devices):
        where += (
            " (the demo database: a simulated session is kept out of the clinic's record; "
            "'kapmonitor sessions list --demo' lists it)"
        )
    print(f"kapmonitor: recording session {runner.session_id} to {where}", file=sys.stderr)
    deadline = None if args.duration is None else time.monotonic() + args.duration / args.speed
    status, who = SessionStatus.COMPLETED, args.operator
    link_said = None
    try:
        while True:
            if stop.asked:  # raised here, where no lock is held (see stop_on_signal)
                raise KeyboardInterrupt
            item = sub.get(timeout=0.2)
            runner.poll()  # headless, no screen drains the runner's own view: its queue would grow
            link = runner.station_link()  # the clinic bus: said when it changes, never a storm
            if link is not None and link != link_said:
                link_said = link
                print(f"kapmonitor: {link}", file=sys.stderr)
            write_alarms()
            if item is not None:
                write(item)
            elif all_simulated and runner.finished():
                break
            # Checked after items too: a device that never pauses (a pleth stream) must not
            # keep a --duration recording going.
            if not all_simulated and deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:  # SIGTERM or SIGINT: the system, not the nurse, stopped it
        status, who = SessionStatus.STOPPED_BY_SYSTEM, "system"
        raise
    finally:
        try:
            runner.stop(status, who=who)
            unclosed = None
        except SQLAlchemyError as exc:  # the database is down: the session is closed later
            unclosed = exc
        for driver in runner.drivers:
            if isinstance(driver, SerialDriver):
                print(f"kapmonitor: {driver.status()}", file=sys.stderr)
        for item in sub.drain():
            write(item)
        write_alarms()
        out.flush()
        if unclosed is not None:  # one sentence, in place of a traceback (or of the interrupt)
            raise UserError(
                f"session {runner.session_id} stopped while the database is unavailable "
                f"({first_line(unclosed)}): {recorder.written} items are in it and the rest wait "
                "in the spool, written (and the session closed) when kapmonitor next opens it"
            )
        kept = f"; {len(recorder.spool)} bytes wait in the spool" if len(recorder.spool) else ""
        print(f"kapmonitor: session {runner.session_id} recorded ({recorder.written} items){kept}",
              file=sys.stderr)  # fmt: skip
    return 0
