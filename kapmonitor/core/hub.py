"""The one place items pass through on their way from devices to their consumers.

Readers publish; each consumer (alarms, recorder, live view) reads its own bounded queue at its
own pace. Publishing never blocks: when a consumer falls behind, its queue fills and further items
*for that consumer only* are dropped, counted and logged. A slow screen can therefore never stall a
device reader, and never delay the alarms, which have a queue of their own.

A hub carries one kind of thing, named by its type parameter: ``Hub[Item]`` the devices'
measurements and events, ``Hub[LogEntry]`` the alarm log the alarm service writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

#: A queue this deep holds about a minute of everything a few devices send.
DEFAULT_QUEUE_SIZE = 10_000
#: At most one drop warning per consumer in this many seconds, so a stall does not flood the log.
DROP_LOG_INTERVAL = 5.0

T = TypeVar("T")  #: what a hub carries


class Subscription(Generic[T]):
    """One consumer's bounded queue of items."""

    def __init__(self, name: str, maxsize: int = DEFAULT_QUEUE_SIZE) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0  #: items this consumer never saw because its queue was full
        self.delivered = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._last_drop_log = -DROP_LOG_INTERVAL

    def put(self, item: T) -> bool:
        """Queue ``item`` unless the queue is full; never blocks."""
        with self._cond:
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self.dropped += 1
                self._log_drop()
                return False
            self._items.append(item)
            self.delivered += 1
            self._cond.notify()
        return True

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._last_drop_log = now
            log.warning(
                "consumer %r is falling behind: its queue of %d is full, %d item(s) dropped so far",
                self.name,
                self.maxsize,
                self.dropped,
            )

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, waiting up to ``timeout`` seconds; None on timeout or when closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def drain(self, max_items: int | None = None) -> list[T]:
        """Everything queued (up to ``max_items``), without waiting: for a screen's timer tick."""
        with self._cond:
            n = len(self._items) if max_items is None else min(max_items, len(self._items))
            return [self._items.popleft() for _ in range(n)]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop accepting items and wake a waiting reader."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Hub(Generic[T]):
    """Fans items out from any number of publishing threads to every subscription."""

    def __init__(self) -> None:
        self._subs: tuple[Subscription[T], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, name: str, maxsize: int = DEFAULT_QUEUE_SIZE) -> Subscription[T]:
        sub: Subscription[T] = Subscription(name, maxsize)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
        sub.close()

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscription; safe from any thread, never blocks."""
        # Reading the tuple is atomic, so publishers take no lock on the hot path.
        for sub in self._subs:
            sub.put(item)

    @property
    def subscriptions(self) -> tuple[Subscription[T], ...]:
        return self._subs

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, ()
        for sub in subs:
            sub.close()
