"""The alarm sound: the IEC-style bursts of alarms.tones, played through QSoundEffect.

The engine says which burst is due (:class:`~alarms.model.AudioDue`); :meth:`AlarmSound.play`
is called on every screen tick with it and changes the sound only when the due priority
changes. High and medium priority loop their cycle (burst + the standard's repeat silence);
low priority sounds once each time it becomes the due sound, as ``alarms.tones.BURSTS`` says.

Without a sound card, or when QtMultimedia cannot be loaded (no libpulse0), nothing plays and
:attr:`AlarmSound.problem` says so in one sentence, which the main window shows permanently:
the alarms are then visual only. Nothing here raises for want of audio.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal

from alarms.model import AudioDue, Priority
from alarms.tones import BURSTS, render_cycle, wav_bytes

try:
    from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
except ImportError as exc:  # e.g. libpulse0 missing: the sound library does not load
    QMediaDevices = QSoundEffect = None  # type: ignore[assignment, misc]
    _IMPORT_ERROR: str | None = str(exc)
else:
    _IMPORT_ERROR = None

__all__ = ["NO_OUTPUT", "AlarmSound"]

#: What the screen shows while alarms cannot be heard.
NO_OUTPUT = "No audio output: alarms are visual only"


class AlarmSound(QObject):
    """Plays the due alarm burst; harmless without audio.

    Signals:
        problem_changed(str): the sound became unavailable ("" if it became available again).
    """

    problem_changed = Signal(str)

    def __init__(
        self, parent: QObject | None = None, *, volume: float = 0.8, fs: int = 44100
    ) -> None:
        super().__init__(parent)
        self._problem: str | None = None
        self._due: Priority | None = None
        self._effects: dict[Priority, QSoundEffect] = {}
        self._files: dict[Priority, Path] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="kapmonitor-tones-")
        for priority in Priority:
            path = Path(self._tmp.name) / f"alarm-{priority.label}.wav"
            path.write_bytes(wav_bytes(render_cycle(priority, fs, volume), fs))
            self._files[priority] = path
        if QSoundEffect is None:
            self._problem = f"{NO_OUTPUT} (the sound library could not be loaded: {_IMPORT_ERROR})"
            return
        self._devices = QMediaDevices(self)
        self._devices.audioOutputsChanged.connect(self._outputs_changed)
        self._outputs_changed()

    # --- state ----------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True while alarm sounds can be played."""
        return self._problem is None

    @property
    def problem(self) -> str | None:
        """One sentence for the screen while the alarms are visual only; None when they sound."""
        return self._problem

    @property
    def due(self) -> Priority | None:
        """The priority whose sound was last started (None: silent)."""
        return self._due

    @property
    def files(self) -> dict[Priority, Path]:
        """The WAV file of each priority's cycle (burst plus repeat silence)."""
        return dict(self._files)

    def is_playing(self, priority: Priority) -> bool:
        effect = self._effects.get(priority)
        return bool(effect is not None and effect.isPlaying())

    # --- control --------------------------------------------------------------------------

    def play(self, audio: AudioDue | None) -> None:
        """Sound ``audio.priority`` (None: silence). Calling it again with the same is a no-op."""
        due = None if audio is None else audio.priority
        if due == self._due:
            return
        self._due = due
        for priority, effect in self._effects.items():
            if priority != due:
                effect.stop()
        if due is not None and due in self._effects:
            self._effects[due].play()

    def stop(self) -> None:
        self.play(None)

    def close(self) -> None:
        """Stop and delete the sound files (also done when the process exits)."""
        self.stop()
        for effect in self._effects.values():
            effect.stop()
            effect.deleteLater()
        self._effects.clear()
        self._tmp.cleanup()

    # --- internals ------------------------------------------------------------------------

    def _outputs_changed(self) -> None:
        if not QMediaDevices.audioOutputs():
            for effect in self._effects.values():
                effect.stop()
                effect.deleteLater()
            self._effects.clear()
            self._set_problem(NO_OUTPUT)
            return
        if not self._effects:
            self._build_effects()
        self._set_problem(None)
        due, self._due = self._due, None
        self.play(AudioDue(due, 0.0))  # restart what was due on the new output

    def _build_effects(self) -> None:
        for priority, path in self._files.items():
            effect = QSoundEffect(self)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            effect.setVolume(1.0)
            repeated = BURSTS[priority].repeat_interval_s is not None
            effect.setLoopCount(QSoundEffect.Loop.Infinite.value if repeated else 1)
            effect.statusChanged.connect(lambda p=priority, e=effect: self._status_changed(p, e))
            self._effects[priority] = effect

    def _status_changed(self, priority: Priority, effect: QSoundEffect) -> None:
        if effect.status() == QSoundEffect.Status.Error:
            self._set_problem(f"{NO_OUTPUT} (the {priority.label}-priority sound failed to load)")

    def _set_problem(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        self.problem_changed.emit(problem or "")
