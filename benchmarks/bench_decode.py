"""Decode speed of every wire protocol: a 2-hour stream, whole and as 64-byte serial reads.

Run: ``python benchmarks/bench_decode.py [PROTOCOL ...]``. Each stream is what the protocol's
emulator sends for the 'typical' KAP session (seed 1), with the host's start and keep-alive
commands played to it as the real driver sends them. Reports the median of several runs per
protocol and exits 1 if a protocol is too slow in either mode.

The foundation's requirement: a 2-hour Nonin format-2 capture (about 2.7 MB) decodes in under a
second. A protocol passes if its 2 hours decode in under :data:`LIMIT_S`, or at
:data:`MIN_MB_S` or more: one that sends more bytes per hour (IntelliVue: 5.6 MB, pleth in small
framed messages) is held to the same speed, not to a stricter one.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from devices.registry import get_driver_class, protocol_names
from devices.serial_driver import SerialDriver
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Stamp

SECONDS = 2 * 3600.0
RUNS = 7
CHUNK = 64  #: a typical serial read: whatever arrived since the last one
LIMIT_S = 1.0  #: 2 hours of a device's stream decode in under this…
MIN_MB_S = 2.7  #: …or at least this fast (2.7 MB: 2 h of Nonin format 2 in a second)


def build_stream(driver_cls: type[SerialDriver], seconds: float = SECONDS) -> bytes:
    """Two hours (``seconds``) of the device's bytes, as the emulator sends them to a real driver.

    The device's answers to the host are part of the stream, and the driver reads them and
    answers in turn (``reply``), as it does on a port: a session protocol (intellivue) only
    streams once its handshake is done.
    """
    driver = driver_cls(DeviceSpec.parse(f"{driver_cls.name}@loop://"), lambda item: None)
    emulator = driver_cls.emulator_class(KapSession(load_scenario("typical"), seed=1))
    stamp = Stamp.now()
    host = driver.greeting()
    chunks = []
    for second in range(int(seconds)):
        if driver.keep_alive_interval is not None:
            host += driver.keep_alive()
        sent = emulator.on_host_bytes(host, float(second)) if host else b""
        sent += emulator.emit(float(second), second + 1.0)
        driver.parser.feed(sent, stamp)
        host = driver.reply()
        chunks.append(sent)
    return b"".join(chunks)


def decode(driver_cls: type[SerialDriver], stream: bytes, chunk: int | None) -> tuple[float, int]:
    """Seconds to decode ``stream`` (in ``chunk``-byte reads, or whole) and items produced."""
    parser = driver_cls.parser_class("bench")
    stamp = Stamp.now()
    feed = parser.feed
    items = 0
    start = time.perf_counter()
    if chunk is None:
        items = len(feed(stream, stamp))
    else:
        for i in range(0, len(stream), chunk):
            items += len(feed(stream[i : i + chunk], stamp))
    items += len(parser.flush())
    elapsed = time.perf_counter() - start
    s = parser.stats
    assert s.checksum_errors == s.framing_errors == 0 and parser.problem is None, s
    return elapsed, items


def bench(name: str) -> bool:
    """Print one protocol's figures; whether both modes stayed under the limit."""
    driver_cls = get_driver_class(name)
    stream = build_stream(driver_cls)
    mb = len(stream) / 1e6
    print(f"{name}: 2 h = {len(stream):,} bytes")
    ok = True
    for label, chunk in (("whole", None), (f"{CHUNK}-byte reads", CHUNK)):
        runs = [decode(driver_cls, stream, chunk) for _ in range(RUNS)]
        median = statistics.median(r[0] for r in runs)
        fast = median < LIMIT_S or mb / median >= MIN_MB_S
        ok &= fast
        print(
            f"  {label:>15}: median {median:.3f} s for 2 h ({mb / median:.1f} MB/s, "
            f"{runs[0][1]:,} items, {RUNS} runs, min {min(r[0] for r in runs):.3f} s) "
            f"{'OK' if fast else 'TOO SLOW'}"
        )
    return ok


def main(names: list[str]) -> int:
    print(f"decode speed on {describe()}")
    slow = [name for name in names or protocol_names() if not bench(name)]
    if slow:
        print(
            f"FAIL: 2 hours must decode in under {LIMIT_S:g} s or at {MIN_MB_S:g} MB/s or "
            f"faster: {', '.join(slow)}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
