"""The nurse station window against a real Mosquitto and real headless rooms.

Rooms are real ``kapmonitor record --room --broker`` processes on simulated scenarios (one
desaturates within seconds, sped up); the station is the real client and the real window. The
audio pause's timing runs on an injected clock; everything else on the real one.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import QSettings, Qt

from alarms.model import AudioDue, Priority
from kapmonitor.core.codes import Code
from kapmonitor.record.session import Drug, Route, SessionSetup
from kapmonitor.station.model import LINK_LOST, AlarmView, RoomView
from kapmonitor.station.mosquitto import PrivateBroker, find_mosquitto
from tests.conftest import ROOT, TEST_HOME
from tests.station_fixtures import EARLY_PROBE_OFF, room_process, station, wait_for
from ui import theme
from ui.alarm_flash import shade_of
from ui.sound import AlarmSound
from ui.start_dialog import SETTINGS_APPLICATION, SETTINGS_ORGANIZATION, StartDialog
from ui.station.audio import StationAudio
from ui.station.text import next_due, scores_text
from ui.station.window import StationWindow, grid_shape
from ui.status_panel import AMBER, DeviceStatusPanel
from ui.status_panel import DIM as STATUS_DIM

pytestmark = [
    pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed"),
    pytest.mark.timeout(120),
]

#: SpO2 falls below the high limit (85 %) about 70 s into the session (9 s at 8x).
EARLY_DESATURATION = EARLY_PROBE_OFF.split("[[faults]]")[0].replace(
    'name = "early-probe-off"', 'name = "early-desaturation"'
).replace("dose_at_min = 3", "dose_at_min = 1") + (
    '[[faults]]\nkind = "desaturation"\nstart_min = 0.1\nduration_min = 30\nnadir = 78\n'
    "ramp_min = 0.2\nrecover_min = 1\n"
)
CALM, DESATURATING = "room-calm", "room-desat"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """A broker, a calm room at real speed, a desaturating room at 8x, and a station client."""
    folder = tmp_path_factory.mktemp("clinic")
    scenario = folder / "early-desaturation.toml"
    scenario.write_text(EARLY_DESATURATION)
    with PrivateBroker(folder / "broker") as broker:
        rooms = [
            room_process(CALM, "typical", broker.url, folder),
            room_process(DESATURATING, str(scenario), broker.url, folder, 8.0),
        ]
        client = station(broker.url)
        try:
            yield client, broker, folder
        finally:
            client.stop()
            for process in rooms:
                process.send_signal(signal.SIGTERM)
            for process in rooms:
                process.wait(30)


@pytest.fixture
def open_window(clinic, qtbot):
    """Opens the station window on the clinic's client; closes it (and its sound) after."""
    windows: list[StationWindow] = []

    def open_(audio: StationAudio | None = None) -> StationWindow:
        window = StationWindow(clinic[0], audio=audio or StationAudio(AlarmSound()))
        qtbot.addWidget(window)
        window.resize(1920, 1080)
        window.show()
        window.start()
        windows.append(window)
        return window

    yield open_
    for window in windows:
        window.close()


def _high_alarm(window: StationWindow) -> bool:
    tile = window.tiles.get(DESATURATING)
    return tile is not None and CALM in window.tiles and tile.priority is Priority.HIGH


def test_a_tile_per_room_most_urgent_first_in_the_alarm_colour(clinic, open_window, qtbot):
    window = open_window()
    qtbot.waitUntil(lambda: _high_alarm(window), timeout=60_000)
    assert window.order[0] == DESATURATING  # most urgent first
    assert sorted(window.tiles) == clinic[0].model.rooms()  # one tile per room, no more
    tile, calm = window.tiles[DESATURATING], window.tiles[CALM]
    red = shade_of(Priority.HIGH)
    assert red.text in tile.styleSheet()  # the frame in the high priority's colour
    assert "SpO2 low" in tile.banner.text()
    phases = set()
    for _ in range(30):  # red flashes at 2 Hz: both phases within 1.5 s
        qtbot.wait(50)
        phases.add(tile.lit)
        if tile.lit:
            assert red.fill in tile.banner.styleSheet()
    assert phases == {True, False}
    assert calm.priority is None and calm.banner.text() == "no alarms"
    assert theme.BORDER in calm.styleSheet()
    assert calm.spo2.value.text().isdigit() and int(calm.spo2.value.text()) >= 85
    assert window.top_priority() is Priority.HIGH
    assert "alarming" in window.summary.text()


