"""The alarm area and the alarm sound: order, colours, flash rates, ack/pause, audio or none."""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from alarms.model import VISUAL, Alarm, AlarmKind, AlarmState, AudioDue, Priority
from alarms.tones import BURSTS, analyse_burst, render_burst
from kapmonitor.core.model import Stamp
from tests.conftest import ROOT
from ui import sound as sound_module
from ui.alarm_area import AlarmArea
from ui.alarm_flash import next_edge, priority_lit
from ui.alarm_text import MARKERS, format_age, format_countdown, format_value
from ui.sound import NO_OUTPUT, AlarmSound

#: Set to a folder (e.g. docs/screenshots) to keep the screenshots the tests take.
SCREENSHOTS = os.environ.get("KAPMONITOR_SCREENSHOTS")

NOW = Stamp.now()


def alarm(
    id: str,
    priority: Priority,
    *,
    condition: str = "spo2-low",
    message: str = "SpO2 low",
    code: str | None = "MDC_PULS_OXIM_SAT_O2",
    value: float | None = 82.0,
    limit: float | None = 85.0,
    delay_s: float = 10.0,
    ago: float = 60.0,
    state: AlarmState = AlarmState.ACTIVE,
    acknowledged: bool = False,
    kind: AlarmKind = AlarmKind.PHYSIOLOGICAL,
    source: str = "nonin2@/dev/ttyUSB0",
) -> Alarm:
    return Alarm(
        id, condition, message, priority, kind, source, code, value, limit, delay_s,
        NOW.shifted(-ago), state, acknowledged,
    )  # fmt: skip


def mixed_alarms() -> list[Alarm]:
    """One of each priority, deliberately out of order."""
    return [
        alarm(
            "quality@ox", Priority.LOW, condition="signal-quality", code=None, value=None,
            limit=None, message="Poor signal: searching, artifact or low perfusion",
            kind=AlarmKind.TECHNICAL, ago=30,
        ),
        alarm(
            "pulse-high@ox", Priority.MEDIUM, condition="pulse-high", message="Pulse rate high",
            code="MDC_PULS_OXIM_PULS_RATE", value=124, limit=120, delay_s=5, ago=70,
        ),
        alarm("spo2-low@ox", Priority.HIGH, ago=190),
    ]  # fmt: skip


@pytest.fixture
def area(qtbot):
    widget = AlarmArea()
    qtbot.addWidget(widget)
    widget.resize(1400, 420)
    return widget


def hue(colour: QColor) -> int:
    return colour.hslHue()


# --- order, colours, text ---------------------------------------------------------------------


def test_alarms_are_ordered_most_urgent_first_with_markers_and_priority_colours(area):
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    assert [a.priority for a in area.alarms] == [Priority.HIGH, Priority.MEDIUM, Priority.LOW]
    assert [area.table.item(r, 0).text() for r in range(3)] == ["!!!", "!!", "!"]
    assert area.table.item(0, 1).text() == "SpO2 low"
    # red, yellow, cyan as VISUAL says
    assert [VISUAL[p].colour for p in Priority] == ["cyan", "yellow", "red"]
    red, yellow, cyan = (hue(area.row_colour(r)) for r in range(3))
    assert red < 15 or red > 345
    assert 40 <= yellow <= 60
    assert 180 <= cyan <= 200
    # the banner carries the highest priority, in big text
    assert area.banner_priority is Priority.HIGH
    assert hue(area.banner_colour()) < 15
    assert area.banner_text.text().startswith("!!!  SpO2 low")
    assert area.banner_text.font().pixelSize() >= 36
    assert "+2 more" in area.banner_extra.text()


