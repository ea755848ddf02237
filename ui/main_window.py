"""The dosing-room screen: the live view, the alarm area and the session's controls.

The window is a view of a :class:`~kapmonitor.runner.SessionRunner`: one timer (25 Hz) drains
what arrived into the live buffers and redraws; nothing is drawn per sample, and nothing the
alarms need waits on the screen (they run on their own thread in the pipeline).
"""

from __future__ import annotations

import contextlib
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QInputDialog,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from alarms.model import AudioDue
from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.markers import MARKERS
from kapmonitor.core.model import Stamp
from kapmonitor.live import LiveBuffers
from kapmonitor.record.session import SessionStatus
from kapmonitor.runner import SessionRunner
from ui.alarm_area import AlarmArea
from ui.assessment_dialog import AssessmentDialog
from ui.discharge_dialog import DischargeDialog, DischargeOutcome
from ui.elided_label import ElidedLabel
from ui.monitor_view import MonitorView
from ui.score_tile import clock, score_words
from ui.sound import AlarmSound
from ui.status_panel import DeviceStatusPanel

#: Redraws per second at most: a broadcast video's rate, at which the pleth's write head moves
#: about 5 px a frame at 1080p and looks smooth. At 30 the whole screen at ``--speed 10`` took
#: 11 % of a core against 9.7 % at 25 (median of 5 alternated runs, this machine): the target
#: is 10 %.
FRAME_RATE = 25
#: The status panel and schedule change slowly: update them a few times a second.
SLOW_EVERY = 10
#: The trends show the whole session (a pixel is seconds of it) and numerics come once a
#: second: redraw them once a second, and at once when a marker, the dose or an alarm start
#: arrives. Redrawing their four rows, axes and grid at every frame was most of the screen's CPU.
TRENDS_EVERY = FRAME_RATE
#: The tiles change when a value arrives; otherwise only their ages and staleness move, which
#: are shown in seconds: redraw them on arrival and five times a second, not on every frame.
NUMBERS_EVERY = FRAME_RATE // 5

#: Keys for what a nurse does often (also shown on the buttons' tooltips).
KEYS = {
    "dose": "D",
    "stat": "S",
    "score": "M",  #: MOAA/S and dissociation (S is taken by STAT NIBP)
    "acknowledge": "A",
    "pause": "P",
    "end": "Ctrl+E",
    "fullscreen": "F11",
}
MARKER_KEYS = {kind: str(i) for i, kind in enumerate(MARKERS, 1)}


