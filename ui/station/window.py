"""The nurse station window: a tile per room, most urgent first; a click shows a room large.

It reads the model on its own timer (:data:`TICK_HZ`), never from the MQTT client's thread, and
redraws only when the model's version moved (or once a second, for the ages and the minutes
since the dose). Tiles flash in step, on a single-shot timer set to the next edge of the most
urgent priority shown (:func:`ui.alarm_flash.next_edge`), as the dosing-room screen does; with
no alarm it never wakes for flashing. The top bar holds the station's own link to the broker,
the audio state and the station-wide audio pause (timed, never a permanent off).
"""

from __future__ import annotations

import math
import time

from PySide6 import QtCore, QtGui, QtWidgets

from alarms.model import Priority
from kapmonitor.station.client import StationClient
from kapmonitor.station.model import RoomView
from ui import theme
from ui.alarm_flash import next_edge, priority_lit
from ui.sound import AlarmSound
from ui.station.audio import StationAudio
from ui.station.feed import NibpLog
from ui.station.history import RecordHistory
from ui.station.room_view import BUTTON_STYLE, RoomLargeView
from ui.station.tile import RoomTile

#: How often the window looks at the model (it redraws only when it changed).
TICK_HZ = 4
#: Ages ("12 min ago") and minutes since the dose move even when no message came.
REDRAW_EVERY_S = 1.0
#: Tiles per row: 8 rooms are a 4 x 2 grid on a 1080p screen.
COLUMNS = 4
PAUSE_KEY = "P"


def grid_shape(rooms: int) -> tuple[int, int]:
    """(rows, columns) for ``rooms`` tiles: at most :data:`COLUMNS` a row, none left empty."""
    columns = max(1, min(COLUMNS, rooms))
    return max(1, math.ceil(rooms / columns)), columns


