"""Starting the dosing-room screen: the start dialog (or a demo), then the window.

SIGTERM and SIGINT (shutdown, logout, Ctrl+C) stop it within a second: the session is flushed
and closed as stopped by the system, and the process exits with 128 + the signal's number.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QMessageBox

from kapmonitor.core.errors import UserError
from kapmonitor.runner import SessionConfig, SessionRunner, check_device
from ui.main_window import MainWindow
from ui.start_dialog import StartDialog
from ui.system_stop import SystemStop
from ui.theme import apply_dark_theme


def _application() -> QApplication:
    running = QApplication.instance()
    app = running if isinstance(running, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("kapmonitor")
    apply_dark_theme(app)
    return app


def run(config: SessionConfig | None, *, db_url: str | None = None) -> int:
    """Show the screen; with no config, ask for one in the start dialog first."""
    app = _application()
    stop = SystemStop(app)
    stop.stop_requested.connect(lambda signum: app.exit(128 + signum))
    try:
        return _run(app, stop, config, db_url)
    finally:
        stop.uninstall()


def _run(
    app: QApplication, stop: SystemStop, config: SessionConfig | None, db_url: str | None
) -> int:
    from_dialog = config is None
    while True:
        if config is None or from_dialog:  # None: the first time round from the dialog
            dialog = StartDialog(check_device=check_device)
            if not dialog.exec():
                return 0 if stop.received is None else 128 + stop.received
            config = SessionConfig(dialog.setup(), db_url=db_url)
        try:
            runner = SessionRunner(config)
            window = MainWindow(runner)
            runner.start()
            break
        except UserError as exc:
            # One plain sentence; from the dialog the nurse corrects it and tries again.
            QMessageBox.critical(None, "kapmonitor", str(exc))
            if not from_dialog:
                return 2
    failed: list[Exception] = []

    def stop_session(signum: int) -> None:
        try:
            window.stop_by_system()
        except Exception as exc:  # raised again below, out of the event loop
            failed.append(exc)  # (the database is down, say): the command line names it
        finally:
            app.exit(128 + signum)  # whatever happened, the process ends

    stop.stop_requested.disconnect()
    stop.stop_requested.connect(stop_session)
    for session_id in runner.interrupted:
        window.say(f"Session {session_id} was interrupted; review it with kapmonitor review.")
    window.place_on_screen()  # the whole screen even where nothing maximises it
    window.showMaximized()
    window.start()
    status = app.exec()
    if failed:
        raise failed[0]
    return status
