"""``station`` and ``station-setup``, and the ``--room``/``--broker`` options of the rooms.

A room (``record``, ``demo``) publishes to the clinic's broker; ``station`` watches every room
(the window, or ``--watch``: JSON lines); ``station --demo`` runs a private broker with simulated
rooms; ``station-setup`` writes a clinic's broker set-up with TLS and an ACL. paho-mqtt and
cryptography are imported only when these commands run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kapmonitor.cli.options import Subcommands, db_option, parse_duration, positive_float
from kapmonitor.cli.shared import stop_on_signal
from kapmonitor.core.errors import UserError

if TYPE_CHECKING:
    from kapmonitor.station.broker import Credentials
    from kapmonitor.station.client import StationClient

#: Opens the station window on a running client (ui/ plugs it in) with the clinic database's
#: URL (``--db``: the rooms' records fill the large view's trends; None: live only); returns
#: the exit status.
StationWindow = Callable[["StationClient", str | None], int]
#: How long ``station`` waits for the broker's first answer before it goes on retrying.
FIRST_ANSWER_S = 5.0


def broker_auth_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clinic broker credentials (or $KAPMONITOR_MQTT_*)")
    group.add_argument("--broker-user", metavar="NAME", help="user at the broker")
    group.add_argument(
        "--broker-password-file",
        metavar="FILE",
        help="file holding the password (or $KAPMONITOR_MQTT_PASSWORD; never on the command line)",
    )
    group.add_argument("--broker-ca", metavar="FILE", help="CA certificate of the broker (mqtts)")
    group.add_argument("--broker-cert", metavar="FILE", help="this client's certificate")
    group.add_argument("--broker-key", metavar="FILE", help="this client's private key")


def room_options(parser: argparse.ArgumentParser) -> None:
    """``--room NAME --broker URL``: publish this room to the clinic's station."""
    parser.add_argument("--room", metavar="NAME", help="this room's name on the clinic's bus")
    parser.add_argument(
        "--broker", metavar="URL", help="the clinic's MQTT broker: mqtt://HOST:PORT, mqtts://..."
    )
    parser.add_argument(
        "--label",
        default="",
        metavar="TEXT",
        help="the pseudonymous label the station shows (never the patient's name by default)",
    )
    broker_auth_options(parser)


def broker_credentials(args: argparse.Namespace) -> Credentials | None:
    """The credentials the options and environment give; None without a broker."""
    if not getattr(args, "broker", None):
        return None
    from kapmonitor.station.broker import Credentials

    return Credentials.from_options(
        args.broker_user,
        args.broker_password_file,
        args.broker_ca,
        args.broker_cert,
        args.broker_key,
    )


def add_station(subs: Subcommands) -> None:
    st = subs.add_parser(
        "station",
        help="the nurse station: every dosing room on one screen, through the clinic's broker",
        description="Watch every room that publishes to the clinic's MQTT broker.",
    )
    st.add_argument("--broker", metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    st.add_argument("--watch", action="store_true", help="no window: JSON lines on stdout")
    st.add_argument(
        "--demo", action="store_true", help="a private broker with simulated rooms (loopback)"
    )
    st.add_argument("--rooms", type=int, default=4, help="simulated rooms in --demo (default 4)")
    st.add_argument("--speed", type=positive_float, default=1.0, help="time factor of --demo")
    st.add_argument("--duration", type=parse_duration, help="stop after this long (10m)")
    st.add_argument("--name", help="this station's name at the broker (default: host and pid)")
    broker_auth_options(st)
    db_option(st)  # optional: the clinic database, for a room's trends since its session began
    st.set_defaults(func=cmd_station)

    setup = subs.add_parser(
        "station-setup",
        help="write a clinic's broker set-up: CA, certificates or passwords, TLS, ACL",
        description="Generate a Mosquitto set-up for N rooms with TLS and per-room ACLs.",
    )
    setup.add_argument("--rooms", type=int, required=True, help="how many dosing rooms")
    setup.add_argument("--stations", type=int, default=1, help="how many stations (default 1)")
    setup.add_argument("--out", required=True, metavar="DIR", help="a new folder to write into")
    setup.add_argument(
        "--auth",
        choices=("password", "certificate"),
        default="password",
        help="per-client passwords (default) or client certificates",
    )
    setup.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="the broker's host name or address as clients dial it (repeat; default localhost)",
    )
    setup.add_argument("--port", type=int, default=8883, help="the TLS port (default 8883)")
    setup.set_defaults(func=cmd_station_setup)


