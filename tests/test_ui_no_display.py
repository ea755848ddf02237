"""Without a display the screens say so in one sentence and exit 2 (Qt would abort with 134)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ui.display import display_problem

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="X11/Wayland displays: Linux"
)


def _launch(*argv: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    base.pop("QT_QPA_PLATFORM", None)
    base.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"), **env)
    return subprocess.run(
        [sys.executable, "-m", "ui.launcher", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=base,
    )  # fmt: skip


def _recorded_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "sim:typical",
         "--speed", "600", "--duration", "30s", "--db", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return url


@pytest.mark.parametrize("display", [None, ":87"], ids=["unset", "gone"])
def test_every_screen_says_no_display_in_one_sentence_and_exits_2(tmp_path, display):
    env = {} if display is None else {"DISPLAY": display}
    url = _recorded_db(tmp_path)
    for argv in (
        (),
        ("demo", "--speed", "10"),
        ("review", "--db", url),
        ("review", "1", "--db", url),
    ):
        done = _launch(*argv, env=env, home=tmp_path)
        assert done.returncode == 2, (argv, done.returncode, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (argv, done.stderr)
        assert lines[0].startswith("kapmonitor: no display found")
        assert "kapmonitor record" in lines[0] and "xvfb-run" in lines[0]
    assert not (tmp_path / ".local/share/kapmonitor").exists()  # nothing created for the demo


def test_which_environments_have_a_display():
    assert display_problem({}, "linux").startswith("no display found")
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "vnc:size=800x600"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "minimal"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    # the X11 plugin asked for, only a Wayland display: no display for it
    assert display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert display_problem({"DISPLAY": "otherhost:0"}, "linux") is None  # remote: left to Qt
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None


def test_a_running_x_server_is_a_display(tmp_path):
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        pytest.skip("Xvfb not installed")
    server = subprocess.Popen([xvfb, ":86", "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while display_problem({"DISPLAY": ":86"}, "linux") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert display_problem({"DISPLAY": ":86"}, "linux") is None
    finally:
        server.terminate()
        server.wait(10)
    assert display_problem({"DISPLAY": ":86"}, "linux").startswith("no display found")