def test_a_room_killed_shows_link_lost_within_10_s(clinic, open_window, qtbot):
    _, broker, folder = clinic
    window = open_window()
    doomed = room_process("room-kill", "typical", broker.url, folder)
    try:
        qtbot.waitUntil(
            lambda: (
                "room-kill" in window.tiles
                and window.tiles["room-kill"].view is not None
                and window.tiles["room-kill"].view.numerics_age_s is not None
            ),
            timeout=30_000,
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        start = time.monotonic()
        tile = window.tiles["room-kill"]
        qtbot.waitUntil(
            lambda: tile.view is not None and tile.view.state == LINK_LOST, timeout=10_000
        )
        assert time.monotonic() - start < 10
        qtbot.wait(300)  # the next redraw
        assert tile.banner.text().startswith("ROOM LINK LOST")
        assert tile.priority is Priority.MEDIUM  # the station's own technical alarm
        assert tile.link.text().startswith("link ")
        assert tile.spo2.value.colour == theme.TEXT_STALE  # nothing of it looks current
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()


def test_a_click_opens_the_room_large_and_escape_returns(clinic, open_window, qtbot):
    client = clinic[0]
    window = open_window()
    qtbot.waitUntil(lambda: _high_alarm(window), timeout=60_000)
    qtbot.mouseClick(window.tiles[DESATURATING], Qt.MouseButton.LeftButton)
    assert window.showing_room == DESATURATING
    assert window.large.sweep.isActive() and window.large.asker.isActive()
    # The request reached the room, which now sends its pleth; the sweep draws it.
    qtbot.waitUntil(lambda: bool(client.model.pleth(DESATURATING)), timeout=10_000)
    qtbot.waitUntil(lambda: window.large.feed.buffers.first_pleth() is not None, timeout=5_000)
    qtbot.waitUntil(lambda: window.large.pleth.message_text == "", timeout=5_000)
    feed = window.large.feed
    qtbot.waitUntil(lambda: feed.buffers.trends[Code.SPO2].n > 3, timeout=5_000)
    rows = window.large.alarms.rows
    assert any(r[1] == "high" and r[2] == "SpO2 low" for r in rows), rows
    assert DESATURATING in window.large.title.text()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.showing_room is None
    assert not window.large.sweep.isActive() and not window.large.asker.isActive()
    assert window.pages.currentWidget() is window.grid_page


def test_the_station_audio_pause_is_timed_and_shown(open_window, qtbot):
    now = [1000.0]
    audio = StationAudio(AlarmSound(), clock=lambda: now[0])
    window = open_window(audio)
    qtbot.waitUntil(lambda: _high_alarm(window), timeout=60_000)
    qtbot.waitUntil(lambda: audio.due.priority is Priority.HIGH, timeout=2_000)
    assert audio.sound.due is Priority.HIGH  # the high burst is what the loudspeaker plays
    qtbot.mouseClick(window.pause_button, Qt.MouseButton.LeftButton)
    assert audio.due == AudioDue(None, audio.pause_s)
    assert window.audio_state.text() == "AUDIO PAUSED 2:00"
    now[0] += audio.pause_s - 1
    qtbot.wait(300)
    assert audio.due.priority is None and window.audio_state.text() == "AUDIO PAUSED 0:01"
    now[0] += 1.5  # the pause ends by itself
    qtbot.waitUntil(lambda: audio.due.priority is Priority.HIGH, timeout=2_000)
    assert not window.audio_state.text().startswith("AUDIO PAUSED")


def _room(name: str, *priorities: str, acknowledged_by: str | None = None) -> RoomView:
    alarms = tuple(
        AlarmView(
            f"{name}-{p}",
            "spo2-low",
            "SpO2 low",
            p,
            "active",
            "physiological",
            "sim",
            0.0,
            acknowledged_by,
        )
        for p in priorities
    )
    return RoomView(name, "live", "", "s", None, None, (), {}, None, None, alarms, "connected",
                    False)  # fmt: skip


def test_a_pause_for_a_yellow_alarm_never_hides_a_red_one(qtbot):
    now = [0.0]
    audio = StationAudio(AlarmSound(), pause_s=120, clock=lambda: now[0])
    assert audio.update([_room("a", "medium")]).priority is Priority.MEDIUM
    audio.pause()
    assert audio.update([_room("a", "medium")]).priority is None
    assert audio.update([_room("a", "medium"), _room("b", "high")]).priority is Priority.HIGH
    # acknowledged in its room: silent at the station too
    assert audio.update([_room("c", "high", acknowledged_by="nurse")]).priority is None
    audio.close()


def test_grid_shape_puts_8_rooms_on_4_by_2():
    assert grid_shape(8) == (2, 4)
    assert grid_shape(3) == (1, 3)
    assert grid_shape(16) == (4, 4)
    assert grid_shape(0) == (1, 1)


# --- the room side: the start dialog's room and broker ---------------------------------------


def _dialog(qtbot, settings: QSettings) -> StartDialog:
    defaults = SessionSetup("P-1", drug=Drug.KETAMINE, route=Route.IV, dose=0.5,
                            dose_unit="mg/kg", devices=("sim:typical",))  # fmt: skip
    dialog = StartDialog(list_ports=lambda: [], defaults=defaults, settings=settings)
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def test_the_start_dialog_checks_the_room_and_broker_and_keeps_them(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "kapmonitor.ini"), QSettings.Format.IniFormat)
    dialog = _dialog(qtbot, settings)
    for room, broker, start in (
        ("room-3", "http://clinic:1883", "The broker URL 'http://clinic:1883' is not valid"),
        ("room 3", "mqtt://clinic:1883", "Room name 'room 3' must be"),
        ("room-3", "", "Enter the broker URL too"),
        ("", "mqtts://clinic:8883", "Enter this room's name"),
        ("room-3", "mqtt://nurse:secret@clinic:1883", "The broker URL must not carry a user"),
    ):
        dialog.room.setText(room)
        dialog.broker.setText(broker)
        dialog.accept()
        assert dialog.isVisible() and dialog.result() == 0
        error = dialog.station_error.text()
        assert dialog.station_error.isVisibleTo(dialog) and error.startswith(start), error
        assert error.endswith(".") and "\n" not in error and "Traceback" not in error
    dialog.room.setText("room-3")
    dialog.broker.setText("mqtts://clinic.example:8883")
    assert not dialog.station_error.isVisibleTo(dialog)  # gone as soon as it is edited
    dialog.accept()
    assert dialog.result() == 1
    setup = dialog.setup()
    assert (setup.room, setup.broker) == ("room-3", "mqtts://clinic.example:8883")
    again = _dialog(qtbot, QSettings(str(tmp_path / "kapmonitor.ini"), QSettings.Format.IniFormat))
    assert (again.room.text(), again.broker.text()) == ("room-3", "mqtts://clinic.example:8883")
    assert (again.setup().room, again.setup().broker) == ("room-3", "mqtts://clinic.example:8883")


