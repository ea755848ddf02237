"""The dosing-room screen's CPU, whole process, as a user runs it: ``kapmonitor demo --speed 10``.

Each run starts the command a user types (its own process, start-up included, a throw-away
database and home folder), lets it warm up (``--warmup``, 5 s), then reads the process's CPU time
(user + system, every thread: pipeline, recorder, alarms and the screen) from ``/proc/PID/stat``
over ``--seconds`` (20) of wall time, and stops it with SIGTERM as a shutdown would. The figure is
CPU seconds per wall second, in % of one core: it does not depend on how busy the other core is,
which wall time would (the machine's 2 cores are shared).

The plain reference, in the same run and alternated with it: a bare PySide6 window of the same
size with one pyqtgraph curve of 1,000 points (10 s of pleth at 100 Hz) swept at the screen's
frame rate, nothing else: what drawing a pleth costs at all on this machine. ``--against DIR`` also
measures another checkout (an older commit, say) of kapmonitor in alternation, for a before and
after in the same conditions. Both draw on a 1920x1080 screen, the dosing-room screen's size:
Qt's offscreen platform with a screen of that size (its default screen is smaller, and the
window shrank to fit it), or with ``--xvfb`` an Xvfb display of that size (the X server's own
CPU is printed beside it, not counted).

Target (issue 15): at most :data:`TARGET_PCT` % of one core with pleth. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The screen's frame rate is read from its module, which loads QtMultimedia: quietly.
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia*=false")

from benchmarks.machine import describe
from benchmarks.proc import cpu_seconds, offscreen_1080p
from ui.main_window import FRAME_RATE

ROOT = Path(__file__).resolve().parents[1]
TARGET_PCT = 10.0
FRAME_MS = round(1000 / FRAME_RATE)  #: the screen's timer

#: The reference: one 1,000-point curve swept at the screen's frame rate (``FRAME_MS``) in a
#: 1920x1080 window, nothing else.
REFERENCE = """
import sys
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

app = QtWidgets.QApplication(sys.argv[:1])
plot = pg.PlotWidget()
plot.resize(1920, 1080)
plot.disableAutoRange()
plot.setXRange(0, 10, padding=0)
plot.setYRange(-1.2, 1.2, padding=0)
curve = pg.PlotCurveItem(pen=pg.mkPen("c", width=1), antialias=False, connect="finite")
plot.addItem(curve)
x = np.arange(1000) / 100.0
wave = np.sin(2 * np.pi * 1.2 * x)
head = [0]

def tick():
    head[0] = (head[0] + round(FRAME_MS / 10)) % 1000  # 100 samples a second
    y = wave.copy()
    y[head[0] : head[0] + 25] = np.nan
    curve.setData(x, y)

timer = QtCore.QTimer()
timer.timeout.connect(tick)
timer.start(FRAME_MS)
plot.show()
sys.exit(app.exec())
"""


def measure(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    warmup: float,
    seconds: float,
    server: int | None,
) -> tuple[float, float]:
    """Start ``command``, wait ``warmup`` s; (% of one core, X server's %) over ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as home:
        env = dict(env, HOME=home, XDG_DATA_HOME=f"{home}/data", XDG_CONFIG_HOME=f"{home}/config")
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            time.sleep(warmup)
            if proc.poll() is not None:
                raise SystemExit(f"{command[:4]} ended early: {proc.stderr.read().decode()[-500:]}")
            wall0, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
            x0 = cpu_seconds(server) if server else 0.0
            time.sleep(seconds)
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            x1 = cpu_seconds(server) if server else 0.0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    wall = wall1 - wall0
    return (cpu1 - cpu0) / wall * 100, (x1 - x0) / wall * 100


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """An Xvfb server at 1920x1080 on a free display number, and that number as ``:N``."""
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb is not installed: run without --xvfb (offscreen)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    return server, f":{number}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per run")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--xvfb", action="store_true", help="an Xvfb display, not offscreen")
    parser.add_argument("--against", type=Path, help="another checkout to measure alternately")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAPMONITOR_", "PG"))}
    env["QT_LOGGING_RULES"] = "qt.qpa.*=false;qt.multimedia*=false"
    server = None
    if args.xvfb:
        server, display = start_xvfb()
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    else:
        env["QT_QPA_PLATFORM"] = offscreen_1080p(Path(tempfile.mkdtemp(prefix="bench-screen-")))
    platform = "Xvfb" if args.xvfb else "offscreen"
    #: The launcher a user types (``kapmonitor``), beside this Python.
    kapmonitor = str(Path(sys.executable).with_name("kapmonitor"))
    demo = [kapmonitor, "demo", "--speed", f"{args.speed:g}", "--seed", "4"]
    subjects: dict[str, tuple[list[str], Path, dict[str, str]]] = {
        "reference": ([sys.executable, "-c", f"FRAME_MS = {FRAME_MS}\n{REFERENCE}"], ROOT, env),
        "kapmonitor": (demo, ROOT, env),
    }
    if args.against is not None:
        tree = args.against.resolve()
        subjects["against"] = (
            demo,
            tree,
            dict(env, PYTHONPATH=str(tree)),  # its packages before the installed ones
        )
    print(f"bench_screen_cpu: kapmonitor demo --speed {args.speed:g}, whole process, {platform}")
    print(f"machine: {describe()}")
    print(f"{args.runs} runs each, alternated: {args.warmup:g} s warm-up, {args.seconds:g} s timed")
    results: dict[str, list[float]] = {name: [] for name in subjects}
    x_server: dict[str, list[float]] = {name: [] for name in subjects}
    pid = server.pid if server else None
    try:
        for run in range(args.runs):
            for name, (command, cwd, subject_env) in subjects.items():
                pct, xpct = measure(command, subject_env, cwd, args.warmup, args.seconds, pid)
                results[name].append(pct)
                x_server[name].append(xpct)
                extra = f" (Xvfb {xpct:.1f} %)" if server else ""
                print(f"  run {run + 1} {name:>10}: {pct:5.1f} % of one core{extra}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    median = {name: statistics.median(values) for name, values in results.items()}
    print()
    for name, values in results.items():
        extra = f", Xvfb {statistics.median(x_server[name]):.1f} %" if server else ""
        print(
            f"{name:>10}: median {median[name]:5.1f} % of one core "
            f"(min {min(values):.1f}, max {max(values):.1f}{extra})"
        )
    ratio = median["kapmonitor"] / median["reference"]
    print(f"ratio kapmonitor / reference: {ratio:.2f}x")
    if "against" in median:
        print(f"ratio kapmonitor / {args.against}: {median['kapmonitor'] / median['against']:.2f}x")
    ok = median["kapmonitor"] <= TARGET_PCT
    print(
        f"{'PASS' if ok else 'FAIL'}: {median['kapmonitor']:.1f} % of one core "
        f"(target at most {TARGET_PCT:g} %)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
