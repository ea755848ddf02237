"""The dosing-room screen's cost: CPU, frame intervals and memory of the live view.

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_screen.py`` (offscreen is set if no
platform is given). Two parts, both as the app runs them: a simulated monitor on its own reader
thread publishes into the hub; on the Qt main thread a 30-Hz QTimer drains the screen's
subscription into :class:`~kapmonitor.live.LiveBuffers` and calls ``MonitorView.refresh``; the
view is 1920x1080 and shown, so every frame really paints (a paint counter on the pleth says so).

1. Real time: a session at speed 1 (pleth at 100 Hz, numerics at 1 Hz), 5 s of warm-up, then
   ``--seconds`` (60) measured: CPU as % of one core (process CPU time / wall time, the reader
   thread included; the GUI thread's share on its own), frame intervals p50/p99, RSS at the start
   and the end of the measurement.
2. Four hours, accelerated (``--speed``, 240x: a simulated hour per 15 s), still refreshed at
   frame rate: RSS and the buffers' bytes at every simulated hour, which must stay flat.

Offscreen rendering is a software raster with no vsync and no compositing: figures are for
comparison between versions, not a promise for a given display (see the style guide, part 2d).
Exits 1 if the real-time CPU exceeds :data:`CPU_LIMIT` % of one core.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyqtgraph as pg
import PySide6
from PySide6 import QtCore, QtWidgets

from alarms.profile import load_profile
from benchmarks.machine import describe
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Stamp
from kapmonitor.live import LiveBuffers
from ui.main_window import FRAME_RATE
from ui.monitor_view import MonitorView
from ui.theme import apply_dark_theme

CPU_LIMIT = 15.0
FRAME_MS = round(1000 / FRAME_RATE)  #: the main window's timer
ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def long_scenario(folder: Path, minutes: int) -> Path:
    """The typical scenario, lasting ``minutes`` (the shipped one ends at 150 min)."""
    text = (ROOT / "devices/sim/scenarios/typical.toml").read_text()
    path = folder / "four-hours.toml"
    path.write_text(text.replace("duration_min = 150", f"duration_min = {minutes}"))
    return path


class Screen:
    """The screen's loop as the main window runs it: drain, ingest, refresh, on a QTimer."""

    def __init__(self, app: QtWidgets.QApplication, scenario: str, speed: float) -> None:
        self.app = app
        self.hub = Hub()
        self.sub = self.hub.subscribe("live-view")
        self.driver = SimDriver(
            DeviceSpec("sim", scenario, f"sim:{Path(scenario).stem}"),
            self.hub.publish,
            playback=PlaybackSettings(speed=speed, seed=4),
        )
        self.buffers = LiveBuffers()
        self.view = MonitorView(load_profile("kap-default"))
        self.view.set_schedule("next in 4 min", False)
        self.view.resize(1920, 1080)
        self.view.show()
        self.sim_clock = speed != 1.0  #: refresh on the items' clock, not the wall clock
        self.newest = 0.0
        self.newest_stamp = Stamp.now()  #: the session's clock when devices run simulated
        self.ticks: list[float] = []
        self.refresh_s: list[float] = []
        self.on_tick = None
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        t0 = time.perf_counter()
        self.ticks.append(t0)
        items = self.sub.drain()
        self.buffers.ingest(items)
        if items:
            self.newest = max(self.newest, items[-1].stamp.mono)  # the buffers' time base
            self.newest_stamp = items[-1].stamp
        now = self.newest_stamp.shifted(0.3) if self.sim_clock else Stamp.now()
        self.view.refresh(self.buffers, now)
        self.refresh_s.append(time.perf_counter() - t0)
        if self.on_tick is not None:
            self.on_tick()

    def start(self) -> None:
        self.driver.start()
        self.timer.start()

    def run_for(self, seconds: float) -> None:
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def stop(self) -> None:
        self.timer.stop()
        self.driver.stop()
        self.view.close()


