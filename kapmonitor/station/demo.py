"""``station --demo``: a private Mosquitto and N simulated rooms, one command.

Each room is a real ``kapmonitor record --device sim:SCENARIO --room ... --broker ...`` process
(into a database of its own in a temporary folder), so the demo runs exactly what a clinic runs,
and killing one shows the station's "room link lost" as a real vanished room does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from kapmonitor.station.mosquitto import PrivateBroker

#: A different clinical picture in each room: calm ones, and ones that alarm.
SCENARIOS = (
    "typical",
    "desaturation",
    "hypertensive-surge",
    "resting",
    "bradycardia",
    "respiratory-depression",
    "probe-off",
    "cuff-failure",
    "apnea",
    "device-unplug",
)
MAX_ROOMS = 16


def room_command(
    room: str, scenario: str, broker: str, folder: Path, speed: float = 1.0, seed: int = 0
) -> list[str]:
    """The command line of one simulated room."""
    return [
        sys.executable, "-m", "kapmonitor", "record",
        "--device", f"sim:{scenario}",
        "--room", room,
        "--label", f"Demo {room.rsplit('-', 1)[-1]}",
        "--broker", broker,
        "--db", f"sqlite:///{folder / (room + '.db')}",
        "--speed", str(speed),
        "--seed", str(seed),
        "--no-waves",
    ]  # fmt: skip


class DemoClinic:
    """The broker and the rooms; :meth:`close` ends them all and removes the folder."""

    def __init__(self, rooms: int, speed: float = 1.0) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kapmonitor-station-demo-")
        self.folder = Path(self._tmp.name)
        self.broker = PrivateBroker(self.folder / "broker")
        self.rooms = [f"room-{i + 1}" for i in range(rooms)]
        self.speed = speed
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> DemoClinic:
        self.broker.start()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for i, room in enumerate(self.rooms):
            cmd = room_command(room, SCENARIOS[i % len(SCENARIOS)], self.broker.url,
                               self.folder, self.speed, seed=i)  # fmt: skip
            log = (self.folder / f"{room}.log").open("wb")
            self.processes[room] = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
            log.close()
        return self

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # ends the session cleanly ("ended")
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.broker.stop()
        self._tmp.cleanup()
