"""Whole-process timing for the benchmarks: wall time and peak RSS, as a user runs a command."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The installed ``kapmonitor`` command (pyproject's script, ``ui.launcher:main``), beside the
#: interpreter running the benchmark: what a user types.
KAPMONITOR = str(Path(sys.executable).with_name("kapmonitor"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, every thread (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def offscreen_1080p(folder: Path) -> str:
    """A ``QT_QPA_PLATFORM`` value: Qt's offscreen platform with one 1920x1080 screen, the size
    the screens are made for (its default screen is smaller, and a window shrinks to fit it)."""
    config = folder / "offscreen.json"
    screen = {"name": "room", "x": 0, "y": 0, "width": 1920, "height": 1080}
    config.write_text(json.dumps({"screens": [screen]}))
    return f"offscreen:configfile={config}"


@dataclass(frozen=True)
class Run:
    seconds: float  #: wall time, start-up included
    peak_rss_mb: float  #: the process's peak resident memory


def run(argv: Sequence[str], *, stdout_path: str = os.devnull) -> Run:
    """Run ``argv`` to the end, its output to ``stdout_path``; fail loudly if it fails."""
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {err.strip()}")
    return Run(elapsed, usage.ru_maxrss / 1024)


def alternate(commands: dict[str, Sequence[str]], runs: int) -> dict[str, list[Run]]:
    """Each command ``runs`` times, taking turns, so that a busy moment of the machine falls on
    all of them alike."""
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            results[name].append(run(argv))
    return results


def median_s(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def median_rss(runs: list[Run]) -> float:
    return statistics.median(r.peak_rss_mb for r in runs)
