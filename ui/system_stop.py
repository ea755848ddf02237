"""SIGTERM and SIGINT (shutdown, logout, Ctrl+C) stop a Qt screen cleanly and promptly.

Python runs a signal handler only between two bytecodes of the main thread. While Qt waits in
its C++ event loop no Python runs, so a handler waits until some Python slot happens to be
called, and the default SIGINT handler's ``KeyboardInterrupt`` (or the command line's, for
SIGTERM) is then raised inside that slot, where PySide prints and swallows it: the process ran on
until killed.

The well-known pattern used here is :func:`signal.set_wakeup_fd` with a
:class:`~PySide6.QtCore.QSocketNotifier`: the C-level signal handler writes the signal's number to
one end of a socket pair, which wakes the event loop at once; the notifier's slot is Python, so
the Python handler runs there, and the slot turns the signal into an ordinary Qt signal,
:attr:`SystemStop.stop_requested`, handled at the event loop's next turn, never in the middle
of a paint or a tick. It reacts in milliseconds, also while a modal dialog runs its own loop,
and costs nothing while no signal comes. The alternative, a QTimer firing every few hundred
milliseconds only to let Python look for signals, wakes the process forever and adds its
period to every stop.
"""

from __future__ import annotations

import signal
import socket

from PySide6.QtCore import QObject, QSocketNotifier, Signal

#: The signals that stop the screen: the system's (shutdown, logout) and Ctrl+C's.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SystemStop(QObject):
    """While installed, SIGTERM and SIGINT emit :attr:`stop_requested` on the Qt main thread.

    Install it on the main thread after the QApplication exists; :meth:`uninstall` puts the
    previous handlers and wakeup fd back.

    Signals:
        stop_requested(int): the number of the signal that asked to stop.
    """

    stop_requested = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.received: int | None = None  #: the first stop signal received
        self._emitted = False
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._note) for sig in STOP_SIGNALS}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._wake)

    def _note(self, signum: int, frame: object) -> None:
        # The Python handler: it replaces the default (KeyboardInterrupt) and only remembers the
        # signal. It may run anywhere in the main thread (inside a paint, a tick); the work is
        # done from the event loop, in _wake.
        self._remember(signum)

    def _remember(self, signum: int) -> None:
        if self.received is None and signum in STOP_SIGNALS:
            self.received = signum

    def _wake(self) -> None:
        # The bytes are the signals' numbers: enough on their own, whether or not the Python
        # handler has run yet.
        try:
            while data := self._reader.recv(512):
                for signum in data:
                    self._remember(signum)
        except BlockingIOError:
            pass
        if self.received is not None and not self._emitted:
            # Once: Ctrl+C held down, or a shutdown's SIGTERM on top of it, must not start a
            # second stop inside the first (the first one closes the session and the window).
            self._emitted = True
            self.stop_requested.emit(self.received)

    def uninstall(self) -> None:
        """The previous handlers back; but once a stop signal came, the process is stopping and
        further ones are ignored (a default handler would raise KeyboardInterrupt anywhere in
        the teardown still to come)."""
        self._notifier.setEnabled(False)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if self.received is None else signal.SIG_IGN)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()
