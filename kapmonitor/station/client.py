"""The station's side of the bus: one broker link feeding one :class:`StationModel`.

The window and the headless watch both run a :class:`StationClient`; the window reads
``client.model`` on its timer and asks a room for its pleth when it shows that room large.
"""

from __future__ import annotations

import os
import socket
import threading

from kapmonitor.station.broker import BrokerLink, BrokerUrl, Credentials, LinkState
from kapmonitor.station.contract import ALL_ROOMS, PLETH_WANT_S, Kind, check_room, encode, topic
from kapmonitor.station.model import StationModel

#: How often the client checks the rooms' staleness (link lost within STALE_S + this).
TICK_S = 0.5


class StationClient:
    """Subscribes to every room and keeps the model current."""

    def __init__(
        self,
        url: BrokerUrl,
        credentials: Credentials,
        name: str | None = None,
        model: StationModel | None = None,
    ) -> None:
        self.model = model or StationModel()
        name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.link = BrokerLink(
            url,
            credentials,
            client_id=f"kapmonitor-station-{name}"[:64],
            subscriptions=(ALL_ROOMS,),
            on_message=self.model.handle,
            on_state=self._on_state,
        )
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="station-tick", daemon=True)

    def _on_state(self, state: LinkState, text: str) -> None:
        self.model.set_connected(state is LinkState.CONNECTED, text)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self.model.tick()

    def start(self) -> StationClient:
        self.link.start()
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.link.stop()
        if self._ticker.is_alive():
            self._ticker.join(2.0)

    def request_pleth(self, room: str, seconds: float = PLETH_WANT_S) -> None:
        """Ask ``room`` for its pleth for ``seconds`` (the window re-asks while it shows it)."""
        room = check_room(room)
        body = encode(room, Kind.PLETH_WANT, {"for_s": min(seconds, PLETH_WANT_S)})
        self.link.publish(topic(room, Kind.PLETH_WANT), body, qos=0)