def test_values_limits_units_times_states_and_delays_are_shown(area):
    latched = alarm("spo2@ox", Priority.HIGH, state=AlarmState.LATCHED, ago=200)
    rise = alarm(
        "bp-rise-systolic@nibp", Priority.MEDIUM, condition="bp-rise-systolic",
        message="NIBP systolic risen from the pre-dose baseline",
        code="MDC_PRESS_BLD_NONINV_SYS", value=46, limit=40, delay_s=0, acknowledged=True,
    )  # fmt: skip
    area.update_alarms([latched, rise], AudioDue(Priority.HIGH, 0.0), "", NOW)
    row = [area.table.item(0, c).text() for c in range(area.table.columnCount())]
    assert row[2] == "82 % (limit < 85 %)"
    assert row[3] == "nonin2@/dev/ttyUSB0"
    assert row[4] == time.strftime("%H:%M:%S", time.localtime(NOW.wall - 200)) + "  (3 min)"
    assert row[5].startswith("latched")
    assert row[6] == "delay 10 s"
    assert "Condition delay: 10 s" in area.table.item(0, 1).toolTip()
    row = [area.table.item(1, c).text() for c in range(area.table.columnCount())]
    assert row[2] == "+46 mmHg (limit +40 mmHg)"
    assert row[5] == "active, acknowledged"
    assert row[6] == "no delay"


def test_formatting_helpers():
    assert format_value(alarm("a", Priority.HIGH, value=82.4)) == "82.4 % (limit < 85 %)"
    pulse = alarm("p", Priority.MEDIUM, condition="pulse-high", code="MDC_PULS_OXIM_PULS_RATE",
                  value=124, limit=120)  # fmt: skip
    assert format_value(pulse) == "124/min (limit > 120/min)"
    assert format_value(alarm("t", Priority.LOW, code=None, value=None, limit=None)) == ""
    assert [format_age(s) for s in (5, 59.9, 60, 3599, 3900)] == [
        "5 s", "59 s", "1 min", "59 min", "1 h 05 min",
    ]  # fmt: skip
    assert [format_countdown(s) for s in (120, 103.2, 59.01, 0.2)] == [
        "2:00", "1:44", "1:00", "0:01",
    ]  # fmt: skip


def test_baseline_line_is_shown_and_an_inactive_rule_stands_out(area):
    area.update_alarms([], AudioDue(None, 0), "pre-dose baseline 124/78 mmHg (mean of 3 readings)",
                       Stamp.now())  # fmt: skip
    assert area.baseline_label.text() == (
        "Baseline: pre-dose baseline 124/78 mmHg (mean of 3 readings)"
    )
    calm = area.baseline_label.styleSheet()
    area.update_alarms(
        [], AudioDue(None, 0),
        "no NIBP reading before the dose: the rise-from-baseline rule is inactive", Stamp.now(),
    )  # fmt: skip
    assert "rule is inactive" in area.baseline_label.text()
    assert area.baseline_label.styleSheet() != calm
    assert area.banner_priority is None
    assert area.banner_text.text() == "No alarms"


# --- flashing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", list(Priority))
def test_flash_rate_and_duty_cycle_follow_iec_60601_1_8(priority):
    step = 0.001
    t = 1000.0 + np.arange(0, 20.0, step)  # any origin: the phase comes from monotonic time
    lit = np.array([AlarmArea.lit(priority, x) for x in t])
    visual = VISUAL[priority]
    if visual.flash_hz is None:
        assert lit.all()  # LOW: steady
        return
    rises = np.flatnonzero(~lit[:-1] & lit[1:])
    rate = (len(rises) - 1) / ((rises[-1] - rises[0]) * step)
    duty = lit.mean()
    assert rate == pytest.approx(visual.flash_hz, rel=0.01)
    assert duty == pytest.approx(visual.duty_cycle, abs=0.01)
    low, high = {Priority.HIGH: (1.4, 2.8), Priority.MEDIUM: (0.4, 0.8)}[priority]
    assert low <= rate <= high
    assert 0.2 <= duty <= 0.6


def test_next_edge_is_the_next_switch():
    for priority in (Priority.HIGH, Priority.MEDIUM):
        for t in [*np.linspace(10.0, 14.0, 997).tolist(), 11.666666666666666, 12.5, 13.0]:
            edge = next_edge(priority, t)
            assert edge > t
            assert priority_lit(priority, edge - 1e-6) != priority_lit(priority, edge + 1e-6)
            mid = (t + edge) / 2
            assert priority_lit(priority, mid) == priority_lit(priority, (t + mid) / 2)
    assert next_edge(Priority.LOW, 3.0) is None


