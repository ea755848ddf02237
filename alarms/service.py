"""The alarm engine in the acquisition pipeline: its own thread, its own queue.

It reads items from the hub like any consumer, so a slow or closed screen never delays an alarm.
What it decides goes out through its own hub (:attr:`AlarmService.out`) to the screen and the
recorder. Operator actions (acknowledge, audio pause) come in through methods that are safe to
call from the screen's thread.

Time passes on a clock when no item arrives (delays elapse, a silent device becomes "no-data").
It is the wall clock for real devices; for simulated or replayed devices at ``--speed`` it must be
their session clock, which runs ahead of the wall clock: the runner hands it in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from alarms.engine import AlarmEngine
from alarms.model import Alarm, AudioDue, LogEntry, Priority, TechnicalCondition
from alarms.profile import Profile
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Item, Stamp

#: How often the engine looks at the clock when no item arrives (delays, pauses, overdue NIBP).
TICK = 0.1
#: The alarms' queue: deep enough that nothing is dropped even behind a long garbage collection.
QUEUE_SIZE = 100_000


class AlarmService:
    """Runs an :class:`AlarmEngine` on a thread fed by a hub subscription."""

    def __init__(
        self, hub: Hub[Item], profile: Profile, clock: Callable[[], Stamp] = Stamp.now
    ) -> None:
        self.engine = AlarmEngine(profile)
        self._clock = clock  #: the time now, in the devices' own time
        self.out = Hub[LogEntry]()  #: carries every new :class:`~alarms.model.LogEntry`
        self._sub = hub.subscribe("alarms", maxsize=QUEUE_SIZE)
        self._hub = hub
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarms", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._hub.unsubscribe(self._sub)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._sub.get(timeout=TICK)
            with self._lock:
                entries = self.engine.process(item) if item is not None else self._tick()
            self._publish(entries)

    def _tick(self) -> list[LogEntry]:
        now = self._now()
        if len(self._sub):
            # Items came in after the wait: they may be older than the clock read just now, and
            # passing them would make the engine see a silence that is not there.
            return []
        return self.engine.tick(now)

    def _now(self) -> Stamp:
        # Never behind what the devices have stamped already (items of a clock running ahead).
        now = self._clock()
        engine_now = self.engine.now
        return engine_now if engine_now is not None and engine_now.mono > now.mono else now

    def _publish(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self.out.publish(entry)

    # --- for the screen ---------------------------------------------------------------------

    def acknowledge(self, alarm_id: str, operator: str) -> None:
        with self._lock:
            entries = self.engine.acknowledge(alarm_id, operator, self._now())
        self._publish(entries)

    def pause_audio(self, operator: str) -> None:
        with self._lock:
            entries = self.engine.pause_audio(operator, self._now())
        self._publish(entries)

    def set_limit(self, rule_id: str, priority: Priority, limit: float, operator: str) -> None:
        with self._lock:
            entries = self.engine.set_limit(rule_id, priority, limit, operator, self._now())
        self._publish(entries)

    def set_technical(
        self, name: TechnicalCondition, source: str, present: bool, text: str = ""
    ) -> None:
        """A condition another part of the system detects, e.g. the recorder's failure."""
        with self._lock:
            entries = self.engine.set_technical(name, source, present, self._now(), text)
        self._publish(entries)

    def snapshot(self) -> tuple[list[Alarm], AudioDue, str]:
        """What the screen draws on its tick: alarms, the sound due, the baseline line."""
        with self._lock:
            return self.engine.alarms(), self.engine.audio(), self.engine.baseline_status()