class StationWindow(QtWidgets.QMainWindow):
    """Every room of the clinic on one screen."""

    def __init__(
        self,
        client: StationClient,
        *,
        sound: AlarmSound | None = None,
        audio: StationAudio | None = None,
        db_url: str | None = None,
    ) -> None:
        """``db_url``: the clinic database (``station --db``), from which a room's large view
        fills its trends from the session's start; None: only what the station received."""
        super().__init__()
        self.client = client
        self.model = client.model
        self.setWindowTitle("kapmonitor station")
        self.audio = audio or StationAudio(sound or AlarmSound(self))
        self.tiles: dict[str, RoomTile] = {}
        self.order: list[str] = []  #: the rooms as laid out, most urgent first
        self.views: list[RoomView] = []
        self._version = -1
        self._drawn_at = 0.0

        self.title = QtWidgets.QLabel("kapmonitor station")
        self.title.setStyleSheet(theme.label_style(theme.TEXT, 26, bold=True))
        self.link = QtWidgets.QLabel()
        self.link.setSizePolicy(  # a long broker sentence never widens the window
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.summary = QtWidgets.QLabel()
        self.summary.setStyleSheet(theme.label_style(theme.TEXT_DIM, 20))
        self.audio_state = QtWidgets.QLabel()
        self.pause_button = QtWidgets.QPushButton(f"Audio pause ({PAUSE_KEY})")
        self.pause_button.setToolTip(
            f"Silence the station for {self.audio.pause_s:g} s; it sounds again by itself"
        )
        self.pause_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.pause_button.setStyleSheet(BUTTON_STYLE)
        self.pause_button.clicked.connect(self.pause_audio)
        self.clock = QtWidgets.QLabel()
        self.clock.setStyleSheet(theme.label_style(theme.TEXT, 26, bold=True))
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(10, 4, 10, 4)
        bar.addWidget(self.title)
        bar.addSpacing(24)
        bar.addWidget(self.link, 2)
        bar.addSpacing(24)
        bar.addWidget(self.summary, 1)
        bar.addWidget(self.audio_state)
        bar.addSpacing(12)
        bar.addWidget(self.pause_button)
        bar.addSpacing(24)
        bar.addWidget(self.clock)

        self.grid_page = QtWidgets.QWidget()
        self.grid = QtWidgets.QGridLayout(self.grid_page)
        self.grid.setContentsMargins(6, 6, 6, 6)
        self.grid.setSpacing(8)
        self.empty = QtWidgets.QLabel("Waiting for rooms to publish to the broker…")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet(theme.label_style(theme.TEXT_DIM, 30))
        self.grid.addWidget(self.empty, 0, 0)
        self.nibp = NibpLog()
        self.history = RecordHistory(db_url) if db_url else None
        self.large = RoomLargeView(
            self.model, client.request_pleth, self.nibp, history=self.history
        )
        self.large.back_requested.connect(self.show_grid)
        self.pages = QtWidgets.QStackedWidget()
        self.pages.addWidget(self.grid_page)
        self.pages.addWidget(self.large)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        for key, slot in (
            (QtCore.Qt.Key.Key_Escape, self.show_grid),
            (PAUSE_KEY, self.pause_audio),
        ):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.activated.connect(slot)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(1000 / TICK_HZ))
        self.timer.timeout.connect(self.tick)
        self.flash = QtCore.QTimer(self)
        self.flash.setSingleShot(True)
        self.flash.timeout.connect(self.reflash)

    # --- the timer --------------------------------------------------------------------------

    def start(self) -> None:
        self.tick()
        self.timer.start()

    def tick(self) -> None:
        """Redraw what changed; sound what is due; the large view takes its room's news."""
        version = self.model.version
        now = time.monotonic()
        if version != self._version or now - self._drawn_at >= REDRAW_EVERY_S:
            self._version = version
            self._drawn_at = now
            self.redraw()
        self.audio.update(self.views)
        self._show_audio()

    def redraw(self) -> None:
        self.views = self.model.snapshot()
        self.nibp.record(self.views)
        wall = time.time()
        for view in self.views:
            tile = self.tiles.get(view.room)
            if tile is None:
                tile = self.tiles[view.room] = RoomTile(view.room)
                tile.clicked.connect(self.open_room)
            tile.show_view(view, wall)
        self._layout([v.room for v in self.views])
        self._show_link()
        self.clock.setText(time.strftime("%H:%M:%S", time.localtime(wall)))
        if self.large.room is not None:
            self.large.refresh()
        self.reflash()

    def _layout(self, order: list[str]) -> None:
        """Place the tiles most urgent first; only when the order changed."""
        if order == self.order:
            return
        self.order = order
        self.empty.setVisible(not order)
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
        rows, columns = grid_shape(len(order))
        for i in range(max(rows, 4)):
            self.grid.setRowStretch(i, 1 if i < rows else 0)
        for i in range(max(columns, COLUMNS)):
            self.grid.setColumnStretch(i, 1 if i < columns else 0)
        for i, room in enumerate(order):
            self.grid.addWidget(self.tiles[room], i // columns, i % columns)
            self.tiles[room].show()

    def _show_link(self) -> None:
        connected = self.model.connected
        text = f"broker: {self.model.link_text}"
        colour = theme.TEXT_DIM if connected else theme.WARN
        self.link.setText(text if connected else f"NOT CONNECTED: {text}")
        self.link.setStyleSheet(theme.label_style(colour, 20, bold=not connected))
        alarming = sum(1 for v in self.views if v.top_priority)
        self.summary.setText(
            f"{len(self.views)} room(s)" + (f", {alarming} alarming" if alarming else "")
        )

    def _show_audio(self) -> None:
        left = self.audio.paused_for()
        problem = self.audio.sound.problem
        if left > 0:
            text = f"AUDIO PAUSED {int(left // 60)}:{int(left % 60):02d}"
            style = theme.label_style("#000000", 22, bold=True, background=theme.WARN)
        elif problem:
            text, style = problem, theme.label_style(theme.WARN, 18)
        else:
            text, style = "audio on", theme.label_style(theme.TEXT_DIM, 20)
        if self.audio_state.text() != text:
            self.audio_state.setText(text)
        if self.audio_state.styleSheet() != style:
            self.audio_state.setStyleSheet(style)

    # --- flashing ---------------------------------------------------------------------------

    def reflash(self) -> None:
        """Light or darken each alarming tile for now; wake at the next edge of any of them."""
        now = time.monotonic()
        edges = []
        for tile in self.tiles.values():
            if tile.priority is None:
                tile.set_lit(True)
                continue
            tile.set_lit(priority_lit(tile.priority, now))
            edge = next_edge(tile.priority, now)
            if edge is not None:
                edges.append(edge)
        if edges:
            self.flash.start(max(1, math.ceil((min(edges) - now) * 1000)))
        else:
            self.flash.stop()

    # --- what the nurse does ------------------------------------------------------------------

    def open_room(self, room: str) -> None:
        self.large.open_room(room)
        self.pages.setCurrentWidget(self.large)

    def show_grid(self) -> None:
        self.large.close_room()
        self.pages.setCurrentWidget(self.grid_page)

    def pause_audio(self) -> None:
        self.audio.pause()
        self.audio.update(self.views)
        self._show_audio()

    @property
    def showing_room(self) -> str | None:
        return self.large.room if self.pages.currentWidget() is self.large else None

    def top_priority(self) -> Priority | None:
        ranks = [v.top_priority for v in self.views if v.top_priority]
        return Priority(max(ranks)) if ranks else None

    def place_on_screen(self) -> None:
        """Fill the screen's available area, also where no window manager maximises it."""
        screen = self.screen() or QtWidgets.QApplication.primaryScreen()
        self.setGeometry(screen.availableGeometry())

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.timer.stop()
        self.flash.stop()
        self.large.close_room()
        self.audio.close()
        if self.history is not None:
            self.history.close()
        event.accept()