def test_every_row_and_the_banner_flash_at_their_own_priority(area):
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    # t=0.1: HIGH and MEDIUM lit; t=0.3: HIGH dark; t=1.0: MEDIUM dark; LOW always lit
    expected = {0.1: [True, True, True], 0.3: [False, True, True], 1.0: [True, False, True]}
    for t, lit in expected.items():
        area.refresh_flash(t)
        assert [area.marker_lit(r) for r in range(3)] == lit
        assert area.banner_lit == lit[0]


def test_one_timer_drives_the_flashing_in_real_time(area, qtbot):
    area.show()
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    assert area.findChildren(QTimer) == [area.flash_timer]
    changes: list[tuple[float, bool]] = []
    original = area._set_banner_lit

    def record(lit: bool) -> None:
        if lit != area._banner_lit:
            changes.append((time.monotonic(), lit))
        original(lit)

    area._set_banner_lit = record
    qtbot.wait(2600)
    rises = [t for t, lit in changes if lit]
    assert len(rises) >= 4
    period = (rises[-1] - rises[0]) / (len(rises) - 1)
    assert period == pytest.approx(1 / VISUAL[Priority.HIGH].flash_hz, abs=0.06)
    on = [b - a for (a, lit), (b, _) in itertools.pairwise(changes) if lit]
    assert np.mean(on) == pytest.approx(0.25, abs=0.06)
    # nothing flashing: the timer sleeps
    area.update_alarms([mixed_alarms()[0]], AudioDue(Priority.LOW, 0.0), "", Stamp.now())
    assert not area.flash_timer.isActive()


# --- acknowledge and pause --------------------------------------------------------------------


