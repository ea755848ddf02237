"""Whole-process timing for the benchmarks: wall time and peak RSS, as a user runs a command."""

from __future__ import annotations

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
