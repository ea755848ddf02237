"""The clinic bus with 8 rooms at real speed: latency, link-loss detection, CPU, memory.

Run: ``python benchmarks/bench_station.py``. A private Mosquitto on loopback; 8 rooms are real
``kapmonitor record --device sim:SCENARIO --room ... --broker ...`` processes; the station is the
real headless ``kapmonitor station --watch`` process (for its CPU) plus an in-process
:class:`StationClient` (for latencies, measured on the one machine clock).

1. Numerics latency: room publish time (the payload's ``t``) to the station's model, p50/p99.
2. Alarm-start latency: from a real alarm service's decision (a technical condition raised in a
   ninth, in-process room) to the station's model showing it, p50/p99. Target p99 < 250 ms.
3. Link-loss detection: a room SIGKILLed to its "link-lost" at the station (target <= 10 s).
4. CPU of the headless station with 8 rooms, % of one core, median of 5 windows of 10 s;
   reference: a plain paho subscriber receiving the same messages. Then the station window
   (``kapmonitor station``, drawn on a 1920x1080 offscreen screen), the same way. Target < 30 %.
5. Memory: broker and station RSS over a 60-s run of 8 rooms at --speed 60 (an hour of alarms).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alarms.model import Alarm, TechnicalCondition
from alarms.profile import load_profile
from alarms.service import AlarmService
from benchmarks.machine import describe
from benchmarks.proc import KAPMONITOR as LAUNCHER
from benchmarks.proc import cpu_seconds, offscreen_1080p
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item
from kapmonitor.station.broker import Credentials, parse_broker_url
from kapmonitor.station.client import StationClient
from kapmonitor.station.contract import ALL_ROOMS, ContractError, decode
from kapmonitor.station.demo import SCENARIOS, room_command
from kapmonitor.station.model import LINK_LOST, LIVE
from kapmonitor.station.mosquitto import PrivateBroker
from kapmonitor.station.publisher import RoomIdentity, RoomPublisher

ROOMS = 8
TARGET_P99_MS = 250.0
TARGET_LINK_S = 10.0
TARGET_CPU = 30.0
KAPMONITOR = [sys.executable, "-m", "kapmonitor"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Rooms:
    def __init__(self, url: str, folder: Path, speed: float, count: int = ROOMS) -> None:
        self.procs = {}
        for i in range(count):
            room = f"room-{i + 1}"
            cmd = room_command(room, SCENARIOS[i % len(SCENARIOS)], url, folder, speed, seed=i)
            self.procs[room] = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            p.wait(30)


class Harness:
    """A ninth room in this process whose alarms the benchmark raises (a real alarm service)."""

    def __init__(self, url: str) -> None:
        self.hub = Hub[Item]()
        self.alarms = AlarmService(self.hub, load_profile())
        self.alarms.start()
        self.publisher = RoomPublisher(
            RoomIdentity("room-bench"),
            parse_broker_url(url),
            Credentials(),
            self.hub,
            self.alarms.out,
            self,
        )
        self.publisher.start()

    def alarm_state(self) -> tuple[list[Alarm], bool]:
        alarms, _audio, _ = self.alarms.snapshot()
        return alarms, False

    def device_rows(self) -> list[tuple[str, str, str]]:
        return []

    def next_nibp(self) -> str:
        return ""

    def since_dose_s(self) -> float | None:
        return None

    def set_station_link(self, lost: bool, text: str) -> None:
        pass


def main() -> None:
    print(describe())
    folder = Path(tempfile.mkdtemp(prefix="bench-station-"))
    broker = PrivateBroker(folder / "broker").start()
    url = broker.url
    rooms = Rooms(url, folder, speed=1.0)
    numerics_ms: list[float] = []
    client = StationClient(parse_broker_url(url), Credentials(), name="bench")
    handle = client.model.handle

    def timed(topic: str, payload: bytes) -> bool:
        received = time.time()
        ok = handle(topic, payload)
        if ok and topic.endswith("/numerics"):
            numerics_ms.append((received - decode(topic, payload).body["t"]) * 1000)
        return ok

    client.link.on_message = timed
    client.start()
    while sum(v.state == LIVE for v in client.model.snapshot()) < ROOMS:
        time.sleep(0.2)

    # 4. CPU: the real headless station, and a plain subscriber as reference
    watch = subprocess.Popen(
        [*KAPMONITOR, "station", "--broker", url, "--watch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    plain = subprocess.Popen([sys.executable, __file__, "--plain", url])
    time.sleep(5)  # both started and subscribed
    station_cpu, plain_cpu = [], []
    for _ in range(5):
        s0, p0, t0 = cpu_seconds(watch.pid), cpu_seconds(plain.pid), time.monotonic()
        time.sleep(10)
        dt = time.monotonic() - t0
        station_cpu.append((cpu_seconds(watch.pid) - s0) / dt * 100)
        plain_cpu.append((cpu_seconds(plain.pid) - p0) / dt * 100)
    watch.terminate()
    plain.terminate()
    watch.wait()
    plain.wait()
    window_cpu = station_window_cpu(url, folder)

    # 2. alarm start latency
    harness = Harness(url)
    alarm_ms = []
    for i in range(30):
        condition = TechnicalCondition.NIBP_FAILED
        start = time.monotonic()
        harness.alarms.set_technical(condition, f"cuff-{i}", True)
        while not any(
            a.source == f"cuff-{i}" for a in (client.model.room("room-bench") or _empty()).alarms
        ):
            time.sleep(0.002)
        alarm_ms.append((time.monotonic() - start) * 1000)
        harness.alarms.set_technical(condition, f"cuff-{i}", False)
        time.sleep(0.3)
    harness.publisher.stop()
    harness.alarms.stop()

    # 3. link-loss detection
    link_s = []
    for room in ("room-6", "room-7", "room-8"):
        rooms.procs[room].send_signal(signal.SIGKILL)
        start = time.monotonic()
        while client.model.room(room).state != LINK_LOST:
            time.sleep(0.05)
        link_s.append(time.monotonic() - start)
    client.stop()
    rooms.close()

    # 5. memory at accelerated time
    (folder / "fast").mkdir()
    fast = Rooms(url, folder / "fast", 60.0)
    watch = subprocess.Popen(
        [*KAPMONITOR, "station", "--broker", url, "--watch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(5)
    assert broker.process is not None
    mem = [(rss_mb(broker.process.pid), rss_mb(watch.pid))]
    for _ in range(6):
        time.sleep(10)
        mem.append((rss_mb(broker.process.pid), rss_mb(watch.pid)))
    watch.terminate()
    watch.wait()
    fast.close()
    broker.stop()

    print(
        f"numerics latency: p50 {pct(numerics_ms, 0.5):.1f} ms, p99 {pct(numerics_ms, 0.99):.1f} ms"
        f" ({len(numerics_ms)} messages; target p99 < {TARGET_P99_MS:.0f} ms)"
    )
    print(
        f"alarm-start latency (decision to station): p50 {pct(alarm_ms, 0.5):.1f} ms, "
        f"p99 {pct(alarm_ms, 0.99):.1f} ms ({len(alarm_ms)} alarms; target p99 < "
        f"{TARGET_P99_MS:.0f} ms)"
    )
    print(
        f"link-loss detection after SIGKILL: median {statistics.median(link_s):.1f} s, "
        f"max {max(link_s):.1f} s (target <= {TARGET_LINK_S:.0f} s)"
    )
    s_med, p_med = statistics.median(station_cpu), statistics.median(plain_cpu)
    print(
        f"headless station CPU with {ROOMS} rooms: median {s_med:.1f} % of one core "
        f"(plain paho subscriber {p_med:.1f} %, ratio {s_med / max(p_med, 0.01):.1f}x; "
        f"target < {TARGET_CPU:.0f} %)"
    )
    w_med = statistics.median(window_cpu)
    print(
        f"station window (1920x1080, offscreen) CPU with {ROOMS} rooms: median {w_med:.1f} % of"
        f" one core (min {min(window_cpu):.1f}, max {max(window_cpu):.1f}; target <"
        f" {TARGET_CPU:.0f} %)"
    )
    print(
        f"memory over 60 s of 8 rooms at --speed 60: broker {mem[0][0]:.1f} -> {mem[-1][0]:.1f}"
        f" MB, station {mem[0][1]:.1f} -> {mem[-1][1]:.1f} MB"
    )


def station_window_cpu(url: str, folder: Path) -> list[float]:
    """The station a nurse watches: ``kapmonitor station --broker URL``, its window drawn on a
    1920x1080 offscreen screen; % of one core over 5 windows of 10 s after a 5-s start."""
    home = folder / "window-home"
    home.mkdir()
    env = dict(os.environ, QT_QPA_PLATFORM=offscreen_1080p(folder), HOME=str(home),
               XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               QT_LOGGING_RULES="qt.qpa.*=false;qt.multimedia*=false")  # fmt: skip
    window = subprocess.Popen(
        [LAUNCHER, "station", "--broker", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(5)
        cpu = []
        for _ in range(5):
            c0, t0 = cpu_seconds(window.pid), time.monotonic()
            time.sleep(10)
            cpu.append((cpu_seconds(window.pid) - c0) / (time.monotonic() - t0) * 100)
        return cpu
    finally:
        window.terminate()
        window.wait()


def _empty():
    class Nothing:
        alarms = ()

    return Nothing()


def plain_subscriber(url: str) -> None:
    """The reference: receive every room message and parse its JSON, nothing else."""
    parsed = parse_broker_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain")

    def on_message(c, u, msg):
        with contextlib.suppress(ContractError):
            decode(msg.topic, msg.payload)

    client.on_message = on_message
    client.on_connect = lambda c, u, f, r, p: c.subscribe(ALL_ROOMS, qos=1)
    client.connect(parsed.host, parsed.port, keepalive=5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    client.loop_start()
    stop.wait()
    client.loop_stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--plain":
        plain_subscriber(sys.argv[2])
    else:
        main()
