"""The station's large view from the session's start: the room's record in the clinic database.

A real Mosquitto, a real room (``kapmonitor record --room --broker --db sqlite``) started well
before the station, the real station client and window. With the clinic database the large
view's trends start where the session did; without it, where the station started; with a
database that does not answer or lacks the session, one sentence, and the trends go on live.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from kapmonitor.cli import main as cli_main
from kapmonitor.core.codes import Code
from kapmonitor.record.db import open_database
from kapmonitor.record.store import Store
from kapmonitor.station.contract import Kind, encode, topic
from kapmonitor.station.model import StationModel
from kapmonitor.station.mosquitto import PrivateBroker, find_mosquitto
from tests.conftest import ROOT
from tests.station_fixtures import room_process, station, wait_for
from ui.sound import AlarmSound
from ui.station.audio import StationAudio
from ui.station.history import NO_ANSWER, NO_RECORD
from ui.station.window import StationWindow

pytestmark = [
    pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed"),
    pytest.mark.timeout(120),
]

ROOM = "r1"
#: The room runs this long before the station starts.
HEAD_START_S = 9.0
#: The typical session with a quick cuff: its first NIBP reading is in the record within
#: seconds, before the station starts (the typical cuff takes 35 s).
QUICK_CUFF = (
    (ROOT / "devices/sim/scenarios/typical.toml")
    .read_text()
    .replace("measure_s = 35", "measure_s = 2")
    .replace("dose_at_min = 10", "dose_at_min = 1")
    .replace("predose_readings = 3", "predose_readings = 1")
    .replace("predose_every_min = 3", "predose_every_min = 1")
)
#: Nothing listens on port 1: the connection is refused at once.
UNREACHABLE = "postgresql+psycopg://kap@127.0.0.1:1/kap"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """A broker; room r1 recording since HEAD_START_S before the station client started.
    Yields (client, the record's URL, the station's wall-clock start)."""
    folder = tmp_path_factory.mktemp("history")
    scenario = folder / "quick-cuff.toml"
    scenario.write_text(QUICK_CUFF.replace('name = "typical"', 'name = "quick-cuff"'))
    with PrivateBroker(folder / "broker") as broker:
        room = room_process(ROOM, str(scenario), broker.url, folder)
        started = time.time()
        client = None
        try:
            time.sleep(max(0.0, started + HEAD_START_S - time.time()))
            assert room.poll() is None, (folder / f"{ROOM}.log").read_text()
            client = station(broker.url)
            yield client, f"sqlite:///{folder / (ROOM + '.db')}", time.time(), broker.url
        finally:
            if client is not None:
                client.stop()
            room.send_signal(signal.SIGTERM)
            room.wait(30)


@pytest.fixture
def open_large(clinic, qtbot):
    """Opens the station window (with ``db_url``) and r1's large view by a click on its tile."""
    windows: list[StationWindow] = []

    def open_(db_url: str | None) -> StationWindow:
        client = clinic[0]
        wait_for(lambda: any(client.model.trend(ROOM).values()), 15)
        window = StationWindow(client, audio=StationAudio(AlarmSound()), db_url=db_url)
        qtbot.addWidget(window)
        window.resize(1600, 900)
        window.show()
        window.start()
        windows.append(window)
        qtbot.waitUntil(lambda: ROOM in window.tiles, timeout=10_000)
        qtbot.mouseClick(window.tiles[ROOM], Qt.MouseButton.LeftButton)
        assert window.showing_room == ROOM
        return window

    yield open_
    for window in windows:
        window.close()


def _record_uid_and_start(url: str) -> tuple[str, float]:
    store = Store(open_database(url))
    try:
        (info,) = store.list_sessions()
        return info.uid, info.started
    finally:
        store.db.close()


def test_with_the_database_the_trends_start_at_the_session_start(clinic, open_large, qtbot):
    client, url, station_start, _ = clinic
    uid, session_start = _record_uid_and_start(url)
    wait_for(lambda: client.model.room(ROOM) is not None, 10)
    assert client.model.room(ROOM).record == uid  # the status names the record
    window = open_large(url)
    buffers = window.large.feed.buffers
    assert window.large.history_note.isHidden()
    spo2 = buffers.trends[Code.SPO2]
    assert spo2.n > 3
    assert spo2.t[0] - session_start < 3.0, "the trend starts at the session's start"
    assert spo2.t[0] < station_start - HEAD_START_S + 4
    assert buffers.nibp.n >= 1 and buffers.nibp.column("t")[0] < station_start  # from the record
    # The live data follows, after the record's: no point twice, none out of order.
    qtbot.waitUntil(lambda: spo2.n and spo2.t[-1] > station_start + 1, timeout=10_000)
    assert np.all(np.diff(spo2.t) > 0)
    assert np.all(np.diff(buffers.nibp.column("t")) > 0)


def test_without_the_database_the_trends_start_at_the_station_start(clinic, open_large):
    _, _, station_start, _ = clinic
    window = open_large(None)
    spo2 = window.large.feed.buffers.trends[Code.SPO2]
    assert spo2.n >= 1
    assert spo2.t[0] >= station_start - 1.0
    assert window.large.history_note.isHidden()


@pytest.mark.parametrize("which", ["unreachable", "empty"])
def test_a_database_that_cannot_help_says_so_and_the_trends_go_on_live(
    clinic, open_large, qtbot, tmp_path, which
):
    _, _, station_start, _ = clinic
    if which == "unreachable":
        url, sentence = UNREACHABLE, NO_ANSWER
    else:  # a clinic database that exists but has never seen this session
        url, sentence = f"sqlite:///{tmp_path / 'other.db'}", NO_RECORD
        open_database(url).close()
    window = open_large(url)
    assert not window.large.history_note.isHidden()
    assert window.large.history_note.text() == sentence
    spo2 = window.large.feed.buffers.trends[Code.SPO2]
    assert spo2.n >= 1 and spo2.t[0] >= station_start - 1.0
    n = spo2.n
    qtbot.waitUntil(lambda: spo2.n > n, timeout=10_000)  # live goes on


def test_the_command_line_hands_the_database_to_the_window(clinic):
    url, broker_url = clinic[1], clinic[3]
    given: list[str | None] = []

    def window(client, db_url: str | None) -> int:
        given.append(db_url)
        return 0

    base = ["station", "--broker", broker_url, "--name", f"t-{time.monotonic()}"]
    assert cli_main([*base, "--db", url], station_window=window) == 0
    assert cli_main(base, station_window=window) == 0
    assert given == [url, None]


def test_the_record_field_is_optional_and_survives_the_last_will():
    model = StationModel()
    status = {"state": "live", "session": "s1", "label": "", "drug": None}
    assert model.handle(topic(ROOM, Kind.STATUS), encode(ROOM, Kind.STATUS, status))
    assert model.room(ROOM).record is None  # a room that records nothing, or an older one
    with_record = {**status, "record": "0b8e2f7c-3d1a-4f5e-9c2b-7a6d5e4f3c21"}
    assert model.handle(topic(ROOM, Kind.STATUS), encode(ROOM, Kind.STATUS, with_record))
    will = {**status, "state": "offline"}
    assert model.handle(topic(ROOM, Kind.STATUS), encode(ROOM, Kind.STATUS, will))
    assert model.room(ROOM).record == with_record["record"]
    new_session = {**status, "session": "s2"}
    assert model.handle(topic(ROOM, Kind.STATUS), encode(ROOM, Kind.STATUS, new_session))
    assert model.room(ROOM).record is None  # a new patient: the old record is not theirs
