"""Helpers for tests that run the real pipeline: wait on a hub subscription for what should come."""

from __future__ import annotations

import time
from collections.abc import Callable

from kapmonitor.hub import Subscription
from kapmonitor.model import ConnectionState, DeviceEvent, Item


class Collector:
    """Everything a subscription has delivered so far, with a way to wait for more."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.items: list[Item] = []

    def wait_for(self, predicate: Callable[[list[Item]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.items):
                return True
            item = self.sub.get(timeout=0.05)
            if item is not None:
                self.items.append(item)
        return predicate(self.items)

    def states(self) -> list[ConnectionState]:
        return [it.state for it in self.items if isinstance(it, DeviceEvent)]

    def wait_for_state(self, state: ConnectionState, after: int = 0, timeout: float = 10.0) -> bool:
        """Wait until ``state`` occurs among the state events after the first ``after`` ones."""
        return self.wait_for(lambda _: state in self.states()[after:], timeout)

    def of_type(self, cls: type) -> list:
        return [it for it in self.items if isinstance(it, cls)]