def test_acknowledge_button_and_enter_emit_the_alarm_id(area, qtbot):
    area.show()
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    with qtbot.waitSignal(area.acknowledge_requested, timeout=1000) as blocker:
        qtbot.mouseClick(area.ack_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["spo2-low@ox"]  # nothing selected: the top alarm
    area.table.selectRow(1)
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    assert area.selected_alarm_id() == "pulse-high@ox"  # the selection survives an update
    with qtbot.waitSignal(area.acknowledge_requested, timeout=1000) as blocker:
        qtbot.mouseClick(area.ack_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["pulse-high@ox"]
    area.table.setFocus()
    with qtbot.waitSignal(area.acknowledge_requested, timeout=1000) as blocker:
        qtbot.keyClick(area.table, Qt.Key.Key_Return)
    assert blocker.args == ["pulse-high@ox"]


def test_acknowledge_skips_acknowledged_alarms_and_is_disabled_when_none_wait(area, qtbot):
    acked = [alarm("a", Priority.HIGH, acknowledged=True), alarm("b", Priority.MEDIUM)]
    area.update_alarms(acked, AudioDue(Priority.MEDIUM, 0.0), "", Stamp.now())
    assert area.target_alarm_id() == "b"
    area.update_alarms(acked[:1], AudioDue(None, 0.0), "", Stamp.now())
    assert not area.ack_button.isEnabled()
    assert area.target_alarm_id() is None


def test_keyboard_shortcuts_acknowledge_and_pause(area, qtbot):
    with qtbot.waitActive(area):  # window shortcuts need the window to be active
        area.show()
        area.activateWindow()
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    area.table.setFocus()
    with qtbot.waitSignal(area.acknowledge_requested, timeout=1000) as blocker:
        qtbot.keyClick(area.table, Qt.Key.Key_F8)
    assert blocker.args == ["spo2-low@ox"]
    with qtbot.waitSignal(area.pause_requested, timeout=1000):
        qtbot.keyClick(area.table, Qt.Key.Key_F9)
    assert area.ack_shortcut.key().toString() == AlarmArea.ACK_KEY
    assert area.pause_shortcut.key().toString() == AlarmArea.PAUSE_KEY
    # The main window may choose other keys, and handle them itself.
    area.set_keys("A", "P")
    assert area.ack_button.text() == "Acknowledge  [A]"
    with qtbot.waitSignal(area.pause_requested, timeout=1000):
        qtbot.keyClick(area.table, Qt.Key.Key_P)
    area.set_keys("A", "P", own_shortcuts=False)
    assert area.pause_button.text() == "Audio pause  [P]"
    assert not area.pause_shortcut.isEnabled()


def test_pause_button_emits_and_the_countdown_shows(area, qtbot):
    area.show()
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    assert area.paused_label.isHidden()
    with qtbot.waitSignal(area.pause_requested, timeout=1000):
        qtbot.mouseClick(area.pause_button, Qt.MouseButton.LeftButton)
    area.update_alarms(mixed_alarms(), AudioDue(None, 103.2), "", Stamp.now())
    assert area.paused_label.isVisible()
    assert area.paused_label.text() == "Audio paused 1:44"
    area.update_alarms(mixed_alarms(), AudioDue(None, 59.5), "", Stamp.now())
    assert area.paused_label.text() == "Audio paused 1:00"
    # the visual signal stays while the audio is paused
    assert area.banner_priority is Priority.HIGH
    area.update_alarms(mixed_alarms(), AudioDue(Priority.HIGH, 0.0), "", Stamp.now())
    assert area.paused_label.isHidden()


def test_screenshot_of_a_high_priority_alarm_at_1920_px(area, qtbot, tmp_path):
    area.resize(1920, 420)
    area.show()
    qtbot.waitExposed(area)
    alarms = [
        *mixed_alarms(),
        alarm(
            "rise@nibp", Priority.MEDIUM, condition="bp-rise-systolic",
            message="NIBP systolic risen from the pre-dose baseline",
            code="MDC_PRESS_BLD_NONINV_SYS", value=46, limit=40, delay_s=0, ago=400,
            source="contec@/dev/ttyUSB1",
        ),
    ]  # fmt: skip
    area.update_alarms(
        alarms, AudioDue(None, 103.0), "pre-dose baseline 124/78 mmHg (mean of 3 readings)",
        NOW,
    )  # fmt: skip
    area.refresh_flash(0.1)  # lit
    image = area.grab()
    banner = area.banner.geometry()
    assert hue(image.toImage().pixelColor(banner.center().x(), banner.top() + 8)) < 15
    paths = [tmp_path / "alarm-area-high.png"]
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        paths.append(Path(SCREENSHOTS) / "alarm-area-high.png")
    for path in paths:
        assert image.save(str(path))
    area.refresh_flash(0.3)  # the dark half of the flash: the text must still be readable
    if SCREENSHOTS:
        area.grab().save(str(Path(SCREENSHOTS) / "alarm-area-high-dark-phase.png"))


# --- sound --------------------------------------------------------------------------------------


class _NoDevices(QObject):
    """QMediaDevices as on a computer without a sound card."""

    audioOutputsChanged = Signal()

    @staticmethod
    def audioOutputs():
        return []


def test_sound_without_an_audio_device_is_harmless_and_says_visual_only(qtbot, monkeypatch):
    monkeypatch.setattr(sound_module, "QMediaDevices", _NoDevices)
    sound = AlarmSound()
    assert sound.available is False
    assert sound.problem == NO_OUTPUT == "No audio output: alarms are visual only"
    for due in (Priority.HIGH, Priority.MEDIUM, None, Priority.LOW):
        sound.play(AudioDue(due, 0.0))
        assert sound.due is due
        assert not any(sound.is_playing(p) for p in Priority)
    sound.play(None)
    sound.close()


def test_sound_in_this_environment_matches_the_outputs_present(qapp):
    from PySide6.QtMultimedia import QMediaDevices

    outputs = QMediaDevices.audioOutputs()
    sound = AlarmSound()
    try:
        assert sound.available == bool(outputs)
        if not outputs:
            assert sound.problem == NO_OUTPUT
        sound.play(AudioDue(Priority.HIGH, 0.0))
        sound.play(AudioDue(None, 30.0))
    finally:
        sound.close()


def test_the_wav_files_hold_each_prioritys_burst(qapp, monkeypatch):
    monkeypatch.setattr(sound_module, "QMediaDevices", _NoDevices)
    sound = AlarmSound()
    try:
        for priority, path in sound.files.items():
            with wave.open(str(path)) as w:
                fs = w.getframerate()
                x = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0
            spec = BURSTS[priority]
            assert len(x) / fs == pytest.approx(spec.cycle_s or spec.burst_duration_s, abs=0.01)
            result = analyse_burst(x, fs)
            assert result.pulse_count == spec.pulse_count
            assert result.fundamental_hz == pytest.approx(spec.fundamental_hz, rel=0.005)
    finally:
        sound.close()


def test_the_sound_module_imports_when_qtmultimedia_cannot_be_loaded():
    code = textwrap.dedent(
        """
        import sys
        class NoMultimedia:
            def find_spec(self, name, path=None, target=None):
                if name.startswith('PySide6.QtMultimedia'):
                    raise ImportError('libpulse.so.0: cannot open shared object file')
        sys.meta_path.insert(0, NoMultimedia())
        from PySide6.QtCore import QCoreApplication
        app = QCoreApplication([])
        from alarms.model import AudioDue, Priority
        from ui.sound import AlarmSound
        sound = AlarmSound()
        sound.play(AudioDue(Priority.HIGH, 0.0))
        sound.play(None)
        print(sound.available)
        print(sound.problem)
        sound.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    available, problem = result.stdout.strip().splitlines()
    assert available == "False"
    assert problem.startswith("No audio output: alarms are visual only")
    assert "libpulse" in problem


_PLAYER = """
import sys, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
from alarms.model import AudioDue, Priority
from ui.sound import AlarmSound
sound = AlarmSound()
print("available", sound.available, sound.problem, flush=True)
sound.play(AudioDue(Priority.HIGH, 0.0))
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    app.processEvents()
    time.sleep(0.01)
print("playing", sound.is_playing(Priority.HIGH), sound.problem, flush=True)
sound.close()
"""


@pytest.fixture
def pulse_null_sink(tmp_path):
    """A private PulseAudio server whose only sink is a null sink; yields its address."""
    missing = [tool for tool in ("pulseaudio", "parecord") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed: no real-audio test without a sound server "
            "(apt-get install -y --no-install-recommends pulseaudio pulseaudio-utils)"
        )
    runtime = tmp_path / "pulse"
    runtime.mkdir(mode=0o700)
    socket = runtime / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)}
    log = (tmp_path / "pulseaudio.log").open("wb")
    modules = [
        f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
        "module-null-sink sink_name=kapnull rate=44100",
        "module-always-sink",
    ]
    server = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--use-pid-file=no",
         "--disable-shm=yes", *(f"--load={m}" for m in modules)],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (tmp_path / "pulseaudio.log").read_text(errors="replace")[-300:]
                pytest.skip(f"pulseaudio did not start: {tail}")
            time.sleep(0.05)
        yield {**env, "PULSE_SERVER": f"unix:{socket}"}
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def test_the_high_priority_burst_reaches_a_real_sound_server(pulse_null_sink, tmp_path):
    env = {**pulse_null_sink, "QT_QPA_PLATFORM": "offscreen",
           "QT_LOGGING_RULES": "qt.multimedia*=false"}  # fmt: skip
    recording = tmp_path / "monitor.raw"
    recorder = subprocess.Popen(
        ["parecord", "-d", "kapnull.monitor", "--raw", "--format=s16le", "--rate=44100",
         "--channels=1", "--latency-msec=20", str(recording)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        player = subprocess.run(
            [sys.executable, "-c", _PLAYER, "3.5"], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    finally:
        time.sleep(0.3)
        recorder.terminate()
        recorder.wait(10)
    assert player.returncode == 0, player.stderr
    assert "available True None" in player.stdout
    assert "playing True None" in player.stdout
    x = np.fromfile(recording, "<i2") / 32768.0
    assert x.size > 44100
    result = analyse_burst(x, 44100)
    spec = BURSTS[Priority.HIGH]
    assert result.fundamental_hz == pytest.approx(spec.fundamental_hz, rel=0.01)
    # One whole burst, then the repeat silence, in the burst's own rhythm. A sound server on a
    # loaded machine can underrun and cut a few ms out of a pulse (CI once split one in two), so
    # pieces closer than the 90 ms pulse spacing count as one pulse.
    heard = _onsets_joining_dropouts(result, spec.pulse_spacing_s / 2)
    rendered = _onsets_joining_dropouts(analyse_burst(render_burst(Priority.HIGH), 44100), 0.0)
    assert len(heard) == len(rendered) == spec.pulse_count
    # Pulse to pulse, as rendered (an underrun delays what follows it, so not from the first)
    assert np.diff(heard) == pytest.approx(np.diff(rendered), abs=0.05)
    assert np.max(np.abs(x)) > 0.3  # at about the rendered level, not a whisper


def _onsets_joining_dropouts(result, shortest_gap_s: float) -> list[float]:
    """Pulse onsets; a piece starting under shortest_gap_s after the last is its tail."""
    onsets, end = [], -math.inf
    for pulse in result.pulses:
        if pulse.onset_s - end >= shortest_gap_s:
            onsets.append(pulse.onset_s)
        end = pulse.end_s
    return onsets


# --- text that fits -----------------------------------------------------------------------------

LONG_TECHNICAL = (
    "nonin2@/dev/ttyUSB0: no data for 10 s - port '/dev/ttyUSB0' stopped answering: "
    "the device was unplugged or switched off"
)


@pytest.mark.parametrize("width", [1920, 1280])
def test_the_banner_fits_its_width_and_keeps_priority_and_value_visible(qtbot, width):
    """Issue 13: even at 1920 px the banner ended "...stopped answe": one label ran past its
    edge and the value at its end was never seen. Now the font steps down, then the message is
    elided; the marker, the value and the priority stay whole."""
    area = AlarmArea()
    qtbot.addWidget(area)
    area.resize(width - 12, 420)  # the main window's margins
    area.show()
    qtbot.waitExposed(area)
    cases = [
        alarm("spo2@ox", Priority.HIGH),
        alarm(
            "no-data@ox", Priority.MEDIUM, condition="no-data", message=LONG_TECHNICAL,
            code=None, value=None, limit=None, kind=AlarmKind.TECHNICAL,
        ),
        alarm("spo2@ox", Priority.HIGH, message="SpO2 low " + LONG_TECHNICAL),
        alarm("spo2@ox", Priority.HIGH, state=AlarmState.LATCHED),
        alarm(
            "nibp-dia-high@mon", Priority.HIGH, condition="nibp-dia-high",
            message="NIBP diastolic high", code="MDC_PRESS_BLD_NONINV_DIA", value=113.0,
            limit=110.0, state=AlarmState.LATCHED,
        ),
    ]  # fmt: skip
    for top in cases:
        area.update_alarms([top], AudioDue(top.priority, 0.0), "", NOW)
        QApplication.processEvents()
        label = area.banner_text
        shown = label.text()
        used = label.fontMetrics().horizontalAdvance(shown)
        assert used <= label.contentsRect().width(), (width, shown)
        assert label.geometry().right() < area.banner_extra.geometry().left()
        assert shown.startswith(MARKERS[top.priority] + "  ")
        ended = "   (ended)" if top.state is AlarmState.LATCHED else ""
        values = {format_value(top), format_value(replace(top, limit=None))}
        assert any(shown.endswith(v + ended) for v in values), shown  # the limit may go
        if len(top.message) < 30:  # a short message is never cut: the limit goes first
            assert top.message in shown, shown
        extra = area.banner_extra
        assert extra.text().startswith(f"{top.priority.name} PRIORITY")
        assert extra.fontMetrics().horizontalAdvance(f"{top.priority.name} PRIORITY") <= (
            extra.contentsRect().width()
        )
        assert label.font().pixelSize() >= 28  # still readable across the room
    # a short alarm keeps the big font
    area.update_alarms([cases[0]], AudioDue(Priority.HIGH, 0.0), "", NOW)
    assert area.banner_text.font().pixelSize() == 40
    assert "82 % (limit < 85 %)" in area.banner_text.text()
