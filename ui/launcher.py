"""The ``kapmonitor`` command: the core's command line, with the dosing-room screen plugged in.

Qt is imported only when a screen is opened, so ``kapmonitor decode`` and friends start fast
and run on machines without a display; on one, the screens say so in one sentence
(:mod:`ui.display`) before Qt can abort the process. The screens write a crash log
(faulthandler) into the data folder, so a crash in native code leaves a Python stack.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kapmonitor.cli import main as cli_main
from kapmonitor.core.errors import UserError
from kapmonitor.crash_log import enable_crash_log

if TYPE_CHECKING:
    from alarms.profile import CourseRule
    from kapmonitor.runner import SessionConfig
    from kapmonitor.station.client import StationClient


def _prepare_qt() -> None:
    """Before Qt loads: a display (or one sentence), and Qt's own chatter kept quiet."""
    from ui.display import display_problem
    from ui.qt_messages import install_filter, quiet_logging_rules

    problem = display_problem()
    if problem:
        raise UserError(problem)
    quiet_logging_rules()
    install_filter()


def screen(config: SessionConfig | None, db_url: str | None) -> int:
    _prepare_qt()
    from ui.app import run

    enable_crash_log()
    return run(config, db_url=db_url)


def review(session_id: int | None, db_url: str | None, reviewer: str | None) -> int:
    _prepare_qt()
    from ui.review.app import run

    enable_crash_log()
    return run(session_id, db_url, reviewer)


def course(patient: str, db_url: str | None, rule: CourseRule) -> int:
    _prepare_qt()
    from ui.review.app import run_course

    enable_crash_log()
    return run_course(patient, db_url, rule)


def station(client: StationClient, db_url: str | None) -> int:
    _prepare_qt()
    from ui.station.app import run

    enable_crash_log()
    return run(client, db_url)


def main() -> int:
    return cli_main(screen=screen, review=review, course_window=course, station_window=station)


if __name__ == "__main__":
    sys.exit(main())
