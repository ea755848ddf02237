"""Starting the station window on a running client (``kapmonitor station``).

SIGTERM and SIGINT close it within a second (:class:`ui.system_stop.SystemStop`) and the
process exits with 128 + the signal's number; the command line then stops the client and, for
``--demo``, the simulated rooms and the private broker.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from kapmonitor.station.client import StationClient
from ui.station.window import StationWindow
from ui.system_stop import SystemStop
from ui.theme import apply_dark_theme


def run(client: StationClient, db_url: str | None = None) -> int:
    """``db_url``: the clinic database the large views read the rooms' records from, or None."""
    running = QApplication.instance()
    app = running if isinstance(running, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("kapmonitor station")
    apply_dark_theme(app)
    stop = SystemStop(app)
    window = StationWindow(client, db_url=db_url)
    stop.stop_requested.connect(lambda signum: (window.close(), app.exit(128 + signum)))
    try:
        window.place_on_screen()
        window.showMaximized()
        window.start()
        return app.exec()
    finally:
        window.close()
        stop.uninstall()
