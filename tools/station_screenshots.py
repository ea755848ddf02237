"""The station window's screenshots for docs/screenshots, from real rooms on a real broker.

Run under Xvfb at 1080p::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python tools/station_screenshots.py

Eight real ``kapmonitor record`` rooms on simulated scenarios (calm ones, and one desaturation)
publish to a private Mosquitto at an accelerated pace; the real station window watches them.
It saves station-calm.png (8 rooms, before the desaturation), station-high-alarm.png (the
desaturation room in its high-priority alarm), station-link-lost.png (one room killed with
SIGKILL) and station-room-view.png (the desaturating room's large view).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication

from kapmonitor.station.broker import Credentials, parse_broker_url
from kapmonitor.station.client import StationClient
from kapmonitor.station.demo import room_command
from kapmonitor.station.model import LINK_LOST
from kapmonitor.station.mosquitto import PrivateBroker
from ui.station.window import StationWindow
from ui.theme import apply_dark_theme

ROOT = Path(__file__).resolve().parents[1]
#: Calm rooms ("resting" has no dose), and one (room-3) whose SpO2 falls to 82 %. At real speed
#: (so that every clock and the pleth are as in a clinic), the bundled scenarios' dose at 10 min
#: and desaturation 25 min later are brought forward: dose at 1 min, desaturation 3.5 min later.
SCENARIOS = ("typical", "resting", "desaturation", "typical", "resting", "typical", "resting",
             "typical")  # fmt: skip
EARLIER = (
    (r"dose_at_min = \d+", "dose_at_min = 1"),
    (r"predose_readings = \d+", "predose_readings = 1"),
    (r"predose_every_min = \d+", "predose_every_min = 1"),
    (r"schedule = \[\{ every_min = 5 \}\]", "schedule = [{ every_min = 1 }]"),
    (r"start_min = 25", "start_min = 3.5"),
    (r"ramp_min = 1.5", "ramp_min = 0.8"),
    (r"nadir = 84", "nadir = 82"),
)
DESATURATING, KILLED = "room-3", "room-6"


def _wait(app: QApplication, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"station_screenshots: no {what} within {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.05)


def _settle(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _scenario(name: str, folder: Path) -> str:
    """The bundled scenario ``name`` with its dose (and fault) brought forward, as a file."""
    toml = (ROOT / "devices" / "sim" / "scenarios" / f"{name}.toml").read_text()
    for pattern, replacement in EARLIER:
        toml = re.sub(pattern, replacement, toml)
    path = folder / f"{name}-early.toml"
    path.write_text(toml.replace(f'name = "{name}"', f'name = "{name}-early"'))
    return path.name  # the rooms run in the folder: the device reads "sim:typical-early.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--speed", type=float, default=1.0, help="the rooms' time factor")
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    with tempfile.TemporaryDirectory(prefix="kapmonitor-shots-") as tmp:
        folder = Path(tmp)
        broker = PrivateBroker(folder / "broker").start()
        rooms: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for i, scenario in enumerate(SCENARIOS):
                room = f"room-{i + 1}"
                early = _scenario(scenario, folder)
                cmd = room_command(room, early, broker.url, folder, args.speed, seed=i)
                rooms[room] = subprocess.Popen(
                    cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            client = StationClient(parse_broker_url(broker.url), Credentials(), name="shots")
            client.start()
            window = StationWindow(client)
            window.setGeometry(0, 0, 1920, 1080)
            window.show()
            window.start()
            model = client.model

            def views():
                return {v.room: v for v in model.snapshot()}

            def calm_and_measured() -> bool:
                shown = views()
                return (
                    len(shown) == len(SCENARIOS)
                    and all(v.nibp is not None for v in shown.values())
                    and shown["room-1"].minutes_since_dose is not None
                )

            _wait(app, calm_and_measured, 300, "8 rooms with an NIBP and a dose in room-1")
            _settle(app, 1.0)
            window.grab().save(str(args.out / "station-calm.png"))
            _wait(app, lambda: views()[DESATURATING].top_priority == 3, 600, "high alarm")
            _settle(app, 1.5)
            _wait(app, lambda: window.tiles[DESATURATING].lit, 2, "the flash's lit phase")
            window.grab().save(str(args.out / "station-high-alarm.png"))
            rooms[KILLED].send_signal(signal.SIGKILL)
            _wait(app, lambda: views()[KILLED].state == LINK_LOST, 15, "link lost")
            _settle(app, 1.0)
            window.grab().save(str(args.out / "station-link-lost.png"))
            window.open_room(DESATURATING)
            _wait(app, lambda: bool(model.pleth(DESATURATING)), 15, "pleth")
            _settle(app, 9.0)  # the sweep has drawn its 10 s
            window.grab().save(str(args.out / "station-room-view.png"))
            window.close()
            client.stop()
        finally:
            for process in rooms.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in rooms.values():
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
            broker.stop()
    print(f"station_screenshots: saved 4 screenshots into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
