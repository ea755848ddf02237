"""A crash log in the data folder, so a segfault leaves a Python stack behind.

The screen has crashed once in native code (a segfault in libpython under Qt) with nothing to show
for it. :func:`enable_crash_log` turns on :mod:`faulthandler` for the process, writing to
``crash.log`` in the data folder: on SIGSEGV, SIGFPE, SIGABRT, SIGBUS or SIGILL it prints every
thread's Python stack there. The file is appended to and each run writes a header line first
(time, process id, command), so a stack can be told from the runs before it. A data folder that
cannot be written costs the log, never the monitoring: a warning, and the app runs on.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from kapmonitor.record.db_env import default_path

log = logging.getLogger(__name__)

FILE_NAME = "crash.log"

#: The open log: faulthandler writes to its file descriptor, which must stay open.
_file: TextIO | None = None


def crash_log_path() -> Path:
    """``crash.log`` in the data folder, beside the default database."""
    return default_path().parent / FILE_NAME


def enable_crash_log(path: Path | None = None) -> Path | None:
    """Send faulthandler's stacks to ``path`` (default: :func:`crash_log_path`); None if it
    cannot be written."""
    global _file
    path = path or crash_log_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        file = os.fdopen(fd, "a", encoding="utf-8")
        when = time.strftime("%Y-%m-%d %H:%M:%S %z")
        file.write(f"=== {when}  pid {os.getpid()}  {' '.join(sys.argv)}\n")
        file.flush()
    except OSError as exc:
        log.warning("no crash log: cannot write %s (%s)", path, exc.strerror or exc)
        return None
    faulthandler.enable(file=file, all_threads=True)
    if _file is not None:
        _file.close()
    _file = file
    return path