class MainWindow(QMainWindow):
    def __init__(self, runner: SessionRunner, *, sound: AlarmSound | None = None) -> None:
        super().__init__()
        self.runner = runner
        self.operator = runner.config.setup.operator or "nurse"
        self.buffers = LiveBuffers()
        # Subscribed before the runner starts, so the screen sees the session from its start.
        self._live = runner.hub.subscribe("screen", maxsize=200_000)
        self._alarm_log = runner.alarms.out.subscribe("screen", maxsize=100_000)
        self.setWindowTitle(f"kapmonitor — {runner.config.setup.patient}")

        self.view = MonitorView(score_key=KEYS["score"])
        self.view.set_profile(runner.profile)
        self.alarm_area = AlarmArea()
        self.status = DeviceStatusPanel()
        self.sound = sound or AlarmSound(self)
        # Status lines never widen the window: what does not fit is elided (whole in a tooltip).
        self.audio_warning = ElidedLabel()
        self.audio_warning.setObjectName("audioWarning")
        self.audio_warning.setStyleSheet(
            "background:#5a3a00; color:#ffd27f; font-size:18px; padding:4px 10px;"
        )
        self.audio_warning.setVisible(not self.sound.available)
        self.audio_warning.setText(self.sound.problem or "")
        self.message = ElidedLabel()
        self.message.setStyleSheet("color:#ffd27f; font-size:20px; padding:2px 10px;")

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.alarm_area)
        layout.addWidget(self.view, stretch=1)
        bottom = QHBoxLayout()  # one line: what just happened, sound, devices and recording
        bottom.addWidget(self.message, stretch=2)
        bottom.addWidget(self.audio_warning, stretch=2)
        bottom.addWidget(self.status, stretch=3)
        layout.addLayout(bottom)
        self.setCentralWidget(central)

        # One set of keys for the whole window; the alarm area's buttons show them.
        self.alarm_area.set_keys(KEYS["acknowledge"], KEYS["pause"], own_shortcuts=False)
        self.alarm_area.acknowledge_requested.connect(self.acknowledge)
        self.alarm_area.pause_requested.connect(self.pause_audio)
        self._actions()
        self._last_audio: AudioDue | None = None
        self._dose_told = False
        self._frame = 0
        self._values_seen = -1  #: the buffers' values_version the tiles show
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / FRAME_RATE))
        self.timer.timeout.connect(self.tick)

    def _actions(self) -> None:
        """Every frequent action on a key, and in the menu bar with its key shown."""
        session = self.menuBar().addMenu("&Session")
        events = self.menuBar().addMenu("&Events")
        view = self.menuBar().addMenu("&View")

        def add(menu, text: str, key: str, slot) -> None:
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            # Only this window's keys, and only with no dialog open: a letter typed into a
            # dialog (a disabled field of the discharge checklist, say) once pressed D.
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda checked=False: self.keys_active() and slot())
            menu.addAction(action)

        add(session, "Dose given", KEYS["dose"], self.dose_given)
        add(session, "STAT NIBP", KEYS["stat"], self.stat)
        add(session, "Score sedation / dissociation…", KEYS["score"], self.ask_score)
        add(session, "Acknowledge alarm", KEYS["acknowledge"], self.acknowledge_top)
        add(session, "Audio pause", KEYS["pause"], self.pause_audio)
        add(session, "End session…", KEYS["end"], self.end_session)
        add(view, "Full screen", KEYS["fullscreen"], self.toggle_fullscreen)
        for kind, key in MARKER_KEYS.items():
            add(events, kind.capitalize(), key, lambda k=kind: self.marker(k))

    def keys_active(self) -> bool:
        """Whether the window's keys act: it is the active window and no dialog is open."""
        return QApplication.activeModalWidget() is None and self.isActiveWindow()

    # --- the timer --------------------------------------------------------------------------

    def start(self) -> None:
        self.timer.start()

    def tick(self) -> None:
        runner = self.runner
        runner.poll()
        self.buffers.ingest(self._live.drain())
        self.buffers.ingest(self._alarm_log.drain())
        now = runner.now()
        dose = runner.dose
        if dose is not None and not self._dose_told:
            self._tell_dose(dose)
        trends = self._frame % TRENDS_EVERY == 0 or self.view.trends.has_events_to_draw(
            self.buffers
        )
        values = self.buffers.values_version
        numbers = values != self._values_seen or self._frame % NUMBERS_EVERY == 0
        self._values_seen = values
        self.view.refresh(self.buffers, now, trends=trends, numbers=numbers)
        alarms, audio, baseline_text = runner.alarms.snapshot()
        self.alarm_area.update_alarms(alarms, audio, baseline_text, now)
        if audio != self._last_audio:
            self.sound.play(audio)
            self._last_audio = audio
        self._frame += 1
        if self._frame % SLOW_EVERY == 0:
            self.update_status()

    def update_status(self) -> None:
        """What changes slowly: device and recording status, the NIBP schedule, the baseline,
        the last scores and when the next is due (a reminder: never the alarm area's)."""
        runner = self.runner
        self.status.update_status(runner.device_rows(), runner.recording_status())
        self.status.set_station_link(runner.station_link())
        text, due = runner.nibp_schedule()
        self.view.set_schedule(text, due)
        self.view.set_baseline(runner.baseline())
        plan = runner.profile.assessment
        self.view.scores.set_scores(
            runner.latest_score(Code.MOAAS),
            runner.latest_score(plan.dissociation.code),
            runner.now(),
            plan.every_min,
        )
        self.view.scores.set_prompt(*runner.assessment_prompt())

    # --- what the nurse does ----------------------------------------------------------------

    def dose_given(self) -> None:
        dose = self.runner.dose
        if dose is not None:
            self.say(f"The dose is already marked: {self._dose_text(dose)}.")
            return
        self.runner.dose_given(self.operator)
        self._dose_told = True
        self.say("Dose given: the time axis now reads minutes from the dose.")

    def _dose_text(self, dose: Stamp) -> str:
        """When T0 is and who set it: "dose at 10:32 (from the scenario)"."""
        at = time.strftime("%H:%M", time.localtime(dose.wall))
        return f"dose at {at}" + (" (from the scenario)" if self.runner.dose_from_scenario else "")

    def _tell_dose(self, dose: Stamp) -> None:
        """A dose the nurse did not mark (a simulated scenario's own): say so on the screen."""
        self._dose_told = True
        if self.runner.dose_from_scenario:
            text = self._dose_text(dose)
            self.say(f"{text[0].upper()}{text[1:]}: the time axis reads minutes from the dose.")

    def stat(self) -> None:
        self.say(self.runner.request_stat(self.operator))

    def marker(self, kind: str) -> None:
        if kind == "note":
            self.ask_note()
            return
        stamp = self.runner.add_marker(kind, operator=self.operator)
        self.say(f"Marked: {kind} at {time.strftime('%H:%M:%S', time.localtime(stamp.wall))}")

    def ask_note(self) -> None:
        """A note needs its text: ask for it (stamped when asked); empty or cancelled, none."""
        stamp = self.runner.now()
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Note")
        dialog.setLabelText("Note for the record:")
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.textValueSelected.connect(lambda text: self._add_note(text, stamp))
        dialog.rejected.connect(lambda: self.say("No note added."))
        self.note_dialog = dialog
        dialog.open()

    def _add_note(self, text: str, stamp) -> None:
        text = " ".join(text.split())
        if not text:
            self.say("No note added: it was empty.")
            return
        self.runner.add_marker("note", text, self.operator, stamp=stamp)
        at = time.strftime("%H:%M:%S", time.localtime(stamp.wall))
        self.say(f"Marked: note at {at}")

    def ask_score(self) -> None:
        """Score sedation and dissociation (stamped now, when the key was pressed, as a note
        is); cancelled, nothing is recorded."""
        stamp = self.runner.now()
        dialog = AssessmentDialog(self.runner.profile.assessment, self.operator, stamp, self)
        dialog.accepted.connect(lambda: self._add_score(dialog, stamp))
        dialog.rejected.connect(lambda: self.say("No score recorded: the scoring was cancelled."))
        self.assessment_dialog = dialog
        dialog.open()

    def _add_score(self, dialog: AssessmentDialog, stamp: Stamp) -> None:
        scores, author = dialog.scores(), dialog.author()
        try:
            self.runner.add_assessment(scores, author, stamp=stamp)
        except UserError as error:  # the dialog offers only the scale's scores: a safeguard
            self.say(f"No score recorded: {error}.")
            return
        words = ", ".join(score_words(code, value) for code, value in scores.items())
        self.say(f"Scored: {words} at {clock(stamp)} ({author})")
        self.runner.poll()  # the prompt and the readout at once, not on the next status
        self.update_status()

    def acknowledge(self, alarm_id: str) -> None:
        with contextlib.suppress(KeyError):  # it ended between the click and now
            self.runner.alarms.acknowledge(alarm_id, self.operator)

    def acknowledge_top(self) -> None:
        alarms, _, _ = self.runner.alarms.snapshot()
        unacknowledged = [a for a in alarms if not a.acknowledged]
        if unacknowledged:
            self.acknowledge(unacknowledged[0].id)

    def pause_audio(self) -> None:
        self.runner.alarms.pause_audio(self.operator)

    def place_on_screen(self) -> None:
        """Fill the screen's available area (what panels leave): without a window manager to
        maximise it, the window would open at its size hint, wider or narrower than the
        screen, with the banner and the status line cut off."""
        screen = self.screen() or QApplication.primaryScreen()
        self.setGeometry(screen.availableGeometry())

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def say(self, text: str) -> None:
        self.message.setText(text)

    def end_session(self) -> None:
        """The discharge checklist; ending there stops the session and shows its summary."""
        self.discharge = DischargeDialog(
            self.runner.discharge_checklist(), summary=self._finish, parent=self
        )
        self.discharge.finished.connect(self._after_discharge)
        self.discharge.open()

    def _finish(self, outcome: DischargeOutcome) -> dict[str, str]:
        reason = outcome.override_reason
        if reason:
            self.runner.add_marker("discharge checklist overridden", reason, self.operator)
        confirmed = [i.label for i in outcome.items if i.confirmed_by_nurse and i.ok]
        for label in confirmed:
            self.runner.add_marker("confirmed", label, self.operator)
        summary = self.runner.summary()
        self.timer.stop()
        self.sound.play(AudioDue(None, 0.0))
        self.runner.stop(who=self.operator)
        self.say(f"Session {self.runner.session_id} ended.")
        return summary

    def stop_by_system(self) -> None:
        """SIGTERM or SIGINT: flush and close the session as stopped by the system, then close.

        Not a discharge: the record says the system stopped it, not that the nurse ended it.
        """
        if not self.timer.isActive():
            return  # the session has ended already
        self.timer.stop()
        self.sound.play(AudioDue(None, 0.0))
        self.runner.stop(SessionStatus.STOPPED_BY_SYSTEM, who="system")
        self.close()

    def _after_discharge(self) -> None:
        if self.discharge.ended:
            self.close()

    def closeEvent(self, event) -> None:
        # Monitoring does not stop by a stray click on a window's close button: the session
        # ends through the discharge checklist, which records who ended it and why.
        if self.timer.isActive():
            event.ignore()
            self.say(f"Monitoring continues. To stop, end the session ({KEYS['end']}).")
            return
        self.sound.close()
        event.accept()
