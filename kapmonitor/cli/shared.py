"""What several commands do alike: read an input, warn, name a protocol, open the database."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kapmonitor.core.errors import UserError

if TYPE_CHECKING:
    from devices.serial_driver import SerialDriver
    from kapmonitor.record.store import Store


def warn(sentence: str) -> None:
    print(f"kapmonitor: {sentence}", file=sys.stderr)


def read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None


def first_line(exc: Exception) -> str:
    """What went wrong, never the SQL or the values (a patient identifier) SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def serial_driver_class(protocol: str) -> type[SerialDriver]:
    from devices.registry import get_driver_class, protocol_names
    from devices.serial_driver import SerialDriver

    cls = get_driver_class(protocol)
    if not issubclass(cls, SerialDriver):
        raise UserError(
            f"'{protocol}' is not a wire protocol (available: {', '.join(protocol_names())})"
        )
    return cls


def when(wall: float | None) -> str:
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, UTC).astimezone().isoformat(timespec="seconds")


def say_interrupted(session_id: int) -> None:
    print(
        f"kapmonitor: session {session_id} was interrupted; review it with "
        f"'kapmonitor sessions show {session_id}'",
        file=sys.stderr,
    )


@contextlib.contextmanager
def opened_store(url: str | None, *, reading: bool = True) -> Iterator[Store]:
    """The session database, telling the user of sessions found interrupted; for a command that
    only reads, one that exists already."""
    from kapmonitor.record.db import require_existing
    from kapmonitor.record.recorder import open_store

    if reading:
        require_existing(url)  # a mistyped path is named, not created as an empty database
    store, interrupted = open_store(url)
    for session_id in interrupted:
        say_interrupted(session_id)
    try:
        yield store
    finally:
        store.db.close()


class StopRequest:
    """Whether SIGINT or SIGTERM (Ctrl+C, a shutdown) asked a long-running command to stop."""

    def __init__(self) -> None:
        self.asked = False

    def ask(self, signum: int, frame: object) -> None:
        self.asked = True


@contextlib.contextmanager
def stop_on_signal() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM only *ask* the command to stop, for as long as it runs; it looks at
    :attr:`StopRequest.asked` where stopping is safe.

    The default (an exception raised wherever the main thread happens to be) can land between a
    lock's acquire and its release: a hub queue's lock left held then blocks the device reader
    that publishes to it, and the stop that joins that reader waits for ever. A second signal
    during the stop changes nothing either, nor one after it: once asked, the process is
    stopping and further stop signals are ignored to its end. Off the main thread (a test
    calling the command) the handlers stay as they are.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    before = {sig: signal.signal(sig, request.ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in before.items():
            signal.signal(sig, signal.SIG_IGN if request.asked else handler)
