"""A private Mosquitto broker on loopback: for ``station --demo``, the tests and the benchmark.

The real broker, not an imitation: the demo shows what a clinic runs, and the tests check
retained messages, Last Wills, persistent sessions, TLS and ACLs against the program that
enforces them. It listens on 127.0.0.1 only, on a free port, with its config in a folder of ours.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from kapmonitor.core.errors import UserError

#: Where Debian installs it (not on a user's PATH: it is in /usr/sbin).
CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The broker's program, or None when Mosquitto is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in CANDIDATES if Path(c).is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    """One Mosquitto process; ``config`` is appended to a loopback listener's lines."""

    def __init__(self, folder: Path, config: str = "", port: int | None = None) -> None:
        program = find_mosquitto()
        if program is None:
            raise UserError(
                "Mosquitto is not installed: install the Debian package 'mosquitto' "
                "(./dev installs it with the other system packages)"
            )
        self.program = program
        self.folder = folder
        self.port = port or free_port()
        self.extra = config
        self.conf = folder / "mosquitto.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "mqtts" if "certfile" in self.extra else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",  # queued QoS 1 messages and sessions survive a restart
            f"persistence_location {self.folder}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.name == "posix" and os.geteuid() == 0:
            # Started by root, Mosquitto becomes the user "mosquitto", who cannot read our
            # private folder: a private broker on loopback stays the user who started it.
            lines.append("user root")
        if "password_file" not in self.extra and "require_certificate" not in self.extra:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n" + self.extra + "\n")

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        self.write_config()
        log = (self.folder / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [self.program, "-c", str(self.conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None:
                text = (self.folder / "mosquitto.log").read_text(errors="replace").strip()
                raise UserError(f"Mosquitto did not start: {text.splitlines()[-1:] or 'no log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise UserError(f"Mosquitto did not listen on port {self.port} in {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop it as a service manager does (SIGTERM: it saves its persistence file)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
