"""``simulate`` and ``capture``: a device's wire, played from a simulator or recorded raw."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from devices.base import DEFAULT_NO_DATA_TIMEOUT, DriverSettings
from devices.capture import CaptureWriter, Kind, read_capture
from kapmonitor.cli.options import Subcommands, parse_duration, positive_float
from kapmonitor.cli.shared import (
    StopRequest,
    read_input,
    serial_driver_class,
    stop_on_signal,
    warn,
)
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import DeviceEvent, Item, Stamp


def add_simulate(subs: Subcommands) -> None:
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


def add_capture(subs: Subcommands) -> None:
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
        header, records = read_capture(read_input(args.replay), args.replay, on_damage=warn)
        protocol = header.protocol
        what = f"the capture '{args.replay}' ({protocol}, recorded {header.started})"
    else:
        protocol = args.protocol
        session = KapSession(load_scenario(args.scenario), seed=args.seed)
        what = (
            f"{protocol}, scenario '{args.scenario}' "
            f"(seed {args.seed}, {session.duration / 60:g} min)"
        )
    driver_cls = serial_driver_class(protocol)
    emulator_class = None if args.replay else driver_cls.emulator_class
    if not args.replay and emulator_class is None:
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
        if emulator_class is None:
            replay(records, endpoint, speed=args.speed)
        else:
            emulator = emulator_class(session, speed=args.speed)
            serve(emulator, endpoint, speed=args.speed, on_replug=replugged)
    finally:
        endpoint.close()
        if endpoint.dropped:
            print(f"kapmonitor: {endpoint.dropped} bytes found no reader", file=sys.stderr)
    return 0


# --- capture --------------------------------------------------------------------------------


def cmd_capture(args: argparse.Namespace, out: TextIO) -> int:
    with stop_on_signal() as stop:
        return _capture(args, stop)


def _capture(args: argparse.Namespace, stop: StopRequest) -> int:
    spec = DeviceSpec.parse(args.device)
    driver_cls = serial_driver_class(spec.kind)
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
            if stop.asked:  # raised here, where no lock is held (see stop_on_signal)
                raise KeyboardInterrupt
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