def cmd_station(args: argparse.Namespace, out: TextIO) -> int:
    from kapmonitor.station.broker import Credentials, LinkState, parse_broker_url
    from kapmonitor.station.client import StationClient

    if args.demo == bool(args.broker):
        raise UserError("give --broker URL, or --demo for a private broker with simulated rooms")
    if args.demo and not 1 <= args.rooms <= 16:
        raise UserError("--rooms must be 1 to 16")
    window: StationWindow | None = getattr(args, "station_window", None)
    if not args.watch and window is None:
        raise UserError(
            "the station window is not available here: run the 'kapmonitor' command, "
            "or add --watch for JSON lines"
        )
    clinic = None
    if args.demo:
        from kapmonitor.station.demo import DemoClinic

        clinic = DemoClinic(args.rooms, args.speed)
        clinic.start()
        url, credentials = parse_broker_url(clinic.broker.url), Credentials()
        print(f"kapmonitor: demo broker at {url}, {args.rooms} simulated rooms", file=sys.stderr)
    else:
        url = parse_broker_url(args.broker)
        credentials = Credentials.from_options(
            args.broker_user,
            args.broker_password_file,
            args.broker_ca,
            args.broker_cert,
            args.broker_key,
        )
    client = StationClient(url, credentials, name=args.name)
    try:
        client.start()
        state = client.link.wait_answer(FIRST_ANSWER_S)
        if state is LinkState.REFUSED:
            raise UserError(client.link.text)
        if state is not LinkState.CONNECTED:
            print(f"kapmonitor: {client.link.text}", file=sys.stderr)
        if args.watch:
            return _watch(client, out, args.duration, args.speed if args.demo else 1.0)
        assert window is not None
        # --demo's rooms record nothing: the demo database it implies is not the clinic's.
        return window(client, None if args.demo else args.db)
    finally:
        client.stop()
        if clinic is not None:
            clinic.close()
        model = client.model
        if model.malformed or model.foreign:
            print(
                f"kapmonitor: ignored {model.malformed} malformed and {model.foreign} foreign "
                "message(s)",
                file=sys.stderr,
            )


def _watch(client: StationClient, out: TextIO, duration: float | None, speed: float) -> int:
    from kapmonitor.station.broker import LinkState
    from kapmonitor.station.watch import Watcher

    watcher = Watcher(client.model)
    deadline = None if duration is None else time.monotonic() + duration / speed
    said = client.link.state
    with stop_on_signal() as stop:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            if stop.asked:  # raised here, where no lock is held (see stop_on_signal)
                raise KeyboardInterrupt
            if client.link.state is LinkState.REFUSED:
                raise UserError(client.link.text)
            if client.link.state is not said:
                said = client.link.state
                print(f"kapmonitor: {client.link.text}", file=sys.stderr)
            for line in watcher.lines():
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
            out.flush()
    return 0


def cmd_station_setup(args: argparse.Namespace, out: TextIO) -> int:
    from kapmonitor.station.setup import generate

    hosts = tuple(args.host) if args.host else ("localhost", "127.0.0.1")
    setup = generate(Path(args.out), args.rooms, args.stations, args.auth, hosts, args.port)
    print(
        f"kapmonitor: wrote the clinic set-up for {len(setup.rooms)} room(s) and "
        f"{len(setup.stations)} station(s) into {setup.folder}: start the broker with "
        f"'mosquitto -c {setup.folder.resolve() / 'mosquitto.conf'}' (docs/station-setup.md)",
        file=out,
    )
    return 0
