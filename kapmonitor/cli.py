"""The ``kapmonitor`` command: one entry point, a subcommand per job.

A user mistake (unknown protocol, missing port, broken scenario file) ends with one line on
stderr naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from sqlalchemy.exc import SQLAlchemyError

from alarms.engine import AlarmEngine
from alarms.model import LogEvent
from alarms.profile import load_profile, profile_names
from alarms.replay import read_items, timeline, timeline_record
from devices.base import DEFAULT_NO_DATA_TIMEOUT, DriverSettings
from devices.capture import (
    MAGIC,
    READ_SIZE,
    CaptureReader,
    CaptureWriter,
    Kind,
    is_capture,
    read_capture,
)
from devices.registry import get_driver_class, protocol_names
from devices.serial_driver import SerialDriver
from kapmonitor.core import jsonl, log_lines
from kapmonitor.core.device_spec import REPLAY, SIM, DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub
from kapmonitor.core.identifiers import check_identifier, matches, one_line
from kapmonitor.core.model import DeviceEvent, Item, Stamp, WaveformBlock
from kapmonitor.record.db import ENV_VAR as DB_ENV_VAR
from kapmonitor.record.db import (
    PASSWORD_ENV,
    database_url,
    has_password,
    mask_password,
    parse_url,
    read_password_file,
    require_existing,
)
from kapmonitor.record.recorder import open_store as open_record_store
from kapmonitor.record.session import Drug, Route, SessionRecord, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.runner import SessionConfig, SessionRunner
from kapmonitor.record.simulated import demo_url, is_simulated

log = logging.getLogger("kapmonitor")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

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


def _serial_driver_class(protocol: str) -> type[SerialDriver]:
    cls = get_driver_class(protocol)
    if not issubclass(cls, SerialDriver):
        raise UserError(
            f"'{protocol}' is not a wire protocol (available: {', '.join(protocol_names())})"
        )
    return cls


# --- simulate -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from devices.sim.physiology import KapSession
    from devices.sim.scenario import load_scenario, scenario_names
    from devices.sim.serve import Endpoint, PortEndpoint, PtyEndpoint, replay, serve

    if args.list:
        for name in scenario_names():
            out.write(f"{name}\t{load_scenario(name).description}\n")
        return 0
    if not args.pty and not args.port:
        raise UserError("say where to simulate: --pty for a new pseudo-terminal, or --port URL")
    if args.replay:
        header, records = read_capture(_read_input(args.replay), args.replay, on_damage=_warn)
        protocol = header.protocol
        what = f"the capture '{args.replay}' ({protocol}, recorded {header.started})"
    else:
        protocol = args.protocol
        session = KapSession(load_scenario(args.scenario), seed=args.seed)
        what = (
            f"{protocol}, scenario '{args.scenario}' "
            f"(seed {args.seed}, {session.duration / 60:g} min)"
        )
    driver_cls = _serial_driver_class(protocol)
    if not args.replay and driver_cls.emulator_class is None:
        raise UserError(f"there is no simulator for protocol '{protocol}' yet")
    endpoint: Endpoint
    if args.pty:
        endpoint = PtyEndpoint(Path(args.link) if args.link else None)
        where = endpoint.host_path
    else:
        endpoint = PortEndpoint(args.port, driver_cls.serial_settings)
        where = args.port
    # The path alone on stdout, so scripts and tests can read it; the rest is for people.
    out.write(f"{where}\n")
    out.flush()
    print(
        f"kapmonitor: playing {what} at speed {args.speed:g} on {where}; Ctrl+C stops",
        file=sys.stderr,
    )

    def replugged(ep: Endpoint) -> None:
        print(
            f"kapmonitor: device plugged in again on {getattr(ep, 'path', where)}", file=sys.stderr
        )

    try:
        if args.replay:
            replay(records, endpoint, speed=args.speed)
        else:
            emulator = driver_cls.emulator_class(session, speed=args.speed)
            serve(emulator, endpoint, speed=args.speed, on_replug=replugged)
    finally:
        endpoint.close()
        if endpoint.dropped:
            print(f"kapmonitor: {endpoint.dropped} bytes found no reader", file=sys.stderr)
    return 0


# --- record ---------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace, out: TextIO) -> int:
    config = SessionConfig(
        patient=args.patient,
        devices=tuple(args.device),
        clinician=args.clinician,
        operator=args.operator,
        drug=Drug(args.drug) if args.drug else None,
        route=Route(args.route) if args.route else None,
        dose=args.dose,
        dose_unit=args.dose_unit,
        profile=args.profile,
        db_url=args.db,
        speed=args.speed,
        seed=args.seed,
        scenario_dose=True,
        until=args.duration,
        no_data_timeout=args.no_data_timeout,
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
        runner.store and runner.store.db.close()
        raise
    for session_id in runner.interrupted:
        print(f"kapmonitor: session {session_id} was interrupted; review it with "
              f"'kapmonitor sessions show {session_id}'", file=sys.stderr)  # fmt: skip
    where = runner.store.db.url
    if args.db is None and is_simulated(config.devices):
        where += (
            " (the demo database: a simulated session is kept out of the clinic's record; "
            "'kapmonitor sessions list --demo' lists it)"
        )
    print(f"kapmonitor: recording session {runner.session_id} to {where}", file=sys.stderr)
    deadline = None if args.duration is None else time.monotonic() + args.duration / args.speed
    status, who = SessionStatus.COMPLETED, args.operator
    try:
        while True:
            item = sub.get(timeout=0.2)
            runner.poll()  # headless, no screen drains the runner's own view: its queue would grow
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
        recorder = runner.recorder
        for item in sub.drain():
            write(item)
        write_alarms()
        out.flush()
        if unclosed is not None:  # one sentence, in place of a traceback (or of the interrupt)
            raise UserError(
                f"session {runner.session_id} stopped while the database is unavailable "
                f"({_first_line(unclosed)}): {recorder.written} items are in it and the rest wait "
                "in the spool, written (and the session closed) when kapmonitor next opens it"
            )
        kept = f"; {len(recorder.spool)} bytes wait in the spool" if len(recorder.spool) else ""
        print(f"kapmonitor: session {runner.session_id} recorded ({recorder.written} items){kept}",
              file=sys.stderr)  # fmt: skip
    return 0


# --- the session record ---------------------------------------------------------------------


@contextlib.contextmanager
def opened_store(url: str | None, *, reading: bool = True) -> Iterator[Store]:
    """The session database; for a command that only reads, one that exists already."""
    if reading:
        require_existing(url)  # a mistyped path is named, not created as an empty database
    store = open_store(url)
    try:
        yield store
    finally:
        store.db.close()


def open_store(url: str | None) -> Store:
    """The session database, telling the user of sessions found interrupted."""
    store, interrupted = open_record_store(url)
    for session_id in interrupted:
        print(
            f"kapmonitor: session {session_id} was interrupted; review it with "
            f"'kapmonitor sessions show {session_id}'",
            file=sys.stderr,
        )
    return store


def _when(wall: float | None) -> str:
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, UTC).astimezone().isoformat(timespec="seconds")


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
                     "start": _when(s.started), "end": _when(s.ended) or None,
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
                    f"{s.id:>6}  {_when(s.started):25}  {s.status.value:17}  {one_line(s.patient)}"
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
            f"from {_when(info.started)} to {_when(info.ended) or '(still recording)'}",
            _monitored(record),
            f"dose given (T0) at {_when(dose.wall) if dose else '(no dose recorded)'}",
            f"alarm profile {info.alarm_profile or '-'}",
            "devices: " + (", ".join(d.source for d in record.devices) or "none"),
            f"{len(record.numerics)} numerics, {len(record.nibp)} NIBP readings, "
            f"{len(record.events)} events, {len(record.alarms)} alarm log entries",
        ]
        for r in record.nibp:
            minutes = record.minutes_from_dose(r.stamp)
            when = f"{minutes:+.0f} min" if minutes is not None else _when(r.stamp.wall)
            value = f"{r.systolic:.0f}/{r.diastolic:.0f} ({r.mean:.0f})" if r.systolic else "failed"
            lines.append(f"  NIBP {when:>9}: {value}")
        out.write("\n".join(lines) + "\n")
        return 0


def _monitored(record: SessionRecord) -> str:
    """The time monitored, from the data; for a simulated session, how its clock ran."""
    from kapmonitor.review.summary import monitoring_span

    start, end = monitoring_span(record)
    if start is None or end is None:
        return "monitored: no device data"
    line = f"monitored {(end - start) / 60:.0f} min (data {_when(start)} to {_when(end)})"
    if is_simulated(d.source for d in record.devices):
        real = (record.info.ended or end) - record.info.started
        speed = f", about {(end - start) / real:.0f} times the real one" if real > 0 else ""
        line += f"; simulated: the data carry the simulated device's clock{speed}"
    return line


EXPORT_FORMATS = ("csv", "fhir", "hl7", "vital", "pdf")


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from kapmonitor.export import export_session

    with opened_store(args.db) as store:
        # The report draws no pleth: a 2-hour session's waveform blocks would be most of the load.
        record = store.load_session(args.id, waves=args.format != "pdf")
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


# --- capture --------------------------------------------------------------------------------


def cmd_capture(args: argparse.Namespace, out: TextIO) -> int:
    spec = DeviceSpec.parse(args.device)
    driver_cls = _serial_driver_class(spec.kind)
    writer: CaptureWriter | None = None
    origin = time.monotonic()

    def tap(kind: Kind, data: bytes, stamp: Stamp) -> None:
        if writer is not None:
            writer.write(kind, stamp.mono - origin, data)

    hub = Hub[Item]()
    sub = hub.subscribe("capture")
    driver = driver_cls(spec, hub.publish, DriverSettings(args.no_data_timeout), tap=tap)
    driver.open()  # a wrong port is refused before the file is created
    writer = CaptureWriter(Path(args.output), spec.kind, spec.target, driver.serial_settings)
    measurements = 0
    deadline = None if args.duration is None else origin + args.duration
    print(f"kapmonitor: capturing {spec.text} to {args.output}; Ctrl+C stops", file=sys.stderr)
    driver.start()
    try:
        while deadline is None or time.monotonic() < deadline:
            item = sub.get(timeout=0.2)
            if isinstance(item, DeviceEvent):
                note = f"{item.state}: {item.detail}" if item.detail else str(item.state)
                writer.write(Kind.NOTE, item.stamp.mono - origin, note.encode())
                print(f"kapmonitor: {spec.text} {note}", file=sys.stderr)
            elif item is not None:
                measurements += 1
    finally:
        driver.stop()
        writer.close()
        print(
            f"kapmonitor: {writer.bytes_from_device} bytes captured in "
            f"{time.monotonic() - origin:.0f} s, {measurements} measurements decoded; "
            f"{driver.status()}",
            file=sys.stderr,
        )
    return 0


# --- decode ---------------------------------------------------------------------------------


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None


def _open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")  # closed by the caller
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None


def _warn(sentence: str) -> None:
    print(f"kapmonitor: {sentence}", file=sys.stderr)


def _timed_chunks(
    stream: BinaryIO, name: str, protocol: str | None
) -> tuple[str, Iterator[tuple[float, bytes]]]:
    """The device's bytes as (seconds from the start, chunk) pairs, read from ``stream`` as
    they are wanted (any input size in bounded memory), and the protocol."""
    head = stream.read(len(MAGIC))
    if is_capture(head):
        reader = CaptureReader(stream, name, already_read=head)
        return protocol or reader.header.protocol, _capture_chunks(reader)
    if protocol is None:
        raise UserError(f"'{name}' is a plain byte file: say which protocol with --protocol")
    return protocol, _plain_chunks(stream, head, _serial_driver_class(protocol).byte_rate)


def _capture_chunks(reader: CaptureReader) -> Iterator[tuple[float, bytes]]:
    for record in reader.records():
        if record.kind is Kind.FROM_DEVICE:
            yield record.t, record.data
    if reader.damage:
        _warn(reader.damage)


def _plain_chunks(stream: BinaryIO, head: bytes, rate: float) -> Iterator[tuple[float, bytes]]:
    """A plain byte file has no arrival times: place each byte where the device's own rate puts
    it, in 10 ms steps, so that t is seconds from the start of the stream."""
    step = max(1, int(rate / 100))
    pending, done = head, 0  # bytes not yet in a step; bytes before them
    while True:
        more = stream.read(step * max(1, READ_SIZE // step))
        pending += more
        whole = len(pending) if not more else len(pending) - len(pending) % step
        for start in range(0, whole, step):
            piece = pending[start : start + step]
            yield (done + start + len(piece)) / rate, piece
        pending, done = pending[whole:], done + whole
        if not more:
            return


def cmd_decode(args: argparse.Namespace, out: TextIO) -> int:
    if args.protocol is not None:
        _serial_driver_class(args.protocol)  # a wrong name is refused before any input is read
    name = "standard input" if args.file == "-" else args.file
    stream = _open_input(args.file)
    written = 0

    def write(items: Sequence[Item]) -> None:
        nonlocal written
        for item in items:
            written += 1
            for record in jsonl.records(item, 0.0):
                out.write(jsonl.dumps(record) + "\n")

    try:
        protocol, chunks = _timed_chunks(stream, name, args.protocol)
        parser = _serial_driver_class(protocol).parser_class(args.file)
        parser.begin(Stamp(0.0, 0.0))  # t counts from the stream's start: nothing came before
        for t, chunk in chunks:  # items are written as they come: nothing waits for the end
            write(parser.feed(chunk, Stamp(t, t)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    write(parser.flush())  # what a parser holds back for a block the file ended inside
    stats = parser.stats
    errors = (
        f"{stats.checksum_errors} checksum errors, {stats.framing_errors} framing errors, "
        f"{stats.bytes_discarded} bytes skipped"
    )
    if not written and not stats.frames_ok and stats.bytes_in:
        raise UserError(
            f"{name}: nothing decoded from {stats.bytes_in} bytes ({errors}): these bytes do not "
            f"look like {protocol}; is it another protocol?"
        )
    if stats.checksum_errors or stats.framing_errors or stats.bytes_discarded:
        _warn(f"{args.file}: {stats.frames_ok} good frames, {errors}")
    return 0


# --- alarms ---------------------------------------------------------------------------------


def cmd_alarms_replay(args: argparse.Namespace, out: TextIO) -> int:
    engine = AlarmEngine(load_profile(args.profile))
    name = "standard input" if args.input == "-" else args.input
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
    for name in profile_names():
        out.write(f"{name}\t{load_profile(name).description}\n")
    return 0


# --- entry point ----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument error in one sentence and a pointer to the subcommand's help, not its usage;
    ``-v`` before or after the subcommand."""

    def __init__(self, *args, **kwargs) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kapmonitor",
        description="Vital-signs monitor for ketamine-assisted psychotherapy sessions.",
    )
    _db_option(parser)
    parser.set_defaults(func=cmd_screen)  # no command: the dosing-room screen
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = subs.add_parser(
        "demo",
        help="the dosing-room screen on the built-in simulator",
        description="Open the dosing-room screen on a simulated KAP session.",
    )
    demo.add_argument("--scenario", default="typical", help="scenario name or .toml file")
    demo.add_argument("--speed", type=positive_float, default=1.0, help="time factor (60: 1 h/min)")
    demo.add_argument("--seed", type=int, default=0, help="the same seed gives the same session")
    demo.add_argument("--profile", default="kap-default", help="alarm profile: name or .toml file")
    _db_option(demo)
    demo.set_defaults(func=cmd_demo)

    sim = subs.add_parser(
        "simulate",
        help="play a simulated device on a pseudo-terminal or serial port",
        description="Stream a simulated KAP session in a device's real wire format.",
    )
    sim.add_argument("--scenario", default="typical", help="scenario name or .toml file")
    sim.add_argument("--protocol", default="nonin2", help="wire protocol (default: nonin2)")
    where = sim.add_mutually_exclusive_group()
    where.add_argument(
        "--pty", action="store_true", help="create a pseudo-terminal, print its path"
    )
    where.add_argument("--port", metavar="URL", help="write to an existing port or pyserial URL")
    sim.add_argument("--link", metavar="PATH", help="with --pty: keep a symlink to it at PATH")
    sim.add_argument("--seed", type=int, default=0, help="the same seed gives the same session")
    sim.add_argument("--speed", type=positive_float, default=1.0, help="time factor (60: 1 h/min)")
    sim.add_argument("--replay", metavar="FILE", help="play a capture instead of a scenario")
    sim.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sim.set_defaults(func=cmd_simulate)

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
    _db_option(rec)
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
    rec.add_argument(
        "--no-data-timeout",
        type=positive_float,
        default=DEFAULT_NO_DATA_TIMEOUT,
        metavar="S",
        help="seconds of silence before a device is in 'no data' (default 10)",
    )
    rec.set_defaults(func=cmd_record)

    cap = subs.add_parser(
        "capture",
        help="record a device's raw bytes with their arrival times",
        description="Record a device's raw traffic into a capture file (format: "
        "devices/capture.py) that decode reads and simulate --replay plays back.",
    )
    cap.add_argument("--device", required=True, metavar="P@PORT", help="e.g. nonin2@/dev/ttyUSB0")
    cap.add_argument("-o", "--output", required=True, metavar="FILE", help="capture file to write")
    cap.add_argument("--duration", type=parse_duration, help="stop after this long (10m, 1h)")
    cap.add_argument(
        "--no-data-timeout",
        type=positive_float,
        default=DEFAULT_NO_DATA_TIMEOUT,
        metavar="S",
        help="seconds of silence before the device is in 'no data' (default 10)",
    )
    cap.set_defaults(func=cmd_capture)

    dec = subs.add_parser(
        "decode",
        help="decode raw device bytes into JSON lines",
        description="Decode a device's raw bytes (a file, or - for stdin) into JSON lines.",
    )
    dec.add_argument("--protocol", help="wire protocol, e.g. nonin2 (a capture names its own)")
    dec.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="a capture or a byte file, or - (stdin)",
    )
    dec.set_defaults(func=cmd_decode)
    sessions = subs.add_parser(
        "sessions", help="list and show recorded sessions", description="Recorded sessions."
    )
    session_subs = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    lst = session_subs.add_parser("list", help="list sessions, newest first")
    _db_option(lst)
    lst.add_argument(
        "--json", action="store_true", help="as JSON (id, patient, start, end, status)"
    )
    lst.add_argument(
        "--patient", help="only sessions whose patient identifier contains this (any case)"
    )
    lst.add_argument("--status", choices=[s.value for s in SessionStatus], help="only these")
    lst.add_argument("--limit", type=int, help="at most this many")
    _demo_option(lst)
    lst.set_defaults(func=cmd_sessions_list)
    show = session_subs.add_parser("show", help="one session: header, devices, NIBP readings")
    _db_option(show)
    show.add_argument("id", type=int, metavar="ID")
    _demo_option(show)
    show.set_defaults(func=cmd_sessions_show)

    rev = subs.add_parser(
        "review",
        help="review recorded sessions: the session browser, or one session",
        description="Open the clinician's review: the session browser, or session ID directly.",
    )
    rev.add_argument("id", type=int, nargs="?", help="the session to open (default: browse)")
    rev.add_argument("--reviewer", help="who reviews, for notes and amendments (default: login)")
    _db_option(rev)
    _demo_option(rev)
    rev.set_defaults(func=cmd_review)
    exp = subs.add_parser(
        "export",
        help="export a session as CSV, FHIR, HL7 v2, a VitalDB .vital file or a PDF report",
        description="Export a recorded session.",
    )
    _db_option(exp)
    exp.add_argument("id", type=int, metavar="ID")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("-o", "--output", required=True, metavar="PATH", help="file to write")
    exp.add_argument(
        "--deidentify",
        action="store_true",
        help="a pseudonym for the patient, no names, dates shifted, no free text (see README)",
    )
    exp.add_argument(
        "--keep-notes", action="store_true", help="with --deidentify: keep the notes' free text"
    )
    _demo_option(exp)
    exp.set_defaults(func=cmd_export)

    imp = subs.add_parser(
        "import",
        help="bring a VitalDB .vital file or a PhysioNet WFDB record in as a session",
        description="Import a recording as a new, completed session and print its id. Needs "
        "the optional readers: pip install 'kapmonitor[import]'.",
    )
    _db_option(imp)
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
    return parser


