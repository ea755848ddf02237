"""Qt's own console chatter kept off the nurse's terminal, every other Qt message kept.

Every launch printed about ten ``qt.multimedia`` lines (FFmpeg's optional libraries it looked
for) and ``PulseAudioService: pa_context_connect() failed`` where no sound server runs. The
code meant to silence the first with ``QT_LOGGING_RULES``, but set it when creating the
QApplication, after the screens' modules had loaded QtMultimedia, and Qt reads the rules once,
when its logging starts: :func:`quiet_logging_rules` sets them before any Qt module is imported
(the launcher calls it first). The PulseAudio line is an uncategorised warning no rule reaches;
the screen already says "no audio output: alarms are visual only", so :func:`install_filter`
sends it, and the offscreen platform's "does not support propagateSizeHints()", to this
module's logger (debug) instead; any other message goes to stderr as Qt formats it.

Importing this module loads no Qt.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

#: Categories that only say which optional libraries Qt Multimedia found.
QUIET_RULES = "qt.multimedia*=false"
#: Uncategorised Qt warnings that say nothing the screen does not say better.
KNOWN_NOISE = (
    "PulseAudioService: pa_context_connect() failed",
    "This plugin does not support propagateSizeHints()",
)


def quiet_logging_rules(environ: MutableMapping[str, str] | None = None) -> None:
    """Silence :data:`QUIET_RULES` unless the user's own ``QT_LOGGING_RULES`` says otherwise
    (theirs come after ours, and the last matching rule wins). Call before importing Qt."""
    environ = os.environ if environ is None else environ
    theirs = environ.get("QT_LOGGING_RULES", "")
    if QUIET_RULES not in theirs.split(";"):
        environ["QT_LOGGING_RULES"] = ";".join(filter(None, (QUIET_RULES, theirs)))


def install_filter() -> None:
    """Route Qt's messages through :func:`_handle`."""
    from PySide6.QtCore import qInstallMessageHandler

    qInstallMessageHandler(_handle)


def _handle(kind, context, message: str) -> None:
    from PySide6.QtCore import qFormatLogMessage

    if message.startswith(KNOWN_NOISE):
        log.debug("Qt: %s", message)
        return
    print(qFormatLogMessage(kind, context, message), file=sys.stderr, flush=True)
