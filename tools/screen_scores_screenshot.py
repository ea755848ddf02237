"""The dosing-room screen with sedation and dissociation scores, for docs/screenshots.

Run under Xvfb at 1080p::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python tools/screen_scores_screenshot.py

A real session on the simulated ``typical`` patient at ``--speed`` (default 60) records into a
temporary SQLite file. After the pre-dose readings the dose is given with the D key; at 15, 30
and 45 minutes the nurse scores with the M key (the dialog driven from the keyboard, as at the
bedside); past 60 minutes the 60-minute score falls due, the dialog is opened again and MOAA/S 2
picked. Saves screen-scores.png (the window with the dialog over the big numbers) and
screen-scores-dialog.png (the dialog alone).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from kapmonitor.record.session import SessionSetup
from kapmonitor.runner import SessionConfig, SessionRunner
from ui.main_window import MainWindow
from ui.theme import apply_dark_theme

ROOT = Path(__file__).resolve().parents[1]
#: (minutes after the dose, MOAA/S key, dissociation key): the course of a typical session.
SCORES = ((15.5, "4", "2"), (30.5, "3", "2"), (45.5, "3", "1"))


def _settle(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait(app: QApplication, what, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise SystemExit(f"screen_scores_screenshot: {why}")
        _settle(app, 0.02)


def _minutes(window: MainWindow) -> float:
    dose = window.runner.dose
    assert dose is not None
    return (window.runner.now().mono - dose.mono) / 60


def _score(app: QApplication, window: MainWindow, keys: str, *, enter: bool = True) -> None:
    # Without a window manager a closed dialog leaves no window active: make it so again, or
    # the window's keys (rightly) do nothing.
    window.activateWindow()
    _settle(app, 0.1)
    if not window.keys_active():
        raise SystemExit("screen_scores_screenshot: the window did not become active")
    QTest.keyClick(window, Qt.Key.Key_M)
    _settle(app, 0.05)
    dialog = window.assessment_dialog
    for key in keys:
        QTest.keyClick(QApplication.focusWidget() or dialog, key)
    if enter:
        QTest.keyClick(QApplication.focusWidget() or dialog, Qt.Key.Key_Return)
    _settle(app, 0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    with tempfile.TemporaryDirectory(prefix="kapmonitor-scores-shot-") as tmp:
        config = SessionConfig(
            SessionSetup("P-0042", operator="RN Lee", devices=("sim:typical",)),
            db_url=f"sqlite:///{Path(tmp) / 'k.sqlite3'}",
            speed=args.speed,
            seed=3,
        )
        window = MainWindow(SessionRunner(config))
        window.setGeometry(0, 0, 1920, 1080)
        window.runner.start()
        window.show()
        window.activateWindow()
        window.start()
        try:
            runner = window.runner
            _wait(app, lambda: len(runner.predose_readings()) >= 3, 60, "no pre-dose readings")
            QTest.keyClick(window, Qt.Key.Key_D)
            for at, moaas, rating in SCORES:
                _wait(app, lambda at=at: _minutes(window) >= at, 120, "the session stopped")
                _score(app, window, moaas + rating)
            _wait(app, lambda: _minutes(window) >= 61, 120, "the session stopped")
            _settle(app, 0.5)
            assert window.view.scores.due, window.view.scores.prompt_text()
            _score(app, window, "2", enter=False)
            _settle(app, 0.4)
            dialog = window.assessment_dialog
            # Over the big numbers, not the trends: the lanes and the prompt stay in view.
            frame = window.geometry()
            dialog.move(frame.right() - dialog.width() - 8, frame.top() + 150)
            _settle(app, 0.2)
            shot = window.grab()
            painter = QPainter(shot)
            painter.drawPixmap(dialog.geometry().topLeft() - window.geometry().topLeft(),
                               dialog.grab())  # fmt: skip
            painter.end()
            args.out.mkdir(parents=True, exist_ok=True)
            shot.save(str(args.out / "screen-scores.png"))
            dialog.grab().save(str(args.out / "screen-scores-dialog.png"))
            dialog.reject()
        finally:
            window.timer.stop()
            window.runner.stop()
            window.sound.close()
    print(f"screen_scores_screenshot: saved 2 screenshots into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
