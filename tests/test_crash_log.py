"""The crash log: a segfault leaves every thread's Python stack in crash.log, appended per run."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kapmonitor.crash_log import crash_log_path, enable_crash_log

ROOT = Path(__file__).resolve().parents[1]

CRASH = """
import faulthandler, sys
from pathlib import Path
from kapmonitor.crash_log import enable_crash_log
assert enable_crash_log(Path(sys.argv[1])) == Path(sys.argv[1])
assert faulthandler.is_enabled()
faulthandler._sigsegv()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_segfault_leaves_a_python_stack_in_the_crash_log(tmp_path):
    log = tmp_path / "data" / "crash.log"
    for run in range(2):  # appended: the second crash keeps the first one's stack
        result = subprocess.run(
            [sys.executable, "-c", CRASH, str(log)], cwd=ROOT, capture_output=True, timeout=60
        )
        assert result.returncode == -signal.SIGSEGV
        text = log.read_text()
        assert text.count("Fatal Python error: Segmentation fault") == run + 1
        assert text.count("=== ") == run + 1  # a header line per run
        assert 'File "<string>", line 7' in text  # the Python stack of the crash
    assert log.stat().st_mode & 0o777 == 0o600  # it may name the patient's files: owner only


def test_the_crash_log_is_in_the_data_folder():
    # conftest points the data folder (XDG_DATA_HOME) at a temporary home for the whole run.
    assert crash_log_path() == Path(os.environ["XDG_DATA_HOME"]) / "kapmonitor" / "crash.log"


def test_an_unwritable_data_folder_costs_the_log_not_the_app(tmp_path, caplog):
    folder = tmp_path / "not-a-folder"
    folder.write_text("a file where the data folder should be")  # unwritable, even for root
    was_enabled = faulthandler.is_enabled()
    assert enable_crash_log(folder / "crash.log") is None
    assert "no crash log: cannot write" in caplog.text
    assert faulthandler.is_enabled() == was_enabled  # left as it was (pytest's own)
