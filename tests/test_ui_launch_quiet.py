"""A launch of the screen prints nothing of Qt's own chatter (qt.multimedia, PulseAudio)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ui.qt_messages import QUIET_RULES, quiet_logging_rules

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM to stop the screen")


def _launch_demo(tmp_path: Path, **env: str) -> tuple[int, str]:
    """``kapmonitor demo`` offscreen for a few seconds after its session starts, then SIGTERM."""
    db = tmp_path / "k.sqlite3"
    base = {k: v for k, v in os.environ.items() if k != "QT_LOGGING_RULES"}
    base.update(
        HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), QT_QPA_PLATFORM="offscreen"
    )
    base.pop("PULSE_SERVER", None)  # no sound server: the PulseAudio warning is due
    base.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", "demo", "--speed", "10", "--db", f"sqlite:///{db}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # the window is up, the sound set up, a few seconds of the session drawn
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_a_launch_prints_nothing_on_stderr(tmp_path):
    """Before, about ten qt.multimedia lines and 'PulseAudioService: pa_context_connect()
    failed' came on every launch: the logging rule was set after QtMultimedia had loaded."""
    status, err = _launch_demo(tmp_path)
    assert status == 128 + signal.SIGTERM, err
    assert err == ""


def test_the_users_own_logging_rules_still_win(tmp_path):
    status, err = _launch_demo(tmp_path, QT_LOGGING_RULES="qt.multimedia.ffmpeg=true")
    assert status == 128 + signal.SIGTERM, err
    assert "qt.multimedia.ffmpeg: " in err  # their rule came after ours and won
    assert "qt.multimedia.symbolsresolver" not in err  # ours still holds for the rest


def test_quiet_rules_go_first_and_once():
    env: dict[str, str] = {}
    quiet_logging_rules(env)
    assert env["QT_LOGGING_RULES"] == QUIET_RULES
    quiet_logging_rules(env)
    assert env["QT_LOGGING_RULES"] == QUIET_RULES
    env = {"QT_LOGGING_RULES": "qt.multimedia*=true"}
    quiet_logging_rules(env)
    assert env["QT_LOGGING_RULES"] == f"{QUIET_RULES};qt.multimedia*=true"
