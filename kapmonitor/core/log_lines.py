"""How the command line prints log messages: ``kapmonitor: <device or area>: message``.

A nurse or a tester reads these lines, not a developer: a module path such as
``devices.protocols.masimo`` says nothing to them, while the device's name (which the drivers put
at the start of their messages) or the part of kapmonitor that speaks ("record", "pipeline")
does. With ``--verbose`` the level and the module path come back, with any traceback.
"""

from __future__ import annotations

import logging

#: The part of kapmonitor a logger speaks for, by the start of its module path. A device's
#: messages already begin with the device's name (``masimo@/dev/ttyUSB0: …``): no area.
AREAS: tuple[tuple[str, str], ...] = (
    ("devices", ""),
    ("kapmonitor.record", "record"),
    ("kapmonitor.core.hub", "pipeline"),
    ("kapmonitor.runner", "session"),
    ("kapmonitor.crash_log", "crash log"),
    ("alarms", "alarms"),
    ("ui", "screen"),
)


def area(logger_name: str) -> str:
    """The area for a logger: the longest matching module prefix, else the logger's last part."""
    for prefix, name in sorted(AREAS, key=lambda pair: -len(pair[0])):
        if logger_name == prefix or logger_name.startswith(prefix + "."):
            return name
    return logger_name.rpartition(".")[2]


class UserFormatter(logging.Formatter):
    """``kapmonitor: <area>: message``; an internal error's traceback only with --verbose."""

    def format(self, record: logging.LogRecord) -> str:
        where = area(record.name)
        line = f"kapmonitor: {where + ': ' if where else ''}{record.getMessage()}"
        if record.exc_info:
            line += " (run with --verbose for details)"
        return line


VERBOSE_FORMAT = "kapmonitor: %(levelname)s %(name)s: %(message)s"


def configure(verbose: bool) -> None:
    """Log to stderr: WARNING and above as sentences; with ``verbose`` INFO and module paths."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(VERBOSE_FORMAT) if verbose else UserFormatter())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
