"""Is there a display to open a window on? Asked before Qt is, so the answer is one sentence.

Without one, creating the QApplication makes Qt print a multi-line message (that blames the
"xcb" plugin) and abort the process (exit 134) — no sentence, no exit status 2. On Linux and
the other X11/Wayland systems a display is named by ``DISPLAY`` or ``WAYLAND_DISPLAY``; a
``QT_QPA_PLATFORM`` that draws elsewhere (``offscreen``, ``minimal``, ``vnc``, a framebuffer)
needs neither. A local X display (``:N``) is also tried: its socket is connected to (the file
under ``/tmp/.X11-unix`` or Linux's abstract one), so a ``DISPLAY`` left over from a server that
is gone is found too. Windows and macOS always have a display.

Plain Python (no Qt): the launcher asks it before importing the screens.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping

#: Qt platform plugins that need an X11 or Wayland display; any other named one is trusted.
NEEDS_DISPLAY = {"", "xcb", "wayland", "wayland-egl"}
X11_SOCKETS = "/tmp/.X11-unix"

HOW = (
    "record headless with 'kapmonitor record --device ...', "
    "or run the screen under Xvfb ('xvfb-run kapmonitor demo')"
)


def display_problem(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why no window can be opened, in one sentence, or None when one can."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin")):
        return None
    plugin = re.split(r"[:;]", environ.get("QT_QPA_PLATFORM", ""))[0].strip().lower()
    if plugin not in NEEDS_DISPLAY:
        return None
    x11 = environ.get("DISPLAY", "").strip()
    wayland = environ.get("WAYLAND_DISPLAY", "").strip()
    if plugin == "xcb":
        wayland = ""
    elif plugin.startswith("wayland"):
        x11 = ""
    if not x11 and not wayland:
        return f"no display found (DISPLAY is not set): {HOW}"
    if x11 and not wayland and not _x11_reachable(x11):
        return f"no display found (nothing answers on DISPLAY={x11}): {HOW}"
    return None


def _x11_reachable(display: str) -> bool:
    """Whether a local X display ``:N`` answers; a remote one (host:N) is left to Qt."""
    match = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display)
    if match is None:
        return True
    path = f"{X11_SOCKETS}/X{match[1]}"
    candidates = [path, "\0" + path] if sys.platform.startswith("linux") else [path]
    for address in candidates:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(address)
            except OSError:
                continue
            return True
    return False
