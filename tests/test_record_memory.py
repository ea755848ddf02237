"""Headless `kapmonitor record` over a long session: every queue drained, memory flat (issue 12).

A consumer that subscribes to the hub and never reads holds every item of the session: with
nobody draining the runner's own view, memory grew 12.7 MB per session-hour. The record command
runs here in-process on a whole simulated session as fast as the pipeline goes, while a sampler
reads every queue's depth and the process's resident memory.
"""

from __future__ import annotations

import io
import os
import threading

import kapmonitor.runner
from kapmonitor import cli
from kapmonitor.runner import SessionRunner

#: Deeper than any consumer lags behind at full speed, far below a session's item count.
MAX_DEPTH = 2_000
#: Resident memory may move this much over the session (allocator noise, SQLite's cache).
MAX_GROWTH_MB = 10.0


class _Sink(io.TextIOBase):
    """record's standard output, counted and dropped: the test measures the pipeline."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_headless_record_drains_every_queue_and_memory_stays_flat(tmp_path, monkeypatch):
    runners: list[SessionRunner] = []

    class Observed(SessionRunner):  # the real runner; the sampler needs to find its hubs
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            runners.append(self)

    monkeypatch.setattr(kapmonitor.runner, "SessionRunner", Observed)  # imported when record runs
    samples: list[tuple[dict[str, int], float]] = []  # (depth per queue, RSS in MB)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            if runners and runners[0].started is not None:
                runner = runners[0]
                subs = runner.hub.subscriptions + runner.alarms.out.subscriptions
                samples.append(({sub.name: len(sub) for sub in subs}, _rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sink = _Sink()
    try:
        status = cli.main(
            ["record", "--device", "sim:typical", "--speed", "100000",
             "--db", f"sqlite:///{tmp_path / 'record.db'}"],
            out=sink,
        )  # fmt: skip
    finally:
        done.set()
        sampler.join(5)
    assert status == 0
    assert sink.lines > 60_000  # the whole 2.5-hour session went through
    assert len(samples) >= 10
    deepest = max(max(depths.values()) for depths, _ in samples)
    assert deepest <= MAX_DEPTH, [depths for depths, _ in samples]
    # After the start-up quarter, resident memory does not grow with the session's length.
    settled = samples[len(samples) // 4][1]
    assert max(rss for _, rss in samples) - settled <= MAX_GROWTH_MB, [r for _, r in samples]
