"""The station's large view of a room filled from the clinic database, for docs/screenshots.

Run under Xvfb at 1080p::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python tools/station_history_screenshot.py

One real ``kapmonitor record`` room (the typical session, dose and cuff brought forward) records
into a SQLite clinic database and publishes to a private Mosquitto for ``--head-start`` seconds
before the station starts; the station, given that database, opens the room large. Saves
station-room-history.png: the trends from the session's start, not the station's.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from kapmonitor.station.broker import Credentials, parse_broker_url
from kapmonitor.station.client import StationClient
from kapmonitor.station.demo import room_command
from kapmonitor.station.mosquitto import PrivateBroker
from ui.station.window import StationWindow
from ui.theme import apply_dark_theme

ROOT = Path(__file__).resolve().parents[1]
ROOM = "room-1"
EARLIER = (
    ("dose_at_min = 10", "dose_at_min = 1"),
    ("predose_readings = 3", "predose_readings = 1"),
    ("predose_every_min = 3", "predose_every_min = 1"),
    ("{ until_min = 60, every_min = 5 }", "{ until_min = 60, every_min = 1 }"),
    ("measure_s = 35", "measure_s = 10"),
)


def _settle(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--head-start", type=float, default=150.0, help="seconds (default 150)")
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    with tempfile.TemporaryDirectory(prefix="kapmonitor-history-shot-") as tmp:
        folder = Path(tmp)
        toml = (ROOT / "devices" / "sim" / "scenarios" / "typical.toml").read_text()
        for old, new in EARLIER:
            toml = toml.replace(old, new)
        (folder / "early.toml").write_text(toml.replace('name = "typical"', 'name = "early"'))
        broker = PrivateBroker(folder / "broker").start()
        cmd = room_command(ROOM, "early.toml", broker.url, folder)
        room = subprocess.Popen(
            cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(args.head_start)
            client = StationClient(parse_broker_url(broker.url), Credentials(), name="shot")
            client.start()
            window = StationWindow(client, db_url=f"sqlite:///{folder / (ROOM + '.db')}")
            window.setGeometry(0, 0, 1920, 1080)
            window.show()
            window.start()
            deadline = time.monotonic() + 20
            while client.model.room(ROOM) is None or not any(client.model.trend(ROOM).values()):
                if time.monotonic() > deadline:
                    raise SystemExit("station_history_screenshot: the room did not publish")
                _settle(app, 0.1)
            _settle(app, 3.0)
            window.open_room(ROOM)
            _settle(app, 12.0)
            window.grab().save(str(args.out / "station-room-history.png"))
            window.close()
            client.stop()
        finally:
            room.send_signal(signal.SIGTERM)
            room.wait(30)
            broker.stop()
    print(f"station_history_screenshot: saved station-room-history.png into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
