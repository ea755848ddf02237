"""Helpers for tests that run the real pipeline: wait on a hub subscription for what should come."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devices.sim.serve import serve
from kapmonitor.core.hub import Subscription
from kapmonitor.core.model import ConnectionState, DeviceEvent, Item


class Collector:
    """Everything a subscription has delivered so far, with a way to wait for more."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.items: list[Item] = []

    def wait_for(self, predicate: Callable[[list[Item]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.items):
                return True
            item = self.sub.get(timeout=0.05)
            if item is not None:
                self.items.append(item)
        return predicate(self.items)

    def collect_rest(self) -> list[Item]:
        """Everything delivered and not yet collected, at once (once the publishers have
        stopped): a timed wait takes a share that depends on how busy the machine is."""
        self.items.extend(self.sub.drain())
        return self.items

    def states(self) -> list[ConnectionState]:
        return [it.state for it in self.items if isinstance(it, DeviceEvent)]

    def wait_for_state(self, state: ConnectionState, after: int = 0, timeout: float = 10.0) -> bool:
        """Wait until ``state`` occurs among the state events after the first ``after`` ones."""
        return self.wait_for(lambda _: state in self.states()[after:], timeout)

    def of_type(self, cls: type) -> list:
        return [it for it in self.items if isinstance(it, cls)]


def decode_cli(protocol: str, path: Path, *, unexpected: str = "checksum") -> list[dict]:
    """`kapmonitor decode --protocol P FILE` as a user runs it: its JSON lines, after checking
    it succeeded without a traceback or a warning containing ``unexpected``."""
    proc = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "decode", "--protocol", protocol, str(path)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and unexpected not in proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def feed_chunks(parser, stream: bytes, cuts, stamp_at: Callable[[int], object]) -> list:
    """Feed ``stream`` to ``parser`` split at ``cuts`` (None: whole), each chunk stamped by
    ``stamp_at(index of the byte after it)``, as a serial read would be; the items."""
    bounds = [0, *sorted({c for c in (cuts or []) if 0 < c < len(stream)}), len(stream)]
    items: list = []
    for a, b in itertools.pairwise(bounds):
        items += parser.feed(stream[a:b], stamp_at(b))
    return items


@contextlib.contextmanager
def serving(emulator, endpoint, *, speed: float) -> Iterator[None]:
    """``serve()`` playing the device on ``endpoint`` in a thread, stopped afterwards."""
    stop = threading.Event()
    server = threading.Thread(
        target=serve, args=(emulator, endpoint), kwargs={"speed": speed, "stop": stop}
    )
    server.start()
    try:
        yield
    finally:
        stop.set()
        server.join(10)
