"""The driver base class: one reader thread per device, connection states as events.

A driver turns one device into a stream of stamped items handed to ``publish`` (the hub). It owns
its thread, reconnects by itself after an unplug, and reports every change of connection state as
a :class:`~kapmonitor.core.model.DeviceEvent` in the same stream, so alarms and the record see
outages in order with the data.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import ConnectionState, DeviceEvent, Item, Stamp

log = logging.getLogger(__name__)

#: A device that sends nothing for this long is in the "no data" state.
DEFAULT_NO_DATA_TIMEOUT = 10.0

Publish = Callable[[Item], None]


@dataclass(frozen=True)
class DriverSettings:
    """How a driver watches its device; the same for every driver of a session."""

    #: A device that sends no measurement for this long is in the "no data" state.
    no_data_timeout: float = DEFAULT_NO_DATA_TIMEOUT


@dataclass(frozen=True)
class PlaybackSettings:
    """How a device that plays a session on its own clock (the simulator, a replay) plays it."""

    speed: float = 1.0  #: session seconds per real second
    until: float | None = None  #: session seconds after which it stops; None: at its end
    #: Play the session's own dose as T0 (headless recording, the demo); off, the nurse marks it.
    publish_dose: bool = True
    seed: int = 0  #: the simulator's random seed

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError("speed must be positive")


def backoff_delays(first: float = 0.25, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Waits between reconnect attempts; capped low, since a nurse expects a replug to just work."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


class Driver(ABC):
    """A device connection with its own reader thread."""

    #: Registry name of this driver (the PROTOCOL in ``PROTOCOL@PORT``).
    name: ClassVar[str]
    #: The options this driver knows (``PROTOCOL+OPTION@PORT``), each with its meaning in one
    #: line; a device named with any other is refused, so a typo never passes unnoticed.
    options: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self, spec: DeviceSpec, publish: Publish, settings: DriverSettings | None = None
    ) -> None:
        unknown = sorted(spec.options.difference(self.options))
        if unknown:
            known = ", ".join(sorted(self.options))
            raise UserError(
                f"device '{spec.text}': unknown option '{unknown[0]}' "
                + (f"({self.name} knows: {known})" if known else f"({self.name} takes none)")
            )
        self.spec = spec
        self.source = spec.text
        self.no_data_timeout = (settings or DriverSettings()).no_data_timeout
        self.state: ConnectionState | None = None
        self._publish = publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Connect once, now, in the caller's thread, raising a UserError a person can act on.

        Lets a command line or a start dialog refuse a wrong port at once; after this, the
        reader thread keeps the connection alive on its own.
        """
        self._set_state(ConnectionState.CONNECTING)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.source} is already started")
        self._thread = threading.Thread(
            target=self._run_guarded, name=f"reader {self.source}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader to end by itself (a simulated session that is over)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _set_state(
        self, state: ConnectionState, detail: str = "", stamp: Stamp | None = None
    ) -> None:
        if state is self.state:
            return
        self.state = state
        log.info("%s: %s%s", self.source, state, f" ({detail})" if detail else "")
        self._publish(DeviceEvent(self.source, state, stamp or Stamp.now(), detail))

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:
            # A bug, not a device fault: say so loudly and leave the device visibly down,
            # so the alarm system raises a technical alarm instead of showing stale values.
            log.exception("%s: reader stopped by an internal error", self.source)
            self.state = None
            self._set_state(ConnectionState.DISCONNECTED, f"internal error in the driver: {exc}")

    @abstractmethod
    def _run(self) -> None:
        """The reader thread's body; return when :attr:`stopping` is set or the source ends."""


class PlaybackDriver(Driver):
    """A device that plays a session on its own clock: the simulator, a stored session.

    Session time 0 is the stamp taken in :meth:`open`; an item at session time ``t`` is stamped
    ``origin + t`` and published ``t / speed`` seconds after the start, so at ``--speed 60``
    an hour passes in a minute while every item carries the time the device would have given.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        playback: PlaybackSettings | None = None,
    ) -> None:
        super().__init__(spec, publish, settings)
        self.playback = playback or PlaybackSettings()
        self._origin: Stamp | None = None
        self._started = 0.0
        self._horizon = 0.0  #: session time before which every item has been published

    def open(self) -> None:
        self._origin = Stamp.now()
        self._set_state(ConnectionState.CONNECTING, stamp=self._origin)

    @property
    def origin(self) -> Stamp:
        if self._origin is None:
            self.open()  # a subclass may start its clock elsewhere (a reproducible session)
            assert self._origin is not None, "open() starts the session clock"
        return self._origin

    def at(self, t: float) -> Stamp:
        """The stamp of session time ``t``."""
        return self.origin.shifted(t)

    def begin(self) -> None:
        """Start the pacing clock: call once, as the reader thread starts playing."""
        self._started = time.monotonic()

    def wait_until(self, t: float) -> bool:
        """Sleep until session time ``t`` is due; False if the driver is being stopped.

        Call it once everything stamped before ``t`` has been published.
        """
        self._horizon = max(self._horizon, t)
        delay = self._started + t / self.playback.speed - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        return not self.stopping

    def session_now(self) -> Stamp:
        """The stamp of the session time due now: ahead of the wall clock at ``--speed`` > 1.

        The alarm system's clock for a silent stretch (an unplug, the end of the session), so
        that its delays and the no-data timeout pass in session time, as the items' stamps do.
        While it plays, it never passes what has been published: a reader running late (a
        loaded machine) must not make the alarms see silence in the items still to come. Once
        the playback is over, session time runs on.
        """
        if self._origin is None:
            return Stamp.now()
        if not self._started:
            return self._origin
        due = (time.monotonic() - self._started) * self.playback.speed
        over = self._thread is not None and not self._thread.is_alive()
        return self._origin.shifted(due if over else min(due, self._horizon))