def _db_option(parser: argparse.ArgumentParser) -> None:
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


def _demo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo database, where simulated and replayed sessions are recorded",
    )


def _use_db_password(args: argparse.Namespace) -> None:
    """Warn of a password written into --db (``ps`` shows it to every user); take one from a
    file into the environment, where the database layer and libpq read it."""
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


def _first_line(exc: Exception) -> str:
    """What went wrong, never the SQL or the values (a patient identifier) SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _database_failure(args: argparse.Namespace, exc: Exception) -> str:
    """One sentence for a database error nobody caught."""
    reason = _first_line(exc)
    if "malformed" in reason or "not a database" in reason:
        reason += ": the file is damaged (restore it from a backup)"
    return f"the database {database_url(getattr(args, 'db', None))} cannot be used: {reason}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --- the screen ---------------------------------------------------------------------------

#: Shows the dosing-room screen for a config (None: ask in the start dialog) and returns the
#: exit status. The core cannot import Qt: the entry point in ui/ hands this in.
Screen = Callable[[SessionConfig | None, str | None], int]


def cmd_screen(args: argparse.Namespace, out: TextIO) -> int:
    if args.screen is None:
        raise UserError("the screen is not available here: run the 'kapmonitor' command")
    return args.screen(None, args.db)


#: Opens the review (the browser, or session ID) on a database URL, for a reviewer.
Review = Callable[[int | None, str | None, str | None], int]


def cmd_review(args: argparse.Namespace, out: TextIO) -> int:
    if args.review is None:
        raise UserError("the review is not available here: run the 'kapmonitor' command")
    if args.id is None:
        require_existing(args.db)  # the browser only reads: a mistyped path is not created
    else:
        with opened_store(args.db) as store:
            store.session_info(args.id)  # a wrong id: one sentence, before any window opens
    return args.review(args.id, args.db, args.reviewer)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.screen is None:
        raise UserError("the screen is not available here: run the 'kapmonitor' command")
    config = SessionConfig(
        patient="DEMO",
        devices=(f"sim:{args.scenario}",),
        operator="demo",
        profile=args.profile,
        db_url=args.db,
        speed=args.speed,
        seed=args.seed,
        scenario_dose=True,  # the scenario's dose is T0 unless the nurse presses D first
    )
    return args.screen(config, args.db)


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    *,
    screen: Screen | None = None,
    review: Review | None = None,
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
            args.db = demo_url()
        _use_db_password(args)
        return args.func(args, out or sys.stdout)
    except UserError as exc:
        print(f"kapmonitor: {mask_password(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (SQLAlchemyError, sqlite3.Error) as exc:
        print(f"kapmonitor: {mask_password(_database_failure(args, exc))}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
