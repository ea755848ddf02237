"""A recorded session played back as a device (``replay:SESSION``).

``kapmonitor record --device replay:12`` loads session 12 from the database (``--db`` or
``KAPMONITOR_DB``) once, when the driver is made, and plays its numerics, NIBP readings, waveform
blocks, device values and its dose (as a :class:`SessionEvent` DOSE; left out when
:attr:`~devices.base.PlaybackSettings.publish_dose` is off, when a nurse marks T0 on the screen,
as for the simulator) in their original order and relative timing, paced by ``speed`` as
:class:`~devices.sim.driver.SimDriver` is.

The replay device is the device: it stamps every item in its own clock, like the simulator. Time
0 is when the driver opened; an item that came ``t`` seconds after the session's start (its wall
time minus the session's start, or minus its first item when that came earlier) is stamped
``origin + t`` in *replayed* time, so at ``--speed 60`` an hour of session passes in a minute and
trends, alarms and the new record see the session as it was.

Every item's source is the replay device's name as the user wrote it (``replay:12``), not the
recorded device's: streams merged from several devices (two replays, or a replay beside a real
oximeter) stay distinguishable, and nothing downstream mistakes a replay for the device itself.
Markers, notes and the recorded devices' connection events are not replayed; the replay device
reports its own connection states (connected while playing, disconnected when the session is
over).
"""

from __future__ import annotations

import dataclasses

from devices.base import DriverSettings, PlaybackDriver, PlaybackSettings, Publish
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import (
    ConnectionState,
    Item,
    SessionEvent,
    SessionEventKind,
)
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionRecord
from kapmonitor.record.store import Store


def timeline(record: SessionRecord, *, with_dose: bool = True) -> list[tuple[float, Item]]:
    """``(seconds from the session's start, item)`` for everything a replay plays, in order."""
    items: list[Item] = [*record.numerics, *record.nibp, *record.waves, *record.values]
    dose = record.dose_stamp if with_dose else None
    if dose is not None:
        text = next(
            (e.text for e in record.events if e.kind == "dose" and e.stamp == dose), "dose given"
        )
        items.append(SessionEvent("", SessionEventKind.DOSE, dose, text))
    if not items:
        return []
    start = min(record.info.started, min(i.stamp.wall for i in items))
    # Stable: items recorded at the same time keep their order (numerics before NIBP, …).
    ordered = sorted(items, key=lambda i: i.stamp.wall)
    return [(item.stamp.wall - start, item) for item in ordered]


class ReplayDriver(PlaybackDriver):
    """Plays a recorded session from the database as a live device."""

    name = "replay"

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        playback: PlaybackSettings | None = None,
        *,
        db: str | None = None,
    ) -> None:
        """``db``: the database URL of the recorded session (None: the default database)."""
        super().__init__(spec, publish, settings, playback)
        play = self.playback
        try:
            session_id = int(spec.target)
        except ValueError:
            raise UserError(
                f"device '{spec.text}': '{spec.target}' is not a session id (write replay:ID, "
                "as 'kapmonitor sessions list' shows it)"
            ) from None
        database = open_database(db)
        try:
            record = Store(database).load_session(session_id)  # UserError when there is none
        finally:
            database.close()
        self.session_id = session_id
        self.timeline = timeline(record, with_dose=play.publish_dose)
        end = self.timeline[-1][0] if self.timeline else 0.0
        #: Session seconds after which the replay stops (default: its last item).
        self.until = min(end, play.until) if play.until else end

    def _run(self) -> None:
        self.begin()
        self._set_state(ConnectionState.CONNECTED, stamp=self.origin)
        t = 0.0
        for offset, item in self.timeline:
            if offset > self.until or not self.wait_until(offset):
                break
            t = offset
            self._publish(dataclasses.replace(item, source=self.source, stamp=self.at(t)))
        else:
            t = self.until
        self._set_state(
            ConnectionState.DISCONNECTED,
            f"the replay of session {self.session_id} is over",
            self.at(t),
        )
