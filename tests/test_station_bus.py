"""The clinic bus end to end: real Mosquitto on loopback, real rooms, a real station."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alarms.model import TechnicalCondition
from kapmonitor.station.broker import LinkState
from kapmonitor.station.contract import Kind, encode, topic
from kapmonitor.station.model import LINK_LOST, LIVE, ROOM_LINK_LOST
from kapmonitor.station.mosquitto import PrivateBroker, free_port
from tests.conftest import ROOT
from tests.station_fixtures import (
    EARLY_PROBE_OFF,
    RoomHarness,
    broker,  # noqa: F401 - the fixture
    needs_mosquitto,
    room_process,
    station,
    wait_for,
)

pytestmark = [needs_mosquitto, pytest.mark.timeout(180)]


def _conditions(client, room):
    view = client.model.room(room)
    return set() if view is None else {a.condition for a in view.alarms}


def test_the_station_sees_every_room_and_its_alarms(broker, tmp_path):  # noqa: F811
    scenario = tmp_path / "early-probe-off.toml"
    scenario.write_text(EARLY_PROBE_OFF)
    rooms = {"room-1": "typical", "room-2": str(scenario), "room-3": "resting"}
    # faults count from the dose (3 min in): at 8x the probe comes off ~25 s after the start
    procs = [
        room_process(r, s, broker.url, tmp_path, speed=8.0 if r == "room-2" else 1.0)
        for r, s in rooms.items()
    ]
    watch = subprocess.run(
        [
            sys.executable,
            "-m",
            "kapmonitor",
            "station",
            "--broker",
            broker.url,
            "--watch",
            "--duration",
            "45s",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for name, p in zip(rooms, procs, strict=True):
        assert p.poll() is None, (tmp_path / f"{name}.log").read_text()
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert watch.returncode == 0, watch.stderr
    lines = [json.loads(line) for line in watch.stdout.splitlines()]
    seen = {line["room"] for line in lines if line["state"] == LIVE}
    assert seen == set(rooms)
    for line in lines:
        assert set(line) == {"t", "room", "state", "alarms", "numerics"}
    probe_off = [a for line in lines if line["room"] == "room-2" for a in line["alarms"]]
    assert {"condition": "sensor-off", "priority": "medium", "state": "active"} in probe_off
    calm = [a for line in lines if line["room"] != "room-2" for a in line["alarms"]]
    assert not [a for a in calm if a["condition"] == "sensor-off"]
    # at most one line a second per room
    for room in rooms:
        times = [line["t"] for line in lines if line["room"] == room]
        assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    spo2 = [
        line["numerics"].get("MDC_PULS_OXIM_SAT_O2") for line in lines if line["room"] == "room-1"
    ]
    assert any(v is not None and 85 <= v <= 100 for v in spo2)


def test_a_room_killed_with_sigkill_shows_link_lost_within_10_s(broker, tmp_path):  # noqa: F811
    room = room_process("room-k", "typical", broker.url, tmp_path)
    client = station(broker.url)
    try:
        wait_for(lambda: (v := client.model.room("room-k")) and v.state == LIVE, 60)
        room.send_signal(signal.SIGKILL)
        room.wait(10)
        took = wait_for(lambda: client.model.room("room-k").state == LINK_LOST, 15)
        assert took <= 10.0, f"link lost shown after {took:.1f} s"
        view = client.model.room("room-k")
        assert view.alarms[0].condition == ROOM_LINK_LOST
        assert [a.condition for a in client.model.station_alarms()] == [ROOM_LINK_LOST]
    finally:
        client.stop()
        if room.poll() is None:
            room.kill()


def test_a_broker_restart_loses_no_alarm_start_or_end(broker):  # noqa: F811
    room = RoomHarness("room-r", broker.url)
    client = station(broker.url)
    try:
        room.raise_(TechnicalCondition.DISCONNECTED, "cuff")  # before: ends in the outage
        wait_for(lambda: "disconnected" in _conditions(client, "room-r"), 10)
        broker.stop()
        wait_for(lambda: client.model.room("room-r").state == LINK_LOST, 10)
        room.clear(TechnicalCondition.DISCONNECTED, "cuff")  # end during the outage
        time.sleep(0.5)
        room.raise_(TechnicalCondition.NIBP_FAILED, "cuff")  # start and end during it
        time.sleep(0.5)
        room.clear(TechnicalCondition.NIBP_FAILED, "cuff")
        time.sleep(0.5)
        room.raise_(TechnicalCondition.RECORDING_FAILING, "recorder")  # start during it
        time.sleep(0.5)
        broker.start()
        wait_for(lambda: client.model.room("room-r").state == LIVE, 45)
        wait_for(lambda: _conditions(client, "room-r") == {"recording-failing"}, 10)
        phases = [(e.phase, e.alarm.condition) for e in client.model.alarm_events("room-r")]
        for expected in [
            ("start", "disconnected"),
            ("end", "disconnected"),
            ("start", "nibp-failed"),
            ("end", "nibp-failed"),
            ("start", "recording-failing"),
        ]:
            assert expected in phases, phases
        # the station's view matches the room's
        assert {a.id for a in room.alarm_state()[0]} == {
            a.id for a in client.model.room("room-r").alarms
        }
    finally:
        client.stop()
        room.stop()


def test_a_late_station_sees_the_current_alarms_at_once(broker):  # noqa: F811
    room = RoomHarness("room-l", broker.url)
    try:
        wait_for(lambda: room.publisher.link.state is LinkState.CONNECTED, 10)
        room.raise_(TechnicalCondition.RECORDING_FAILING, "recorder")
        time.sleep(1.0)  # published, retained
        client = station(broker.url)
        try:
            took = wait_for(lambda: "recording-failing" in _conditions(client, "room-l"), 5)
            assert took < 2.0
            view = client.model.room("room-l")
            assert view.label == "P-room-l" and view.state == LIVE
        finally:
            client.stop()
    finally:
        room.stop()
    # the session ended: a later station sees the room ended, with no alarms left over
    late = station(broker.url)
    try:
        wait_for(lambda: (v := late.model.room("room-l")) and v.state == "ended", 5)
        assert late.model.room("room-l").alarms == ()
    finally:
        late.stop()


def test_malformed_and_foreign_messages_are_ignored_and_counted(broker):  # noqa: F811
    client = station(broker.url)
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vandal")
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    try:
        wait_for(lambda: client.link.state is LinkState.CONNECTED, 10)
        bad = [
            (topic("room-x", Kind.NUMERICS), b"\xff\xfe not json"),
            (topic("room-x", Kind.NUMERICS), b"[1, 2, 3]"),
            (topic("room-x", Kind.NUMERICS), b'{"v": 1, "room": "room-x", "t": "now"}'),
            (
                topic("room-x", Kind.NUMERICS),
                b'{"v":1,"room":"room-x","t":1,"values":{"SPO2":Infinity}}',
            ),
            (
                topic("room-x", Kind.ALARM),
                encode(
                    "room-x",
                    Kind.ALARM,
                    {
                        "t": 1,
                        "phase": "start",
                        "alarm": {
                            "id": "a",
                            "condition": "c",
                            "priority": "urgent",
                            "state": "active",
                        },
                    },
                ),
            ),
            (topic("room-x", Kind.STATUS), encode("room-y", Kind.STATUS, {"state": "live"})),
            ("kapmonitor/v1/room/room-x/unknown", b"{}"),
            (topic("room-x", Kind.ALARMS), b"{" * 10_000),
        ]
        foreign = [(topic("room-x", Kind.STATUS), b'{"v": 2, "room": "room-x", "state": "live"}')]
        for t, payload in bad + foreign:
            raw.publish(t, payload, qos=1).wait_for_publish(5)
        good = encode("room-x", Kind.STATUS, {"state": "live", "label": "fine"})
        raw.publish(topic("room-x", Kind.STATUS), good, qos=1).wait_for_publish(5)
        wait_for(lambda: (v := client.model.room("room-x")) and v.label == "fine", 5)
        assert client.model.malformed == len(bad)
        assert client.model.foreign == len(foreign)
        assert client.link.state is LinkState.CONNECTED  # the station lives on
    finally:
        raw.loop_stop()
        raw.disconnect()
        client.stop()


def test_an_unreachable_broker_at_start_neither_stops_recording_nor_the_room(tmp_path):
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kapmonitor",
            "record",
            "--device",
            "sim:typical",
            "--room",
            "room-u",
            "--broker",
            url,
            "--db",
            f"sqlite:///{tmp_path / 'u.db'}",
            "--duration",
            "40s",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    late = PrivateBroker(tmp_path / "late", port=port)
    client = None
    try:
        time.sleep(4)  # the room has started without the broker, and retries
        late.start()
        client = station(url)
        wait_for(lambda: (v := client.model.room("room-u")) and v.state == LIVE, 30)
        out, err = proc.communicate(timeout=90)
    finally:
        if client is not None:
            client.stop()
        if proc.poll() is None:
            proc.kill()
        late.stop()
    assert proc.returncode == 0, err
    assert f"station link: not connected to the broker {url}" in err
    assert f"station link: connected to the broker {url}" in err
    assert "recorded (" in err
    assert len(out.splitlines()) > 100  # measurements went on the whole time
    retries = [line for line in err.splitlines() if "not connected" in line]
    assert len(retries) <= 5  # backoff, not a storm
