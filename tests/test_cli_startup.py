"""The command line starts without what only some commands need.

``kapmonitor --help`` and ``kapmonitor decode`` run on machines without a database server or a
display, and often (a script decoding many captures): they must not load SQLAlchemy, Alembic, Qt
or reportlab, which each command group imports only when one of its commands runs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("sqlalchemy", "alembic", "PySide6", "reportlab")

#: The real entry point (``ui.launcher:main``, as pyproject's script runs it), then the heavy
#: packages it loaded on the way.
SCRIPT = f"""
import sys
from ui.launcher import main
try:
    status = main()
except SystemExit as exc:
    status = exc.code
loaded = sorted({{name.partition(".")[0] for name in sys.modules}} & set({HEAVY!r}))
print("loaded:", *loaded, file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["decode", "--help"],
        ["decode", "--protocol", "nonin2", "-"],
        ["alarms", "profiles"],
    ],
    ids=["help", "decode-help", "decode", "alarms-profiles"],
)
def test_a_light_command_loads_no_database_screen_or_report_library(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=ROOT,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "loaded:", result.stderr