def test_without_a_room_nothing_is_published_and_the_settings_stay_in_the_test_home(qtbot):
    default = QSettings(SETTINGS_ORGANIZATION, SETTINGS_APPLICATION)
    assert Path(default.fileName()).is_relative_to(TEST_HOME)  # never the user's own
    settings = QSettings(str(TEST_HOME / "empty.ini"), QSettings.Format.IniFormat)
    dialog = _dialog(qtbot, settings)
    dialog.accept()
    assert dialog.result() == 1
    assert (dialog.setup().room, dialog.setup().broker) == ("", "")


# --- the command: kapmonitor station --demo opens the window, SIGTERM closes it ---------------


def test_station_demo_opens_the_window_and_sigterm_closes_it(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "station.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ui.launcher import main; sys.exit(main())",
             "station", "--demo", "--rooms", "2"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        wait_for(lambda: b"simulated rooms" in log.read_bytes(), 30)
        time.sleep(3)  # the window is up and ticking
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "Traceback" not in text, text


# --- wording: the room's schedule sentence, as of now -----------------------------------------


def test_the_nibp_schedule_sentence_counts_down_from_its_reading():
    assert next_due("next in 5 min", 0) == "next in 5 min"
    assert next_due("next in 5 min", 130) == "next in 3 min"
    assert next_due("next in 5 min", 300) == "next NIBP DUE NOW"
    before = "before the dose: take the baseline readings"
    assert next_due(before, 30) == before
    assert next_due(before, 600) == ""  # said at the reading; no longer true


@given(
    st.one_of(
        st.text(max_size=200),
        st.builds("next in {} min".format, st.integers(0, 10**400) | st.floats(0, 1e300)),
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_schedule_sentence_and_age_give_a_line_never_an_error(sentence, age):
    assert isinstance(next_due(sentence, age), str)


def test_the_room_screen_shows_its_station_link(qtbot):
    panel = DeviceStatusPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.station_label.isVisible()  # a room without a bus says nothing of one
    panel.set_station_link("station link: connected to the broker mqtt://clinic:1883")
    assert panel.station_label.isVisible() and STATUS_DIM in panel.station_label.styleSheet()
    lost = "station link: not connected to the broker mqtt://clinic:1883 (refused); retrying"
    panel.set_station_link(lost)
    assert panel.station_label.text() == lost and AMBER in panel.station_label.styleSheet()
    panel.set_station_link(None)
    assert not panel.station_label.isVisible()


def _scored(numerics: dict[str, float | None]) -> RoomView:
    return RoomView("r", "live", "", "s", None, None, (), numerics, 1.0, None, (), "connected",
                    False)  # fmt: skip


def test_the_room_view_shows_the_rooms_last_scores_and_nothing_that_is_no_score():
    assert scores_text(_scored({Code.SPO2.value: 97})) == ""
    both = {Code.MOAAS.value: 3.0, Code.DISSOCIATION.value: 1.0}
    assert scores_text(_scored(both)) == "MOAA/S 3   Dissociation mild"
    assert scores_text(_scored({Code.CADSS.value: 12.0})) == "CADSS 12"


@given(st.one_of(st.none(), st.floats(), st.integers(-(10**6), 10**6).map(float)))
def test_a_damaged_score_from_a_room_never_breaks_the_view(value):
    shown = scores_text(_scored({Code.MOAAS.value: value, Code.DISSOCIATION.value: value}))
    whole = value is not None and math.isfinite(value) and value.is_integer()
    if whole and 0 <= value <= 3:
        assert shown.startswith(f"MOAA/S {int(value)}   Dissociation ")
    elif whole and 0 <= value <= 5:
        assert shown == f"MOAA/S {int(value)}"
    else:
        assert shown == ""