def realtime(app: QtWidgets.QApplication, seconds: float, warmup: float) -> float:
    print(
        f"\n1. Real time: {warmup:g} s warm-up, then {seconds:g} s at {FRAME_RATE} Hz,"
        " 1920x1080, shown"
    )
    screen = Screen(app, "typical", speed=1.0)
    screen.start()
    screen.run_for(warmup)
    n0, painted0 = len(screen.ticks), screen.view.pleth.canvas.paints
    rss0 = rss_mb()
    wall0, cpu0, gui0 = time.perf_counter(), time.process_time(), time.thread_time()
    screen.run_for(seconds)
    wall = time.perf_counter() - wall0
    cpu = (time.process_time() - cpu0) / wall * 100
    gui = (time.thread_time() - gui0) / wall * 100
    rss1 = rss_mb()
    intervals = np.diff(screen.ticks[n0:]) * 1000
    refresh = np.array(screen.refresh_s[n0:]) * 1000
    frames = len(screen.ticks) - n0
    painted = screen.view.pleth.canvas.paints - painted0
    screen.stop()
    print(f"   frames: {frames} ({frames / wall:.1f}/s); pleth painted {painted} times")
    print(
        f"   CPU: {cpu:.1f} % of one core (GUI thread {gui:.1f} %, reader thread and rest "
        f"{cpu - gui:.1f} %)"
    )
    print(
        f"   frame interval: p50 {np.percentile(intervals, 50):.1f} ms, "
        f"p99 {np.percentile(intervals, 99):.1f} ms, max {intervals.max():.1f} ms"
    )
    print(
        f"   refresh() alone: p50 {np.percentile(refresh, 50):.2f} ms, "
        f"p99 {np.percentile(refresh, 99):.2f} ms (painting follows in the event loop)"
    )
    print(f"   RSS: {rss0:.1f} MB at the start, {rss1:.1f} MB at the end ({rss1 - rss0:+.1f} MB)")
    print(f"   dropped by the screen's hub queue: {screen.sub.dropped}")
    return cpu


def four_hours(app: QtWidgets.QApplication, speed: float) -> None:
    hours = 4
    print(
        f"\n2. A {hours}-hour session at {speed:g}x, refreshed at {FRAME_RATE} Hz:"
        " RSS per simulated hour"
    )
    with tempfile.TemporaryDirectory() as folder:
        scenario = long_scenario(Path(folder), hours * 60 + 10)
        screen = Screen(app, str(scenario), speed=speed)
        rows: list[tuple[int, float, float, int]] = []
        wall0 = time.perf_counter()

        def on_tick() -> None:
            start = screen.buffers.session_start
            if start is None:
                return
            if screen.newest - start >= 3600 * len(rows):
                elapsed = time.perf_counter() - wall0
                rows.append((len(rows), elapsed, rss_mb(), screen.buffers.nbytes()))

        screen.on_tick = on_tick
        screen.start()
        deadline = time.perf_counter() + hours * 3600 / speed * 1.5 + 30
        while len(rows) <= hours and time.perf_counter() < deadline:
            screen.run_for(0.5)
        intervals = np.diff(screen.ticks) * 1000
        frames = len(screen.ticks)
        dropped = screen.sub.dropped
        screen.stop()
    print("   hour   wall s   RSS MB   buffers kB")
    for hour, elapsed, rss, nbytes in rows:
        print(f"   {hour:>4}   {elapsed:6.1f}   {rss:6.1f}   {nbytes / 1e3:10.0f}")
    if len(rows) > 2:
        first, last = rows[1], rows[-1]
        growth = last[2] - first[2]
        per_hour = growth / (last[0] - first[0])
        print(
            f"   RSS from hour {first[0]} to {last[0]}: {growth:+.1f} MB ({per_hour:+.2f} MB per "
            f"hour); buffers {first[3] / 1e3:.0f} -> {last[3] / 1e3:.0f} kB"
        )
    print(
        f"   {frames} frames, interval p50 {np.percentile(intervals, 50):.1f} ms, "
        f"p99 {np.percentile(intervals, 99):.1f} ms; dropped by the hub queue: {dropped}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured real-time seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=240.0, help="speed of the 4-hour part")
    parser.add_argument("--skip-long", action="store_true", help="only the real-time part")
    args = parser.parse_args()
    print("bench_screen: the live view (MonitorView) fed by a simulated session")
    print(f"machine: {describe()}")
    print(
        f"PySide6 {PySide6.__version__}, Qt {QtCore.qVersion()}, pyqtgraph {pg.__version__}, "
        f"numpy {np.__version__}, platform {os.environ['QT_QPA_PLATFORM']}"
    )
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    apply_dark_theme(app)
    cpu = realtime(app, args.seconds, args.warmup)
    if not args.skip_long:
        four_hours(app, args.speed)
    verdict = "PASS" if cpu <= CPU_LIMIT else "FAIL"
    print(f"\n{verdict}: real-time CPU {cpu:.1f} % of one core (limit {CPU_LIMIT:g} %)")
    return 0 if cpu <= CPU_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
